"""The launcher: the one flow from a :class:`~stylecascade.request.RenderRequest` to rendered
files, used by the command line, :func:`stylecascade.render_batch` and (through
:func:`resolve_look`) :func:`stylecascade.render`; a cluster batch is one branch of it.

The flow: check the request and the files it names (torch-free), find the photos, pick the
device (or connect to the cluster), resolve the preset with the request's knobs
(:func:`resolve_look`), build one :class:`~stylecascade.renderer.Renderer` and one job per
photo (every cheap check before any work), the time gate, then create the output folders (the
last step before the work: a refused render leaves none) and run the jobs here or on the
cluster's actors.
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

from .choices import DEFAULT_NAME
from .errors import StyleCascadeError
from .files import make_folder
from .gate import check_plan
from .interrupt import signals_interrupt
from .naming import describe, expand_inputs, output_name
from .preset import Ladder, Preset, scaled_stages
from .preset_files import load_preset
from .printsize import final_long_edge
from .record import knob_specs
from .records import Outcome
from .request import RenderRequest
from .request_files import check_request_files, other_inputs

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
    """The request's preset with its knobs applied (``Preset.resolved``: every record field
    with a preset target, by name).

    Raises:
        PresetError, ArgumentError: an unknown preset, or a knob the preset refuses (counts
            of blend weights or masks, a color mode, a size, a weight).
    """
    inputs, look = request.inputs, request.look
    preset = inputs.preset or default_preset(device)
    chosen = preset if isinstance(preset, Preset) else load_preset(preset)
    final = final_long_edge(look.size, look.print_size, look.dpi, request.outputs.bleed)
    styles = list(inputs.styles or [])
    fields = request.fields()
    unsized = chosen.resolved(
        styles=[Path(describe(s)) for s in styles] or None,
        blend_weights=list(inputs.blend_weights) if inputs.blend_weights else None,
        masks=list(inputs.masks) if inputs.masks else None,
        **{name: fields[name] for name in knob_specs()},
    )
    ladder = None if final is None else scaled_stages(chosen.stages, final)
    sources = None
    if not all(isinstance(s, (str, Path)) for s in styles):  # images in memory: by description
        pairs = zip(unsized.styles, styles, strict=True)
        named = tuple(dataclasses.replace(s, image=describe(x)) for s, x in pairs)
        sources, unsized = styles, dataclasses.replace(unsized, styles=named)
    resolved = unsized if final is None else unsized.with_final_size(final)
    return Look(resolved, ladder, sources, unsized)


def request_renderer(
    request: RenderRequest, device: torch.device, driver: torch.device | None = None
) -> Renderer:
    """The renderer of an in-memory render (:func:`stylecascade.render`, the studio's tries):
    the request's look (:func:`resolve_look`) on ``device``; its ``look`` is the unsized preset
    (what ``presets save`` keeps). ``driver``: where the image and the optimizer live when
    ``device`` is a cluster's actors' (this process's CPU), else ``device``.

    Raises:
        PresetError, ArgumentError: see :func:`resolve_look`; a bad ``weights`` spec.
    """
    from .renderer import Renderer

    look = resolve_look(request, device)
    return Renderer(
        look.preset,
        device=driver or device,
        weights=request.compute.weights,
        sources=look.sources,
        look=look.unsized,
    )


@dataclass
class Plan:
    """A launch's work, every cheap check done: the look, one renderer, the jobs.

    Attributes:
        look: the resolved look (:func:`resolve_look`); renderer: the one renderer of every
            photo; jobs: one per photo; checked: a single photo's fully checked job (``None``
            for a batch); step: where the renderer's steps (weights, paintings) are said.
    """

    look: Look
    renderer: Renderer
    jobs: list[RenderJob]
    checked: CheckedJob | None
    step: Any


def launch(
    request: RenderRequest,
    console: Console | None = None,
    *,
    observer: BatchObserver | None = None,
    stop: StopHandle | None = None,
) -> list[Outcome]:
    """Render the request's photos into files: one output and its manifest per photo.

    The steps: the inputs and every torch-free check (:func:`checked_inputs`); the cluster,
    if any (:func:`cluster_session`); the device; the look, renderer and jobs, every cheap check
    before any work (:func:`plan`); the header (on ``console``); the time gate of a local
    render, single or batch (``gate.check_plan``: a long CPU render refused without ``yes``);
    the output folders (:func:`_make_folders`, the last step before the work); the run here
    (:func:`_run_here`; a single photo on a cluster too, its tiles on the actors:
    :func:`start_print_tiles`) or a batch on the cluster (:func:`_run_on_cluster`). Ctrl-C and
    SIGTERM (in the main thread), or ``stop`` (from any thread), stop it with checkpoints
    kept for ``resume``.

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
        TooLong: (an ``ArgumentError``) a render over 30 min on this CPU without ``yes``.
        WeightsError: the weights cannot be loaded.
        ClusterError: Ray is missing, or the cluster cannot be reached.
        Interrupted, Signalled: a signal stopped the render (a single photo's is raised; a
            batch reports it in its outcomes).
    """
    shown = None if request.outputs.quiet else console
    with signals_interrupt(), ExitStack() as stack:
        inputs = checked_inputs(request)
        if request.batch.cluster is not None and request.is_batch:
            skipped = _skipped_before_connecting(request, inputs, shown)
            if skipped is not None:
                return skipped  # every output exists: Ray takes seconds to start
        session = cluster_session(request, stack)
        on_actors = session is not None and not request.is_batch  # one print's tiles there
        device = select_device_for(request.compute.device, session)  # the actors' on a cluster
        work = plan(request, inputs, device, shown, session if on_actors else None, stack)
        if shown is not None:
            where = str(device) if session is None else f"{device} on {session}"
            where = f"cpu, its tiles on {session} ({device})" if on_actors else where
            _announce(shown, work, where, request)
        if session is None:  # the time gate: a single photo or a batch, never the weights
            default = work.look.unsized.stages[-1].long_edge
            check_plan(shown, request, work.renderer, work.jobs, work.checked, default)
        _make_folders(request, shown)  # the last step before the work: every check is done
        if session is None or on_actors:
            return _run_here(request, work, shown, observer, stop)
        return _run_on_cluster(request, work, session, shown)


def checked_inputs(request: RenderRequest) -> list[Path]:
    """The photos (folders expanded) after every check that needs no torch, which is
    imported after them (a typo answers at once): the request's own
    (:meth:`RenderRequest.check`) and its files' (``request_files.check_request_files``);
    the CPU threads set.

    Raises:
        ArgumentError, UsageError: see :meth:`RenderRequest.check`; missing photos; see
            ``request_files.check_request_files``.
    """
    inputs = expand_inputs([Path(p) for p in request.inputs.photos])
    request.check()
    check_request_files(request, inputs)
    from .device import set_threads

    set_threads(request.compute.threads)
    return inputs


def cluster_session(request: RenderRequest, stack: ExitStack) -> Any | None:
    """The connected cluster of a ``cluster`` request (closed with ``stack``), else ``None``.

    Raises:
        ClusterError: Ray is missing, or the cluster cannot be reached.
    """
    if request.batch.cluster is None:
        return None
    from .cluster import connect

    return stack.enter_context(connect(request.batch.cluster))


def plan(
    request: RenderRequest,
    inputs: Sequence[Path],
    device: torch.device,
    shown: Console | None,
    session: Any | None = None,
    stack: ExitStack | None = None,
) -> Plan:
    """The look, the renderer and the jobs, every check done (no folder is made: that is
    :func:`_make_folders`, the last step before the work); with a ``session`` (a single
    photo on a cluster), the print's tile actors too (:func:`start_print_tiles`, closed with
    ``stack``).

    Raises:
        PresetError, ArgumentError, UsageError: see :func:`resolve_look` and :func:`_jobs`.
        ArgumentError, ClusterError: see :func:`start_print_tiles`.
    """
    import torch

    from .progress import step_reporter
    from .renderer import Renderer

    look = resolve_look(request, device)  # a cluster's: its actors' device (the default preset)
    step = step_reporter(shown)
    limit = request.compute.max_input_pixels or None
    driver = device if session is None else torch.device("cpu")  # the image, the optimizer
    renderer = Renderer(
        look.preset, device=driver, weights=request.compute.weights, sources=look.sources,
        step=step, max_input_pixels=limit, look=look.unsized,
    )  # fmt: skip
    jobs, checked = _jobs(request, inputs, renderer)
    if session is not None and stack is not None and checked and not checked.done_before:
        hw = tuple(checked.content.shape[-2:])
        start_print_tiles(request, session, renderer, stack, shown, hw)
    return Plan(look, renderer, jobs, checked, step)


def start_print_tiles(
    request: RenderRequest,
    session: Any,
    renderer: Renderer,
    stack: ExitStack,
    shown: Console | None,
    hw: tuple[int, int] | None,
) -> None:
    """Start one print's tile actors on the cluster for ``renderer`` (its stages run there;
    they stop with ``stack``; their lines said on ``shown``) and plan every stage of a photo
    of ``hw`` = ``(H, W)`` px against them: one that fits no actor is refused here, before any
    work (``tile_cluster.TiledCluster.check``; ``hw`` ``None``: when the stages are made).

    Raises:
        ArgumentError: a stage fits no actor (naming the largest and the tile that fits).
        ClusterError, UsageError, WeightsError: see ``tile_cluster.print_tiles``.
    """
    from .runner import schedule
    from .tile_cluster import print_tiles

    compute, batch = request.compute, request.batch
    device = compute.device if isinstance(compute.device, str) else compute.device.type
    tiles = print_tiles(
        session, renderer, device, actors=batch.actors,
        cpus_per_actor=batch.cpus_per_actor, threads=compute.threads, console=shown,
    )  # fmt: skip
    cluster = stack.enter_context(tiles)
    if hw is not None:
        cluster.check(schedule(renderer.preset, hw))


def _run_here(
    request: RenderRequest,
    work: Plan,
    shown: Console | None,
    observer: BatchObserver | None,
    stop: StopHandle | None,
) -> list[Outcome]:
    """Run the jobs in this process, with bars on ``shown`` (or ``observer``) and a line
    every ``print_every`` evaluations."""
    from .batch import run_batch
    from .progress import stage_progress

    bars = nullcontext(observer) if shown is None or observer else stage_progress(shown)
    with bars as progress:
        every = request.outputs.print_every
        if every is not None and shown is not None:
            from .every import Lines

            progress = Lines(progress, every, shown)
        return run_batch(
            work.jobs, work.renderer, progress, batch=request.is_batch, checked=work.checked,
            stop=stop,
        )  # fmt: skip


def _run_on_cluster(
    request: RenderRequest, work: Plan, session: Any, shown: Console | None
) -> list[Outcome]:
    """Run the jobs on the cluster's actors, with the cluster's displays on ``shown``."""
    from .cluster_batch import run_cluster_batch
    from .cluster_display import cluster_progress

    batch = request.batch
    with nullcontext() if shown is None else cluster_progress(shown) as progress:
        return run_cluster_batch(
            work.jobs, work.renderer, session, progress, threads=request.compute.threads,
            step=work.step, actors=batch.actors, cpus_per_actor=batch.cpus_per_actor or 1,
        )  # fmt: skip


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

    pattern = request.batch.name
    by_device = "{preset}" in pattern or ("{styles}" in pattern and not request.inputs.styles)
    if request.outputs.overwrite or (request.inputs.preset is None and by_device):
        return None
    try:
        preset = resolve_look(request, torch.device("cpu")).preset
        names = [output_name(pattern, photo, preset, request.look.seed) for photo in inputs]
    except StyleCascadeError:
        return None
    folder = _path(request.batch.out_dir) or Path(".")
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
    from .output import options_of

    preset, outputs, seed = renderer.preset, request.outputs, request.look.seed
    output = _path(outputs.output) or Path(output_name(DEFAULT_NAME, inputs[0], preset, seed))
    template = RenderJob(
        content=inputs[0],
        output=output,
        seed=seed,
        save_stages=_path(outputs.save_stages),
        save_every=outputs.save_every,
        overwrite=outputs.overwrite,
        resume=outputs.resume,
        output_options=options_of(request.fields()),
        max_input_pixels=request.compute.max_input_pixels or None,
        inputs=other_inputs(request),
    )
    if not request.is_batch:
        return [template], CheckedJob(template, renderer)
    folder = _path(request.batch.out_dir) or Path(".")
    jobs = batch_jobs(list(inputs), template, folder, request.batch.name, preset)
    renderer.load_paintings()  # a bad painting or mask stops the batch before it starts
    return jobs, None


def _path(value: Any) -> Path | None:
    """A path field's value as a ``Path`` (``None`` stays ``None``)."""
    return None if value is None else Path(value)


