"""The ``stylecascade`` command line (typer): option declarations and one call each.

``render`` builds a :class:`~stylecascade.request.RenderRequest` and hands it to the launcher
(:func:`stylecascade.launch.launch`), as the Python API does. Every expected failure is one
``error:`` line with its exit code (:func:`reports_errors`); a message that names an API
argument shows its flag here (:func:`stylecascade.options.flag_of`).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from . import __version__
from . import options as opt
from .choices import MAX_INPUT_PIXELS, SOURCES
from .errors import ArgumentError, StyleCascadeError, UsageError
from .files import atomic_write, make_folder, refuse_existing, reporting_write_errors
from .helptext import PlainGroup
from .interrupt import Interrupted, Signalled
from .naming import DEFAULT_NAME
from .preset_files import (
    bundled_presets,
    load_preset,
    parse_preset,
    read_preset,
    save_user_preset,
    user_preset_dir,
    user_presets,
)
from .reading import read_json
from .records import STATUSES, Outcome
from .request import RenderRequest

if TYPE_CHECKING:  # the modules that load torch are imported inside the commands that need them
    from PIL import Image


def _app(help: str, **settings) -> typer.Typer:
    """A typer app (or sub-app) with the project's settings: ``-h``, rich help with panels,
    no locals in tracebacks, its help when called without arguments."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode="markdown",
        pretty_exceptions_show_locals=False,
        cls=PlainGroup,
        **settings,
    )


app = _app("Coarse-to-fine neural style transfer (Gatys et al.) for print-resolution images.")
presets_app = _app("List, show, validate and save presets; print their JSON Schema.")
weights_app = _app("Download and convert the VGG19 weights.")
app.add_typer(presets_app, name="presets")
app.add_typer(weights_app, name="weights")

console = Console(stderr=True)


Command = TypeVar("Command", bound=Callable[..., None])


def _error_line(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")


def reports_errors(command: Command) -> Command:
    """Wrap a command so that every expected failure (a :class:`StyleCascadeError`, or a
    signal outside a stage) is one ``error:`` line on stderr with its exit code; an
    :class:`ArgumentError` names the command line's flags (:func:`~stylecascade.options.flag_of`).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except ArgumentError as exc:
            _error_line(exc.named(opt.flag_of))
            raise typer.Exit(exc.exit_code) from None
        except StyleCascadeError as exc:
            _error_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except Signalled as exc:
            message = (
                "interrupted; no output written (finished stages, if any, are kept for --resume)"
            )
            _error_line(message)
            raise typer.Exit(Interrupted(message, exc.signum).exit_code) from None

    return wrapper  # type: ignore[return-value]


def _framework_error(exc: Exception) -> bool:
    """Whether ``exc`` is one of the framework's own usage errors (a value that is not a
    number, an unknown option, a missing argument): typer raises them with ``exit_code`` and
    ``format_message`` when not in standalone mode."""
    return hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)


def run(args: list[str]) -> int:
    """Run the command line on ``args`` (without the program name) and return the exit code.

    The framework's own usage errors become one ``error:`` line with exit code 2, as every
    failure of ours does (:func:`reports_errors`); a Ctrl-C outside a render is one line with
    exit code 130.
    """
    try:
        code = app(args=args, prog_name="stylecascade", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        _error_line("interrupted")
        return 130
    except Exception as exc:
        if not _framework_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # typer's own test, by name
            typer.echo(exc.format_message())  # type: ignore[attr-defined]
            return exc.exit_code  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "stylecascade"
        _error_line(f"{exc.format_message()} (see {command} -h)")  # type: ignore[attr-defined]
        return exc.exit_code  # type: ignore[attr-defined]
    return code if isinstance(code, int) else 0


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stylecascade {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", metavar="", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Coarse-to-fine neural style transfer (Gatys et al.) for print-resolution images."""


