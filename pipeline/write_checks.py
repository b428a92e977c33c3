"""The write rule of :mod:`stylecascade.files` applied before any work: every file a run will
write, checked where it will go (:func:`check_outputs`) and against the files it must not
replace (:func:`refuse_existing`). Each folder is looked at once, so the 100 000 files that
``--save-every 1`` may write are checked in a fraction of a second. Torch-free."""

from __future__ import annotations

import functools
import importlib.util
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import ArgumentError, UsageError, literal
from .files import FEW, check_target, exists_already, probe, refused

TEMPORARY_ROOM = len(".") + len(".XXXXXXXX.tmp")
"""Bytes the writers add to a file's name beside it: :func:`~stylecascade.files.atomic_write`'s
temporary ``.NAME.XXXXXXXX.tmp`` (the output's lock lives elsewhere,
:func:`~stylecascade.files.output_lock`)."""


def check_outputs(
    outputs: Sequence[Path],
    inputs: Sequence[Path],
    folders: Sequence[Path] = (),
    argument: str | None = "output",
) -> None:
    """Check, before any work, that every file a render will write can be written there under
    the write rule (:mod:`stylecascade.files`). Each folder is looked at once, so 100 000 planned
    files (``--save-every 1``) take a fraction of a second.

    Args:
        outputs: every file the render creates (image, manifest, stage images); their
            folders exist or are created before writing
            (:func:`~stylecascade.files.check_folder`).
        inputs: the run's input files (photo, paintings, masks, init image, preset file,
            weights; a batch's every photo).
        folders: folders the writer makes for itself (the checkpoint folder,
            :func:`~stylecascade.files.own_folder`).
        argument: the field that names the outputs, for the message (``None``: none).

    Raises:
        UsageError: the first output whose name, with the :data:`TEMPORARY_ROOM` written
            beside it, is longer than its file system takes; that is a link, a folder, a
            device (:func:`~stylecascade.files.check_target`); that is an input (another
            spelling, a symbolic or hard link count as the same; ``--overwrite`` or not);
            inside the package; whose folder (or, while missing, its nearest existing
            parent) cannot be written; a ``folders`` entry that is a link or a file.
    """
    sources = _Inputs(inputs)
    own = {Path(f) for f in folders}
    for where, names in _grouped([*outputs, *folders]).items():
        folder = Path(where)
        existing = _existing_folder(folder)
        _check_lengths(folder, names, existing)
        for name in _present(folder, names):
            path = folder / name
            if path in own:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise refused(path, "is not a folder of its own (a symbolic link or a file)")
                continue
            sources.refuse(path, argument)  # an input first, by any spelling or link
            check_target(path, argument)
        resolved = Path(os.path.abspath(folder)).resolve()
        for name in sources.names_in(resolved).intersection(names):
            sources.refuse_resolved(folder / name, resolved / name, argument)
        _refuse_package(folder / names[0], resolved, argument)
        try:
            probe(existing)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            reason = reason[:1].lower() + reason[1:]
            raise UsageError(f"cannot write {folder / names[0]}: {existing}: {reason}") from None


class _Inputs:
    """A run's input files, resolved and stat-ed once, to compare outputs against."""

    def __init__(self, inputs: Iterable[Path]) -> None:
        self.by_path: dict[Path, Path] = {}
        self.by_inode: dict[tuple[int, int], Path] = {}
        for source in inputs:
            source = Path(source)
            self.by_path[Path(os.path.abspath(source)).resolve()] = source
            try:
                info = os.stat(source)
            except OSError:
                continue
            self.by_inode[(info.st_dev, info.st_ino)] = source

    def names_in(self, folder: Path) -> set[str]:
        """The names of the inputs whose resolved path is in ``folder`` (resolved)."""
        return {path.name for path in self.by_path if path.parent == folder}

    def refuse_resolved(self, output: Path, resolved: Path, argument: str | None) -> None:
        """Raises: ArgumentError: ``resolved`` (``output`` with its folder resolved) is an
        input's resolved path."""
        if resolved in self.by_path:
            self._refuse(output, self.by_path[resolved], argument)

    def refuse(self, output: Path, argument: str | None) -> None:
        """Raises: ArgumentError: the existing ``output`` is an input's file (through a link,
        or a hard link)."""
        try:
            info = os.stat(output)
        except OSError:  # a dangling link: no input's
            return
        source = self.by_inode.get((info.st_dev, info.st_ino))
        if source is not None:
            self._refuse(output, source, argument)

    @staticmethod
    def _refuse(output: Path, source: Path, argument: str | None) -> None:
        run = "render" if argument in ("output", "name") else "command"
        problem = (
            f"is an input of this {run} ({literal(source)}); an output never replaces an input"
        )
        raise refused(output, problem, argument)


