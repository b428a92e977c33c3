"""The cascade: a schedule of stages run coarse to fine, each warm-started from the last.

Each stage resizes the content image to its size, builds its objective (content targets at that
size, the style targets of its style size), starts from the previous stage's result upsampled
bicubically in float (the first stage from the given start image, or noise), and optimizes it
with L-BFGS or Adam, keeping the evaluated iterate with the lowest loss. Coarse stages settle
the layout and the large strokes cheaply; finer stages add detail (Gatys et al. 2017, Sec. 5).

A stage ends when its best loss improves by less than its tolerance over
:data:`CONVERGENCE_WINDOW` evaluations, or at its cap of evaluations. It survives NaN/inf
losses by restarting from its best iterate with half the step size
(:data:`MAX_RECOVERIES` times), and a ``KeyboardInterrupt`` during a stage becomes
:class:`StageInterrupted` carrying the best iterate so far; so does a stop asked from another
thread through a ``stages.stopping.StopHandle``, checked between evaluations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from .divergence import MAX_RECOVERIES, diverged
from .divergence import Divergence as Divergence  # raised by run_stage, named here
from .evaluator import Evaluator, UntiledEvaluator, WholeRunner
from .guides import Region
from .losses import Objective, StyleKind, as_floats
from .optim import optimize
from .resample import resize
from .stopping import StopHandle, Stopped
from .terms import TermContext, TermSpec, build_objective, weighted_terms
from .tiling import TiledEvaluator, TileRunner
from .vgg import VGGFeatures
from .vocabulary import DEFAULT_TOLERANCE, GUIDE_MODE, LBFGS_HISTORY

CHECK_EVERY = 10
"""Evaluations between checks for NaN/inf losses (each check waits for the device)."""
CONVERGENCE_WINDOW = 20
"""Evaluations over which a stage's relative improvement is compared with its tolerance."""
STOP_REASONS = ("converged", "cap", "stalled")
"""Why a stage ended: its relative improvement fell below its tolerance; it used its
``iterations`` cap; or its optimizer stopped by itself before either (L-BFGS found no step that
lowers the loss)."""


class StageInterrupted(Exception):
    """SIGINT (``KeyboardInterrupt``) arrived during a stage, or its stop handle was set.

    Attributes:
        index: the interrupted stage (0-based).
        evaluations: evaluations it had made.
        image: ``(1, 3, H, W)`` its best iterate so far (lowest loss), in 0–1.
        stopped: ``True`` when a ``stages.stopping.StopHandle`` ended it, ``False`` for a
            signal.
    """

    def __init__(self, index: int, evaluations: int, image: Tensor, stopped: bool = False) -> None:
        verb = "stopped" if stopped else "interrupted"
        super().__init__(f"stage {index + 1} {verb} after {evaluations} evaluations")
        self.index, self.evaluations, self.image = index, evaluations, image
        self.stopped = stopped


class _NonFinite(Exception):
    """Internal: a NaN/inf loss was seen; the stage restarts from its best iterate."""


class _Converged(Exception):
    """Internal: the stage's relative improvement fell below its tolerance."""