@app.command("render")
@reports_errors
def render_command(
    content: opt.Photos,
    style: opt.Styles = None,
    blend_weight: opt.BlendWeights = None,
    mask: opt.Masks = None,
    preset: opt.PresetName = None,
    style_weight: opt.StyleWeight = None,
    content_weight: opt.ContentWeight = None,
    tv_weight: opt.TVWeight = None,
    iterations: opt.Iterations = None,
    init: opt.Init = None,
    init_image: opt.InitImage = None,
    style_scale: opt.StyleScale = None,
    color: opt.Color = None,
    original_colors: opt.OriginalColors = None,
    size: opt.Size = None,
    output: opt.Output = None,
    save_stages: opt.SaveStages = None,
    save_every: opt.SaveEvery = None,
    print_every: opt.PrintEvery = None,
    overwrite: opt.Overwrite = False,
    resume: opt.Resume = False,
    bit_depth: opt.BitDepth = 8,
    jpeg_quality: opt.JpegQuality = 95,
    quiet: opt.Quiet = False,
    yes: opt.Yes = False,
    print_size: opt.PrintSize = None,
    dpi: opt.Dpi = None,
    device: opt.Device = "auto",
    threads: opt.Threads = None,
    tile_size: opt.TileSize = None,
    weights: opt.Weights = "caffe",
    seed: opt.Seed = 0,
    max_input_pixels: opt.MaxInputPixels = MAX_INPUT_PIXELS,
    out_dir: opt.OutDir = None,
    name: opt.Name = DEFAULT_NAME,
    cluster: opt.Cluster = None,
    actors: opt.Actors = None,
    cpus_per_actor: opt.CpusPerActor = None,
) -> None:
    """Stylize photos with paintings, from coarse to fine.

    Stylizes CONTENT with the style of --style, stage by stage from coarse to fine.

    Writes the image and, beside it, OUTPUT.json with the preset, seed, weights, versions and
    each stage's losses and timings. Ctrl-C saves a checkpoint; --resume continues it. Several
    photos or a folder make a batch: one output per photo in --out-dir, named by --name;
    --cluster renders a batch on the actors of a Ray cluster.
    """
    began = time.perf_counter()
    if style_weight is not None and len(style_weight) > 1:
        raise UsageError(
            "--style-weight is the style loss weight, given once (× the preset's); a "
            "painting's share of the blend is --blend-weight, once per --style"
        )
    if style_weight and len(style or []) > 1 and not blend_weight and not quiet:
        console.print(
            "note: --style-weight scales the style loss in every stage; a painting's share "
            "of the blend is --blend-weight",
            soft_wrap=True,
        )
    color = _original_colors(original_colors, color)
    from .launch import launch

    request = RenderRequest(
        photos=content,
        styles=style,
        blend_weights=blend_weight,
        masks=None if mask is None else [None if m == "none" else Path(m) for m in mask],
        preset=preset,
        color=color,
        size=size,
        print_size=print_size,
        dpi=dpi,
        tile_size=tile_size,
        content_weight=content_weight,
        style_weight=style_weight[0] if style_weight else None,
        tv_weight=tv_weight,
        **{k: v for k, v in locals().items() if k in _PLAIN},
    )
    outcomes = launch(request, console)
    seconds = time.perf_counter() - began
    code = (
        _report_batch(outcomes, quiet, seconds, nodes=cluster is not None)
        if request.batch
        else _report_one(outcomes[0], quiet, seconds)
    )
    if code:
        raise typer.Exit(code)


def _original_colors(original: int | None, color: str | None) -> str | None:
    """``--color`` as neural-style's ``-original_colors 0|1`` asks (1: ``luminance``, 0:
    ``none``), which may not contradict ``--color``.

    Raises:
        UsageError: a value other than 0 or 1, or one that contradicts ``--color``.
    """
    if original is None:
        return color
    if original not in (0, 1):
        raise UsageError(f"--original-colors takes 0 or 1 (neural-style's); got {original}")
    implied = "luminance" if original else "none"
    if color is not None and color != implied:
        raise UsageError(
            f"--original-colors {original} means --color {implied}; got --color {color}"
        )
    return implied


_PLAIN = (
    "output out_dir name save_stages save_every print_every overwrite resume bit_depth "
    "jpeg_quality max_input_pixels iterations init init_image style_scale yes "
    "device seed threads weights cluster actors cpus_per_actor quiet"
).split()
"""``render`` options that go into the request as they are, under their own names."""


def _message(outcome: Outcome) -> str:
    """An outcome's one-line error, with the command line's flags (:func:`reports_errors`)."""
    error = outcome.error
    return error.named(opt.flag_of) if isinstance(error, ArgumentError) else outcome.message


