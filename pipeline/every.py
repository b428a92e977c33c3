"""Stage observers that act every N evaluations, around the progress display:
``--save-every N`` writes the stage's best image so far (jcjohnson's ``-save_iter``) beside
the stage images of ``--save-stages``; ``--print-every N`` logs a timestamped line with the
losses (jcjohnson's ``-print_iter``), on a terminal above the bars."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import Tensor

from .files import reporting_write_errors
from .output import save_image
from .progress import as_floats, format_losses, log_line, stage_label
from .stages.cascade import Stage, StageResult


def snapshot_paths(
    folder: Path, stem: str, sizes: list[tuple[int, int]], caps: list[int], every: int
) -> dict[tuple[int, int], Path]:
    """Every file ``--save-every`` may write: ``{(stage index, evaluations): path}`` for each
    multiple of ``every`` up to each stage's cap, named ``STEM.stageN.WxH.eK.png`` in ``folder``
    (a stage that stops early writes fewer).

    Args:
        folder: the ``--save-stages`` folder.
        stem: the output's file name without its suffix.
        sizes: each stage's ``(H, W)`` in px.
        caps: each stage's cap on evaluations.
        every: ``N`` ≥ 1.
    """
    return {
        (index, done): folder / f"{stem}.stage{index + 1}.{w}x{h}.e{done}.png"
        for index, ((h, w), cap) in enumerate(zip(sizes, caps, strict=True))
        for done in range(every, cap + 1, every)
    }


class Forwarding:
    """A stage observer that passes every call on to ``inner`` (another observer, or
    ``None``), its batch methods too, and counts the current stage's evaluations."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.index = self.done = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        self.index, self.done = index, 0
        if self.inner is not None:
            self.inner.stage_started(index, count, stage)

    def iteration(self, done: int, terms: Mapping[str, Tensor]) -> None:
        self.done = done
        if self.inner is not None:
            self.inner.iteration(done, terms)

    def current_image(self, index: int, image: Tensor) -> None:
        watch = getattr(self.inner, "current_image", None)
        if watch is not None:
            watch(index, image)

    def stage_finished(self, result: StageResult) -> None:
        if self.inner is not None:
            self.inner.stage_finished(result)


class Snapshots(Forwarding):
    """``--save-every``: writes the stage's best image so far at each of ``paths``.

    Args:
        inner: the observer it wraps.
        paths: :func:`snapshot_paths` of this render (checked before any work).
        shown: the optimized image → what is written (the color mode), ``(1, 3, H, W)`` in 0–1.
    """

    def __init__(
        self,
        inner: Any,
        paths: Mapping[tuple[int, int], Path],
        shown: Callable[[Tensor], Tensor],
    ) -> None:
        super().__init__(inner)
        self.paths, self.shown = dict(paths), shown

    def current_image(self, index: int, image: Tensor) -> None:
        """Write ``image`` (the stage's best iterate) when this evaluation is one to keep.

        Raises:
            StyleCascadeError: the file cannot be written (disk full, no permission).
        """
        path = self.paths.pop((index, self.done), None)
        if path is not None:
            with reporting_write_errors(path):
                save_image(self.shown(image.detach().clamp(0.0, 1.0)), path)
        super().current_image(index, image)


class Lines(Forwarding):
    """``--print-every``: a timestamped line every ``every`` evaluations on ``console``."""

    def __init__(self, inner: Any, every: int, console: Console) -> None:
        super().__init__(inner)
        self.every, self.console = every, console
        self.label, self.cap, self.began = "", 0, 0.0

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        self.label, self.cap = stage_label(index, count, stage), stage.iterations
        self.began = time.monotonic()
        super().stage_started(index, count, stage)

    def iteration(self, done: int, terms: Mapping[str, Tensor]) -> None:
        super().iteration(done, terms)
        if done % self.every == 0:
            seconds = time.monotonic() - self.began
            losses = format_losses(as_floats(terms))
            log_line(self.console, f"{self.label}: {done}/{self.cap}, {seconds:.0f} s · {losses}")
