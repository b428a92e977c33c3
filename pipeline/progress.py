"""Progress of a render: on a terminal, a rich spinner per long step and a bar per stage with
its losses, laid out for 80 columns first; in a log (stderr not a terminal), plain timestamped
lines at each stage's start and end and every :data:`LOG_EVERY_SECONDS` in between. (A cluster
batch's displays: ``stylecascade.cluster_display``.)"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from torch import Tensor

from .records import Step, no_step
from .stages.cascade import Stage, StageResult
from .stages.losses import as_floats
from .stages.vgg import deepest_layer, evaluation_flops

LOSS_REFRESH_SECONDS = 0.5
"""How often the bar reads the losses; reading them waits for the GPU to finish queued work."""


def short_number(value: float) -> str:
    """Two significant digits, compact: ``4.6e5``, ``0.31``, ``12``."""
    text = f"{value:.2g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def format_losses(losses: Mapping[str, float]) -> str:
    """``content 4.6e5 · style 2.9e5 · tv 3.4e3``: the weighted terms by name, in order (a
    ``total`` entry is left out)."""
    return " · ".join(
        f"{name} {short_number(value)}" for name, value in losses.items() if name != "total"
    )


LOG_EVERY_SECONDS = 30.0
"""Seconds between two progress lines of a stage in a log."""
WIDE_COLUMNS = 100
"""Terminals at least this wide show the optimizer and a longer bar; narrower ones the compact
line: ``stage 1/3 1024×768 ━━━━━━━━━━ 40/140 0:00:12 eta 0:00:30 content 6.4e5 · …``."""
COMPACT_FIXED = 63
"""Columns the compact line needs before its losses: a description of up to 21 characters, a
10-character bar, ``1000/1000``, elapsed and remaining ``0:00:00``, ``eta`` and 6 spaces."""


def _columns(width: int) -> tuple[list[ProgressColumn], bool]:
    """The bar's columns for a terminal ``width`` columns wide, and whether it is wide. Every
    column keeps its width; the losses take what is left (cut with ``…``), so the count, the
    elapsed time and the ETA stay whole in 80 columns."""
    wide = width >= WIDE_COLUMNS
    fixed = {"table_column": Column(no_wrap=True)}
    losses_width = max(1, width - COMPACT_FIXED - (18 if wide else 0))
    losses = Column(no_wrap=True, overflow="ellipsis", max_width=losses_width)
    columns: list[ProgressColumn] = [
        TextColumn("{task.description}", **fixed),
        BarColumn(bar_width=20 if wide else 10),
        MofNCompleteColumn(**fixed),
        TimeElapsedColumn(**fixed),
        TextColumn("eta", **fixed),
        TimeRemainingColumn(**fixed),
        TextColumn("{task.fields[losses]}", table_column=losses),
    ]
    return columns, wide


def stage_label(index: int, count: int, stage: Stage) -> str:
    """``stage 1/3 1024×768`` (width × height in px)."""
    height, width = stage.size
    return f"stage {index + 1}/{count} {width}×{height}"


def stage_summary(result: StageResult) -> str:
    """``converged · content 4.6e5 · style 2.9e5 · tv 3.4e3 · total 8.1e6 → 7.6e5``."""
    start, end = short_number(result.loss_start["total"]), short_number(result.loss_end["total"])
    return f"{result.stop} · {format_losses(result.loss_end)} · total {start} → {end}"


def stage_progress(console: Console) -> StageProgress | LogProgress:
    """The progress observer for ``console``: bars on a terminal and in a notebook that can
    show them (rich needs ``ipywidgets`` there), timestamped lines in a log."""
    live = console.is_jupyter and importlib.util.find_spec("ipywidgets") is not None
    return StageProgress(console) if console.is_terminal or live else LogProgress(console)


def progress_by_default() -> bool:
    """Whether the Python API shows progress when its ``progress`` is not given: in a notebook
    (an IPython kernel) or when stderr is a terminal; not in scripts whose stderr goes to a
    file or a pipe, nor in tests."""
    return _in_notebook() or Console(stderr=True).is_terminal


def _in_notebook() -> bool:
    """Whether this runs in an IPython kernel (Jupyter, VS Code's notebooks), not in a plain
    interpreter or IPython in a terminal. IPython is only looked at when already imported."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def stage_weight(stage: Stage) -> float:
    """A stage's share of a render's work: its FLOPs at its cap through its own deepest layer
    (``relu5_1`` unless it has its own layers), × the slower rate of a shallow network
    (``estimate.DEPTH_COST``)."""
    from .estimate import DEPTH_COST

    own = [*(stage.content_layers or ()), *(stage.style_layers or ())]
    deepest = deepest_layer(own) if own else "relu5_1"
    flops = evaluation_flops(deepest, *stage.size) * max(stage.iterations, 1)
    return flops * DEPTH_COST.get(deepest, 1.0)


class PhotoShare:
    """How much of one photo's work its stages have done, 0–1, for the overall bar (so its
    ETA shows before the first photo ends). A stage weighs :func:`stage_weight`; the whole
    schedule is known when the cascade says it (``schedule_started``); else a stage not yet
    seen weighs 4× the one before it until a photo has shown them all; each photo's stages
    replace the weights of the photo before."""

    def __init__(self) -> None:
        self.weights: list[float] = []
        self.count = 1

    def schedule_started(self, stages: Sequence[Stage]) -> None:
        """The cascade's whole schedule: every stage's weight is known before it runs."""
        self.weights, self.count = [stage_weight(s) for s in stages], max(len(stages), 1)

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        """Stage ``index`` of ``count`` begins: its weight is known (and, for a resumed render,
        that of the stages before it, each a quarter of the next)."""
        weight = stage_weight(stage)
        known = self.weights[:index]
        known += [weight / 4 ** (index - i) for i in range(len(known), index)]
        self.weights = [*known, weight, *self.weights[index + 1 :]]
        self.count = count

    def share(self, index: int, done: float, total: int) -> float:
        """The share of the photo done after ``done`` of ``total`` evaluations of stage
        ``index`` (its earlier stages done)."""
        weights = self.weights[: self.count]
        while len(weights) < self.count:
            weights.append(weights[-1] * 4)
        current = weights[index] * min(done / max(total, 1), 1.0)
        return (sum(weights[:index]) + current) / sum(weights)


class StageProgress:
    """A rich progress bar per stage, showing evaluations, elapsed and remaining time, and the
    current weighted losses; above them an overall bar that the stages advance
    (:class:`PhotoShare`), with the remaining time of the whole render (one photo of several
    stages: ``whole render``, counting stages) or batch (``all inputs``, counting photos). Use
    as a context manager around :func:`run_stages`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        columns, self.wide = _columns(console.width)
        self.progress = Progress(*columns, console=console)
        self.task: TaskID | None = None
        self.batch: TaskID | None = None
        self.total = self.done = 0
        self.last_read = 0.0
        self.finished, self.stage, self.photo = 0, 0, PhotoShare()
        self.stages = 0  # with an overall bar for one photo: its stages, the bar's total

    def batch_started(self, count: int) -> None:
        """Add the overall bar of a batch of ``count`` inputs."""
        self.batch = self.progress.add_task("all inputs", total=count, losses="")

    def input_started(self, name: str) -> None:
        """A batch input begins: finished stage bars are cleared, the overall bar names it."""
        for task in list(self.progress.task_ids):
            if task != self.batch:
                self.progress.remove_task(task)
        if self.batch is not None:
            self.progress.update(self.batch, losses=name)

    def input_finished(self) -> None:
        """A batch input is done, skipped or failed."""
        self.finished += 1
        if self.batch is not None:
            self.progress.update(self.batch, completed=self.finished)

    def _advance_batch(self, done: float) -> None:
        """The overall bar: the photos finished and the current one's share done (one photo:
        its share of the stages)."""
        if self.batch is not None:
            share = self.photo.share(self.stage, done, self.total)
            completed = share * self.stages if self.stages else self.finished + share
            self.progress.update(self.batch, completed=completed)

    def __enter__(self) -> StageProgress:
        self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def schedule_started(self, stages: Sequence[Stage]) -> None:
        """The cascade's whole schedule: the overall bar weighs every stage from the start."""
        self.photo.schedule_started(stages)

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        if self.batch is None and count > 1:  # one photo: its whole render's bar
            self.batch = self.progress.add_task("whole render", total=count, losses="")
            self.stages = count
        description = stage_label(index, count, stage)
        if self.wide:
            description += f" {stage.optimizer}"
        self.task = self.progress.add_task(description, total=stage.iterations, losses="")
        self.total, self.done = stage.iterations, 0
        self.last_read = time.monotonic()
        self.stage = index
        self.photo.stage_started(index, count, stage)
        self._advance_batch(0)

    def iteration(self, done: int, terms: Mapping[str, Tensor]) -> None:
        assert self.task is not None
        self.done = done = min(done, self.total)  # a stage stops at its cap (stages.optim)
        now = time.monotonic()
        if now - self.last_read >= LOSS_REFRESH_SECONDS:
            self.last_read = now
            losses = format_losses(as_floats(terms))
            self.progress.update(self.task, completed=done, total=self.total, losses=losses)
        else:
            self.progress.update(self.task, completed=done, total=self.total)
        self._advance_batch(done)

    def tile(self, done: int, total: int) -> None:
        """Inside a tiled evaluation: the bar advances by its tile passes done."""
        assert self.task is not None
        self.progress.update(self.task, completed=self.done + done / total)
        self._advance_batch(self.done + done / total)

    def stage_finished(self, result: StageResult) -> None:
        assert self.task is not None
        self.progress.update(
            self.task,
            completed=result.evaluations,
            total=result.evaluations,
            losses=stage_summary(result),
        )
        self._advance_batch(self.total)


