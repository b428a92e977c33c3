"""Batch renders: one preset and one set of paintings applied to many photos; one photo is a
batch of one (the launcher, :mod:`stylecascade.launch`, builds the jobs and calls
:func:`run_batch`, or :mod:`stylecascade.cluster` on a cluster).

One :class:`~stylecascade.renderer.Renderer` serves every photo: the network is loaded once and,
when the color mode allows (``none``, ``luminance``), the style targets are computed once per
stage size. In a batch, an input whose output exists is skipped (unless ``overwrite``); an
input that fails is reported and the batch goes on.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Protocol

from .errors import ArgumentError, StyleCascadeError, literal
from .files import check_folder
from .interrupt import Interrupted, Signalled
from .job import CheckedJob, RenderJob, output_files, run_inputs
from .naming import checkpoint_folder, output_name
from .preset import Preset
from .records import Outcome
from .renderer import Renderer
from .runner import Observer
from .stages.stopping import StopHandle
from .write_checks import check_outputs


class BatchObserver(Observer, Protocol):
    """A stage observer that also follows a batch's photos (``progress.StageProgress``,
    ``progress.LogProgress``, the studio's)."""

    def batch_started(self, count: int) -> None:
        """A batch of ``count`` photos begins."""

    def input_started(self, name: str) -> None:
        """The photo ``name`` (a file name) begins."""

    def input_finished(self) -> None:
        """That photo is done, skipped or failed."""


def batch_jobs(
    inputs: list[Path], template: RenderJob, out_dir: Path, pattern: str, preset: Preset
) -> list[RenderJob]:
    """One job per photo: its output ``out_dir / pattern`` (:func:`output_name`), resumed when
    ``template.resume`` and its checkpoint exists.

    Raises:
        UsageError: an ``out_dir`` that cannot be a folder (a missing one is created before
            the work: ``files.check_folder``), a bad pattern, a pattern that gives two photos
            the same output, an output that is any input of the batch (another photo, a
            painting, a mask, the preset or weights file: ``job.run_inputs``), or outputs
            that cannot be written there (``write_checks.check_outputs``).
    """
    check_folder(out_dir, "out_dir")
    names = [output_name(pattern, p, preset, template.seed) for p in inputs]
    _refuse_shared_outputs(inputs, names, pattern, out_dir)
    every_input = [*inputs, *run_inputs(template, preset, None)]
    jobs = []
    for content, name in zip(inputs, names, strict=True):
        output = out_dir / name
        folder = checkpoint_folder(output)
        check_outputs(output_files(output), every_input, [folder], "name")  # out_dir / name
        resume = template.resume and folder.exists()
        jobs.append(dataclasses.replace(template, content=content, output=output, resume=resume))
    return jobs


def _refuse_shared_outputs(inputs: list[Path], names: list[str], pattern: str, out: Path) -> None:
    """Refuse two photos that would write one output, saying which and what separates them.

    Raises:
        UsageError: the first output two photos share.
    """
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        first, second = [p for p, n in zip(inputs, names, strict=True) if n == name][:2]
        same = os.path.abspath(first) == os.path.abspath(second)
        if same:
            fix = "give each photo once"
        elif "{content}" not in pattern:
            fix = "add {content} to {}"
        elif first.stem == second.stem and "{ext}" not in pattern:
            fix = "add {ext} to {} (e.g. '{content}-{ext}.png') or rename one photo"
        else:
            fix = "rename one photo, or render them in two batches"
        twice = f"photo {literal(first)} is given twice" if same else (
            f"photos {literal(first)} and {literal(second)} would both write "
            f"{literal(out / name)}"
        )  # fmt: skip
        more = ["name"] * fix.count("{}")
        raise ArgumentError("name", f"{twice} ({{}} {literal(repr(pattern))}): {fix}", *more)


def run_batch(
    jobs: list[RenderJob],
    renderer: Renderer,
    progress: BatchObserver | None,
    *,
    batch: bool = True,
    checked: CheckedJob | None = None,
    stop: StopHandle | None = None,
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
        checked: the first job already checked (:class:`CheckedJob`), so it is not read twice.
        stop: stops the batch from another thread as a signal does (``StopHandle``).

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
        skipped = skip_existing(job) if batch else done_before(job, checked)
        if skipped is not None:
            outcomes.append(skipped)
        else:
            render = checked if index == 0 else None
            outcomes.append(render_job(job, renderer, progress, render, stop))
        if progress is not None:
            progress.input_finished()
    return outcomes


def skip_existing(job: RenderJob) -> Outcome | None:
    """The ``skipped`` outcome of a batch job whose output exists (without ``overwrite``), else
    ``None``: the job is to be rendered."""
    if job.output.exists() and not job.overwrite:
        return Outcome(job.content, job.output, "skipped", message="output exists")
    return None


def done_before(job: RenderJob, checked: CheckedJob | None) -> Outcome | None:
    """The ``skipped`` outcome of a single render whose output and manifest were made by this
    very render (:attr:`CheckedJob.done_before`), else ``None``."""
    if checked is not None and checked.done_before:
        return Outcome(job.content, job.output, "skipped", message="the same render exists")
    return None


def render_job(
    job: RenderJob,
    renderer: Renderer,
    observer: Observer | None = None,
    render: CheckedJob | None = None,
    stop: StopHandle | None = None,
) -> Outcome:
    """Check (unless ``render`` is the job already checked) and run one job; ``stop`` ends it
    from another thread (``interrupted``, its checkpoint saved).

    Returns:
        ``done``; ``failed`` with the one-line message and exit code of the
        :class:`StyleCascadeError` that stopped it; or ``interrupted`` by a signal (its
        checkpoint saved when a stage was running), with exit code 130 or 143.
    """
    began = time.perf_counter()
    try:
        (render or CheckedJob(job, renderer)).run(observer, stop)
    except Signalled as exc:  # outside a stage: nothing of this photo was written
        message = (
            f"interrupted before {literal(job.output)} was written (finished stages, if any, "
            f"are kept for {{}})"
        )
        return _ended(job, "interrupted", began, Interrupted(message, exc.signum, "resume"))
    except Interrupted as exc:
        return _ended(job, "interrupted", began, exc)
    except StyleCascadeError as exc:
        return _ended(job, "failed", began, exc)
    return Outcome(job.content, job.output, "done", time.perf_counter() - began)


def _ended(job: RenderJob, status: str, began: float, exc: StyleCascadeError) -> Outcome:
    seconds = time.perf_counter() - began
    return Outcome(job.content, job.output, status, seconds, str(exc), exc.exit_code, error=exc)
