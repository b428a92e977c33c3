"""The ``stylecascade`` command line (typer)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .config import bundled_presets, load_preset, parse_preset, read_preset
from .device import DEVICES, select_device
from .errors import StyleCascadeError
from .images import MAX_INPUT_PIXELS
from .interrupt import Interrupted, Signalled, signals_interrupt
from .output import OutputOptions
from .printsize import final_long_edge
from .progress import StageProgress, step_reporter
from .render import Render, RenderJob
from .stages.colour import COLOUR_MODES
from .weights import SOURCES, fetch

app = typer.Typer(
    help="Coarse-to-fine neural style transfer (Gatys et al.) for print-resolution images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
presets_app = typer.Typer(help="List and show the bundled presets.", no_args_is_help=True)
weights_app = typer.Typer(help="Download and convert the VGG19 weights.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")
app.add_typer(weights_app, name="weights")

console = Console(stderr=True)


def _fail(exc: StyleCascadeError) -> typer.Exit:
    """Report an expected failure as one line on stderr and choose the exit code."""
    typer.secho(f"error: {exc}", err=True, fg="red")
    return typer.Exit(exc.exit_code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stylecascade {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Coarse-to-fine neural style transfer (Gatys et al.) for print-resolution images."""


@app.command("render")
def render_command(
    content: Annotated[Path, typer.Argument(help="The photo to stylize.", show_default=False)],
    style: Annotated[
        list[Path] | None,
        typer.Option(
            "--style",
            "-s",
            help="A painting whose style to transfer; repeat to blend several "
            "(default: the preset's styles).",
            show_default=False,
        ),
    ] = None,
    style_weight: Annotated[
        list[float] | None,
        typer.Option(
            "--style-weight",
            help="Share of each --style in the blend, in order (normalized; default equal).",
            show_default=False,
        ),
    ] = None,
    color: Annotated[
        str | None,
        typer.Option(
            "--color",
            help=f"Colour preservation: {' | '.join(COLOUR_MODES)} (default: the preset's, none).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output image (.png, .jpg, .tif); default CONTENT-STYLE.png here.",
            show_default=False,
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help="Bundled preset name or a YAML file; default draft on a CPU, standard on a GPU.",
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="Long edge of the final stage in px; earlier stages scale with it.",
            show_default=False,
        ),
    ] = None,
    print_size: Annotated[
        str | None,
        typer.Option(
            "--print-size",
            help="Print size like 30x40cm, 8x10in or 210x297mm; with --dpi sets the final long "
            "edge (the image keeps the photo's aspect ratio).",
            show_default=False,
        ),
    ] = None,
    dpi: Annotated[
        float | None,
        typer.Option(
            "--dpi",
            help="Print resolution for --print-size (default 300), written into the file.",
            show_default=False,
        ),
    ] = None,
    bit_depth: Annotated[
        int, typer.Option("--bit-depth", help="8 or 16 bits per channel (16: PNG, TIFF).")
    ] = 8,
    jpeg_quality: Annotated[int, typer.Option("--jpeg-quality", help="JPEG quality 1–95.")] = 95,
    max_input_pixels: Annotated[
        int,
        typer.Option(
            "--max-input-pixels",
            help="Refuse larger input images (decompression-bomb guard); 0: no limit.",
        ),
    ] = MAX_INPUT_PIXELS,
    device: Annotated[
        str, typer.Option("--device", help=f"One of: {', '.join(DEVICES)}.")
    ] = "auto",
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed gives the same image.")
    ] = 0,
    weights: Annotated[
        str,
        typer.Option(
            "--weights", help=f"VGG19 weights: {' | '.join(SOURCES)} | PATH to a .h5/.pt file."
        ),
    ] = "caffe",
    save_stages: Annotated[
        Path | None,
        typer.Option(
            "--save-stages", help="Folder to write each stage's result into.", show_default=False
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing output files.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue an interrupted render from its last stage."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Stylize CONTENT with the style of --style, stage by stage from coarse to fine.

    Writes the image and, beside it, OUTPUT.json with the preset, seed, weights, versions and
    each stage's losses and timings. Ctrl-C saves a checkpoint; --resume continues it.
    """
    began = time.perf_counter()
    try:
        with signals_interrupt():
            torch_device = select_device(device)
            default = "draft" if torch_device.type == "cpu" else "standard"
            final = final_long_edge(size, print_size, dpi)
            recipe = load_preset(preset or default).resolved(style, style_weight, color, final)
            options = OutputOptions(bit_depth, jpeg_quality, dpi or (300.0 if print_size else None))
            out = output or Path(
                f"{content.stem}-{'+'.join(Path(s.image).stem for s in recipe.styles)}.png"
            )
            job = RenderJob(
                content,
                out,
                recipe,
                torch_device,
                seed,
                weights,
                save_stages,
                overwrite,
                resume,
                options,
                max_input_pixels or None,
            )
            render = Render(job)
            if not quiet:
                sizes = " → ".join(str(s.size) for s in recipe.stages)
                name = escape(recipe.name)
                header = f"preset [bold]{name}[/] ({sizes} px), device {torch_device}, seed {seed}"
                console.print(header, soft_wrap=True)
            with nullcontext() if quiet else StageProgress(console) as progress:
                render.run(step_reporter(None if quiet else console), progress)
    except StyleCascadeError as exc:
        raise _fail(exc) from None
    except Signalled as exc:
        raise _fail(
            Interrupted(
                "interrupted; no output written (finished stages, if any, are kept for --resume)",
                exc.signum,
            )
        ) from None
    if not quiet:
        seconds = time.perf_counter() - began
        written = f"{escape(str(out))} and {escape(str(render.manifest_path))}"
        console.print(f"wrote {written} in {seconds:.1f} s", soft_wrap=True)


@presets_app.command("list")
def presets_list() -> None:
    """List the bundled presets with their stage sizes and iterations."""
    table = Table("name", "stages (long edge px × iterations)", "description")
    for name in bundled_presets():
        preset = load_preset(name)
        stages = " → ".join(f"{s.size}×{s.iterations}" for s in preset.stages)
        table.add_row(name, stages, preset.description)
    Console().print(table)


@presets_app.command("show")
def presets_show(
    name: Annotated[str, typer.Argument(help="Bundled preset name or YAML file.")],
) -> None:
    """Print a preset's YAML (validated first), ready to copy and edit."""
    try:
        text, preset_name, source, base = read_preset(name)
        parse_preset(text, preset_name, source, base)
    except StyleCascadeError as exc:
        raise _fail(exc) from None
    typer.echo(text, nl=False)


@weights_app.command("fetch")
def weights_fetch(
    source: Annotated[
        str, typer.Option("--source", help=f"One of: {', '.join(SOURCES)}.")
    ] = "caffe",
    force: Annotated[
        bool, typer.Option("--force", help="Download and convert again even if cached.")
    ] = False,
) -> None:
    """Download and convert the VGG19 weights into the cache (done automatically on first use).

    The cache is $STYLECASCADE_HOME/weights if that variable is set, else the user cache folder.
    """
    try:
        path = fetch(source, step_reporter(console), force=force)
    except StyleCascadeError as exc:
        raise _fail(exc) from None
    typer.echo(path)