def _grouped(paths: Iterable[str | os.PathLike]) -> dict[str, list[str]]:
    """``{folder: [names]}`` of ``paths`` in order, split as text (``""``: here; 200 000
    paths in a fraction of a second)."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        folder, name = os.path.split(os.fspath(path))
        groups.setdefault(folder, []).append(name)
    return groups


def _present(folder: Path, names: Sequence[str]) -> set[str]:
    """Which of ``names`` are taken in ``folder`` (a link counts, dangling or not): looked up
    one by one when few, else matched against one listing of the folder."""
    if len(names) <= FEW:
        return {n for n in names if os.path.lexists(folder / n)}
    try:
        return set(os.listdir(folder)).intersection(names)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError:  # not listable: one by one
        return {n for n in names if os.path.lexists(folder / n)}


def _check_lengths(folder: Path, names: Sequence[str], existing: Path) -> None:
    """Raises: UsageError: the longest of ``names`` with :data:`TEMPORARY_ROOM` is longer than
    the file system of ``existing`` takes."""
    longest = max(names, key=lambda n: len(os.fsencode(n)))
    size = len(os.fsencode(longest))
    limit = _name_max(existing) - TEMPORARY_ROOM
    if size > limit:
        raise UsageError(
            f"{folder / longest}: the file name is {size} bytes; this file system takes {limit} "
            f"(its {limit + TEMPORARY_ROOM} less {TEMPORARY_ROOM} for the temporary file "
            f"written beside it): choose a shorter name"
        )


@functools.cache
def package_folders() -> tuple[Path, ...]:
    """The folders of the installed package: ``stylecascade``, its ``stages`` and bundled
    ``presets`` (in an editable install, the clone's ``pipeline/``, ``stages/``, ``presets/``)."""
    folders = []
    for name in ("stylecascade", "stylecascade.stages", "stylecascade.presets"):
        spec = importlib.util.find_spec(name)
        folders += [Path(p).resolve() for p in (spec.submodule_search_locations or [])]
    return tuple(folders)


def _refuse_package(output: Path, resolved_folder: Path, argument: str) -> None:
    """Refuse an output inside the product's own package (README's quick start leaves the user
    in the clone, whose ``stages/`` is the package ``stylecascade.stages``), naming the
    ``argument`` that placed it."""
    for folder in package_folders():
        if resolved_folder.is_relative_to(folder):
            raise ArgumentError(
                argument,
                f"{{}} {literal(output)} is inside stylecascade's own package ({folder}); "
                f"write under another folder, e.g. out/",
            )


def _existing_folder(folder: Path) -> Path:
    """``folder``, or its nearest existing ancestor (where the name limit is asked)."""
    folder = Path(os.path.abspath(folder))
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, the file system of ``folder`` takes (255 if unknown)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or not reported
        return 255


def refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse to replace files the user has, unless ``overwrite`` (a link counts, dangling or
    not; each folder is listed once).

    Raises:
        UsageError: the first of ``paths`` that exists, naming ``--overwrite``.
    """
    if overwrite:
        return
    groups = _grouped(paths)
    taken = {(f, name) for f, names in groups.items() for name in _present(Path(f), names)}
    for path in paths:
        if os.path.split(os.fspath(path)) in taken:
            raise exists_already(path)
