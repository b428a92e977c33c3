"""The ``stylecascade`` command line (typer)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

# typer (≥ 0.29) carries its own copy of click; these are the framework's usage errors
from typer._click.exceptions import NoArgsIsHelpError
from typer._click.exceptions import UsageError as FrameworkUsageError

from . import __version__
from .choices import DEVICES, MAX_INPUT_PIXELS, SOURCES, check_seed
from .errors import StyleCascadeError, UsageError
from .files import atomic_write, make_folder, refuse_existing, reporting_write_errors
from .interrupt import Interrupted, Signalled, signals_interrupt
from .naming import DEFAULT_NAME, expand_inputs, output_name
from .preset import Ladder, Preset, scaled_stages
from .preset_files import (
    bundled_presets,
    load_preset,
    parse_preset,
    read_preset,
    save_user_preset,
    user_preset_dir,
    user_presets,
)
from .printsize import DEFAULT_DPI, final_long_edge
from .stages.vocabulary import COLOR_MODES

if TYPE_CHECKING:  # the modules that load torch are imported inside the commands that need them
    from PIL import Image

    from .batch import Outcome
    from .checkpoint import Checkpoint

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    help="Coarse-to-fine neural style transfer (Gatys et al.) for print-resolution images.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
    rich_markup_mode=None,  # click's plain help: wraps to the terminal, metavars as written
    pretty_exceptions_show_locals=False,
)
presets_app = typer.Typer(
    help="List, show, validate and save presets.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
    rich_markup_mode=None,
)
weights_app = typer.Typer(
    help="Download and convert the VGG19 weights.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
    rich_markup_mode=None,
)
app.add_typer(presets_app, name="presets")
app.add_typer(weights_app, name="weights")

console = Console(stderr=True)


Command = TypeVar("Command", bound=Callable[..., None])


def _error_line(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")


def reports_errors(command: Command) -> Command:
    """Wrap a command so that every expected failure (a :class:`StyleCascadeError`, or a
    signal outside a stage) is one ``error:`` line on stderr with its exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
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


