"""The command line's options, each declared once (``Annotated`` aliases) and grouped in
``--help`` by panel; the flag of every API argument (:func:`flag_of`), so a message that names
an argument (:class:`~stylecascade.errors.ArgumentError`) shows the flag the user typed.

Knob names follow jcjohnson/neural-style where the knob is the same: ``--style-weight``,
``--content-weight`` and ``--tv-weight`` scale the style, content and TV weights;
``--blend-weight`` is a painting's share of the blend (neural-style's
``-style_blend_weights``). Free of torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .choices import DEVICES, MAX_INPUT_PIXELS, SOURCES
from .stages.vocabulary import COLOR_MODES, INITS

INPUTS, LOOK, OUTPUT, PRINT, PERFORMANCE, BATCH = (
    "Inputs",
    "Look",
    "Output",
    "Print",
    "Performance",
    "Batch and cluster",
)
"""The panels of ``render --help``, in order."""

FLAGS = {
    "photos": "CONTENT",
    "styles": "--style",
    "masks": "--mask",
    "blend_weights": "--blend-weight",
    "output": "-o",
}
"""API arguments whose flag is not ``--`` + the name with dashes (:func:`flag_of`)."""


def flag_of(argument: str) -> str:
    """The command line's flag for an API argument or preset field (``out_dir`` →
    ``--out-dir``, ``blend_weights`` → ``--blend-weight``)."""
    return FLAGS.get(argument, "--" + argument.replace("_", "-"))


def _option(*names: str, metavar: str = "", panel: str | None = None, **kw) -> typer.Option:
    """A typer option without a default shown unless given (``show_default``)."""
    kw.setdefault("show_default", False)
    return typer.Option(*names, metavar=metavar, rich_help_panel=panel, **kw)


Photos = Annotated[
    list[Path],
    typer.Argument(
        metavar="CONTENT",
        help="The photo(s) to stylize: files, or folders of images (a batch).",
        show_default=False,
    ),
]
Styles = Annotated[
    list[Path] | None,
    _option(
        "--style",
        "-s",
        metavar="PAINTING",
        panel=INPUTS,
        help="A painting whose style to transfer; repeat to blend several (default: the "
        "preset's paintings).",
    ),
]
BlendWeights = Annotated[
    list[float] | None,
    _option(
        "--blend-weight",
        metavar="W",
        panel=INPUTS,
        help="Share of each --style in the blend, in order (normalized; default equal).",
    ),
]
Masks = Annotated[
    list[str] | None,
    _option(
        "--mask",
        metavar="MASK",
        panel=INPUTS,
        help="Where each --style applies, in order: a grayscale image on the photo, white = "
        "this painting ('none': everywhere).",
    ),
]
PresetName = Annotated[
    str | None,
    _option(
        "--preset",
        "-p",
        metavar="PRESET",
        panel=INPUTS,
        help="Preset name, a YAML file or a past render's OUT.json (default: draft on a CPU, "
        "standard on a GPU).",
    ),
]
StyleWeight = Annotated[
    list[float] | None,
    _option(
        "--style-weight",
        metavar="X",
        panel=LOOK,
        help="Multiply the preset's style weight in every stage (2: twice the style).",
    ),
]
ContentWeight = Annotated[
    float | None,
    _option(
        "--content-weight",
        metavar="X",
        panel=LOOK,
        help="Multiply the preset's content weight in every stage.",
    ),
]
TVWeight = Annotated[
    float | None,
    _option(
        "--tv-weight",
        metavar="X",
        panel=LOOK,
        help="Multiply the preset's total-variation (smoothness) weight in every stage.",
    ),
]
Iterations = Annotated[
    int | None,
    _option(
        "--iterations",
        metavar="N",
        panel=LOOK,
        help="The last stage's evaluation cap; earlier stages' caps scale alike.",
    ),
]
Init = Annotated[
    str | None,
    _option(
        "--init",
        metavar="START",
        panel=LOOK,
        help=f"How the first stage starts: {' | '.join(INITS)} (default: the preset's).",
    ),
]
InitImage = Annotated[
    Path | None,
    _option(
        "--init-image",
        metavar="FILE",
        panel=LOOK,
        help="Start the first stage from this image (resized to the photo) instead of --init.",
    ),
]
StyleScale = Annotated[
    float | None,
    _option(
        "--style-scale",
        metavar="X",
        panel=LOOK,
        help="Multiply the painting's size against the render's in every stage "
        "(smaller: finer strokes).",
    ),
]
OriginalColors = Annotated[
    int | None,
    _option(
        "--original-colors",
        metavar="0|1",
        panel=LOOK,
        help="neural-style's -original_colors: 1 keeps the photo's colors (--color luminance), "
        "0 does not (--color none).",
    ),
]
Color = Annotated[
    str | None,
    _option(
        "--color",
        metavar="MODE",
        panel=LOOK,
        help=f"Color preservation: {' | '.join(COLOR_MODES)} (default: the preset's).",
    ),
]
Size = Annotated[
    int | None,
    _option(
        "--size",
        metavar="PX",
        panel=LOOK,
        help="Long edge of the final stage in px; earlier stages scale with it.",
    ),
]
Output = Annotated[
    Path | None,
    _option(
        "--output",
        "-o",
        metavar="FILE",
        panel=OUTPUT,
        help="Output image (.png, .jpg, .tif); default CONTENT-STYLE.png here.",
    ),
]
SaveEvery = Annotated[
    int | None,
    _option(
        "--save-every",
        metavar="N",
        panel=OUTPUT,
        help="Also write each stage's best image so far every N evaluations into --save-stages.",
    ),
]
PrintEvery = Annotated[
    int | None,
    _option(
        "--print-every",
        metavar="N",
        panel=OUTPUT,
        help="A progress line with the losses every N evaluations.",
    ),
]
SaveStages = Annotated[
    Path | None,
    _option(
        "--save-stages", metavar="DIR", panel=OUTPUT, help="Write each stage's image into DIR."
    ),
]
Overwrite = Annotated[
    bool, _option("--overwrite", panel=OUTPUT, help="Replace existing output files.")
]
Resume = Annotated[
    bool,
    _option("--resume", panel=OUTPUT, help="Continue an interrupted render from its last stage."),
]
BitDepth = Annotated[
    int,
    _option(
        "--bit-depth",
        metavar="8|16",
        panel=OUTPUT,
        show_default=True,
        help="Bits per channel (16: PNG, TIFF).",
    ),
]
JpegQuality = Annotated[
    int,
    _option("--jpeg-quality", metavar="Q", panel=OUTPUT, show_default=True, help="JPEG 1–95."),
]
Quiet = Annotated[bool, _option("--quiet", "-q", panel=OUTPUT, help="No progress output.")]
Yes = Annotated[
    bool,
    _option(
        "--yes",
        "-y",
        panel=OUTPUT,
        help="Start a render estimated over 30 minutes on a CPU (else it stops and says so).",
    ),
]
PrintSize = Annotated[
    str | None,
    _option(
        "--print-size",
        metavar="WxH(cm|mm|in)",
        panel=PRINT,
        help="Print size like 30x40cm or 8x10in; with --dpi it sets the final long edge.",
    ),
]
Dpi = Annotated[
    float | None,
    _option(
        "--dpi",
        metavar="DPI",
        panel=PRINT,
        help="Print resolution written into the file (default 300); sizes --print-size.",
    ),
]
Device = Annotated[
    str,
    _option(
        "--device",
        metavar="DEVICE",
        panel=PERFORMANCE,
        show_default=True,
        help=f"One of: {', '.join(DEVICES)}.",
    ),
]
Threads = Annotated[
    int | None,
    _option("--threads", metavar="N", panel=PERFORMANCE, help="CPU threads (default: all)."),
]
TileSize = Annotated[
    int | None,
    _option(
        "--tile-size",
        metavar="PX",
        panel=PERFORMANCE,
        help="Tile stages larger than PX (0: only stages that do not fit in memory).",
    ),
]
Weights = Annotated[
    str,
    _option(
        "--weights",
        metavar="WEIGHTS",
        panel=PERFORMANCE,
        show_default=True,
        help=f"VGG19 weights: {' | '.join(SOURCES)} | PATH to a .h5/.pt file.",
    ),
]
Seed = Annotated[
    int,
    _option(
        "--seed",
        metavar="N",
        panel=PERFORMANCE,
        show_default=True,
        help="Random seed; the same seed, threads and device give the same image.",
    ),
]
MaxInputPixels = Annotated[
    int,
    _option(
        "--max-input-pixels",
        metavar="PIXELS",
        panel=PERFORMANCE,
        help=f"Refuse larger inputs (default {MAX_INPUT_PIXELS:,}); 0: no limit.",
    ),
]
OutDir = Annotated[
    Path | None,
    _option(
        "--out-dir",
        metavar="DIR",
        panel=BATCH,
        help="Batch: folder for one output per photo (default: here).",
    ),
]
Name = Annotated[
    str,
    _option(
        "--name",
        metavar="PATTERN",
        panel=BATCH,
        show_default=True,
        help="Batch: output name; fields {content}, {ext}, {styles}, {preset}, {seed}.",
    ),
]
Cluster = Annotated[
    str | None,
    _option(
        "--cluster",
        metavar="ADDRESS",
        panel=BATCH,
        help="Render a batch on Ray: local, auto or ray://HOST:PORT (the cluster extra).",
    ),
]
Actors = Annotated[
    int | None,
    _option("--actors", metavar="N", panel=BATCH, help="With --cluster: at most N actors."),
]
CpusPerActor = Annotated[
    int | None,
    _option(
        "--cpus-per-actor",
        metavar="N",
        panel=BATCH,
        help="With --cluster and no GPU: CPUs per actor (default 1).",
    ),
]
StudioFolder = Annotated[
    Path,
    typer.Argument(
        metavar="FOLDER",
        help="The photos and paintings to offer (default: this folder); the page's uploads, "
        "masks and prints go into FOLDER/studio.",
        show_default=False,
    ),
]
StudioOut = Annotated[
    Path | None,
    _option("--out-dir", metavar="DIR", help="Where the page writes (default: FOLDER/studio)."),
]
Port = Annotated[
    int,
    _option("--port", metavar="N", show_default=True, help="Port to listen on (0: any free one)."),
]
Host = Annotated[
    str,
    _option(
        "--host",
        metavar="ADDRESS",
        show_default=True,
        help="Address to listen on; another than 127.0.0.1 lets other machines use the studio.",
    ),
]