def _report_one(outcome: Outcome, quiet: bool, seconds: float) -> int:
    """Report a single photo's render: one ``error:`` line, or where it was written."""
    if outcome.exit_code:
        _error_line(_message(outcome))
        return outcome.exit_code
    if not quiet:
        from .manifest import manifest_path

        written = f"{escape(str(outcome.output))} and {escape(str(manifest_path(outcome.output)))}"
        if outcome.status == "skipped":
            kept = f"kept {written}: this render was done before (--overwrite: again)"
            console.print(kept, soft_wrap=True)
        else:
            console.print(f"wrote {written} in {seconds:.1f} s", soft_wrap=True)
    return 0


BATCH_STATUS_SHOWN = {
    "done": "[green]done[/]",
    "skipped": "[yellow]skipped[/] (output exists)",
    "failed": "[red]failed[/]: ",
    "interrupted": "[red]interrupted[/]: ",
    "not started": "not started",
}
"""How the batch summary shows each status (a failure or interruption with its message)."""


def _report_batch(outcomes: list[Outcome], quiet: bool, seconds: float, nodes: bool) -> int:
    """Print the batch summary (a table, with the node that rendered each photo when
    ``nodes``; failures and an interruption only when quiet) and choose the exit code: 0 when
    nothing failed, else the highest exit code of the failures and the interruption (130 for
    Ctrl-C)."""
    ended = [o for o in outcomes if o.exit_code]
    if quiet:
        for outcome in ended:
            _error_line(_message(outcome))
    else:
        columns = ["photo", "output", "status", "seconds"] + (["node"] if nodes else [])
        table = Table(*columns, title="batch summary")
        for o in outcomes:
            shown = BATCH_STATUS_SHOWN[o.status] + (escape(_message(o)) if o.exit_code else "")
            row = [escape(o.content.name), escape(str(o.output)), shown, f"{o.seconds:.1f}"]
            table.add_row(*row, *([escape(o.node or "—")] if nodes else []))
        console.print(table)
        counts = {s: sum(o.status == s for o in outcomes) for s in STATUSES}
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s in STATUSES[:3])
        console.print(f"{shown} in {seconds:.1f} s")
    return max((o.exit_code for o in ended), default=0)


@app.command("inspect")
@reports_errors
def inspect_command(
    content: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONTENT",
            help="Photo for the layer reconstructions (needs --style).",
            show_default=False,
        ),
    ] = None,
    style: Annotated[
        Path | None,
        typer.Option(
            "--style",
            "-s",
            metavar="PAINTING",
            help="Painting for the style reconstructions.",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="DIR", help="Folder to write the pictures into."),
    ] = Path("."),
    size: Annotated[
        int, typer.Option("--size", metavar="PX", help="Long edge of the reconstructions in px.")
    ] = 128,
    iterations: Annotated[
        int,
        typer.Option("--iterations", metavar="N", help="L-BFGS evaluations per reconstruction."),
    ] = 150,
    stages: Annotated[
        Path | None,
        typer.Option(
            "--stages",
            metavar="DIR",
            help="A --save-stages folder: write its contact sheet.",
            show_default=False,
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            metavar="OUT.json",
            help="A render's OUT.json: write its loss curve.",
            show_default=False,
        ),
    ] = None,
    device: opt.Device = "auto",
    weights: opt.Weights = "caffe",
    seed: opt.Seed = 0,
    overwrite: opt.Overwrite = False,
    quiet: opt.Quiet = False,
) -> None:
    """Pictures that explain a render, written into -o DIR.

    layers.png: the content reconstructed from single layers and the style from growing sets of
    layers (Gatys et al. 2016, Fig. 1), from CONTENT and --style at --size px. stages.png: a
    contact sheet of a --save-stages folder. losses.png: the loss curve of a render's OUT.json;
    masks.png: its masks at each stage, when it had any.
    """
    wanted = []
    if content is not None:
        if style is None:
            raise UsageError("inspect CONTENT needs --style PAINTING for the style row")
        wanted.append("layers.png")
    if stages is not None:
        wanted.append("stages.png")
    if manifest is not None:
        wanted.append("losses.png")
        if _has_masks(manifest):
            wanted.append("masks.png")
    if not wanted:
        raise UsageError(
            "nothing to do: give CONTENT --style S, --stages DIR or --manifest OUT.json"
        )
    if not 16 <= size <= 1024:
        raise ArgumentError("size", f"{{}} must be 16–1024 px for reconstructions; got {size}")
    if iterations < 1:
        raise ArgumentError("iterations", f"{{}} must be ≥ 1; got {iterations}")
    refuse_existing([out_dir / name for name in wanted], overwrite)
    from .pictures import contact_sheet

    pictures = {}  # the quick pictures first: a bad input fails before anything is created
    if manifest is not None:
        pictures["losses.png"] = _loss_picture(manifest)
    if "masks.png" in wanted:
        from .inspection import mask_sheet

        pictures["masks.png"] = mask_sheet(manifest)
    if stages is not None:
        pictures["stages.png"] = contact_sheet(stages)
    if make_folder(out_dir, "output") and not quiet:
        console.print(f"created folder {escape(str(out_dir))}", soft_wrap=True)
    if content is not None and style is not None:
        pictures["layers.png"] = _layer_picture(
            content, style, weights, device, size, iterations, seed, quiet
        )
    for name, picture in pictures.items():
        path = out_dir / name
        with reporting_write_errors(path):
            atomic_write(path, lambda tmp, p=picture: p.save(tmp, "PNG"))
        if not quiet:
            console.print(f"wrote {escape(str(path))}")


