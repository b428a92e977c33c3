"""Pictures that explain a render (Pillow): labelled grids, stage contact sheets, loss curves."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from .choices import MAX_INPUT_PIXELS
from .errors import ArgumentError, UsageError, literal
from .reading import check_path, image_bound, open_regular

FONT_SIZE = 14
LABEL_HEIGHT = 22
GAP = 6
_STAGE_FILE = re.compile(r"\.stage(\d+)\.(\d+)x(\d+)$")


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=FONT_SIZE)


def _to_height(img: Image.Image, height: int) -> Image.Image:
    width = max(1, round(img.width * height / img.height))
    return img.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def labelled_grid(
    rows: list[list[tuple[Image.Image, str]]], row_titles: list[str] | None = None
) -> Image.Image:
    """A white sheet of images in rows, each with its label underneath.

    Args:
        rows: per row, ``(image, label)`` pairs; every image is scaled to the first image's
            height (aspect kept).
        row_titles: a title above each row, or ``None``.

    Returns:
        An RGB image.
    """
    height = rows[0][0][0].height
    scaled = [[(_to_height(img, height), label) for img, label in row] for row in rows]
    title_h = LABEL_HEIGHT if row_titles else 0
    width = max(sum(img.width for img, _ in row) + GAP * (len(row) + 1) for row in scaled)
    row_h = title_h + height + LABEL_HEIGHT + GAP
    sheet = Image.new("RGB", (width, row_h * len(scaled) + GAP), "white")
    draw, font = ImageDraw.Draw(sheet), _font()
    for r, row in enumerate(scaled):
        top = GAP + r * row_h
        if row_titles:
            draw.text((GAP, top + 2), row_titles[r], fill="black", font=font)
        x = GAP
        for img, label in row:
            sheet.paste(img, (x, top + title_h))
            draw.text((x, top + title_h + height + 3), label, fill="black", font=font)
            x += img.width + GAP
    return sheet


def stage_label(path: Path) -> str:
    """``stage 2 - 256x192`` for a ``--save-stages`` file, else the file's stem (the default
    font has ASCII only)."""
    match = _STAGE_FILE.search(path.stem)
    return f"stage {match[1]} - {match[2]}x{match[3]}" if match else path.stem


def contact_sheet(folder: Path, height: int = 256, columns: int = 3) -> Image.Image:
    """The images of a folder side by side, labelled; ``--save-stages`` files in stage order.

    Args:
        folder: e.g. a ``--save-stages`` folder.
        height: each image's height on the sheet in px.
        columns: images per row.

    Raises:
        ArgumentError: (field ``save_stages``) not a folder, no images in it, an unreadable
            image.
    """
    check_path(folder, "save_stages", "folder")  # missing, or a file: said as such
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif")),
        key=lambda p: (p.stem.split(".stage")[0], _stage_number(p), p.name),
    )
    if not files:
        raise ArgumentError("save_stages", f"{{}} {literal(folder)}: no images in it")
    cells = [(_to_height(_read(path), height), stage_label(path)) for path in files]
    return labelled_grid([cells[i : i + columns] for i in range(0, len(cells), columns)])


def _read(path: Path) -> Image.Image:
    """An image file for a sheet, decoded.

    Raises:
        UsageError: not an image Pillow can decode, naming the file.
    """
    try:
        with open_regular(path, image_bound(MAX_INPUT_PIXELS), str(path)) as f:
            with Image.open(f) as img:
                img.load()
                return img.copy()
    except UsageError as exc:
        raise ArgumentError("save_stages", f"{{}} {literal(exc)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        problem = literal(f"{path}: not an image Pillow can read ({exc})")
        raise ArgumentError("save_stages", f"{{}} {problem}") from None


def _stage_number(path: Path) -> int:
    match = _STAGE_FILE.search(path.stem)
    return int(match[1]) if match else 0


def loss_traces(manifest: Any) -> list[tuple[str, list[float]]]:
    """Each stage's label (``stage 2 - 256x192``) and the positive, finite numbers of its
    ``loss_trace`` from a render's ``OUT.json`` (anything else in a trace is left out).

    Raises:
        UsageError: not a manifest (a JSON object with a ``stages`` list), or no loss values.
    """
    stages = manifest.get("stages") if isinstance(manifest, dict) else None
    if not isinstance(stages, list):
        raise UsageError('not a stylecascade manifest (no "stages" list)')
    traces = []
    for n, stage in enumerate(stages):
        stage = stage if isinstance(stage, dict) else {}
        size = stage.get("size")
        w, h = size if isinstance(size, list) and len(size) == 2 else ("?", "?")
        trace = stage.get("loss_trace")
        values = [
            float(v)
            for v in (trace if isinstance(trace, list) else [])
            if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf
        ]
        traces.append((f"stage {n + 1} - {w}x{h}", values))
    if not any(values for _, values in traces):
        raise UsageError("the manifest has no loss traces (made by an older stylecascade?)")
    return traces


def loss_curve(manifest: Any, size: tuple[int, int] = (720, 360)) -> Image.Image:
    """The weighted total loss of every evaluation, stage after stage, on a log scale.

    Args:
        manifest: a render's ``OUT.json``, parsed (:func:`loss_traces` reads it).
        size: ``(W, H)`` of the plot in px.

    Raises:
        UsageError: not a manifest, or one without loss values.
    """
    traces = loss_traces(manifest)
    logs = [math.log10(v) for _, trace in traces for v in trace]  # denormals: about -323
    width, height = size
    left, right, top, bottom = 70, 20, 30, 40
    plot = Image.new("RGB", size, "white")
    draw, font = ImageDraw.Draw(plot), _font()
    low, high = math.floor(min(logs)), math.ceil(max(logs))
    high = max(high, low + 1)
    count = sum(len(trace) for _, trace in traces)

    def xy(i: int, log: float) -> tuple[float, float]:
        x = left + (width - left - right) * i / max(1, count - 1)
        return x, top + (height - top - bottom) * (high - log) / (high - low)

    for decade in range(low, high + 1, math.ceil((high - low) / 10)):  # ≤ 11 labelled lines
        y = xy(0, decade)[1]
        draw.line([(left, y), (width - right, y)], fill=(225, 225, 225))
        draw.text((6, y - 8), f"1e{decade}", fill="black", font=font)
    start = 0
    for label, trace in traces:
        x0 = xy(start, high)[0]
        draw.line([(x0, top), (x0, height - bottom)], fill=(180, 180, 180))
        x_label = min(x0 + 4, width - right - draw.textlength(label, font=font))
        draw.text((x_label, top - 20), label, fill="black", font=font)
        points = [xy(start + i, math.log10(v)) for i, v in enumerate(trace)]
        if len(points) > 1:
            draw.line(points, fill=(200, 60, 40), width=2)
        start += len(trace)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.text((left, height - bottom + 8), "objective evaluations", fill="black", font=font)
    draw.text(
        (width - right - 190, height - bottom + 8),
        "weighted total loss (log)",
        fill="black",
        font=font,
    )
    return plot