@dataclass(frozen=True)
class Stage:
    """One stage of a schedule, fully resolved.

    Attributes:
        size: ``(H, W)`` of the stage's image in px.
        iterations: cap on objective evaluations (one network forward + backward each).
        tolerance: the stage stops early once its best loss improved by less than this
            fraction over the last :data:`CONVERGENCE_WINDOW` evaluations; 0: never early.
        optimizer: ``lbfgs`` or ``adam`` (``stages.optim.optimize``).
        lr: step size (1.0 for L-BFGS; 0–1 pixel units for Adam).
        terms: the objective's terms as data, in order (``stages.terms``; default: content
            1, style (Gram) 1, tv 0).
        style_edge: long edge in px the style targets are computed at.
        tile_edge: tile edge in px of a tiled stage (``stages.tiling``), ``None``: untiled.
        tile_overlap: overlap of neighbouring tiles in px.
        estimate_bytes: the memory plan's estimate of the stage's peak, if planned.
        style_set: which set of paintings the stage takes (``stages.blend.StyleTargets``; 0:
            the render's, ``k``: a stage's own).
        content_layers, style_layers: the stage's own layers ``{layer: weight}`` (``None``:
            the run's); the network runs only as deep as the stage's layers go.
        history: L-BFGS's history (update pairs; Galerne et al. 2024: 100, then 10).
        content_from: the content term's target: ``photo`` at the stage's size, or
            ``previous`` (the stage's start: a detail stage keeps the layout found).
    """

    size: tuple[int, int]
    iterations: int
    style_edge: int
    tolerance: float = DEFAULT_TOLERANCE
    optimizer: str = "lbfgs"
    lr: float = 1.0
    terms: tuple[TermSpec, ...] = weighted_terms(1.0, 1.0, 0.0)
    tile_edge: int | None = None
    tile_overlap: int = 64
    estimate_bytes: int | None = None
    style_set: int = 0
    content_layers: Mapping[str, float] | None = None
    style_layers: Mapping[str, float] | None = None
    history: int = LBFGS_HISTORY
    content_from: str = "photo"

    def layers(self, run: Iterable[str]) -> frozenset[str]:
        """The layers the stage's network returns: its own content and style layers, and
        ``run``'s (the run's network's) where it has not both."""
        own = frozenset(self.content_layers or ()) | frozenset(self.style_layers or ())
        both = self.content_layers is not None and self.style_layers is not None
        return own if both else own | frozenset(run)