def _make_folders(request: RenderRequest, console: Console | None) -> None:
    """Create the missing output folders the request names (a single photo's ``output``
    folder, a batch's ``out_dir``, ``save_stages``), and say so on ``console``: the one place
    a render makes its folders, after every check (``request_files.check_request_files``
    checked they can be made) and the time gate, so a refused render leaves none.

    Raises:
        ArgumentError: a folder that cannot be created (``files.make_folder``).
    """
    output = _path(request.outputs.output)
    single = None if request.is_batch or output is None else output.parent
    folders = [
        ("output", single),
        ("out_dir", request.batch.out_dir if request.is_batch else None),
        ("save_stages", request.outputs.save_stages),
    ]
    for argument, folder in folders:
        if folder is not None and make_folder(Path(folder), argument) and console is not None:
            console.print(f"created folder {escape(str(folder))}", soft_wrap=True)


def _announce(console: Console, work: Plan, device: str, request: RenderRequest) -> None:
    """One line before the work starts: the preset and its stages (and those dropped under
    the floor), device, seed and a batch's photo count; then where ``resume`` continues."""
    preset, ladder = work.look.preset, work.look.ladder
    count, checked = len(work.jobs), work.checked
    sizes = " → ".join(str(s.long_edge) for s in preset.stages)
    header = f"preset [bold]{escape(preset.name)}[/] ({sizes} px), device {device}"
    photos = f", {count} photo" + ("s" if count != 1 else "")
    header += f", seed {request.look.seed}" + (photos if request.is_batch else "")
    if ladder is not None and ladder.dropped:
        dropped = ", ".join(map(str, ladder.dropped))
        header += f"; stages of {dropped} px dropped (under the {ladder.floor} px floor"
        header += f"; one at {ladder.floor} px runs instead)" if ladder.inserted else ")"
    console.print(header, soft_wrap=True)
    if checked is not None and request.outputs.resume:
        checkpoint, stages = checked.checkpoint, len(preset.stages)
        done, folder = checkpoint.finished(), escape(str(checkpoint.folder))
        line = f"resuming at stage {done + 1}/{stages} ({done} finished in {folder})"
        console.print(line, soft_wrap=True)
