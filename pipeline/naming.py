"""Which files a render reads and writes, by name: input image suffixes, output formats and
``--name`` patterns. Loads without torch, so that a bad path fails before torch is imported."""

from __future__ import annotations

import string
from pathlib import Path
from typing import TYPE_CHECKING

from .choices import OUTPUT_FORMATS
from .errors import ArgumentError, UsageError

if TYPE_CHECKING:
    from .preset import Preset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
NAME_FIELDS = ("content", "ext", "styles", "preset", "seed")


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Image files named directly, plus the image files directly inside named folders (sorted).

    Raises:
        UsageError: a path that does not exist, or a folder without image files.
        ArgumentError: no path at all.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            images = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not images:
                raise UsageError(
                    f"content folder {path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it"
                )
            found.extend(images)
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"content image {path}: no such file")
    if not found:
        raise ArgumentError("photos", "{}: give at least one photo or folder of photos")
    return found


def _fields(pattern: str) -> list[tuple[str, str, str | None]]:
    """``(field, format spec, conversion)`` of every ``{…}`` in a ``--name`` pattern.

    Raises:
        UsageError: an unmatched ``{`` or ``}`` (``{{``/``}}`` write a brace).
    """
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ArgumentError(
            "name", f"{{}} {pattern!r}: {exc}; write {{{{ or }}}} for a brace"
        ) from None
    return [(name, spec, conv) for _, name, spec, conv in parsed if name is not None]


def output_name(pattern: str, content: Path, preset: Preset, seed: int) -> str:
    """The output file name for ``content`` from ``--name``'s pattern.

    Fields: ``{content}`` (the photo's stem), ``{ext}`` (its extension, without the dot),
    ``{styles}`` (the paintings' stems joined by
    ``+``), ``{preset}``, ``{seed}``; plain fields only (no ``:spec`` or ``!conversion``).

    Raises:
        UsageError: an unmatched brace, an unknown field, a format spec or conversion, a path
            separator or an unsupported extension (a name too long for
            the file system: :func:`~stylecascade.files.check_outputs`).
    """
    for name, spec, conversion in _fields(pattern):
        if name not in NAME_FIELDS:
            raise ArgumentError(
                "name",
                f"{{}} {pattern!r}: unknown field {{{name}}}; use "
                f"{', '.join('{' + f + '}' for f in NAME_FIELDS)}",
            )
        if spec or conversion:
            raise ArgumentError(
                "name", f"{{}} {pattern!r}: write plain fields like {{{name}}}, no : or !"
            )
    name = pattern.format(
        content=content.stem,
        ext=content.suffix.lstrip("."),
        styles="+".join(Path(s.image).stem for s in preset.styles),
        preset=preset.name,
        seed=seed,
    )
    if "/" in name or Path(name).suffix.lower() not in OUTPUT_FORMATS:
        raise ArgumentError(
            "name",
            f"{{}} {pattern!r}: must be a file name ending in one of {', '.join(OUTPUT_FORMATS)}",
        )
    return name


def describe(source: object) -> str:
    """How a manifest and a preset name an image: its absolute path, or ``<PIL image>`` /
    ``<tensor>`` for one given in memory (without importing torch: the command line names
    its paintings before torch loads)."""
    if isinstance(source, (str, Path)):
        return str(Path(source).absolute())
    from PIL import Image

    return "<PIL image>" if isinstance(source, Image.Image) else "<tensor>"
