"""The one writer: every file stylecascade writes, and every folder it makes, goes through
here (outputs, manifests, checkpoints, stage images, exported weights, saved presets, the
studio's uploads). The rule, in one place (:func:`check_target`, :func:`atomic_write`,
:func:`render_lock`; before any work, :mod:`stylecascade.write_checks`):

- a file written is a regular file or nothing: never through a symbolic link, never over a
  folder, a device node, a pipe or a socket (checked before any work and again right before
  the atomic rename);
- never over an input of the same run (another spelling, a symbolic or hard link count as the
  same file);
- never over an existing file unless the caller says so (``--overwrite``; ``replace=False``
  creates the file only if nothing is there, atomically);
- a folder it makes for itself (a checkpoint folder, the studio's subfolders) is a real folder,
  never a symbolic link to another;
- one render holds one lock over every file it writes (``x.png`` and ``x.jpg`` share
  ``x.json``: they take the same lock).

Torch-free: the command line checks outputs before torch is imported.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from .errors import ArgumentError, StyleCascadeError, UsageError, literal
from .paths import lock_folder

FEW = 8
"""Up to this many names of one folder are looked up one by one; more are matched against
one listing of the folder (``--save-every 1`` plans 100 000 file names:
:mod:`stylecascade.write_checks`)."""


def exists_already(path: Path) -> ArgumentError:
    """The error of a file that is there already (field ``overwrite``: the one way to replace
    it), raised before work (``write_checks.refuse_existing``) and at the write itself."""
    return ArgumentError("overwrite", f"{literal(path)} already exists; pass {{}} to replace it")


def refused(path: Path, problem: str, argument: str | None = "output") -> UsageError:
    """The error of a write the rule refuses, naming what to choose instead: only the fields
    that placed this file (a single render's ``output``; a batch's ``out_dir`` and ``name``,
    given as ``argument="name"``: never ``-o`` to a batch); another file by its own
    ``argument`` (``compact``); ``None``: no field names it, e.g. a saved preset's file.

    Args:
        path: the file; problem: what is wrong (``is a symbolic link``).
    """
    shown = f"{literal(path)} {problem}"
    if argument is None:
        return UsageError(shown)
    if argument == "output":
        return ArgumentError("output", f"output {shown}: choose another {{}}")
    if argument == "name":
        return ArgumentError("out_dir", f"output {shown}: choose another {{}} or {{}}", "name")
    return ArgumentError(argument, f"{shown}: choose another {{}}")


def _folder_error(argument: str | None, text: str) -> UsageError:
    """A folder's error: ``{field} FOLDER: problem`` naming the field that gave it (``None``:
    ``folder FOLDER: problem``)."""
    return (
        UsageError(f"folder {text}") if argument is None else ArgumentError(argument, "{} " + text)
    )


def check_target(path: Path, argument: str | None = "output") -> bool:
    """The write rule for one file: it is a regular file or nothing (``os.lstat``: a link is
    looked at, never followed).

    Returns:
        Whether a regular file is there.

    Raises:
        ArgumentError: a symbolic link, a folder, a device node, a pipe or a socket.
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISREG(mode):
        return True
    if stat.S_ISLNK(mode):
        problem = "is a symbolic link; stylecascade never writes through one"
    elif stat.S_ISDIR(mode):
        problem = "is an existing folder, not a file"
    else:
        problem = "is not a regular file (a device, pipe or socket); stylecascade writes only files"
    raise refused(path, problem, argument)


def check_folder(folder: Path, argument: str | None) -> bool:
    """Check, creating nothing, that ``folder`` is a folder or can be made one: nothing but
    folders on its way, and a missing part's nearest existing folder writable.

    Returns:
        ``True`` when it is missing (:func:`make_folder` will create it).

    Raises:
        ArgumentError: a file where a folder must be, or a folder that cannot be created.
    """
    folder = Path(folder)
    current, missing = Path(os.path.abspath(folder)), False
    while True:
        try:
            mode = os.stat(current).st_mode  # a user's folder may be a link to one: followed
        except (FileNotFoundError, NotADirectoryError):
            if current == current.parent:
                break
            current, missing = current.parent, True
            continue
        if stat.S_ISDIR(mode):
            break
        problem = (
            "exists and is not a folder"
            if current == Path(os.path.abspath(folder))
            else f"cannot create it ({literal(current)} is a file, not a folder)"
        )
        raise _folder_error(argument, f"{literal(folder)}: {problem}")
    if missing:
        try:
            probe(current)
        except OSError as exc:
            reason = exc.strerror or exc
            raise _folder_error(
                argument, f"{literal(folder)}: cannot create it ({reason})"
            ) from None
    return missing


def make_folder(folder: Path, argument: str | None) -> bool:
    """Create an output folder (and its parents) if it is missing (:func:`check_folder`).

    Args:
        folder: the folder.
        argument: the argument that named it, for the message (``out_dir``).

    Returns:
        ``True`` when it was created, ``False`` when it existed.

    Raises:
        ArgumentError: it exists and is not a folder, or it cannot be created (a file in the
            way, no permission, a read-only file system).
    """
    folder = Path(folder)
    if not check_folder(folder, argument):
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise _folder_error(argument, f"{literal(folder)}: cannot create it ({reason})") from None
    return True


def own_folder(folder: Path, argument: str | None = "output") -> None:
    """Create a folder the writer keeps its own files in (a checkpoint, the studio's uploads),
    or check the one there: a real folder, never a symbolic link to another (which would
    carry the writes elsewhere). Its parent must exist.

    Raises:
        ArgumentError: a link, a file or anything else in its place.
        OSError: it cannot be created.
    """
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        raise refused(folder, "is not a folder of its own (a symbolic link or a file)", argument)


