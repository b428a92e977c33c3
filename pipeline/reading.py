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
from pathlib import Path
from typing import Any, BinaryIO

from .errors import StyleCascadeError, UsageError

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings in a YAML or JSON document we read (a preset is about
5 deep, a manifest about 6)."""

MAX_MANIFEST_BYTES = 64 << 20
"""A manifest or checkpoint state (JSON): the draft render's manifest is 10 kB."""

MAX_WEIGHTS_BYTES = 1 << 30
"""A VGG19 weights file: torchvision's whole VGG19 is 548 MB, our converted trunk 80 MB."""


def image_file_limit(max_pixels: int | None) -> int:
    """The most bytes an image file of at most ``max_pixels`` px may hold: 8 bytes a pixel
    (16-bit RGBA, uncompressed) and 64 MiB of metadata; no limit with ``max_pixels=None``."""
    return (1 << 62) if max_pixels is None else max_pixels * 8 + (64 << 20)


_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


@contextmanager
def open_regular(
    path: Path | str,
    limit: int,
    what: str,
    noun: str = "file",
    error: type[StyleCascadeError] = UsageError,
) -> Iterator[BinaryIO]:
    """A regular file of at most ``limit`` bytes, open for reading (for readers that take a
    file object: Pillow, ``torch.load``).

    Args:
        path: the file.
        limit: the most bytes it may hold (its kind's bound, e.g. 1 MiB for a preset).
        what: how messages name it (``"content image photo.jpg"``).
        noun: what it should be (``"image file"``, ``"preset file"``).
        error: the error type raised (e.g. ``PresetError``, ``WeightsError``).

    Raises:
        error: a missing file, a directory, FIFO, device or socket, a file over ``limit``
            bytes, or an OS error, as one line.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what}: no such file") from None
    except OSError as exc:
        raise error(f"{what}: cannot read {noun} ({exc.strerror or exc})") from None
    info = os.fstat(fd)
    kind = next((name for test, name in _KINDS.items() if test(info.st_mode)), None)
    if kind is not None or not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        os.close(fd)
        if kind is None and stat.S_ISREG(info.st_mode):
            raise error(f"{what}: larger than {limit} bytes; not {_a(noun)}")
        raise error(f"{what}: is {kind or 'not a regular file'}, not {_a(noun)}")
    with os.fdopen(fd, "rb") as handle:
        yield handle


def read_bytes(
    path: Path | str,
    limit: int,
    what: str,
    noun: str = "file",
    error: type[StyleCascadeError] = UsageError,
) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes (:func:`open_regular`; one
    that grows past ``limit`` while read is refused too).

    Raises:
        error: as :func:`open_regular`.
    """
    with open_regular(path, limit, what, noun, error) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise error(f"{what}: cannot read {noun} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise error(f"{what}: larger than {limit} bytes; not {_a(noun)}")
    return data


def read_text(
    path: Path | str,
    limit: int,
    what: str,
    noun: str = "file",
    error: type[StyleCascadeError] = UsageError,
) -> str:
    """:func:`read_bytes` decoded as UTF-8.

    Raises:
        error: as :func:`read_bytes`, or bytes that are not UTF-8.
    """
    data = read_bytes(path, limit, what, noun, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what}: cannot read {noun} (not UTF-8 text: {exc.reason})") from None


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


def read_json(path: Path | str, what: str, limit: int = MAX_MANIFEST_BYTES) -> Any:
    """A JSON file (a manifest, a checkpoint's state) through :func:`read_text` and
    :func:`parsed`.

    Raises:
        UsageError: as :func:`read_text`, too deep, or not valid JSON.
    """
    text = read_text(path, limit, what, "JSON file")
    try:
        return parsed(json.loads, text, what)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what}: not valid JSON ({exc})") from None
