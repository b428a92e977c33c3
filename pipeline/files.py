"""File helpers: output folders, atomic writes and digests."""

from __future__ import annotations

import functools
import glob
import hashlib
import importlib.util
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from .errors import ArgumentError, StyleCascadeError, UsageError, literal
from .paths import lock_folder


def make_folder(folder: Path, argument: str) -> bool:
    """Create an output folder (and its parents) if it is missing.

    Args:
        folder: the folder.
        argument: the argument that named it, for the message (``out_dir``).

    Returns:
        ``True`` when it was created, ``False`` when it existed.

    Raises:
        ArgumentError: it exists and is not a folder, or it cannot be created (a file in the way,
            no permission, a read-only file system).
    """
    folder = Path(folder)
    if folder.is_dir():
        return False
    if folder.exists():
        raise ArgumentError(argument, f"{{}} {folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise ArgumentError(argument, f"{{}} {folder}: cannot create it ({reason})") from None
    return True


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Create or replace ``path`` so that readers see either the old file or the whole new one.

    ``write`` receives a temporary path in the same directory; once it returns, the file is
    flushed to disk and renamed over ``path`` (``os.replace``, atomic on POSIX and Windows).
    If ``write`` raises, the temporary file is removed and ``path`` is untouched.

    Raises:
        OSError: the directory is missing or not writable; whatever ``write`` raises.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left for ``path`` when its process was
    killed (``.NAME.*.tmp`` beside it). Call it only while holding ``path``'s
    :func:`output_lock`, so that no running write's temporary is taken.

    Returns:
        The files deleted.
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``sha256``, ``md5``, …), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensor_digest(tensor: Any) -> str:
    """SHA-256 of a tensor's values (its bytes, shape and dtype), independent of how
    ``torch.save`` laid out the file (which is not byte-deterministic)."""
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{data.dtype} {tuple(data.shape)}".encode())
    digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def write_torch(path: Path, data: Any) -> None:
    """``torch.save`` ``data`` to ``path`` atomically (:func:`atomic_write`).

    The bytes are serialized in memory first: ``torch.save`` reports a full disk as a
    ``RuntimeError`` from its zip writer, while writing the bytes here raises the ``OSError``
    every other write raises (and :func:`reporting_write_errors` turns into one line).

    Raises:
        OSError: the file cannot be written.
    """
    import torch  # this module loads without torch

    buffer = io.BytesIO()
    torch.save(data, buffer)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON, atomically (:func:`atomic_write`).

    A file name that is not valid UTF-8 reaches Python as a string with lone surrogates
    (``caf\\udce9.jpg``); such a document is written with ``\\uXXXX`` escapes instead, which
    ``json.load`` reads back to the same string (and ``os.fsencode`` to the same bytes).
    """
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        encoded = (json.dumps(data, indent=2, ensure_ascii=True) + "\n").encode("ascii")
    atomic_write(path, lambda tmp: tmp.write_bytes(encoded))


@contextmanager
def reporting_write_errors(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` (disk full, no permission) into a one-line
    :class:`StyleCascadeError` naming the path."""
    try:
        yield
    except OSError as exc:
        raise StyleCascadeError(f"cannot write {path}: {exc.strerror or exc}") from None


TEMPORARY_ROOM = len(".") + len(".XXXXXXXX.tmp")
"""Bytes the writers add to a file's name beside it: :func:`atomic_write`'s temporary
``.NAME.XXXXXXXX.tmp`` (the output's lock lives elsewhere, :func:`output_lock`)."""


def check_outputs(outputs: list[Path], inputs: list[Path], folders: Sequence[Path] = ()) -> None:
    """Check, before any work, that every file a render will write can be written there.

    Args:
        outputs: every file the render creates (image, manifest, stage images); their
            folders exist or are created before writing.
        inputs: the render's input files (photo, paintings, masks; a batch's every photo).
        folders: folders it creates (the checkpoint folder).

    Raises:
        UsageError: the first output file that is an existing folder; the first output that
            is an input (another spelling, a symbolic or hard
            link count as the same; ``--overwrite`` or not); whose name, with the
            :data:`TEMPORARY_ROOM` written beside it, is longer than its file system takes; or
            whose folder (or, while missing, its nearest existing parent) cannot be written.
    """
    for output in [*outputs, *folders]:
        folder = _existing_folder(output.parent)
        limit = _name_max(folder) - TEMPORARY_ROOM
        size = len(os.fsencode(output.name))
        if size > limit:
            raise UsageError(
                f"{output}: the file name is {size} bytes; this file system takes {limit} (its "
                f"{limit + TEMPORARY_ROOM} less {TEMPORARY_ROOM} for the temporary file written "
                f"beside it): choose a shorter name"
            )
        if output not in folders and output.is_dir():
            raise ArgumentError(
                "output",
                f"output {literal(output)} is an existing folder, not a file: choose another "
                f"{{}}, {{}} or {{}}",
                "out_dir",
                "name",
            )
        _refuse_input(output, inputs)  # after the name's length: resolving it would fail
        _refuse_package(output)
        _probe(folder, output)


def _probe(folder: Path, output: Path) -> None:
    """Create and delete a file in ``folder``: permission bits say nothing for root or a
    read-only file system."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        reason = reason[:1].lower() + reason[1:]
        raise UsageError(f"cannot write {output}: {folder}: {reason}") from None


def _refuse_input(output: Path, inputs: list[Path]) -> None:
    for source in inputs:
        same = output.resolve() == source.resolve()
        if same or (output.exists() and source.exists() and os.path.samefile(output, source)):
            raise ArgumentError(
                "output",
                f"output {output} is an input of this render ({source}); an output never "
                f"replaces an input: choose another {{}}, {{}} or {{}}",
                "out_dir",
                "name",
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


def _refuse_package(output: Path) -> None:
    """Refuse an output inside the product's own package (README's quick start leaves the user
    in the clone, whose ``stages/`` is the package ``stylecascade.stages``)."""
    resolved = Path(os.path.abspath(output)).resolve()
    for folder in package_folders():
        if resolved.is_relative_to(folder):
            raise ArgumentError(
                "output",
                f"output {literal(output)} is inside stylecascade's own package ({folder}); "
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


def output_lock(path: Path) -> FileLock:
    """The advisory lock that one render holds on ``path`` (and its manifest and checkpoint)
    while it runs (:mod:`filelock`, ``timeout=0``: a second acquire raises
    :class:`filelock.Timeout`).

    Its file is not beside the output but in :func:`~stylecascade.paths.lock_folder`, named by
    the SHA-256 of ``path`` resolved (absolute, symbolic links followed), so every spelling of
    one output takes the same lock. The empty file stays after release: deleting it would let a
    waiting process lock the deleted file while a third locks a new one.

    Raises:
        StyleCascadeError: the lock folder cannot be created.
    """
    resolved = Path(os.path.abspath(path)).resolve()
    folder = lock_folder()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StyleCascadeError(
            f"cannot create the lock folder {folder}: {exc.strerror or exc}"
        ) from None
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()
    return FileLock(folder / f"{digest}.lock", timeout=0)


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Refuse to replace files the user has, unless ``overwrite``.

    Raises:
        UsageError: the first of ``paths`` that exists, naming ``--overwrite``.
    """
    if overwrite:
        return
    for path in paths:
        if path.exists():
            raise ArgumentError(
                "overwrite", f"{literal(path)} already exists; pass {{}} to replace it"
            )
