"""Which files a render reads and writes, by name: input image suffixes, output formats and
``--name`` patterns. Loads without torch, so that a bad path fails before torch is imported."""

from __future__ import annotations

import os
import reprlib
import string
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .choices import OUTPUT_FORMATS, SOURCES
from .errors import ArgumentError, StyleCascadeError, UsageError, literal
from .reading import path_problem

if TYPE_CHECKING:
    from .preset import Preset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
NAME_FIELDS = ("content", "ext", "styles", "preset", "seed")


MAX_NAME_BYTES = 200
"""Longest name the project gives a file, in UTF-8 bytes (file systems take 255; the writer's
temporary ``.NAME.XXXXXXXX.tmp`` and a suffix such as ``.yaml`` or ``-mask-N.png`` add to it)."""


def name_key(name: str) -> str:
    """What a name looks like: NFKC-normalized, case-folded, without surrounding spaces
    (``DRAFT``, ``Draft``, ``"draft "`` and ``ｄｒａｆｔ`` are all ``draft``)."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


RAW_BYTES = range(0xDC80, 0xDD00)
"""How Python spells the bytes of a file name that is not UTF-8 (``os.fsdecode``'s
surrogate escapes): an output may be named so (``-o`` from such a folder listing)."""


def name_problem(name: str, limit: int | None = MAX_NAME_BYTES, raw: bool = False) -> str | None:
    """What keeps ``name`` from being a name the project gives a file (a saved preset, a
    ``--name`` output, a studio upload), else ``None``: empty; a character that is not
    printable (a line break, tab, NUL, lone surrogate, or a format character such as the
    bidi override U+202E that shows a name reversed; with ``raw``, the escapes of a non-UTF-8
    file name's bytes, :data:`RAW_BYTES`, are allowed); spaces around it; a folder separator;
    a leading dot (a hidden file); over ``limit`` UTF-8 bytes (``None``: the file system's
    limit is checked where the file goes)."""
    if not name:
        return "is empty"
    allowed = RAW_BYTES if raw else ()
    odd = next((c for c in name if not c.isprintable() and ord(c) not in allowed), None)
    if odd is not None:
        return f"holds U+{ord(odd):04X} ({unicodedata.name(odd, 'a control character')})"
    if name != name.strip():
        return "starts or ends with a space"
    if "/" in name or "\\" in name:
        return "holds a folder separator"
    if name.startswith("."):
        return "starts with a dot (a hidden file)"
    size = len(os.fsencode(name))
    return f"is {size} bytes long; at most {limit}" if limit is not None and size > limit else None


def check_name(
    name: str,
    what: str,
    *,
    taken: Iterable[str] = (),
    limit: int | None = MAX_NAME_BYTES,
    field: str | None = None,
    error: type[StyleCascadeError] = UsageError,
) -> str:
    """The one rule of every name the project takes for a file (:func:`name_problem`), and no
    look-alike (:func:`name_key`) of a name already ``taken`` (bundled and saved presets, the
    studio's images); the same name as a taken one is the caller's to judge.

    Args:
        name: the name; what: how messages call it (``"preset name"``).
        taken: the names it must not look like; limit: its longest, in UTF-8 bytes.
        field: the record field that gave it (``name``, ``output``): then an
            :class:`ArgumentError`; such a name may hold a non-UTF-8 file name's bytes
            (:data:`RAW_BYTES`), and its length is the file system's to judge.
        error: else the error type (e.g. ``PresetError``).

    Returns:
        ``name``.

    Raises:
        ArgumentError, error: ``what 'NAME': problem`` (the name shown escaped).
    """
    problem = name_problem(name, None if field else limit, raw=field is not None)
    if problem is None:
        key = name_key(name)
        alike = next((t for t in taken if t != name and name_key(t) == key), None)
        problem = None if alike is None else f"looks like {alike!r}; choose another name"
    if problem is None:
        return name
    shown = f"{reprlib.repr(name)}: {problem}"
    if field is not None:
        raise ArgumentError(field, "{} " + literal(shown))
    raise error(f"{what} {shown}")


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


def check_pattern(pattern: str) -> None:
    """Refuse a ``--name`` pattern whatever the photo: an unmatched brace, an unknown field,
    a format spec or conversion (:func:`output_name` checks the rest for each photo).

    Raises:
        ArgumentError: (field ``name``) the first problem.
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


def output_name(pattern: str, content: Path, preset: Preset, seed: int) -> str:
    """The output file name for ``content`` from ``--name``'s pattern.

    Fields: ``{content}`` (the photo's stem), ``{ext}`` (its extension, without the dot),
    ``{styles}`` (the paintings' stems joined by
    ``+``), ``{preset}``, ``{seed}``; plain fields only (no ``:spec`` or ``!conversion``).

    Raises:
        UsageError: an unmatched brace, an unknown field, a format spec or conversion, a path
            separator or an unsupported extension, a name that breaks the name rule
            (:func:`check_name`: e.g. a photo's name with a line break) (a name too long for
            the file system: :func:`~stylecascade.write_checks.check_outputs`).
    """
    check_pattern(pattern)
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
    return check_name(name, "name", field="name")  # the one name rule: no U+202E, no line break


def describe(source: object) -> str:
    """How a manifest and a preset name an image: its absolute path, or ``<PIL image>`` /
    ``<tensor>`` for one given in memory (without importing torch: the command line names
    its paintings before torch loads)."""
    if isinstance(source, (str, Path)):
        return str(Path(source).absolute())
    from PIL import Image

    return "<PIL image>" if isinstance(source, Image.Image) else "<tensor>"


def manifest_path(output: Path) -> Path:
    """``OUT.json`` beside ``OUT.png``: the render's manifest."""
    return Path(output).with_suffix(".json")


def checkpoint_folder(output: Path) -> Path:
    """``OUT.png.checkpoint`` beside ``OUT.png``: the render's checkpoint folder."""
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


def check_weights_spec(spec: str | os.PathLike) -> None:
    """Refuse a ``--weights`` value that is neither a source name nor a regular file
    (torch-free: checked before torch is imported; loading checks the file's contents).

    Raises:
        ArgumentError: (field ``weights``) what is wrong (:func:`~stylecascade.reading.
            path_problem`: missing, a folder, a device such as ``/dev/zero``).
    """
    if str(spec) in SOURCES:
        return
    problem = path_problem(Path(spec).expanduser(), "file", "weights file")
    if problem is not None:
        hint = f" (or use one of: {', '.join(SOURCES)})" if problem.startswith("no such") else ""
        raise ArgumentError("weights", f"{{}} {literal(spec)}: {problem}{hint}")