def remove_own_folder(folder: Path) -> None:
    """Delete a folder of :func:`own_folder` with its files; a link in its place is left as it
    is (never followed)."""
    try:
        if stat.S_ISDIR(os.lstat(folder).st_mode):
            shutil.rmtree(folder, ignore_errors=True)
    except FileNotFoundError:
        pass


def atomic_write(
    path: Path,
    write: Callable[[Path], None],
    *,
    replace: bool = True,
    argument: str | None = "output",
) -> None:
    """Create or replace ``path`` so that readers see either the old file or the whole new one.

    ``write`` receives a temporary path in the same directory, created by ``mkstemp``
    (``O_CREAT | O_EXCL | O_NOFOLLOW``: a new file, no link followed); once it returns, the
    file is flushed to disk and renamed over ``path`` (``os.replace``, atomic), after
    :func:`check_target` once more. With ``replace=False`` it is linked to ``path`` instead,
    which fails if anything is there (atomic too: two writers cannot both create it). If
    ``write`` raises, the temporary file is removed and ``path`` is untouched.

    Raises:
        ArgumentError: ``path`` is a link, folder, device, pipe or socket (:func:`check_target`);
            with ``replace=False``, something is there (field ``overwrite``).
        OSError: the directory is missing or not writable; whatever ``write`` raises.
    """
    path = Path(path)
    check_target(path, argument)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual permissions
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        check_target(path, argument)  # again: nothing replaced it meanwhile
        if replace:
            os.replace(tmp, path)
        else:
            _create(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _create(tmp: Path, path: Path) -> None:
    """Give ``tmp``'s file the name ``path`` only if nothing has that name (a hard link: atomic;
    where the file system has none, a check and a rename).

    Raises:
        ArgumentError: (field ``overwrite``) something is there.
    """
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise exists_already(path) from None
    except OSError:  # no hard links here (FAT, some network file systems)
        if os.path.lexists(path):
            raise exists_already(path) from None
        os.replace(tmp, path)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left for ``path`` when its process was
    killed (``.NAME.*.tmp`` beside it). Call it only while holding ``path``'s
    :func:`render_lock`, so that no running write's temporary is taken.

    Returns:
        The files deleted.
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def _read_umask() -> int:
    """The process's umask (read by setting it: done once, at import, before any thread of
    the studio's can create a file meanwhile with the umask 0)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()


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


def write_torch(path: Path, data: Any, **rule: Any) -> None:
    """``torch.save`` ``data`` to ``path`` atomically (:func:`atomic_write`, which takes
    ``rule``: ``replace``, ``argument``).

    The bytes are serialized in memory first: ``torch.save`` reports a full disk as a
    ``RuntimeError`` from its zip writer, while writing the bytes here raises the ``OSError``
    every other write raises (and :func:`reporting_write_errors` turns into one line).

    Raises:
        ArgumentError: the write rule (:func:`check_target`).
        OSError: the file cannot be written.
    """
    import torch  # this module loads without torch

    buffer = io.BytesIO()
    torch.save(data, buffer)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()), **rule)


def write_json(path: Path, data: Any, **rule: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON, atomically (:func:`atomic_write`, which takes
    ``rule``).

    A file name that is not valid UTF-8 reaches Python as a string with lone surrogates
    (``caf\\udce9.jpg``); such a document is written with ``\\uXXXX`` escapes instead, which
    ``json.load`` reads back to the same string (and ``os.fsencode`` to the same bytes).
    """
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        encoded = (json.dumps(data, indent=2, ensure_ascii=True) + "\n").encode("ascii")
    atomic_write(path, lambda tmp: tmp.write_bytes(encoded), **rule)


@contextmanager
def reporting_write_errors(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` (disk full, no permission) into a one-line
    :class:`StyleCascadeError` naming the path."""
    try:
        yield
    except OSError as exc:
        raise StyleCascadeError(f"cannot write {path}: {exc.strerror or exc}") from None


def probe(folder: Path) -> None:
    """Create and delete a file in ``folder``: permission bits say nothing for root or a
    read-only file system.

    Raises:
        OSError: it cannot be written.
    """
    with tempfile.TemporaryFile(dir=folder):
        pass


def output_lock(path: Path) -> FileLock:
    """The advisory lock on ``path`` and every file of its stem (``x.png``, ``x.jpg`` and the
    ``x.json`` they share take the same lock; :mod:`filelock`, ``timeout=0``: a second acquire
    raises :class:`filelock.Timeout`).

    Its file is not beside the output but in :func:`~stylecascade.paths.lock_folder`, named by
    the SHA-256 of ``path`` resolved (absolute, symbolic links followed) without its last
    suffix, so every spelling of one output takes the same lock. The empty file stays after
    release: deleting it would let a waiting process lock the deleted file while a third locks
    a new one.

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
    digest = hashlib.sha256(os.fsencode(resolved.with_suffix(""))).hexdigest()
    return FileLock(folder / f"{digest}.lock", timeout=0)


@contextmanager
def render_lock(paths: Iterable[Path]) -> Iterator[None]:
    """One render's lock over every file it writes: :func:`output_lock` of each of ``paths``
    (the output; its guide; a file named like the output in the stage folder), taken in one
    order and released together.

    Raises:
        filelock.Timeout: another process holds one of them (``lock_file`` names it); none is
            kept.
        StyleCascadeError: the lock folder cannot be created.
    """
    locks = {lock.lock_file: lock for lock in map(output_lock, paths)}
    with ExitStack() as stack:
        for name in sorted(locks):
            stack.enter_context(locks[name])
        yield