def _layer_picture(
    content: Path,
    style: Path,
    weights: str,
    device: str,
    size: int,
    iterations: int,
    seed: int,
    quiet: bool,
) -> Image.Image:
    """``inspect``'s layer reconstructions (``inspection.layer_reconstructions``), unless
    ``quiet`` with their progress: a bar on a terminal, a timestamped line each in a log."""
    from .device import select_device
    from .inspection import layer_reconstructions
    from .progress import counted_progress, step_reporter
    from .weights import check_weights_spec

    check_weights_spec(weights)
    torch_device = select_device(device)
    shown = None if quiet else console
    with counted_progress(shown, "reconstructions", 10) as done:
        return layer_reconstructions(
            content,
            style,
            weights=weights,
            device=torch_device,
            long_edge=size,
            iterations=iterations,
            seed=seed,
            step=step_reporter(shown),
            done=done,
        )


def _has_masks(path: Path) -> bool:
    """Whether the manifest at ``path`` is of a render with masks (unreadable: ``False``;
    :func:`_loss_picture` reports it)."""
    try:
        return load_preset(str(path)).masked
    except StyleCascadeError:
        return False


def _loss_picture(path: Path) -> Image.Image:
    """The loss curve of the manifest at ``path`` (:func:`~stylecascade.pictures.loss_curve`).

    Raises:
        UsageError: a missing or unreadable file, not JSON, not a manifest, no loss values —
            as ``--manifest PATH: …``.
    """
    from .pictures import loss_curve

    manifest = read_json(path, f"--manifest {path}")
    try:
        return loss_curve(manifest)
    except UsageError as exc:
        raise UsageError(f"--manifest {path}: {exc}") from None


STUDIO_MODULES = ("fastapi", "starlette", "uvicorn", "anyio", "h11")
"""The studio extra's modules: one missing is the one-line hint to install the extra."""


@app.command("studio")
@reports_errors
def studio_command(
    folder: opt.StudioFolder = Path("."),
    out_dir: opt.StudioOut = None,
    port: opt.Port = 8765,
    host: opt.Host = "127.0.0.1",
    device: opt.Device = "auto",
    weights: opt.Weights = "caffe",
) -> None:
    """Open the studio, a local web page (the studio extra).

    Try paintings, weights, color modes and masks on a photo, watch each stage arrive, compare
    tries, save a look as a preset and render it at print size."""
    if not folder.is_dir():
        raise UsageError(f"studio folder {folder}: no such folder")
    try:
        from .studio.app import Studio
        from .studio.folder import StudioFolder
        from .studio.server import serve
    except ModuleNotFoundError as exc:
        if exc.name not in STUDIO_MODULES:
            raise
        raise StyleCascadeError(
            "the studio needs its extra: pip install 'stylecascade[studio]'"
        ) from None
    out = (out_dir or folder / "studio").resolve()
    studio = Studio(StudioFolder(folder.resolve(), out), device, weights)

    def announce(url: str) -> None:
        typer.echo(
            f"studio: {url} (images from {folder.resolve()}, writes into {out}); Ctrl-C ends it"
        )

    serve(studio, host, port, announce)


@presets_app.command("list")
@reports_errors
def presets_list() -> None:
    """List the bundled and saved presets.

    With their stage sizes and evaluation caps; one that cannot be read is listed with its
    problem."""
    table = Table("name", "from", "stages (long edge px × evaluation cap)", "description")
    for where, names in (("bundled", bundled_presets()), ("saved", user_presets())):
        for name in names:
            try:
                preset = load_preset(name)
            except StyleCascadeError as exc:
                table.add_row(name, where, Text("cannot be read", "bold red"), Text(str(exc)))
                continue
            stages = " → ".join(f"{s.long_edge}×{s.iterations}" for s in preset.stages)
            table.add_row(name, where, stages, preset.description)
    Console().print(table)
    typer.echo(f"saved presets live in {user_preset_dir()}")


