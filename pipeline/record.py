"""The record of a render's options: every field declared once, with its type, default,
bounds, help text, ``--help`` panel, flag spelling and, for a knob over the preset, its rule
and the preset field it acts on.

Everything else is generated from these dataclasses: the typer options of ``render`` and
``inspect`` (:mod:`stylecascade.options`), :class:`~stylecascade.request.RenderRequest` (one
part each), the strict type checks of the Python API, :meth:`Preset.resolved
<stylecascade.preset.Preset.resolved>` (knobs applied by field name), the studio's request
model and the flag an error message names (:func:`~stylecascade.options.flag_of`). A field's
annotation is the type the Python API takes; the command line's type follows from it.

Rules of a knob (``Spec.rule``) over the preset field ``Spec.target``:

- ``override``: the value replaces the preset's (in every stage, for a stage field);
- ``multiply``: every stage's value is multiplied by it (neural-style's weights: ``2`` is
  twice the preset's style weight);
- ``last``: the last stage takes the value, every earlier stage is scaled by the same factor.

Free of torch: the command line builds and checks the record before torch is imported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .choices import (
    COMPRESSION_NAMES,
    DEFAULT_NAME,
    DEVICES,
    INTENT_NAMES,
    MAX_DPI,
    MAX_INPUT_PIXELS,
    MAX_ITERATIONS,
    MAX_PIXEL_LIMIT,
    MAX_STYLE_SCALE,
    MAX_THREADS,
    MIN_DPI,
    OUTPUT_FORMATS,
    PROFILE_NAMES,
    SEED_RANGE,
    SOURCES,
)
from .errors import ArgumentError
from .printsize import MAX_LONG_EDGE, MIN_LONG_EDGE
from .stages.vocabulary import COLOR_MODES, INITS, MAX_WEIGHT, STYLE_LOSSES

INPUTS, LOOK, OUTPUT, PRINT, PERFORMANCE, BATCH = (
    "Inputs",
    "Look",
    "Output",
    "Print",
    "Performance",
    "Batch and cluster",
)
"""The panels of ``render --help``, in order."""

OVERRIDE, MULTIPLY, LAST = "override", "multiply", "last"
"""The rules of a knob over its preset field (module docstring)."""

PathArg = str | os.PathLike
"""A path as the Python API takes it (the command line's ``Path``)."""


@dataclass(frozen=True)
class Spec:
    """How one field is spelled, shown and bounded on every surface.

    Attributes:
        flags: the command line's spellings, the long one first (``()``: an argument).
        metavar: the value's name in ``--help``; help: one line of ``--help`` (≤ 80 columns
            once wrapped); panel: its ``--help`` panel.
        rule, target: a knob's rule and the preset field it acts on (``stages.style_weight``:
            every stage's; ``tiling.tile_edge``; ``color``); ``None``: not a preset knob.
        at_least, at_most: bounds of a number (inclusive; ``None``: none that way). Every
            number of the record has both where a value beyond means nothing (a DPI under 1,
            a negative pixel limit); every number must be finite (:func:`check_bounds`).
        show_default: ``--help`` shows the default; old: earlier spellings kept as hidden
            flags that still work and say the new one; studio: the studio's page offers it.
    """

    flags: tuple[str, ...]
    metavar: str = ""
    help: str = ""
    panel: str | None = None
    rule: str | None = None
    target: str | None = None
    at_least: float | None = None
    at_most: float | None = None
    show_default: bool = False
    old: tuple[str, ...] = ()
    studio: bool = False


def option(default: Any, *flags: str, **spec: Any) -> Any:
    """A dataclass field with its :class:`Spec` (``metadata["spec"]``)."""
    return field(default=default, metadata={"spec": Spec(flags, **spec)})


def spec_of(f: Any) -> Spec:
    """The :class:`Spec` of a record field (a ``dataclasses.Field``)."""
    return f.metadata["spec"]


def _shown(bound: float) -> str:
    """A bound as a message shows it: whole numbers in full (``18446744073709551615``), others
    as ``%g``."""
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 2**65 else f"{bound:g}"


def bound_problem(spec: Spec, value: float) -> str | None:
    """What is wrong with ``value`` against ``spec``'s bounds: ``must be a finite number``,
    ``must be 1 … 65535``, ``must be ≥ 0`` (a template with ``{}`` for the field), else
    ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{{}} must be a finite number; got {value!r}"
    low, high = spec.at_least, spec.at_most
    if (low is None or value >= low) and (high is None or value <= high):
        return None
    if low is not None and high is not None:
        return f"{{}} must be {_shown(low)} … {_shown(high)}; got {value!r}"
    if low is not None:
        return f"{{}} must be ≥ {_shown(low)}; got {value!r}"
    return f"{{}} must be ≤ {_shown(high)}; got {value!r}"


def check_bounds(parts: Iterable[type], values: dict[str, Any]) -> None:
    """Refuse a number that is not finite or is outside its field's bounds
    (``Spec.at_least``, ``Spec.at_most``); each element of a list alike.

    Args:
        parts: record classes whose fields to check; values: ``{field name: value}``.

    Raises:
        ArgumentError: ``{field} must be 1 … 65535; got 1e-320`` (or ``≥``, ``≤``, ``a finite
            number``), naming the field.
    """
    for part in parts:
        for f in fields(part):
            value = values.get(f.name)
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    continue
                problem = bound_problem(spec_of(f), v)
                if problem is not None:
                    raise ArgumentError(f.name, problem)


# fmt: off
@dataclass(frozen=True, kw_only=True)
class Inputs:
    """The photos and the paintings (images in memory too, for :func:`stylecascade.render`)."""

    photos: Sequence[PathArg] = option(
        (), metavar="CONTENT",
        help="The photo(s) to stylize: files, or folders of images (a batch)."
    )
    styles: Sequence[Any] | None = option(
        None, "--style", "-s", metavar="PAINTING", panel=INPUTS,
        help="A painting whose style to transfer; repeat to blend several (default: the "
        "preset's paintings)."
    )
    blend_weights: Sequence[float] | None = option(
        None, "--blend-weight", metavar="W", panel=INPUTS, studio=True, at_least=0,
        at_most=MAX_WEIGHT,
        help="Share of each --style in the blend, in order (normalized; default equal)."
    )
    masks: Sequence[PathArg | None] | None = option(
        None, "--mask", metavar="MASK", panel=INPUTS,
        help="Where each --style applies, in order: a grayscale image on the photo, white = "
        "this painting, grey = part of its weight ('none': everywhere)."
    )
    preset: Any = option(
        None, "--preset", "-p", metavar="PRESET", panel=INPUTS,
        help="Preset name, a YAML file or a past render's OUT.json (default: draft on a CPU, "
        "standard on a GPU)."
    )


@dataclass(frozen=True, kw_only=True)
class Look:
    """The knobs over the preset (``None``: the preset's value), each with its rule."""

    style_weight: float | None = option(
        None, "--style-weight", metavar="X", panel=LOOK, rule=MULTIPLY,
        target="stages.style_weight", studio=True, at_least=0, at_most=MAX_WEIGHT,
        help="Multiply the preset's style weight in every stage (2: twice the style)."
    )
    content_weight: float | None = option(
        None, "--content-weight", metavar="X", panel=LOOK, rule=MULTIPLY,
        target="stages.content_weight", studio=True, at_least=0, at_most=MAX_WEIGHT,
        help="Multiply the preset's content weight in every stage."
    )
    tv_weight: float | None = option(
        None, "--tv-weight", metavar="X", panel=LOOK, rule=MULTIPLY, target="stages.tv_weight",
        studio=True, at_least=0, at_most=MAX_WEIGHT,
        help="Multiply the preset's total-variation (smoothness) weight in every stage."
    )
    style_loss: str | None = option(
        None, "--style-loss", metavar="LOSS", panel=LOOK, rule=OVERRIDE, target="stages.style_loss",
        studio=True,
        help=f"Compare styles by {' | '.join(STYLE_LOSSES)} in every stage (default: the "
        "preset's)."
    )
    iterations: int | None = option(
        None, "--iterations", metavar="N", panel=LOOK, rule=LAST, target="stages.iterations",
        at_least=1, at_most=MAX_ITERATIONS,
        help="The last stage's evaluation cap; earlier stages' caps scale alike."
    )
    init: str | None = option(
        None, "--init", metavar="START", panel=LOOK, rule=OVERRIDE, target="init",
        help=f"How the first stage starts: {' | '.join(INITS)} (default: the preset's)."
    )
    init_image: PathArg | None = option(
        None, "--init-image", metavar="FILE", panel=LOOK, rule=OVERRIDE, target="init_image",
        help="Start the first stage from this image (resized to the photo) instead of --init."
    )
    style_scale: float | None = option(
        None, "--style-scale", metavar="X", panel=LOOK, rule=MULTIPLY, target="stages.style_scale",
        at_least=0, at_most=MAX_STYLE_SCALE,
        help="Multiply the painting's size against the render's in every stage (smaller: "
        "finer strokes)."
    )
    color: str | None = option(
        None, "--color", metavar="MODE", panel=LOOK, rule=OVERRIDE, target="color", studio=True,
        help=f"Color preservation: {' | '.join(COLOR_MODES)} (default: the preset's)."
    )
    size: int | None = option(
        None, "--size", metavar="PX", panel=LOOK, studio=True, at_least=MIN_LONG_EDGE,
        at_most=MAX_LONG_EDGE,
        help="Long edge of the final stage in px; earlier stages scale with it."
    )
    print_size: str | None = option(
        None, "--print-size", metavar="WxH(cm|mm|in)", panel=PRINT,
        help="Print size like 30x40cm or 8x10in; with --dpi it sets the final long edge."
    )
    dpi: float | None = option(
        None, "--dpi", metavar="DPI", panel=PRINT, at_least=MIN_DPI, at_most=MAX_DPI,
        help="Print resolution written into the file (default 300); sizes --print-size."
    )
    seed: int = option(
        0, "--seed", metavar="N", panel=PERFORMANCE, show_default=True, studio=True,
        at_least=0, at_most=SEED_RANGE - 1,
        help="Random seed; the same seed, threads and device give the same image."
    )


@dataclass(frozen=True, kw_only=True)
class Outputs:
    """Where and how the result is written, and what is said meanwhile."""

    output: PathArg | None = option(
        None, "-o", "--output", metavar="FILE", panel=OUTPUT,
        help=f"Output image ({', '.join(OUTPUT_FORMATS)}); default CONTENT-STYLE.png here."
    )
    save_stages: PathArg | None = option(
        None, "--save-stages", metavar="DIR", panel=OUTPUT,
        help="Write each stage's image into DIR."
    )
    save_every: int | None = option(
        None, "--save-every", metavar="N", panel=OUTPUT, at_least=1, at_most=MAX_ITERATIONS,
        help="Also write each stage's best image so far every N evaluations into --save-stages."
    )
    print_every: int | None = option(
        None, "--print-every", metavar="N", panel=OUTPUT, at_least=1, at_most=MAX_ITERATIONS,
        help="A progress line with the losses every N evaluations."
    )
    overwrite: bool = option(
        False, "--overwrite", panel=OUTPUT, help="Replace existing output files."
    )
    resume: bool = option(
        False, "--resume", panel=OUTPUT, help="Continue an interrupted render from its last stage."
    )
    bit_depth: int = option(
        8, "--bit-depth", metavar="8|16", panel=OUTPUT, show_default=True, at_least=8, at_most=16,
        help="Bits per channel (16: PNG, TIFF)."
    )
    jpeg_quality: int = option(
        95, "--jpeg-quality", metavar="Q", panel=OUTPUT, show_default=True, at_least=1,
        at_most=95, help="JPEG 1–95."
    )
    profile: str = option(
        "srgb", "--profile", metavar="PROFILE", panel=PRINT, show_default=True,
        help=f"Output ICC profile: {' | '.join(PROFILE_NAMES)} | FILE.icc (converted with "
        "LittleCMS, embedded).")
    intent: str = option(
        "perceptual", "--intent", metavar="INTENT", panel=PRINT, show_default=True,
        help=f"Rendering intent of the profile conversion: {' | '.join(INTENT_NAMES)}.")
    black_point_compensation: bool = option(
        True, "--black-point/--no-black-point", panel=PRINT,
        help="Black-point compensation in the profile conversion (default: on).")
    compression: str = option(
        "deflate", "--compression", metavar="METHOD", panel=PRINT, show_default=True,
        help=f"TIFF compression: {' | '.join(COMPRESSION_NAMES)} (all lossless).")
    bleed: str | None = option(
        None, "--bleed", metavar="LENGTH", panel=PRINT,
        help="Bleed beyond the trim on every side, e.g. 3mm (with --print-size).")
    safe_margin: str | None = option(
        None, "--safe-margin", metavar="LENGTH", panel=PRINT,
        help="Safe margin inside the trim, e.g. 5mm: also writes OUT.guide.png.")
    quiet: bool = option(False, "--quiet", "-q", panel=OUTPUT, help="No progress output.")
    yes: bool = option(
        False, "--yes", "-y", panel=OUTPUT,
        help="Start a render estimated over 30 minutes on a CPU (else it stops and says so)."
    )


@dataclass(frozen=True, kw_only=True)
class Compute:
    """Where and how the work runs."""

    device: Any = option(
        "auto", "--device", metavar="DEVICE", panel=PERFORMANCE, show_default=True,
        help=f"One of: {', '.join(DEVICES)}."
    )
    threads: int | None = option(
        None, "--threads", metavar="N", panel=PERFORMANCE, at_least=1, at_most=MAX_THREADS,
        help="CPU threads (default: all)."
    )
    tile_size: int | None = option(
        None, "--tile-size", metavar="PX", panel=PERFORMANCE, rule=OVERRIDE,
        target="tiling.tile_edge", at_least=0, at_most=MAX_LONG_EDGE,
        help="Tile stages larger than PX (0: only stages that do not fit in memory)."
    )
    weights: PathArg = option(
        "caffe", "--weights", metavar="WEIGHTS", panel=PERFORMANCE, show_default=True,
        help=f"VGG19 weights: {' | '.join(SOURCES)} | PATH to a .h5/.pt file."
    )
    max_input_pixels: int = option(
        MAX_INPUT_PIXELS, "--max-input-pixels", metavar="PIXELS", panel=PERFORMANCE,
        at_least=0, at_most=MAX_PIXEL_LIMIT,
        help=f"Refuse larger inputs (default {MAX_INPUT_PIXELS:,}); 0: no limit."
    )


@dataclass(frozen=True, kw_only=True)
class Batch:
    """A batch's folder and names, and the Ray cluster that may render it."""

    out_dir: PathArg | None = option(
        None, "--out-dir", metavar="DIR", panel=BATCH,
        help="Batch: folder for one output per photo (default: here)."
    )
    name: str = option(
        DEFAULT_NAME, "--name", metavar="PATTERN", panel=BATCH, show_default=True,
        help="Batch: output name; fields {content}, {ext}, {styles}, {preset}, {seed}."
    )
    cluster: str | None = option(
        None, "--cluster", metavar="ADDRESS", panel=BATCH,
        help="Render on Ray (a batch: a photo per actor; one photo: its tiles over the "
             "actors): local, auto or ray://HOST:PORT (the cluster extra)."
    )
    actors: int | None = option(
        None, "--actors", metavar="N", panel=BATCH, at_least=1,
        help="With --cluster: at most N actors."
    )
    cpus_per_actor: int | None = option(
        None, "--cpus-per-actor", metavar="N", panel=BATCH, at_least=1, at_most=MAX_THREADS,
        help="With --cluster and no GPU: CPUs per actor (default 1)."
    )

# fmt: on

PARTS: dict[str, type] = {
    "inputs": Inputs,
    "look": Look,
    "outputs": Outputs,
    "compute": Compute,
    "batch": Batch,
}
"""The parts of a request, by the attribute of :class:`~stylecascade.request.RenderRequest`
that holds each."""


def knob_specs() -> dict[str, Spec]:
    """The fields with a preset target (``Spec.target``) and their specs, in the record's
    order: the knobs :meth:`Preset.resolved <stylecascade.preset.Preset.resolved>` applies by
    name."""
    return {
        f.name: spec_of(f) for part in PARTS.values() for f in fields(part) if spec_of(f).target
    }


# fmt: off
@dataclass(frozen=True, kw_only=True)
class Inspection:
    """``inspect``'s own options (it also takes ``device``, ``weights``, ``seed``,
    ``overwrite`` and ``quiet`` of the parts above)."""

    content: PathArg | None = option(
        None, metavar="CONTENT", help="Photo for the layer reconstructions (needs --style)."
    )
    style: PathArg | None = option(
        None, "--style", "-s", metavar="PAINTING", help="Painting for the style reconstructions."
    )
    out_dir: PathArg = option(
        ".", "--out-dir", metavar="DIR", old=("--output", "-o"),
        help="Folder to write the pictures into (default: here)."
    )
    size: int = option(
        128, "--size", metavar="PX", at_least=16, at_most=1024, show_default=True,
        help="Long edge of the reconstructions in px."
    )
    iterations: int = option(
        150, "--iterations", metavar="N", at_least=1, at_most=MAX_ITERATIONS, show_default=True,
        help="L-BFGS evaluations per reconstruction."
    )
    save_stages: PathArg | None = option(
        None, "--save-stages", metavar="DIR", old=("--stages",),
        help="A render's --save-stages folder: write its contact sheet."
    )
    manifest: PathArg | None = option(
        None, "--manifest", metavar="OUT.json", help="A render's OUT.json: write its loss curve."
    )

# fmt: on

INSPECT_SHARED = ("device", "weights", "seed", "overwrite", "quiet")
"""The fields ``inspect`` takes from the render's parts."""
