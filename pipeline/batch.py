"""Batch renders: one preset and one set of paintings applied to many photos; one photo is a
batch of one.

One :class:`~stylecascade.api.Renderer` serves every photo: the network is loaded once and,
when the color mode allows (``none``, ``luminance``), the style targets are computed once per
stage size. In a batch, an input whose output exists is skipped (unless ``--overwrite``); an
input that fails is reported and the batch goes on.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from .api import Renderer
from .checkpoint import checkpoint_folder
from .config import Preset
from .errors import StyleCascadeError, UsageError
from .files import check_outputs
from .interrupt import Interrupted, Signalled
from .job import Render, RenderJob, output_files
from .naming import output_name
from .progress import LogProgress, StageProgress

STATUSES = ("done", "skipped", "failed", "interrupted", "not started")
"""What can happen to one photo of a batch (:class:`Outcome`)."""


@dataclass
class Outcome:
    """What happened to one input: ``status`` is one of :data:`STATUSES`."""

    content: Path
    output: Path
    status: str
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0


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
        if batch and job.output.exists() and not job.overwrite:
            outcomes.append(Outcome(job.content, job.output, "skipped", message="output exists"))
        else:
            render = checked if index == 0 else None
            outcomes.append(_render_one(job, renderer, progress, render))
        if progress is not None:
            progress.input_finished()
    return outcomes


def _render_one(
    job: RenderJob,
    renderer: Renderer,
    progress: StageProgress | LogProgress | None,
    render: Render | None,
) -> Outcome:
    """Check (unless ``render`` is the job already checked) and run one job."""
    began = time.perf_counter()
    try:
        (render or Render(job, renderer)).run(progress)
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
