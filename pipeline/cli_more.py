"""``stylecascade studio``, ``presets …`` and ``weights …``: the commands beside ``render``
and ``inspect``; options shared with ``render`` come from the record
(:func:`stylecascade.options.one`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import options as opt
from .choices import SOURCES
from .cliapp import app, console, presets_app, reports_errors, weights_app
from .errors import StyleCascadeError, UsageError
from .files import reporting_write_errors
from .preset_files import (
    bundled_presets,
    ignored_presets,
    load_preset,
    parse_preset,
    read_preset,
    save_user_preset,
    user_preset_dir,
    user_presets,
)
from .reading import path_problem
from .record import Compute, Outputs

Device = opt.one(Compute, "device")
Weights = opt.one(Compute, "weights")
Overwrite = opt.one(Outputs, "overwrite")


STUDIO_MODULES = ("fastapi", "starlette", "uvicorn", "anyio", "h11")
"""The studio extra's modules: one missing is the one-line hint to install the extra."""


@app.command("studio")
@reports_errors
def studio_command(
    folder: opt.StudioFolder = Path("."),
    out_dir: opt.StudioOut = None,
    port: opt.Port = 8765,
    host: opt.Host = "127.0.0.1",
    device: Device = "auto",
    weights: Weights = "caffe",
    token: opt.StudioToken = None,
    allow_origin: opt.AllowOrigin = None,
) -> None:
    """Open the studio, a local web page (the studio extra).

    Try paintings, weights, color modes and masks on a photo, watch each stage arrive, compare
    tries, save a look as a preset and render it at print size."""
    problem = path_problem(folder, "folder")
    if problem is not None:
        raise UsageError(f"studio folder {folder}: {problem}")
    try:
        from .studio.app import Studio
        from .studio.folder import StudioFolder
        from .studio.server import check_start, serve
    except ModuleNotFoundError as exc:
        if exc.name not in STUDIO_MODULES:
            raise
        raise StyleCascadeError(
            "the studio needs its extra: pip install 'stylecascade[studio]' (in a clone, as "
            "README installs it: .venv/bin/pip install -c constraints.txt -e '.[studio]')"
        ) from None
    out = (out_dir or folder / "studio").resolve()
    check_start(host, port, out, device, weights)  # before anything is served
    studio = Studio(StudioFolder(folder.resolve(), out), device, weights, token)

    def announce(url: str) -> None:
        typer.echo(
            f"studio: {url} (images from {folder.resolve()}, writes into {out}); Ctrl-C ends it"
        )

    serve(studio, host, port, announce, tuple(allow_origin or ()))


@presets_app.command("list")
@reports_errors
def presets_list() -> None:
    """List the bundled and saved presets.

    With their stage sizes and evaluation caps; one that cannot be read is listed with its
    problem, a file whose name no preset may have is named below."""
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
    for path, problem in ignored_presets().items():
        typer.echo(f"ignored {path}: {problem}")
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
        problem = path_problem(path, "file", "image file")
        if problem is not None:
            raise UsageError(f"{file}: {field}: {path}: {problem}")
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
    read_from = user_presets().get(source, Path(source))  # never written over: an input
    inputs = [read_from] if read_from.is_file() else []
    with reporting_write_errors(user_preset_dir()):
        path = save_user_preset(name, load_preset(source), overwrite, inputs)
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
    weights: Weights = "caffe",
    through: Annotated[
        str, typer.Option("--through", metavar="LAYER", help="The deepest layer kept.")
    ] = "relu5_1",
    overwrite: Overwrite = False,
) -> None:
    """Write the VGG19 weights in a compact form.

    For machines that take little data: 26 MB through relu5_1, float16, the values' digest
    verified on loading; render with it through --weights FILE.
    """
    from .files import check_folder, make_folder
    from .naming import check_name, check_weights_spec
    from .write_checks import check_outputs, refuse_existing

    path = compact.expanduser()  # every check before a folder is made or weights loaded
    check_name(path.name, "compact", field="compact")  # the name rule of every file written
    check_weights_spec(weights)
    from .progress import step_reporter
    from .weights import check_through, export_compact, load_weights

    check_through(through)
    check_folder(path.parent, "compact")
    inputs = [] if str(weights) in SOURCES else [Path(weights).expanduser()]
    check_outputs([path], inputs, argument="compact")
    refuse_existing([path], overwrite)
    loaded = load_weights(weights, step_reporter(console))
    make_folder(path.parent, "compact")
    with reporting_write_errors(path):
        size = export_compact(loaded, path, through, replace=overwrite)
    typer.echo(f"wrote {path}: {size / 1e6:.1f} MB, VGG19 through {through} in float16")
