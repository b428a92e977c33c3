"""The one reader of input files: presets, manifests, checkpoints, images, masks and weights
are read through :func:`read_bytes`, which takes regular files only (a FIFO would block
forever, ``/dev/zero`` never ends) and never more than a bound of bytes; YAML and JSON
documents are no deeper than :data:`MAX_DEPTH` (Python's parsers recurse: a document nested a
few thousand levels deep raised ``RecursionError``)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ArgumentError, StyleCascadeError, UsageError, literal

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings in a YAML or JSON document we read (a preset is about
5 deep, a manifest about 6)."""


_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _kind(mode: int) -> str | None:
    """``a directory``, ``a FIFO (named pipe)``, … for what is no regular file (``None``
    for a regular file or another kind)."""
    return next((name for test, name in _KINDS.items() if test(mode)), None)


def path_problem(path: Path | str, want: str = "file", noun: str = "file") -> str | None:
    """What is wrong with ``path`` as an existing regular file (``want="file"``, called
    ``noun``) or folder (``want="folder"``), else ``None``: the one wording of every path the
    user names — ``no such file`` / ``no such folder``, ``is a directory, not a weights
    file``, ``is a character device, not a weights file``, ``is a file, not a folder``,
    ``cannot be looked at (Permission denied)``. Symbolic links are followed (it is read)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return f"no such {want}"
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        return f"cannot be looked at ({getattr(exc, 'strerror', None) or exc})"
    if want == "folder":
        return None if stat.S_ISDIR(mode) else f"is {_kind(mode) or 'a file'}, not a folder"
    if stat.S_ISREG(mode):
        return None
    return f"is {_kind(mode) or 'not a regular file'}, not {_a(noun)}"


def check_path(path: Path | str, field: str, want: str = "file", noun: str = "file") -> Path:
    """``path`` if it is what ``field`` takes (:func:`path_problem`).

    Args:
        path: as the user gave it; field: the field that gave it (``save_stages``), which
            each edge words as its flag; want: ``file`` or ``folder``; noun: a file's kind.

    Raises:
        ArgumentError: ``{field} PATH: problem``.
    """
    problem = path_problem(path, want, noun)
    if problem is not None:
        raise ArgumentError(field, f"{{}} {literal(path)}: {problem}")
    return Path(path)


@dataclass(frozen=True)
class Bound:
    """What a kind of file may be: at most ``limit`` bytes, called ``noun`` in messages
    (``"preset file"``), refused with ``error`` (e.g. ``PresetError``, ``WeightsError``)."""

    limit: int
    noun: str = "file"
    error: type[StyleCascadeError] = UsageError


MANIFEST = Bound(64 << 20, "JSON file")
"""A manifest or checkpoint state: the draft render's manifest is 10 kB."""
WEIGHTS = Bound(1 << 30, "weights file")
"""A VGG19 weights file: torchvision's whole VGG19 is 548 MB, our converted trunk 80 MB."""


def image_bound(max_pixels: int | None) -> Bound:
    """An image file of at most ``max_pixels`` px: 8 bytes a pixel (16-bit RGBA, uncompressed)
    and 64 MiB of metadata; no limit with ``max_pixels=None``."""
    limit = (1 << 62) if max_pixels is None else max_pixels * 8 + (64 << 20)
    return Bound(limit, "image file")


@contextmanager
def open_regular(path: Path | str, bound: Bound, what: str) -> Iterator[BinaryIO]:
    """A regular file within ``bound``, open for reading (for readers that take a file
    object: Pillow, ``torch.load``, h5py).

    Args:
        path: the file.
        bound: its kind's byte limit, name and error type.
        what: how messages name it (``"content image photo.jpg"``).

    Raises:
        bound.error: a missing file, a directory, FIFO, device or socket, a file over the
            limit, or an OS error, as one line.
    """
    error, noun = bound.error, bound.noun
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what}: no such file") from None
    except OSError as exc:
        raise error(f"{what}: cannot read {noun} ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    kind = _kind(info.st_mode)
    if kind is not None or not stat.S_ISREG(info.st_mode) or info.st_size > bound.limit:
        os.close(fd)
        if kind is None and stat.S_ISREG(info.st_mode):
            raise error(f"{what}: larger than {bound.limit} bytes; not {_a(noun)}")
        raise error(f"{what}: is {kind or 'not a regular file'}, not {_a(noun)}")
    with os.fdopen(fd, "rb") as handle:
        yield handle


def read_bytes(path: Path | str, bound: Bound, what: str) -> bytes:
    """The whole of a regular file within ``bound`` (:func:`open_regular`; one that grows
    past the limit while read is refused too).

    Raises:
        bound.error: as :func:`open_regular`.
    """
    with open_regular(path, bound, what) as handle:
        try:
            data = handle.read(bound.limit + 1)
        except OSError as exc:
            raise bound.error(f"{what}: cannot read {bound.noun} ({exc.strerror or exc})") from None
    if len(data) > bound.limit:
        raise bound.error(f"{what}: larger than {bound.limit} bytes; not {_a(bound.noun)}")
    return data


def read_text(path: Path | str, bound: Bound, what: str) -> str:
    """:func:`read_bytes` decoded as UTF-8.

    Raises:
        bound.error: as :func:`read_bytes`, or bytes that are not UTF-8.
    """
    data = read_bytes(path, bound, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bound.error(
            f"{what}: cannot read {bound.noun} (not UTF-8 text: {exc.reason})"
        ) from None


def parsed(
    parse: Callable[[str], Any], text: str, what: str, error: type[StyleCascadeError] = UsageError
) -> Any:
    """``parse(text)`` (``json.loads``, ``yaml.safe_load``) refused when nested deeper than
    :data:`MAX_DEPTH`, before or after parsing.

    Raises:
        error: too deep nesting (the parser's own errors pass through).
    """
    try:
        data = parse(text)
        deep = _depth(data) is None
    except RecursionError:
        deep = True
    if deep:
        raise error(f"{what}: nested deeper than {MAX_DEPTH} levels; not a stylecascade file")
    return data


def _depth(data: Any) -> int | None:
    """Nesting depth of lists and mappings in ``data`` (0 for a scalar), or ``None`` past
    :data:`MAX_DEPTH`; walked without recursion, a node shared by YAML aliases walked again
    only from deeper than before (so an alias bomb costs at most MAX_DEPTH walks per node)."""
    deepest, todo, seen = 0, [(data, 0)], {}
    while todo:
        value, depth = todo.pop()
        if not isinstance(value, (list, tuple, dict)) or seen.get(id(value), -1) >= depth:
            continue
        if depth >= MAX_DEPTH:
            return None
        seen[id(value)] = depth
        children = value.values() if isinstance(value, dict) else value
        todo.extend((child, depth + 1) for child in children)
        deepest = max(deepest, depth + 1)
    return deepest


def read_json(path: Path | str, what: str, bound: Bound = MANIFEST) -> Any:
    """A JSON file (a manifest, a checkpoint's state) through :func:`read_text` and
    :func:`parsed`.

    Raises:
        UsageError: as :func:`read_text`, too deep, or not valid JSON.
    """
    text = read_text(path, bound, what)
    try:
        return parsed(json.loads, text, what)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what}: not valid JSON ({exc})") from None