def time_left(elapsed: float, done: float, total: int) -> float:
    """Seconds left of ``total`` evaluations after ``done`` took ``elapsed`` s, at that pace
    (none done yet: as if one took ``elapsed``); never below 0."""
    each = elapsed / done if done > 0 else elapsed
    return max(0.0, each * (total - done))


def log_line(console: Console, message: str) -> None:
    """``2026-11-24 05:20:01 message``: one plain line, never wrapped or styled."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    console.print(f"{stamp} {message}", markup=False, highlight=False, soft_wrap=True)


class LogProgress:
    """Progress for a log: a timestamped line when a stage starts, every
    :data:`LOG_EVERY_SECONDS` while it runs, and when it ends (same interface as
    :class:`StageProgress`)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.label, self.total, self.began, self.last = "", 0, 0.0, 0.0
        self.done = 0
        self.photos, self.photo = 0, 0
        self.share, self.index, self.count, self.render_began = PhotoShare(), 0, 1, 0.0

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def batch_started(self, count: int) -> None:
        self.photos = count

    def input_started(self, name: str) -> None:
        self.photo += 1
        if self.photos:  # a batch (one photo alone is named by the header)
            log_line(self.console, f"photo {self.photo}/{self.photos} {name}")

    def input_finished(self) -> None:
        return None

    def schedule_started(self, stages: Sequence[Stage]) -> None:
        """The cascade's whole schedule: the overall bar weighs every stage from the start."""
        self.share.schedule_started(stages)

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        self.label = stage_label(index, count, stage)
        self.total, self.began = stage.iterations, time.monotonic()
        self.last = self.began
        self.share.stage_started(index, count, stage)
        self.index, self.count = index, count
        if index == 0 or not self.render_began:
            self.render_began = self.began
        log_line(self.console, f"{self.label} {stage.optimizer}: started, cap {self.total}")

    def iteration(self, done: int, terms: Mapping[str, Tensor]) -> None:
        self.done = done = min(done, self.total)  # a stage stops at its cap (stages.optim)
        now = time.monotonic()
        if now - self.last < LOG_EVERY_SECONDS:
            return
        self.last = now
        losses = format_losses(as_floats(terms))
        elapsed = now - self.began
        left = time_left(elapsed, done, self.total)
        message = (
            f"{self.label}: {done}/{self.total}, {elapsed:.0f} s, ≤ {left:.0f} s left"
            f"{self._render_left(now, done)} · {losses}"
        )
        log_line(self.console, message)

    def _render_left(self, now: float, evaluations: float) -> str:
        """``, render ~4 min left``: the whole render's remaining time, from the share of its
        work done (:class:`PhotoShare`) and the time it took; nothing for one stage."""
        share = self.share.share(self.index, evaluations, self.total)
        if self.count < 2 or share <= 0:
            return ""
        left = (now - self.render_began) / share * (1 - share)
        return (
            f", render ~{left:.0f} s left" if left < 120 else f", render ~{left / 60:.0f} min left"
        )

    def tile(self, done: int, total: int) -> None:
        """Inside a tiled evaluation, which may take minutes: a line every
        :data:`LOG_EVERY_SECONDS` too, with its tile passes done."""
        now = time.monotonic()
        if now - self.last < LOG_EVERY_SECONDS:
            return
        self.last = now
        elapsed, evaluations = now - self.began, self.done + done / total
        left = time_left(elapsed, evaluations, self.total)
        message = (
            f"{self.label}: evaluation {min(self.done + 1, self.total)}/{self.total}, "
            f"tiles {done}/{total}, "
            f"{elapsed:.0f} s, ≤ {left:.0f} s left{self._render_left(now, evaluations)}"
        )
        log_line(self.console, message)

    def stage_finished(self, result: StageResult) -> None:
        seconds = time.monotonic() - self.began
        message = f"{self.label}: {result.evaluations} evaluations, {seconds:.0f} s"
        log_line(self.console, f"{message} · {stage_summary(result)}")