@presets_app.command("show")
@reports_errors
def presets_show(
    name: Annotated[
        str, typer.Argument(metavar="PRESET", help="Preset name, YAML file or a render's OUT.json.")
    ],
) -> None:
    """Print a preset's YAML, validated, ready to copy and edit."""
    text, preset_name, source, base = read_preset(name)
    parse_preset(text, preset_name, source, base)
    typer.echo(text, nl=False)


@presets_app.command("validate")
@reports_errors
def presets_validate(
    file: Annotated[
        str, typer.Argument(metavar="PRESET", help="Preset YAML file (or name, or OUT.json).")
    ],
) -> None:
    """Check a preset completely.

    Prints a one-line summary, or the first problem (exit 2)."""
    preset = load_preset(file)
    for field, path in preset.file_fields().items():
        if not Path(path).is_file():
            raise UsageError(f"{file}: {field}: no such file {path}")
    sizes = " → ".join(f"{s.long_edge}×{s.iterations}" for s in preset.stages)
    typer.echo(f"{file}: valid; {len(preset.stages)} stages {sizes}, color {preset.color}")


@presets_app.command("save")
@reports_errors
def presets_save(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name to save the preset under.")],
    source: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="SOURCE",
            help="A past render's OUT.json (its preset, styles, weights and color mode), or "
            "any preset name or YAML file.",
            show_default=False,
        ),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace a saved preset of that name.")
    ] = False,
) -> None:
    """Save a preset into the user preset folder.

    Then `--preset NAME` finds it."""
    with reporting_write_errors(user_preset_dir()):
        path = save_user_preset(name, load_preset(source), overwrite)
    typer.echo(f"saved {path}")


@presets_app.command("schema")
@reports_errors
def presets_schema() -> None:
    """Print the JSON Schema of preset files.

    For editors: completion and checks of preset YAML files."""
    from .preset_schema import preset_schema

    typer.echo(json.dumps(preset_schema(), indent=2, ensure_ascii=False))


@weights_app.command("fetch")
@reports_errors
def weights_fetch(
    source: Annotated[
        str, typer.Option("--source", metavar="SOURCE", help=f"One of: {', '.join(SOURCES)}.")
    ] = "caffe",
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Download and convert again even if cached.")
    ] = False,
) -> None:
    """Download and convert the VGG19 weights into the cache.

    Done automatically on first use. The cache is $STYLECASCADE_HOME/weights if that variable is
    set, else the user cache folder.
    """
    from .progress import step_reporter
    from .weights import cached_path, fetch, load_cached

    step = step_reporter(console)
    if source in SOURCES and not force:
        _, fetched = load_cached(source, step)
        path = cached_path(source)
        if not fetched:
            typer.echo(f"{source} weights already in the cache, verified: {path} (--force: again)")
            return
    else:
        path = fetch(source, step)
    typer.echo(f"{source} weights downloaded and converted: {path}")


@weights_app.command("export")
@reports_errors
def weights_export(
    compact: Annotated[
        Path,
        typer.Option(
            "--compact", metavar="FILE", help="Write the compact form (float16, up to a layer)."
        ),
    ],
    weights: opt.Weights = "caffe",
    through: Annotated[
        str, typer.Option("--through", metavar="LAYER", help="The deepest layer kept.")
    ] = "relu5_1",
    overwrite: opt.Overwrite = False,
) -> None:
    """Write the VGG19 weights in a compact form.

    For machines that take little data: 26 MB through relu5_1, float16, the values' digest
    verified on loading; render with it through --weights FILE.
    """
    from .files import check_outputs, refuse_existing, reporting_write_errors
    from .progress import step_reporter
    from .weights import check_through, export_compact, load_weights

    check_through(through)
    path = compact.expanduser()
    check_outputs([path], [])
    refuse_existing([path], overwrite)
    loaded = load_weights(weights, step_reporter(console))
    with reporting_write_errors(path):
        size = export_compact(loaded, path, through)
    typer.echo(f"wrote {path}: {size / 1e6:.1f} MB, VGG19 through {through} in float16")