@dataclass(frozen=True)
class StageResult:
    """What one stage produced.

    Attributes:
        index: 0-based stage number.
        stage: the stage as it ran.
        evaluations: objective evaluations made, never more than the stage's cap.
        stop: why the stage ended, one of :data:`STOP_REASONS`.
        seconds: wall time of the stage, targets included.
        loss_start, loss_end: weighted terms by name plus ``total``, at the stage's initial
            image and at its result.
        loss_trace: the weighted total loss of every evaluation, in order.
        recoveries: restarts after NaN/inf losses (each halves the step size).
        peak_memory_bytes: peak device memory allocated by PyTorch during the stage (CUDA only).
        image: ``(1, 3, H, W)`` float32 result in 0–1 (the evaluated iterate with the lowest
            loss, clamped), on the device.
    """

    index: int
    stage: Stage
    evaluations: int
    stop: str
    seconds: float
    loss_start: dict[str, float]
    loss_end: dict[str, float]
    loss_trace: list[float]
    recoveries: int
    peak_memory_bytes: int | None
    image: Tensor

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` in px."""
        return self.stage.size


class Observer(Protocol):
    """Receives progress from :func:`run_schedule` (e.g. a progress bar).

    An observer may also have ``tile(done, total)``: then a tiled stage calls it after each tile
    pass of an evaluation (``total``: twice the tiles), so progress advances inside evaluations
    that take minutes. It may also have ``current_image(index, image)``: then it is called after
    every evaluation with stage ``index``'s best iterate so far, ``(1, 3, H, W)`` in 0–1 on the
    device (not yet clamped; a tensor the stage no longer changes, so another thread may read
    it), for a live preview.
    """

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        """Stage ``index`` (0-based) of ``count`` begins."""

    def iteration(self, done: int, terms: Mapping[str, Tensor]) -> None:
        """``done`` evaluations of the current stage are finished; ``terms`` are the weighted
        terms of the last one, still on the device (reading them synchronizes it)."""

    def stage_finished(self, result: StageResult) -> None:
        """A stage is finished."""


@dataclass(frozen=True)
class Problem:
    """What every stage of a run shares.

    Attributes:
        extractor: the network; returns every layer of both layer mappings.
        content: ``(1, 3, H, W)`` content image in 0–1 at full resolution, on the device.
        style_targets: ``(style size, styles set, style kind, layers) → regions`` of the
            style term, their targets in the kind's representation (e.g.
            ``stages.blend.StyleTargets``; ``stages.guides.Region``; ``layers`` ``None``: the
            run's).
        content_layers: ``{layer: weight ≥ 0}`` (the style layers are the regions').
        guide_mode: how masks reach each style layer (``stages.guides.layer_guide``).
    """

    extractor: VGGFeatures
    content: Tensor
    style_targets: Callable[..., Sequence[Region]]
    content_layers: Mapping[str, float]
    guide_mode: str = GUIDE_MODE

    def objective(self, stage: Stage, content: Tensor) -> Objective:
        """The stage's objective, built from its terms (``stages.terms.build_objective``);
        ``content`` is the ``(1, 3, H, W)`` content image in 0–1 at the stage's size. A tiled
        stage's objective never runs the whole image through the network."""

        def regions(kind: StyleKind) -> Sequence[Region]:
            return self.style_targets(stage.style_edge, stage.style_set, kind, stage.style_layers)

        context = TermContext(
            self.extractor.through(stage.layers(self.extractor.layers)),
            content,
            self.content_layers if stage.content_layers is None else stage.content_layers,
            regions,
            self.guide_mode,
            tiled=stage.tile_edge is not None,
        )
        return build_objective(stage.terms, context)


class StageRunner(TileRunner, WholeRunner, Protocol):
    """Runs one stage's evaluations elsewhere (e.g. ``stylecascade.tile_cluster.ClusterTiles``:
    a cluster's actors): a tiled stage's tile passes (``stages.tiling.TileRunner``), an untiled
    stage's whole evaluations (``stages.evaluator.WholeRunner``); the image, the optimizer, the
    tiles' reduction, scoring and stitching stay here."""


def evaluator(
    objective: Objective,
    stage: Stage,
    image: Tensor,
    generator: torch.Generator,
    autocast: AbstractContextManager | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    runner: StageRunner | None = None,
) -> Evaluator:
    """The stage's evaluator: tiled when the stage has a tile edge, else untiled.

    Args:
        objective: the stage's objective (:meth:`Problem.objective`).
        stage: the stage; its ``tile_edge`` and ``tile_overlap`` choose the tiles.
        image: ``(1, 3, H, W)`` leaf tensor in 0–1 with ``requires_grad=True``, optimized in
            place.
        generator: draws the tile grid's offsets (seeded per stage).
        autocast: context each evaluation runs in.
        on_tile: a tiled evaluation's progress, ``(done, total)`` tile passes.
        runner: where the network runs (:class:`StageRunner`: the tiles' passes, or the whole
            evaluation); ``None``: here.
    """
    if stage.tile_edge is None:
        return UntiledEvaluator(objective, image, autocast, runner)
    return TiledEvaluator(
        objective, image, stage.tile_edge, stage.tile_overlap, generator, autocast, on_tile, runner
    )


def converged(bests: Sequence[float], tolerance: float) -> bool:
    """Whether the best loss improved by less than ``tolerance`` (relative) over the last
    :data:`CONVERGENCE_WINDOW` evaluations: ``old − new ≤ tolerance · old``, with ``old`` the
    best loss that many evaluations ago.

    Args:
        bests: the best loss so far, read every :data:`CHECK_EVERY` evaluations, in order.
        tolerance: relative improvement, ≥ 0; 0 never converges.
    """
    lag = CONVERGENCE_WINDOW // CHECK_EVERY
    if tolerance <= 0 or len(bests) <= lag:
        return False
    return bests[-1 - lag] - bests[-1] <= tolerance * abs(bests[-1 - lag])


def stop_point(trace: Sequence[float], tolerance: float) -> int | None:
    """The evaluation count after which :func:`run_stage` would have stopped a stage with this
    loss ``trace`` for convergence, ``None`` if it would not have within the trace (used to
    replay a trace, e.g. in benchmarks)."""
    bests = []
    for count in range(CHECK_EVERY, len(trace) + 1, CHECK_EVERY):
        bests.append(min(trace[:count]))
        if converged(bests, tolerance):
            return count
    return None


def _optimize(
    index: int,
    stage: Stage,
    evaluate: Evaluator,
    on_evaluation: Callable[[int], None],
    on_restart: Callable[[], None],
) -> tuple[int, str]:
    """Spend the stage's evaluations until it converges or reaches its cap; restart from the
    best iterate with half the step after NaN/inf losses (``on_restart`` is told). Returns the
    number of recoveries and the stop reason (:data:`STOP_REASONS`)."""
    lr, recoveries = stage.lr, 0
    while evaluate.count < stage.iterations:
        try:
            budget = stage.iterations - evaluate.count
            optimize(
                evaluate.image, stage.optimizer, lr, budget, evaluate, on_evaluation, stage.history
            )
            if torch.isfinite(evaluate.trace[-1]):
                break
            raise _NonFinite
        except _Converged:
            return recoveries, "converged"
        except _NonFinite:
            recoveries += 1
            if recoveries > MAX_RECOVERIES:
                raise diverged(index, stage.terms, evaluate) from None
            lr /= 2
            with torch.no_grad():
                evaluate.image.copy_(evaluate.best.image)
            on_restart()
        except KeyboardInterrupt as exc:
            best = evaluate.best.image.clamp(0.0, 1.0)
            stopped = isinstance(exc, Stopped)
            raise StageInterrupted(index, evaluate.count, best, stopped) from exc
    return recoveries, "cap" if evaluate.count >= stage.iterations else "stalled"


def run_stage(
    index: int,
    stage: Stage,
    evaluate: Evaluator,
    observer: Observer | None = None,
    began: float | None = None,
    stop: StopHandle | None = None,
) -> StageResult:
    """Optimize one stage's image from where ``evaluate.image`` is, until its best loss improves
    by less than ``stage.tolerance`` over :data:`CONVERGENCE_WINDOW` evaluations (checked every
    :data:`CHECK_EVERY`; the window starts again after a NaN restart) or it has made
    ``stage.iterations`` evaluations.

    Args:
        index: the stage's 0-based number (for messages and the result).
        stage: the stage.
        evaluate: its evaluator over a ``(1, 3, H, W)`` leaf image in 0–1 with
            ``requires_grad=True``.
        observer: progress receiver (told the whole ``schedule`` first if it has
            ``schedule_started``).
        began: ``time.perf_counter()`` when the stage began (its targets included); now if
            ``None``.
        stop: checked after every evaluation; once set, the stage ends (its best iterate kept).

    Returns:
        The stage's :class:`StageResult`; ``evaluate.image`` holds the result too.

    Raises:
        Divergence: NaN/inf losses more than :data:`MAX_RECOVERIES` times, or at the best
            iterate.
        StageInterrupted: ``KeyboardInterrupt`` during the stage, or ``stop`` set
            (``stopped``).
    """
    began = time.perf_counter() if began is None else began
    watch = getattr(observer, "current_image", None)

    bests: list[float] = []  # the best loss every CHECK_EVERY evaluations since the last restart

    def on_evaluation(_count: int) -> None:
        if stop is not None:
            stop.check()
        done = evaluate.count
        checked = done % CHECK_EVERY == 0
        if checked and not torch.isfinite(evaluate.trace[-1]):
            raise _NonFinite
        if observer is not None:
            observer.iteration(done, evaluate.last)
        if watch is not None:
            watch(index, evaluate.best.image)
        if checked:
            bests.append(evaluate.best.loss.item())
            if converged(bests, stage.tolerance):
                raise _Converged

    recoveries, reason = _optimize(index, stage, evaluate, on_evaluation, bests.clear)
    return _result(index, stage, evaluate, reason, recoveries, began)


def _result(
    index: int, stage: Stage, evaluate: Evaluator, reason: str, recoveries: int, began: float
) -> StageResult:
    """The stage's result once it has stopped (``reason``, :data:`STOP_REASONS`): its best
    iterate clamped to 0–1 into ``evaluate.image``, and its losses there.

    Raises:
        Divergence: the best iterate's losses are not finite.
    """
    image = evaluate.image
    with torch.no_grad():
        image.copy_(evaluate.best.image.clamp(0.0, 1.0))
    end = as_floats(evaluate.evaluate()[1])
    if not all(map(math.isfinite, end.values())):
        raise diverged(index, stage.terms, evaluate)
    cuda = image.device.type == "cuda"
    return StageResult(
        index=index,
        stage=stage,
        evaluations=evaluate.count,
        stop=reason,
        seconds=time.perf_counter() - began,
        loss_start=as_floats(evaluate.first),
        loss_end=end,
        loss_trace=torch.stack(evaluate.trace).tolist(),
        recoveries=recoveries,
        peak_memory_bytes=torch.cuda.max_memory_allocated(image.device) if cuda else None,
        image=image.detach(),
    )


def run_schedule(
    problem: Problem,
    schedule: Sequence[Stage],
    start: Tensor | Literal["noise"],
    *,
    first: int = 0,
    seed: int = 0,
    observer: Observer | None = None,
    autocast: AbstractContextManager | None = None,
    prepare: Callable[[int, Stage], Stage] | None = None,
    stop: StopHandle | None = None,
    runners: Callable[[Objective, Stage], StageRunner] | None = None,
) -> Iterator[StageResult]:
    """Run stages ``first …`` of ``schedule`` coarse to fine, yielding each result as it ends.

    Args:
        problem: the network, content image, style targets and layers every stage shares.
        schedule: the stages, sizes increasing.
        start: the image stage ``first`` starts from, ``(1, 3, h, w)`` in 0–1 at any size
            (resized bicubically to the stage's size): the content image, a painting, or the
            previous stage's result when resuming; or ``"noise"``: uniform noise in 0–1.
        first: index of the first stage to run (a resumed run skips the ones before).
        seed: 0 … 2⁶⁴ − 1; seeds the noise and the tile offsets per stage with
            ``(seed + index) mod 2⁶⁴``, so a resumed run draws the same; the run is
            deterministic given the seed and the thread count.
        observer: progress receiver (told the whole ``schedule`` first if it has
            ``schedule_started``).
        autocast: context each evaluation runs in (bf16 autocast on CUDA).
        prepare: ``(index, stage) → stage`` called just before each stage runs, e.g. to plan
            its tiles for the memory free at that moment; the stage it returns is run.
        stop: ends the running stage from another thread (:func:`run_stage`).
        runners: ``(objective, stage) → runner`` once per stage, after ``prepare``: where its
            evaluations run (:class:`StageRunner`, e.g. a cluster's actors); ``None``: here.

    Yields:
        :class:`StageResult` per stage run; the last one's ``image`` is the final result.

    Raises:
        Divergence: a stage kept producing NaN or infinite losses.
        StageInterrupted: ``KeyboardInterrupt`` during a stage, or ``stop`` set; carries its
            best iterate.
    """
    previous = start
    if (planned := getattr(observer, "schedule_started", None)) is not None:
        planned(schedule)  # the whole work is known before the first stage
    for index in range(first, len(schedule)):
        stage = schedule[index] if prepare is None else prepare(index, schedule[index])
        generator = torch.Generator().manual_seed((seed + index) % 2**64)  # same when resumed
        if observer is not None:
            observer.stage_started(index, len(schedule), stage)
        began = time.perf_counter()
        if problem.content.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(problem.content.device)
        content = resize(problem.content, stage.size)
        if isinstance(previous, str):
            noise = torch.rand(content.shape, generator=generator, dtype=torch.float32)
            begin = noise.to(content.device)
        else:
            begin = resize(previous, stage.size)
        if stage.content_from == "previous" and not isinstance(previous, str):
            content = begin.detach().clamp(0, 1)
        image = begin.detach().clone().contiguous().requires_grad_(True)
        objective = problem.objective(stage, content)
        on_tile = getattr(observer, "tile", None)
        runner = None if runners is None else runners(objective, stage)
        evaluate = evaluator(objective, stage, image, generator, autocast, on_tile, runner)
        result = run_stage(index, stage, evaluate, observer, began, stop)
        if observer is not None:
            observer.stage_finished(result)
        previous = result.image
        yield result