def step_reporter(console: Console | None) -> Step:
    """A ``step(message)`` context-manager factory: a rich spinner on a terminal, a plain line
    in a log (where a spinner would not show), nothing when ``console`` is ``None`` (quiet)."""
    if console is None:
        return no_step
    if console.is_terminal:
        return lambda message: console.status(message, spinner="dots")

    def log(message: str) -> AbstractContextManager:
        log_line(console, f"{message} …")
        return nullcontext()

    return log


@contextmanager
def counted_progress(
    console: Console | None, description: str, total: int
) -> Iterator[Callable[[str], None]]:
    """Progress through ``total`` named pieces of work: yields ``done(label)``, called as each
    piece ends. A bar on a terminal; in a log, a timestamped line per piece
    (``reconstructions 3/10: conv3_1 in 9.4 s``); nothing when ``console`` is ``None``."""
    if console is None:
        yield lambda _label: None
    elif console.is_terminal:
        with Progress(console=console) as bar:
            task = bar.add_task(description, total=total)
            yield lambda _label: bar.advance(task)
    else:
        count, since = 0, time.monotonic()

        def done(label: str) -> None:
            nonlocal count, since
            now, count = time.monotonic(), count + 1
            log_line(console, f"{description} {count}/{total}: {label} in {now - since:.1f} s")
            since = now

        yield done
