"""Progress display with rich: a spinner per long step and a bar per stage with its losses."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import Tensor

from .stages.cascade import Stage, StageResult
from .stages.losses import as_floats

Step = Callable[[str], AbstractContextManager]
"""Reports a long step: ``with step("Downloading …"): …`` (e.g. a rich status spinner)."""


def no_step(_message: str) -> AbstractContextManager:
    """A :data:`Step` that reports nothing."""
    return nullcontext()


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


class StageProgress:
    """A rich progress bar per stage, showing iterations, elapsed and remaining time, and the
    current weighted losses. Use as a context manager around :func:`run_stages`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console,
        )
        self.task: TaskID | None = None
        self.batch: TaskID | None = None
        self.total = 0
        self.last_read = 0.0

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
        if self.batch is not None:
            self.progress.advance(self.batch)

    def __enter__(self) -> StageProgress:
        self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        height, width = stage.size
        description = f"stage {index + 1}/{count} {width}×{height} {stage.optimizer}"
        self.task = self.progress.add_task(description, total=stage.iterations, losses="")
        self.total = stage.iterations
        self.last_read = time.monotonic()

    def iteration(self, done: int, terms: Mapping[str, Tensor]) -> None:
        assert self.task is not None
        self.total = max(self.total, done)  # L-BFGS may overrun its budget a little
        now = time.monotonic()
        if now - self.last_read >= LOSS_REFRESH_SECONDS:
            self.last_read = now
            losses = format_losses(as_floats(terms))
            self.progress.update(self.task, completed=done, total=self.total, losses=losses)
        else:
            self.progress.update(self.task, completed=done, total=self.total)

    def stage_finished(self, result: StageResult) -> None:
        assert self.task is not None
        start, end = (
            short_number(result.loss_start["total"]),
            short_number(result.loss_end["total"]),
        )
        summary = f"{result.stop} · {format_losses(result.loss_end)} · total {start} → {end}"
        self.progress.update(
            self.task, completed=result.iterations, total=result.iterations, losses=summary
        )


def step_reporter(console: Console | None) -> Step:
    """A ``step(message)`` context-manager factory: a rich spinner on a terminal, a plain line
    in a log (where a spinner would not show), nothing when ``console`` is ``None`` (quiet)."""
    if console is None:
        return lambda _message: nullcontext()
    if console.is_terminal:
        return lambda message: console.status(message, spinner="dots")

    def log(message: str) -> AbstractContextManager:
        console.print(f"{message} …", markup=False, highlight=False, soft_wrap=True)
        return nullcontext()

    return log
