"""Batch renders: one preset and one set of paintings applied to many photos; one photo is a
batch of one. :func:`render_batch` is the Python API of ``render PHOTOS --out-dir OUT`` (with
``--cluster``: :mod:`stylecascade.cluster`).

One :class:`~stylecascade.api.Renderer` serves every photo: the network is loaded once and,
when the color mode allows (``none``, ``luminance``), the style targets are computed once per
stage size. In a batch, an input whose output exists is skipped (unless ``--overwrite``); an
input that fails is reported and the batch goes on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from .api import Renderer
from .checkpoint import checkpoint_folder
from .device import set_threads
from .errors import StyleCascadeError, UsageError
from .files import check_outputs, make_folder
from .interrupt import Interrupted, Signalled
from .job import Render, RenderJob, output_files
from .naming import DEFAULT_NAME, expand_inputs, output_name
from .preset import Preset
from .preset_files import load_preset
from .progress import LogProgress, StageProgress, cluster_progress, stage_progress
from .runner import Observer

STATUSES = ("done", "skipped", "failed", "interrupted", "not started")
"""What can happen to one photo of a batch (:class:`Outcome`)."""


@dataclass
class Outcome:
    """What happened to one input: ``status`` is one of :data:`STATUSES`; ``node`` is the
    cluster node that rendered it (``""``: this process)."""

    content: Path
    output: Path
    status: str
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0
    node: str = ""


def batch_jobs(
    inputs: list[Path], template: RenderJob, out_dir: Path, pattern: str, preset: Preset
) -> list[RenderJob]:
    """One job per photo: its output ``out_dir / pattern`` (:func:`output_name`), resumed when
    ``template.resume`` and its checkpoint exists.

    Raises:
        UsageError: a missing ``out_dir``, a bad pattern, a pattern that gives two photos the
            same output, or outputs that cannot be written there (:func:`check_outputs`).
    """
    if not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir}: no such folder")
    names = [output_name(pattern, p, preset, template.seed) for p in inputs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise UsageError(
            f"--name {pattern!r} gives several inputs the same output {sorted(duplicates)[0]}; "
            f"add {{content}} to it or rename the photos"
        )
    jobs = []
    for content, name in zip(inputs, names, strict=True):
        output = out_dir / name
        check_outputs(output_files(output), [])  # a name too long, a read-only folder: up front
        resume = template.resume and checkpoint_folder(output).exists()
        jobs.append(dataclasses.replace(template, content=content, output=output, resume=resume))
    return jobs


def run_batch(
    jobs: list[RenderJob],
    renderer: Renderer,
    progress: StageProgress | LogProgress | None,
    *,
    batch: bool = True,
    checked: Render | None = None,
) -> list[Outcome]:
    """Render every job with the same renderer (preset, paintings, network, style targets).

    A signal (SIGINT, SIGTERM) stops the batch: the photo it reached is ``interrupted`` (its
    checkpoint saved when a stage was running), the ones after it ``not started``; the photos
    before it keep their outcomes.

    Args:
        jobs: one per photo (:func:`batch_jobs`, or a single job).
        renderer: shared by every job.
        progress: the progress display, or ``None`` (quiet).
        batch: ``True``: outputs that exist are skipped (unless ``overwrite``) and an overall
            bar counts the photos; ``False``: one photo, whose existing output is an error.
        checked: the first job already checked (:class:`Render`), so it is not read twice.

    Returns:
        One :class:`Outcome` per job, in order.
    """
    outcomes: list[Outcome] = []
    if progress is not None and batch:
        progress.batch_started(len(jobs))
    for index, job in enumerate(jobs):
        if outcomes and outcomes[-1].status == "interrupted":
            outcomes.append(Outcome(job.content, job.output, "not started"))
            continue
        if progress is not None:
            progress.input_started(job.content.name)
        skipped = skip_existing(job) if batch else None
        if skipped is not None:
            outcomes.append(skipped)
        else:
            render = checked if index == 0 else None
            outcomes.append(render_job(job, renderer, progress, render))
        if progress is not None:
            progress.input_finished()
    return outcomes


def skip_existing(job: RenderJob) -> Outcome | None:
    """The ``skipped`` outcome of a batch job whose output exists (without ``overwrite``), else
    ``None``: the job is to be rendered."""
    if job.output.exists() and not job.overwrite:
        return Outcome(job.content, job.output, "skipped", message="output exists")
    return None


def render_job(
    job: RenderJob,
    renderer: Renderer,
    observer: Observer | None = None,
    render: Render | None = None,
) -> Outcome:
    """Check (unless ``render`` is the job already checked) and run one job.

    Returns:
        ``done``; ``failed`` with the one-line message and exit code of the
        :class:`StyleCascadeError` that stopped it; or ``interrupted`` by a signal (its
        checkpoint saved when a stage was running), with exit code 130 or 143.
    """
    began = time.perf_counter()
    try:
        (render or Render(job, renderer)).run(observer)
    except Signalled as exc:  # outside a stage: nothing of this photo was written
        message = (
            f"interrupted before {job.output} was written (finished stages, if any, are kept "
            f"for --resume)"
        )
        return _ended(job, "interrupted", began, Interrupted(message, exc.signum))
    except Interrupted as exc:
        return _ended(job, "interrupted", began, exc)
    except StyleCascadeError as exc:
        return _ended(job, "failed", began, exc)
    return Outcome(job.content, job.output, "done", time.perf_counter() - began)


def _ended(job: RenderJob, status: str, began: float, exc: StyleCascadeError) -> Outcome:
    seconds = time.perf_counter() - began
    return Outcome(job.content, job.output, status, seconds, str(exc), exc.exit_code)


def render_batch(
    photos: Sequence[str | Path],
    out_dir: str | Path,
    styles: str | Path | Sequence[str | Path] | None = None,
    *,
    preset: str | Preset = "draft",
    size: int | None = None,
    name: str = DEFAULT_NAME,
    seed: int = 0,
    device: str = "auto",
    weights: str = "caffe",
    overwrite: bool = False,
    resume: bool = False,
    threads: int | None = None,
    cluster: str | None = None,
    actors: int | None = None,
    cpus_per_actor: int = 1,
    progress: bool = False,
) -> list[Outcome]:
    """Apply one look to many photos, writing one output and its manifest per photo into
    ``out_dir`` — what ``stylecascade render PHOTOS --out-dir OUT`` does — in this process or,
    with ``cluster``, on the actors of a Ray cluster.

    Args:
        photos: photo files, or folders whose image files are all taken.
        out_dir: where the outputs go (created if missing); an existing output is skipped
            unless ``overwrite``.
        styles: the painting(s) to blend; ``None``: the preset's own (a saved look).
        preset: a preset name (bundled or saved), a YAML path, a past render's ``OUT.json``, or
            a :class:`~stylecascade.preset.Preset`.
        size: long edge of the final stage in px; earlier stages scale with it.
        name: output file name pattern (``{content}``, ``{styles}``, ``{preset}``, ``{seed}``).
        seed: makes each render repeatable (same seed, threads and kind of device).
        device: ``auto``, ``cuda``, ``mps`` or ``cpu`` (on a cluster, the actors' device).
        weights: VGG19 weights: ``caffe``, ``torchvision`` or a file path.
        overwrite: replace existing outputs.
        resume: continue interrupted renders from their checkpoints.
        threads: torch's CPU threads (here: for this process; on a cluster: per actor).
        cluster: ``None`` (render here), ``local``, ``auto`` or ``ray://HOST:PORT``
            (:func:`stylecascade.cluster.connect`; needs the ``cluster`` extra).
        actors: on a cluster, at most this many actors.
        cpus_per_actor: on a cluster without GPUs, CPUs per actor.
        progress: progress on stderr.

    Returns:
        One :class:`Outcome` per photo, in order (``failed`` ones carry the one-line message).

    Raises:
        UsageError: bad photos, paintings, preset, pattern or folder.
        WeightsError: the weights cannot be loaded.
        ClusterError: Ray is missing, or the cluster cannot be reached or run an actor.
        Interrupted: Ctrl-C; finished photos and stages are kept for ``resume``.
    """
    inputs = expand_inputs([Path(p) for p in photos])
    sources = [] if styles is None else [styles] if isinstance(styles, str | Path) else styles
    base = preset if isinstance(preset, Preset) else load_preset(preset)
    resolved = base.resolved(styles=[Path(s) for s in sources] or None, size=size)
    folder = Path(out_dir)
    make_folder(folder, "out_dir")
    template = RenderJob(
        content=inputs[0], output=folder, seed=seed, overwrite=overwrite, resume=resume
    )
    jobs = batch_jobs(inputs, template, folder, name, resolved)
    console = Console(stderr=True)
    if cluster is None:
        set_threads(threads)
        renderer = Renderer(resolved, device=device, weights=weights)
        _ = renderer.style_sets  # a bad painting or mask stops the batch before it starts
        with stage_progress(console) if progress else nullcontext() as shown:
            return run_batch(jobs, renderer, shown)
    from .cluster import connect, run_cluster_batch

    with connect(cluster) as session:
        renderer = Renderer(resolved, device=session.device(device), weights=weights)
        _ = renderer.style_sets
        with cluster_progress(console) if progress else nullcontext() as shown:
            options = {"actors": actors, "cpus_per_actor": cpus_per_actor, "threads": threads}
            return run_cluster_batch(jobs, renderer, session, shown, **options)
