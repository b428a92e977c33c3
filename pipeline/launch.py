"""The launcher: the one flow from a :class:`~stylecascade.request.RenderRequest` to rendered
files, used by the command line, :func:`stylecascade.render_batch` and (through
:func:`resolve_look`) :func:`stylecascade.render`; a cluster batch is one branch of it.

The flow: check the request, find the photos, pick the device (or connect to the cluster),
resolve the preset with the request's knobs (:func:`resolve_look`), create the output folders,
build one :class:`~stylecascade.renderer.Renderer` and one job per photo (every cheap check
before any work), then run them here or on the cluster's actors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from .errors import ArgumentError, StyleCascadeError
from .files import make_folder
from .interrupt import signals_interrupt
from .naming import DEFAULT_NAME, describe, expand_inputs, output_name
from .preset import Ladder, Preset, scaled_stages
from .preset_files import load_preset
from .printsize import DEFAULT_DPI, final_long_edge
from .records import Outcome
from .request import RenderRequest

if TYPE_CHECKING:  # torch and the modules that load it are imported when the work starts
    import torch

    from .batch import BatchObserver
    from .images import ImageSource
    from .job import CheckedJob, RenderJob
    from .renderer import Renderer
    from .stages.stopping import StopHandle


@dataclass(frozen=True)
class Look:
    """A request's preset resolved for one device.

    Attributes:
        preset: the preset with the request's paintings, masks, blend weights, color mode,
            size, tile size and weight multipliers.
        ladder: the preset's stages scaled to the requested size (``None``: its own sizes).
        sources: the paintings given as images in memory, in order (``None``: read the
            preset's files).
        unsized: ``preset`` before the requested size scaled its stages: the look a manifest
            keeps for ``presets save --from`` (a look tried at 128 px is the ladder, not 128 px).
    """

    preset: Preset
    ladder: Ladder | None
    sources: list[ImageSource] | None
    unsized: Preset


def default_preset(device: torch.device) -> str:
    """The preset of a render that names none: ``draft`` on a CPU, ``standard`` on a GPU."""
    return "draft" if device.type == "cpu" else "standard"


def resolve_look(request: RenderRequest, device: torch.device) -> Look:
    """The request's preset with its knobs applied (``Preset.resolved``).

    Raises:
        PresetError, ArgumentError: an unknown preset, or a knob the preset refuses (counts
            of blend weights or masks, a color mode, a size, a weight).
    """
    preset = request.preset or default_preset(device)
    chosen = preset if isinstance(preset, Preset) else load_preset(preset)
    final = final_long_edge(request.size, request.print_size, request.dpi)
    styles = list(request.styles or [])
    unsized = chosen.resolved(
        styles=[Path(describe(s)) for s in styles] or None,
        blend_weights=list(request.blend_weights) if request.blend_weights else None,
        masks=list(request.masks) if request.masks else None,
        color=request.color,
        tile_size=request.tile_size,
        content_weight=request.content_weight,
        style_weight=request.style_weight,
        tv_weight=request.tv_weight,
        iterations=request.iterations,
        init=request.init,
        init_image=request.init_image,
        style_scale=request.style_scale,
    )
    ladder = None if final is None else scaled_stages(chosen.stages, final)
    sources = None
    if not all(isinstance(s, (str, Path)) for s in styles):  # images in memory: by description
        pairs = zip(unsized.styles, styles, strict=True)
        named = tuple(dataclasses.replace(s, image=describe(x)) for s, x in pairs)
        sources, unsized = styles, dataclasses.replace(unsized, styles=named)
    resolved = unsized if final is None else unsized.with_final_size(final)
    return Look(resolved, ladder, sources, unsized)


def request_renderer(request: RenderRequest, device: torch.device) -> Renderer:
    """The renderer of an in-memory render (:func:`stylecascade.render`, the studio's tries):
    the request's look (:func:`resolve_look`) on ``device``; its ``look`` is the unsized preset
    (what ``presets save`` keeps).

    Raises:
        PresetError, ArgumentError: see :func:`resolve_look`; a bad ``weights`` spec.
    """
    from .renderer import Renderer

    look = resolve_look(request, device)
    return Renderer(
        look.preset,
        device=device,
        weights=request.weights,
        sources=look.sources,
        look=look.unsized,
    )


def launch(
    request: RenderRequest,
    console: Console | None = None,
    *,
    observer: BatchObserver | None = None,
    stop: StopHandle | None = None,
) -> list[Outcome]:
    """Render the request's photos into files: one output and its manifest per photo.

    Ctrl-C and SIGTERM (in the main thread), or ``stop`` (from any thread), stop it with
    checkpoints kept for ``resume``.

    Args:
        request: what to render and where.
        console: where progress, the header and folder notes go; ``None``: nothing shown.
        observer: receives the stages' progress instead of the console's bars (a local
            render; e.g. the studio's page).
        stop: ends a local render from another thread as a signal does
            (``stages.stopping.StopHandle``).

    Returns:
        One :class:`~stylecascade.records.Outcome` per photo, in order.

    Raises:
        ArgumentError, UsageError: bad photos, paintings, preset, knobs or output locations —
            every one before any work.
        WeightsError: the weights cannot be loaded.
        ClusterError: Ray is missing, or the cluster cannot be reached.
        Interrupted, Signalled: a signal stopped the render (a single photo's is raised; a
            batch reports it in its outcomes).
    """
    shown = None if request.quiet else console
    with signals_interrupt(), ExitStack() as stack:
        inputs = expand_inputs(list(request.photos))
        request.check()  # every check above costs no torch import: a typo answers at once
        from .batch import run_batch
        from .device import set_threads
        from .progress import stage_progress, step_reporter
        from .renderer import Renderer

        set_threads(request.threads)
        session = None
        if request.cluster is not None:
            if (skipped := _skipped_before_connecting(request, inputs, shown)) is not None:
                return skipped  # every output exists: Ray takes seconds to start
            from .cluster import connect

            session = stack.enter_context(connect(request.cluster))
        device = select_device_for(request.device, session)
        look = resolve_look(request, device)
        _make_folders(request, shown)
        step = step_reporter(shown)
        renderer = Renderer(
            look.preset,
            device=device,
            weights=request.weights,
            sources=look.sources,
            step=step,
            max_input_pixels=request.max_input_pixels or None,
            look=look.unsized,
        )
        jobs, checked = _jobs(request, inputs, renderer)
        if shown is not None:
            where = str(device) if session is None else f"{device} on {session}"
            _announce(shown, look, where, request, len(jobs), checked)
        if session is None and checked is not None and not checked.done_before:
            _check_time(shown, request, renderer, checked, len(jobs))
        if session is None:
            bars = nullcontext(observer) if shown is None or observer else stage_progress(shown)
            with bars as progress:
                if request.print_every is not None and shown is not None:
                    from .every import Lines

                    progress = Lines(progress, request.print_every, shown)
                return run_batch(
                    jobs, renderer, progress, batch=request.batch, checked=checked, stop=stop
                )
        from .cluster import run_cluster_batch
        from .progress import cluster_progress

        with nullcontext() if shown is None else cluster_progress(shown) as progress:
            options = {"actors": request.actors, "cpus_per_actor": request.cpus_per_actor or 1}
            return run_cluster_batch(
                jobs, renderer, session, progress, threads=request.threads, step=step, **options
            )


def _skipped_before_connecting(
    request: RenderRequest, inputs: Sequence[Path], console: Console | None
) -> list[Outcome] | None:
    """A cluster batch's outcomes when every photo's output exists and ``overwrite`` is off:
    all ``skipped`` (``batch.skip_existing``), said on ``console``, without connecting.

    ``None`` (connect and run the batch) when some output is missing; when the names need the
    cluster's device (``{preset}``, or ``{styles}`` without ``styles``, of the default preset,
    which is the device's); or when the look or a name has a problem (the batch reports it).
    """
    import torch

    from .batch import skip_existing
    from .job import RenderJob

    pattern = request.name
    by_device = "{preset}" in pattern or ("{styles}" in pattern and not request.styles)
    if request.overwrite or (request.preset is None and by_device):
        return None
    try:
        preset = resolve_look(request, torch.device("cpu")).preset
        names = [output_name(pattern, photo, preset, request.seed) for photo in inputs]
    except StyleCascadeError:
        return None
    folder = request.out_dir or Path(".")
    pairs = zip(inputs, names, strict=True)
    jobs = [RenderJob(content=photo, output=folder / name) for photo, name in pairs]
    outcomes = [outcome for job in jobs if (outcome := skip_existing(job)) is not None]
    if len(outcomes) < len(jobs):
        return None
    if console is not None:
        line = f"every output exists: {len(outcomes)} photos skipped, the cluster not started"
        console.print(f"{line} (--overwrite: render them again)", soft_wrap=True)
    return outcomes


def select_device_for(name: str | torch.device, session: Any | None) -> torch.device:
    """The device of a render: ``name`` here (``auto`` picks CUDA, MPS or the CPU), or the
    cluster's actors' device when ``session`` is a connected cluster (``cluster.Cluster``)."""
    import torch

    from .device import select_device

    if isinstance(name, torch.device):
        return name
    return select_device(name) if session is None else session.device(name)


def _jobs(
    request: RenderRequest, inputs: Sequence[Path], renderer: Renderer
) -> tuple[list[RenderJob], CheckedJob | None]:
    """One job per photo, checked before any work: a single photo's job fully
    (:class:`CheckedJob`), a batch's outputs and paintings (the photos as they come)."""
    from .batch import batch_jobs
    from .job import CheckedJob, RenderJob
    from .output import OutputOptions

    preset = renderer.preset
    output = request.output or Path(output_name(DEFAULT_NAME, inputs[0], preset, request.seed))
    dpi = DEFAULT_DPI if request.dpi is None else request.dpi
    template = RenderJob(
        content=inputs[0],
        output=output,
        seed=request.seed,
        save_stages=request.save_stages,
        save_every=request.save_every,
        overwrite=request.overwrite,
        resume=request.resume,
        output_options=OutputOptions(request.bit_depth, request.jpeg_quality, dpi),
        max_input_pixels=request.max_input_pixels or None,
    )
    if not request.batch:
        return [template], CheckedJob(template, renderer)
    jobs = batch_jobs(list(inputs), template, request.out_dir or Path("."), request.name, preset)
    renderer.load_paintings()  # a bad painting or mask stops the batch before it starts
    return jobs, None


def _make_folders(request: RenderRequest, console: Console | None) -> None:
    """Create the missing output folders the request names (a single photo's ``output``
    folder, a batch's ``out_dir``, ``save_stages``), and say so on ``console``.

    Raises:
        ArgumentError: a folder that cannot be created (``files.make_folder``).
    """
    single = None if request.batch or request.output is None else request.output.parent
    folders = [
        ("output", single),
        ("out_dir", request.out_dir if request.batch else None),
        ("save_stages", request.save_stages),
    ]
    for argument, folder in folders:
        if folder is not None and make_folder(Path(folder), argument) and console is not None:
            console.print(f"created folder {escape(str(folder))}", soft_wrap=True)


def _check_time(
    console: Console | None,
    request: RenderRequest,
    renderer: Renderer,
    checked: CheckedJob,
    count: int,
) -> None:
    """Say how long the render will take at most (:mod:`stylecascade.estimate`) and, on a CPU,
    refuse one over :data:`~stylecascade.estimate.CONFIRM_SECONDS` without ``yes``.

    Raises:
        ArgumentError: (argument ``yes``) too long on a CPU, naming a size that takes a
            quarter of the time.
    """
    from .device import precision
    from .estimate import CONFIRM_SECONDS, H100_RATE, device_rate, duration, render_estimate
    from .runner import stage_sizes

    preset, device = renderer.preset, renderer.device
    done = checked.checkpoint.finished() if request.resume else 0
    sizes = stage_sizes(tuple(checked.content.shape[-2:]), preset)[done:]
    caps = [s.iterations for s in preset.stages][done:]
    name, autocast = precision(preset.precision, device)
    rate = device_rate(renderer.network.extractor, device, name, autocast)
    estimate = render_estimate(sizes, caps, preset.layers, rate)
    total = estimate.seconds * count
    if console is not None:
        console.print(
            f"estimate: at most {duration(total)} ({estimate.flops * count / 1e12:.1f} TFLOP at "
            f"{rate:.0f} GFLOP/s measured on {device} in {name}; stages that converge stop "
            f"earlier)",
            soft_wrap=True,
        )
    if device.type == "cpu" and total > CONFIRM_SECONDS and not request.yes:
        final = max(preset.stages[-1].long_edge // 2, 1)
        raise ArgumentError(
            "yes",
            f"this render would take up to {duration(total)} on this CPU; pass {{}} to start "
            f"it, or render at {{}} {final} (about a quarter: {duration(total / 4)}), or on a GPU "
            f"(an H100: about {duration(total * rate / H100_RATE)})",
            "size",
        )


def _announce(
    console: Console,
    look: Look,
    device: str,
    request: RenderRequest,
    count: int,
    checked: CheckedJob | None,
) -> None:
    """One line before the work starts: the preset and its stages (and those dropped under
    the floor), device, seed and a batch's photo count; then where ``resume`` continues."""
    preset, ladder = look.preset, look.ladder
    sizes = " → ".join(str(s.long_edge) for s in preset.stages)
    header = f"preset [bold]{escape(preset.name)}[/] ({sizes} px), device {device}"
    photos = f", {count} photo" + ("s" if count != 1 else "")
    header += f", seed {request.seed}" + (photos if request.batch else "")
    if ladder is not None and ladder.dropped:
        dropped = ", ".join(map(str, ladder.dropped))
        header += f"; stages of {dropped} px dropped (under the {ladder.floor} px floor"
        header += f"; one at {ladder.floor} px runs instead)" if ladder.inserted else ")"
    console.print(header, soft_wrap=True)
    if checked is not None and request.resume:
        checkpoint, stages = checked.checkpoint, len(preset.stages)
        done, folder = checkpoint.finished(), escape(str(checkpoint.folder))
        line = f"resuming at stage {done + 1}/{stages} ({done} finished in {folder})"
        console.print(line, soft_wrap=True)