def run(args: list[str]) -> int:
    """Run the command line on ``args`` (without the program name) and return the exit code.

    The framework's own usage errors (a value that is not a number, a missing argument, an
    unknown option) become one ``error:`` line with exit code 2, as every failure of ours does
    (:func:`reports_errors`); a Ctrl-C outside a render is one line with exit code 130.
    """
    try:
        code = app(args=args, prog_name="stylecascade", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        typer.echo(exc.format_message())
        return exc.exit_code
    except FrameworkUsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "stylecascade"
        _error_line(f"{exc.format_message()} (see {command} -h)")
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _error_line("interrupted")
        return 130
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
    content: Annotated[
        list[Path],
        typer.Argument(
            help="The photo(s) to stylize: files, or folders of images (a batch).",
            show_default=False,
        ),
    ],
    style: Annotated[
        list[Path] | None,
        typer.Option(
            "--style",
            "-s",
            metavar="PAINTING",
            help="A painting whose style to transfer; repeat to blend several "
            "(default: the preset's styles).",
            show_default=False,
        ),
    ] = None,
    style_weight: Annotated[
        list[float] | None,
        typer.Option(
            "--style-weight",
            metavar="W",
            help="Share of each --style in the blend, in order (normalized; default equal).",
            show_default=False,
        ),
    ] = None,
    mask: Annotated[
        list[str] | None,
        typer.Option(
            "--mask",
            metavar="MASK",
            help="Where each --style applies, in order: a grayscale image on the photo, white "
            "= this painting (soft edges allowed; 'none': everywhere).",
            show_default=False,
        ),
    ] = None,
    color: Annotated[
        str | None,
        typer.Option(
            "--color",
            metavar="MODE",
            help=f"Color preservation: {' | '.join(COLOR_MODES)} (default: the preset's, none).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Output image (.png, .jpg, .tif); default CONTENT-STYLE.png here.",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            metavar="DIR",
            help="Batch: folder for one output per photo (default: here).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str,
        typer.Option(
            "--name",
            metavar="PATTERN",
            help="Batch: output file name pattern; fields {content}, {styles}, {preset}, {seed}.",
        ),
    ] = DEFAULT_NAME,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            metavar="PRESET",
            help="Preset name (bundled or saved), a YAML file, or a past render's OUT.json; "
            "default draft on a CPU, standard on a GPU.",
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            metavar="PX",
            help="Long edge of the final stage in px; earlier stages scale with it.",
            show_default=False,
        ),
    ] = None,
    print_size: Annotated[
        str | None,
        typer.Option(
            "--print-size",
            metavar="WxH[cm|mm|in]",
            help="Print size like 30x40cm, 8x10in or 210x297mm; with --dpi sets the final long "
            "edge (the image keeps the photo's aspect ratio).",
            show_default=False,
        ),
    ] = None,
    dpi: Annotated[
        float | None,
        typer.Option(
            "--dpi",
            metavar="DPI",
            help="Print resolution written into the file (default 300); with --print-size "
            "it sets the final long edge.",
            show_default=False,
        ),
    ] = None,
    tile_size: Annotated[
        int | None,
        typer.Option(
            "--tile-size",
            metavar="PX",
            help="Run stages larger than this many px in overlapping tiles (0: only when a stage "
            "does not fit in memory; default: the preset's).",
            show_default=False,
        ),
    ] = None,
    bit_depth: Annotated[
        int,
        typer.Option(
            "--bit-depth", metavar="8|16", help="8 or 16 bits per channel (16: PNG, TIFF)."
        ),
    ] = 8,
    jpeg_quality: Annotated[
        int, typer.Option("--jpeg-quality", metavar="Q", help="JPEG quality 1–95.")
    ] = 95,
    max_input_pixels: Annotated[
        int,
        typer.Option(
            "--max-input-pixels",
            metavar="PIXELS",
            help="Refuse larger input images (decompression-bomb guard); 0: no limit.",
        ),
    ] = MAX_INPUT_PIXELS,
    device: Annotated[
        str, typer.Option("--device", metavar="DEVICE", help=f"One of: {', '.join(DEVICES)}.")
    ] = "auto",
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            metavar="N",
            help="Random seed; the same seed, --threads and device give the same image.",
        ),
    ] = 0,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            metavar="N",
            help="CPU threads (default: one per core); the manifest records the count.",
            show_default=False,
        ),
    ] = None,
    weights: Annotated[
        str,
        typer.Option(
            "--weights",
            metavar="WEIGHTS",
            help=f"VGG19 weights: {' | '.join(SOURCES)} | PATH to a .h5/.pt file.",
        ),
    ] = "caffe",
    save_stages: Annotated[
        Path | None,
        typer.Option(
            "--save-stages",
            metavar="DIR",
            help="Folder to write each stage's result into.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace existing output files.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", metavar="", help="Continue an interrupted render from its last stage."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", metavar="", help="No progress output.")
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="ADDRESS",
            help="Batch: render on Ray: local (start Ray here), auto (the running instance) or "
            "ray://HOST:PORT (a cluster's Ray Client server). Needs pip install -e '.[cluster]'.",
            show_default=False,
        ),
    ] = None,
    actors: Annotated[
        int | None,
        typer.Option(
            "--actors",
            metavar="N",
            help="With --cluster: at most N actors (default: one per GPU, or per "
            "--cpus-per-actor CPUs).",
            show_default=False,
        ),
    ] = None,
    cpus_per_actor: Annotated[
        int | None,
        typer.Option(
            "--cpus-per-actor",
            metavar="N",
            help="With --cluster and no GPU: CPUs (and torch threads) per actor (default 1).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Stylize CONTENT with the style of --style, stage by stage from coarse to fine.

    Writes the image and, beside it, OUTPUT.json with the preset, seed, weights, versions and
    each stage's losses and timings. Ctrl-C saves a checkpoint; --resume continues it. Several
    photos or a folder make a batch: one output per photo in --out-dir, named by --name;
    --cluster renders a batch on the actors of a Ray cluster.
    """
    began = time.perf_counter()
    with signals_interrupt(), ExitStack() as stack:
        inputs = expand_inputs(content)
        check_seed(seed)
        batch = len(content) > 1 or content[0].is_dir() or out_dir is not None
        if batch and output is not None:
            raise UsageError("-o names one output; for several photos use --out-dir and --name")
        _check_cluster_options(cluster, actors, cpus_per_actor, batch)
        from .api import Renderer
        from .batch import batch_jobs, run_batch
        from .device import select_device, set_threads
        from .job import Render, RenderJob
        from .output import OutputOptions
        from .progress import stage_progress, step_reporter

        set_threads(threads)
        session = None
        if cluster is not None:
            from .cluster import connect

            session = stack.enter_context(connect(cluster))
        torch_device = select_device(device) if session is None else session.device(device)
        default = "draft" if torch_device.type == "cpu" else "standard"
        chosen, final = load_preset(preset or default), final_long_edge(size, print_size, dpi)
        resolved = chosen.resolved(
            styles=style,
            blend_weights=style_weight,
            masks=None if mask is None else [None if m == "none" else Path(m) for m in mask],
            color=color,
            size=final,
            tile_size=tile_size,
        )
        ladder = None if final is None else scaled_stages(chosen.stages, final)
        single_folder = None if batch or output is None else output.parent
        _make_folders(
            [
                (single_folder, "-o"),
                (out_dir if batch else None, "--out-dir"),
                (save_stages, "--save-stages"),
            ],
            quiet,
        )
        step = step_reporter(None if quiet else console)
        renderer = Renderer(
            resolved,
            device=torch_device,
            weights=weights,
            step=step,
            max_input_pixels=max_input_pixels or None,
        )
        template = RenderJob(
            content=inputs[0],
            output=output or Path(output_name(DEFAULT_NAME, inputs[0], resolved, seed)),
            seed=seed,
            save_stages=save_stages,
            overwrite=overwrite,
            resume=resume,
            output_options=OutputOptions(
                bit_depth, jpeg_quality, DEFAULT_DPI if dpi is None else dpi
            ),
            max_input_pixels=max_input_pixels or None,
        )
        if batch:
            jobs = batch_jobs(inputs, template, out_dir or Path("."), name, resolved)
            checked, _ = None, renderer.style_sets  # a bad painting stops the batch up front
        else:
            jobs, checked = [template], Render(template, renderer)  # every cheap check first
        if not quiet:
            where = str(torch_device) if session is None else f"{torch_device} on {session}"
            _print_header(resolved, ladder, where, seed, len(jobs) if batch else None)
            if checked is not None and resume:
                _print_resume(checked.checkpoint, len(resolved.stages))
        if session is None:
            with nullcontext() if quiet else stage_progress(console) as progress:
                outcomes = run_batch(jobs, renderer, progress, batch=batch, checked=checked)
        else:
            from .cluster import run_cluster_batch
            from .progress import cluster_progress

            with nullcontext() if quiet else cluster_progress(console) as shown:
                options = {"actors": actors, "cpus_per_actor": cpus_per_actor or 1}
                outcomes = run_cluster_batch(
                    jobs, renderer, session, shown, threads=threads, step=step, **options
                )
    seconds = time.perf_counter() - began
    code = (
        _report_batch(outcomes, quiet, seconds, nodes=session is not None)
        if batch
        else _report_one(outcomes[0], quiet, seconds)
    )
    if code:
        raise typer.Exit(code)


def _check_cluster_options(
    cluster: str | None, actors: int | None, cpus_per_actor: int | None, batch: bool
) -> None:
    """``--actors`` and ``--cpus-per-actor`` are ≥ 1 and only go with ``--cluster``, which
    renders batches.

    Raises:
        UsageError: naming the option.
    """
    for option, value in (("--actors", actors), ("--cpus-per-actor", cpus_per_actor)):
        if value is not None and cluster is None:
            raise UsageError(f"{option} goes with --cluster ADDRESS")
        if value is not None and value < 1:
            raise UsageError(f"{option} must be ≥ 1; got {value}")
    if cluster is not None and not batch:
        raise UsageError("--cluster renders batches: give a folder or several photos, or --out-dir")


def _make_folders(folders: list[tuple[Path | None, str]], quiet: bool) -> None:
    """Create the missing output folders named by options (``(folder, option)``; ``None``:
    not given), and say so.

    Raises:
        UsageError: a folder that cannot be created (:func:`~stylecascade.files.make_folder`).
    """
    for folder, option in folders:
        if folder is not None and make_folder(folder, option) and not quiet:
            console.print(f"created folder {escape(str(folder))}", soft_wrap=True)


def _print_header(
    preset: Preset,
    ladder: Ladder | None,
    device: str,
    seed: int,
    count: int | None,
) -> None:
    """One line before the work starts: preset, the stages that will run (and the ones dropped
    under the floor), device (and cluster), seed, and the photo count of a batch (``count``)."""
    sizes = " → ".join(str(s.long_edge) for s in preset.stages)
    header = f"preset [bold]{escape(preset.name)}[/] ({sizes} px), device {device}, seed {seed}"
    if count is not None:
        header += f", {count} photos"
    if ladder is not None and ladder.dropped:
        sizes = ", ".join(map(str, ladder.dropped))
        header += f"; stages of {sizes} px dropped (under the {ladder.floor} px floor"
        header += f"; one at {ladder.floor} px runs instead)" if ladder.inserted else ")"
    console.print(header, soft_wrap=True)


def _print_resume(checkpoint: Checkpoint, count: int) -> None:
    """Which stage ``--resume`` continues from, and where its checkpoint is."""
    done = checkpoint.finished()
    folder = escape(str(checkpoint.folder))
    console.print(
        f"resuming at stage {done + 1}/{count} ({done} finished in {folder})", soft_wrap=True
    )


def _report_one(outcome: Outcome, quiet: bool, seconds: float) -> int:
    """Report a single photo's render: one ``error:`` line, or where it was written."""
    if outcome.exit_code:
        _error_line(outcome.message)
        return outcome.exit_code
    if not quiet:
        from .manifest import manifest_path

        written = f"{escape(str(outcome.output))} and {escape(str(manifest_path(outcome.output)))}"
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
    from .batch import STATUSES

    ended = [o for o in outcomes if o.exit_code]
    if quiet:
        for outcome in ended:
            _error_line(outcome.message)
    else:
        columns = ["photo", "output", "status", "seconds"] + (["node"] if nodes else [])
        table = Table(*columns, title="batch summary")
        for o in outcomes:
            shown = BATCH_STATUS_SHOWN[o.status] + (escape(o.message) if o.exit_code else "")
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
    device: Annotated[
        str, typer.Option("--device", metavar="DEVICE", help=f"One of: {', '.join(DEVICES)}.")
    ] = "auto",
    weights: Annotated[
        str, typer.Option("--weights", metavar="WEIGHTS", help="VGG19 weights (as for render).")
    ] = "caffe",
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Seeds the reconstructions' noise.")
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace existing pictures.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", metavar="", help="No progress output.")
    ] = False,
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
        raise UsageError(f"--size must be 16–1024 px for reconstructions; got {size}")
    if iterations < 1:
        raise UsageError(f"--iterations must be ≥ 1; got {iterations}")
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
    _make_folders([(out_dir, "-o")], quiet)
    if content is not None and style is not None:
        from .device import select_device
        from .inspection import layer_reconstructions
        from .progress import step_reporter
        from .weights import check_weights_spec

        check_weights_spec(weights)
        torch_device = select_device(device)
        with nullcontext() if quiet else Progress(console=console) as progress:
            task = None if quiet else progress.add_task("reconstructions", total=10)

            def done(_label: str) -> None:
                if task is not None:
                    progress.advance(task)

            pictures["layers.png"] = layer_reconstructions(
                content,
                style,
                weights=weights,
                device=torch_device,
                long_edge=size,
                iterations=iterations,
                seed=seed,
                step=step_reporter(None if quiet else console),
                done=done,
            )
    for name, picture in pictures.items():
        path = out_dir / name
        with reporting_write_errors(path):
            atomic_write(path, lambda tmp, p=picture: p.save(tmp, "PNG"))
        if not quiet:
            console.print(f"wrote {escape(str(path))}")


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

    try:
        return loss_curve(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UsageError(f"--manifest {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"--manifest {path}: not a readable JSON manifest ({exc})") from None
    except UsageError as exc:
        raise UsageError(f"--manifest {path}: {exc}") from None


@presets_app.command("list")
@reports_errors
def presets_list() -> None:
    """List the bundled and saved presets with their stage sizes and evaluation caps."""
    table = Table("name", "from", "stages (long edge px × evaluation cap)", "description")
    for where, names in (("bundled", bundled_presets()), ("saved", user_presets())):
        for name in names:
            preset = load_preset(name)
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
    """Print a preset's YAML (validated first), ready to copy and edit."""
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
    """Check a preset completely; print a one-line summary, or the first problem (exit 2)."""
    preset = load_preset(file)
    for i, style in enumerate(preset.styles):
        if not Path(style.image).is_file():
            raise UsageError(f"{file}: styles[{i}].image: no such file {style.image}")
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
    """Save a preset into the user preset folder, so `--preset NAME` finds it."""
    with reporting_write_errors(user_preset_dir()):
        path = save_user_preset(name, load_preset(source), overwrite)
    typer.echo(f"saved {path}")


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
    """Download and convert the VGG19 weights into the cache (done automatically on first use).

    The cache is $STYLECASCADE_HOME/weights if that variable is set, else the user cache folder.
    """
    from .progress import step_reporter
    from .weights import cached_path, fetch

    if source in SOURCES and cached_path(source).exists() and not force:
        typer.echo(f"{source} weights already in the cache: {cached_path(source)} (--force: again)")
        return
    path = fetch(source, step_reporter(console), force=force)
    typer.echo(f"{source} weights downloaded and converted: {path}")
