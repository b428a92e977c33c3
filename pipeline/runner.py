"""The stage runner: coarse-to-fine optimization of one image through a preset's stages.

Each stage resizes the content image to its size, computes the content targets and the style
targets (the blend of the style images' Gram matrices, each painting resized to
``size × style_scale``), starts from the previous stage's result upsampled bicubically in float
(the first stage from the preset's ``init``), and optimizes. Coarse stages settle the layout and
the large strokes cheaply; finer stages add detail (Gatys et al. 2017, "Controlling Perceptual
Factors in Neural Style Transfer", Sec. 5: a two-level pyramid for high resolutions).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from .config import ModelConfig, Preset, StageConfig, TilingConfig
from .device import precision
from .errors import StyleCascadeError, UsageError
from .memory import StagePlan, activation_bytes_per_pixel, free_bytes, plan_stage
from .stages.blend import WeightedStyle, blended_targets, style_size
from .stages.losses import LossTerms, StyleTransferLoss, content_targets
from .stages.optim import optimize
from .stages.resample import fit_long_edge, resize
from .stages.tiling import TiledObjective
from .stages.vgg import VGGFeatures

CHECK_EVERY = 10
"""Evaluations between checks for NaN/inf losses (each check waits for the device)."""
MAX_RECOVERIES = 3
"""Times a stage restarts from its best iterate with half the step size before giving up."""


class DivergedError(StyleCascadeError):
    """The optimization kept producing NaN or infinite losses."""


class StageInterrupted(Exception):
    """SIGINT or SIGTERM arrived during a stage.

    Attributes:
        index: the interrupted stage (0-based).
        evaluations: evaluations it had made.
        image: ``(1, 3, H, W)`` its best iterate so far (lowest loss), in 0–1.
    """

    def __init__(self, index: int, evaluations: int, image: Tensor) -> None:
        super().__init__(f"stage {index + 1} interrupted after {evaluations} evaluations")
        self.index, self.evaluations, self.image = index, evaluations, image


class _NonFinite(Exception):
    """Internal: a NaN/inf loss was seen; the stage restarts from its best iterate."""


@dataclass(frozen=True)
class StageResult:
    """What one stage produced.

    Attributes:
        index: 0-based stage number.
        size: ``(W, H)`` in px.
        iterations: objective evaluations made (the stage's budget; L-BFGS may overrun it by
            part of one line search).
        seconds: wall time of the stage, targets included.
        loss_start, loss_end: weighted ``content``, ``style``, ``tv`` and ``total`` losses at the
            stage's initial image and at its result.
        loss_trace: the weighted total loss of every evaluation, in order.
        recoveries: restarts after NaN/inf losses (each halves the step size).
        peak_memory_bytes: peak device memory allocated by PyTorch during the stage (CUDA only).
        image: ``(1, 3, H, W)`` float32 result in 0–1 (the evaluated iterate with the lowest
            loss, clamped), on the device.
        tile: tile edge in px of a tiled stage, ``None`` for an untiled one.
        estimate_bytes: the memory plan's estimate of the stage's peak.
    """

    index: int
    size: tuple[int, int]
    iterations: int
    seconds: float
    loss_start: dict[str, float]
    loss_end: dict[str, float]
    loss_trace: list[float]
    recoveries: int
    peak_memory_bytes: int | None
    image: Tensor
    tile: int | None = None
    estimate_bytes: int | None = None


class Observer(Protocol):
    """Receives progress from :func:`run_stages` (e.g. a progress bar)."""

    def stage_started(
        self, index: int, count: int, stage: StageConfig, size: tuple[int, int]
    ) -> None:
        """A stage of ``size`` = ``(W, H)`` px begins."""

    def iteration(self, done: int, terms: LossTerms) -> None:
        """``done`` iterations of the current stage are finished; ``terms`` are the losses of the
        last evaluation, still on the device (reading them synchronizes it)."""

    def stage_finished(self, result: StageResult) -> None:
        """A stage is finished."""


class StyleTargets:
    """The blended style targets of each style size, computed on first use and kept.

    A batch of renders with the same paintings reuses them across content images.

    Args:
        extractor: the network, on the styles' device.
        styles: the paintings of the blend.
        layers: the style layers.
    """

    def __init__(
        self, extractor: VGGFeatures, styles: Sequence[WeightedStyle], layers: Sequence[str]
    ) -> None:
        self.extractor, self.styles, self.layers = extractor, list(styles), list(layers)
        self._cache: dict[int, dict[str, Tensor]] = {}

    def __call__(self, long_edge: int) -> dict[str, Tensor]:
        """``{layer: (1, C, C)}`` blended Gram matrices for a style size of ``long_edge`` px."""
        if long_edge not in self._cache:
            self._cache[long_edge] = blended_targets(
                self.extractor, self.styles, long_edge, self.layers
            )
        return self._cache[long_edge]


def stage_sizes(content_hw: tuple[int, int], preset: Preset) -> list[tuple[int, int]]:
    """``(H, W)`` of every stage: the content's aspect ratio at each stage's long edge."""
    return [fit_long_edge(*content_hw, stage.size) for stage in preset.stages]


def check_sizes(
    content_hw: tuple[int, int],
    styles: Sequence[WeightedStyle],
    preset: Preset,
    min_size: int,
) -> None:
    """Refuse a preset whose stages would feed the network images smaller than it needs.

    Raises:
        UsageError: a stage's content or style image would be under ``min_size`` px on a side.
    """
    for i, (stage, (h, w)) in enumerate(
        zip(preset.stages, stage_sizes(content_hw, preset), strict=True)
    ):
        shorts = [("image", min(h, w))]
        for n, style in enumerate(styles):
            edge = style_size(style, round(stage.size * stage.style_scale))
            what = "style image" if len(styles) == 1 else f"style image {n + 1}"
            shorts.append((what, min(fit_long_edge(*style.image.shape[-2:], edge))))
        for what, short in shorts:
            if short < min_size:
                raise UsageError(
                    f"stage {i + 1} ({stage.size} px long edge) would make a {short} px short edge "
                    f"for the {what}; the network needs at least {min_size} px. "
                    f"Use a larger --size or a preset whose first stage is larger"
                )


def _initial_image(init: str, content: Tensor, style: Tensor, generator: torch.Generator) -> Tensor:
    if init == "content":
        return content.clone()
    if init == "style":
        return resize(style, tuple(content.shape[-2:]))
    noise = torch.rand(content.shape, generator=generator, dtype=torch.float32)
    return noise.to(content.device)


class _Best:
    """The evaluated iterate with the lowest loss, tracked on the device without syncing."""

    def __init__(self, image: Tensor) -> None:
        self.image = image.detach().clone()
        self.loss = torch.full((), math.inf, device=image.device)

    def offer(self, loss: Tensor, image: Tensor) -> None:
        better = loss < self.loss  # False for NaN
        self.loss = torch.where(better, loss, self.loss)
        self.image = torch.where(better, image.detach(), self.image)


@dataclass
class _Setup:
    """What every stage of one run shares."""

    model: ModelConfig
    extractor: VGGFeatures
    targets: StyleTargets
    observer: Observer | None
    autocast: AbstractContextManager
    tiling: TilingConfig
    generator: torch.Generator


def _stage_loss(setup: _Setup, stage: StageConfig, content: Tensor, tv: bool) -> StyleTransferLoss:
    model = setup.model
    return StyleTransferLoss(
        setup.extractor,
        content_targets(setup.extractor, content, model.content_layers),
        setup.targets(round(stage.size * stage.style_scale)),
        model.content_layers,
        model.style_layers,
        stage.content_weight,
        stage.style_weight,
        stage.tv_weight if tv else 0.0,
    )


def _evaluator(
    setup: _Setup, stage: StageConfig, content: Tensor, image: Tensor, plan: StagePlan
) -> Callable[[], tuple[Tensor, LossTerms]]:
    """``evaluate()``: the objective's value, its gradient accumulated into ``image.grad``, and
    the weighted loss terms, untiled or tiled as planned."""
    if plan.tile is not None:
        tiled = TiledObjective(
            lambda crop: _stage_loss(setup, stage, crop, tv=False),
            content,
            image,
            plan.tile,
            setup.tiling.overlap,
            stage.tv_weight,
            setup.generator,
        )

        def evaluate_tiled() -> tuple[Tensor, LossTerms]:
            with setup.autocast:
                return tiled()

        return evaluate_tiled
    loss = _stage_loss(setup, stage, content, tv=True)
    # The losses are means over pixels, so their per-pixel gradients shrink as 1/(H·W).
    # The optimizer sees the sum over pixels instead: the same minimizer, but gradients of a
    # size-independent magnitude, far from Adam's epsilon and L-BFGS's curvature threshold.
    pixels = content.shape[-2] * content.shape[-1]

    def evaluate() -> tuple[Tensor, LossTerms]:
        with setup.autocast:
            terms = loss(image)
        scaled = terms.total * pixels
        scaled.backward()
        return scaled.detach(), terms.detach()

    return evaluate


def _run_stage(
    index: int, stage: StageConfig, setup: _Setup, content: Tensor, start: Tensor, plan: StagePlan
) -> StageResult:
    began = time.perf_counter()
    cuda = content.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(content.device)
    image = start.detach().clone().contiguous().requires_grad_(True)
    evaluate = _evaluator(setup, stage, content, image, plan)
    best = _Best(image)
    trace: list[Tensor] = []
    evaluated: dict[str, LossTerms] = {}

    def recorded() -> Tensor:
        value, terms = evaluate()
        evaluated.setdefault("first", terms)
        evaluated["last"] = terms
        trace.append(terms.total)
        best.offer(terms.total, image)
        return value

    def on_evaluation(_count: int) -> None:
        done = len(trace)
        if done % CHECK_EVERY == 0 and not torch.isfinite(trace[-1]):
            raise _NonFinite
        if setup.observer is not None:
            setup.observer.iteration(done, evaluated["last"])

    optimizer, lr = (stage.optimizer, stage.lr) if plan.tile is None else ("adam", setup.tiling.lr)
    recoveries = 0
    while len(trace) < stage.iterations:
        try:
            budget = stage.iterations - len(trace)
            optimize(image, optimizer, lr, budget, recorded, on_evaluation)
            if torch.isfinite(trace[-1]):
                break
            raise _NonFinite
        except _NonFinite:
            recoveries += 1
            if recoveries > MAX_RECOVERIES:
                raise DivergedError(
                    f"stage {index + 1} diverged: NaN/inf losses {recoveries} times even after "
                    f"halving the step size; lower its lr or use optimizer: adam in the preset"
                ) from None
            lr /= 2
            with torch.no_grad():
                image.copy_(best.image)
        except KeyboardInterrupt as exc:
            raise StageInterrupted(index, len(trace), best.image.clamp(0.0, 1.0)) from exc
    with torch.no_grad():
        image.copy_(best.image.clamp(0.0, 1.0))
    end = evaluate()[1].as_floats()
    if not all(map(math.isfinite, end.values())):
        raise DivergedError(
            f"stage {index + 1} diverged: the loss of its best image is {end['total']}; lower "
            f"its lr or use optimizer: adam in the preset"
        )
    result = StageResult(
        index=index,
        size=(content.shape[-1], content.shape[-2]),
        iterations=len(trace),
        seconds=time.perf_counter() - began,
        loss_start=evaluated["first"].as_floats(),
        loss_end=end,
        loss_trace=torch.stack(trace).tolist(),
        recoveries=recoveries,
        peak_memory_bytes=torch.cuda.max_memory_allocated(content.device) if cuda else None,
        image=image.detach(),
        tile=plan.tile,
        estimate_bytes=plan.estimate_bytes,
    )
    if setup.observer is not None:
        setup.observer.stage_finished(result)
    return result


def run_stages(
    extractor: VGGFeatures,
    preset: Preset,
    content: Tensor,
    styles: Sequence[WeightedStyle],
    seed: int = 0,
    observer: Observer | None = None,
    targets: StyleTargets | None = None,
    resume: tuple[int, Tensor] | None = None,
) -> Iterator[StageResult]:
    """Run the preset's stages coarse to fine, yielding each stage's result as it finishes.

    Args:
        extractor: VGG features with every layer the preset's losses read, on the target device.
        preset: the validated recipe.
        content: ``(1, 3, H, W)`` content image in 0–1 at full resolution, on the device.
        styles: the paintings of the blend, ``(1, 3, H_i, W_i)`` in 0–1 at full resolution, on
            the device.
        seed: seeds the ``noise`` initialization and the tile offsets (per stage, so a resumed
            run draws the same); the run is deterministic given the seed.
        observer: progress receiver.
        targets: style targets to reuse (e.g. across a batch); built from ``styles`` if ``None``.
        resume: ``(k, image)``: skip stages before ``k`` and start stage ``k`` from ``image``,
            the result of stage ``k − 1`` (``(1, 3, h, w)`` in 0–1).

    Yields:
        :class:`StageResult` per stage run; the last one's ``image`` is the final result.

    Raises:
        UsageError: a stage would be smaller than the network's minimum input size.
        StyleCascadeError: a stage does not fit in memory even in 256 px tiles.
        DivergedError: a stage kept producing NaN or infinite losses.
        StageInterrupted: SIGINT (``KeyboardInterrupt``) during a stage; carries its best
            iterate.
    """
    check_sizes(tuple(content.shape[-2:]), styles, preset, extractor.min_size)
    if targets is None:
        targets = StyleTargets(extractor, styles, list(preset.model.style_layers))
    torch.manual_seed(seed)
    _effective, autocast = precision(preset.precision, content.device)
    with autocast:
        per_pixel = activation_bytes_per_pixel(
            lambda x: sum(f.float().mean() for f in extractor(x).values()), content.device
        )
    first, previous = resume if resume is not None else (0, None)
    sizes = stage_sizes(tuple(content.shape[-2:]), preset)
    for index in range(first, len(preset.stages)):
        stage, size = preset.stages[index], sizes[index]
        generator = torch.Generator().manual_seed(seed + index)  # same draws when resumed
        setup = _Setup(
            preset.model, extractor, targets, observer, autocast, preset.tiling, generator
        )
        try:
            plan = plan_stage(
                *size,
                per_pixel,
                stage.optimizer,
                free_bytes(content.device),
                preset.tiling.size,
                preset.tiling.overlap,
            )
        except MemoryError as exc:
            raise StyleCascadeError(f"stage {index + 1}: {exc}") from None
        if observer is not None:
            observer.stage_started(index, len(preset.stages), stage, (size[1], size[0]))
        content_s = resize(content, size)
        if previous is None:
            start = _initial_image(preset.init, content_s, styles[0].image, generator)
        else:
            start = resize(previous, size)
        result = _run_stage(index, stage, setup, content_s, start, plan)
        previous = result.image
        yield result
