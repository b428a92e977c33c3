"""The stage runner: coarse-to-fine optimization of one image through a preset's stages.

Each stage resizes the content image to its size, computes the content targets and the style
targets (Gram matrices of the style image resized to ``size × style_scale``), starts from the
previous stage's result upsampled bicubically in float (the first stage from the preset's
``init``), and optimizes. Coarse stages settle the layout and the large strokes cheaply; finer
stages add detail (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer",
Sec. 5: a two-level pyramid for high resolutions).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from .config import ModelConfig, Preset, StageConfig
from .errors import StyleCascadeError, UsageError
from .stages.losses import LossTerms, StyleTransferLoss, content_targets, style_targets
from .stages.optim import optimize
from .stages.resample import fit_long_edge, resize, resize_long_edge
from .stages.vgg import VGGFeatures


class DivergedError(StyleCascadeError):
    """The optimization produced NaN or infinite values."""


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
        peak_memory_bytes: peak device memory allocated by PyTorch during the stage (CUDA only).
        image: ``(1, 3, H, W)`` float32 result in 0–1, on the device.
    """

    index: int
    size: tuple[int, int]
    iterations: int
    seconds: float
    loss_start: dict[str, float]
    loss_end: dict[str, float]
    peak_memory_bytes: int | None
    image: Tensor


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


def stage_sizes(content_hw: tuple[int, int], preset: Preset) -> list[tuple[int, int]]:
    """``(H, W)`` of every stage: the content's aspect ratio at each stage's long edge."""
    return [fit_long_edge(*content_hw, stage.size) for stage in preset.stages]


def check_sizes(
    content_hw: tuple[int, int], style_hw: tuple[int, int], preset: Preset, min_size: int
) -> None:
    """Refuse a preset whose stages would feed the network images smaller than it needs.

    Raises:
        UsageError: a stage's content or style image would be under ``min_size`` px on a side.
    """
    for i, (stage, (h, w)) in enumerate(
        zip(preset.stages, stage_sizes(content_hw, preset), strict=True)
    ):
        sh, sw = fit_long_edge(*style_hw, round(stage.size * stage.style_scale))
        for what, short in (("image", min(h, w)), ("style image", min(sh, sw))):
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


def _run_stage(
    index: int,
    stage: StageConfig,
    model: ModelConfig,
    extractor: VGGFeatures,
    content: Tensor,
    style: Tensor,
    start: Tensor,
    observer: Observer | None,
) -> StageResult:
    began = time.perf_counter()
    cuda = content.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(content.device)
    style_img = resize_long_edge(style, round(stage.size * stage.style_scale))
    loss = StyleTransferLoss(
        extractor,
        content_targets(extractor, content, model.content_layers),
        style_targets(extractor, style_img, model.style_layers),
        model.content_layers,
        model.style_layers,
        stage.content_weight,
        stage.style_weight,
        stage.tv_weight,
    )
    image = start.detach().clone().contiguous().requires_grad_(True)
    # The losses are means over pixels, so their per-pixel gradients shrink as 1/(H·W).
    # The optimizer sees the sum over pixels instead: the same minimizer, but gradients of a
    # size-independent magnitude, far from Adam's epsilon and L-BFGS's curvature threshold.
    pixels = content.shape[-2] * content.shape[-1]
    evaluated: dict[str, LossTerms] = {}

    def objective() -> Tensor:
        terms = loss(image)
        evaluated.setdefault("first", terms.detach())
        evaluated["last"] = terms.detach()
        return terms.total * pixels

    def on_evaluation(count: int) -> None:
        if observer is not None:
            observer.iteration(count, evaluated["last"])

    count = optimize(image, stage.optimizer, stage.lr, stage.iterations, objective, on_evaluation)
    with torch.no_grad():
        image.clamp_(0.0, 1.0)
        end = loss(image).as_floats()
    if not all(map(math.isfinite, end.values())):
        raise DivergedError(
            f"stage {index + 1} diverged (loss became {end['total']}); lower its lr or use "
            f"optimizer: adam in the preset"
        )
    result = StageResult(
        index=index,
        size=(content.shape[-1], content.shape[-2]),
        iterations=count,
        seconds=time.perf_counter() - began,
        loss_start=evaluated["first"].as_floats(),
        loss_end=end,
        peak_memory_bytes=torch.cuda.max_memory_allocated(content.device) if cuda else None,
        image=image.detach(),
    )
    if observer is not None:
        observer.stage_finished(result)
    return result


def run_stages(
    extractor: VGGFeatures,
    preset: Preset,
    content: Tensor,
    style: Tensor,
    seed: int = 0,
    observer: Observer | None = None,
) -> Iterator[StageResult]:
    """Run the preset's stages coarse to fine, yielding each stage's result as it finishes.

    Args:
        extractor: VGG features with every layer the preset's losses read, on the target device.
        preset: the validated recipe.
        content: ``(1, 3, H, W)`` content image in 0–1 at full resolution, on the device.
        style: ``(1, 3, H', W')`` style image in 0–1 at full resolution, on the device.
        seed: seeds the ``noise`` initialization; the run is deterministic given the seed.
        observer: progress receiver.

    Yields:
        :class:`StageResult` per stage; the last one's ``image`` is the final result.

    Raises:
        UsageError: a stage would be smaller than the network's minimum input size.
        DivergedError: a stage produced NaN or infinite losses.
    """
    check_sizes(tuple(content.shape[-2:]), tuple(style.shape[-2:]), preset, extractor.min_size)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    previous: Tensor | None = None
    sizes = stage_sizes(tuple(content.shape[-2:]), preset)
    for index, (stage, size) in enumerate(zip(preset.stages, sizes, strict=True)):
        if observer is not None:
            observer.stage_started(index, len(preset.stages), stage, (size[1], size[0]))
        content_s = resize(content, size)
        if previous is None:
            start = _initial_image(preset.init, content_s, style, generator)
        else:
            start = resize(previous, size)
        result = _run_stage(
            index, stage, preset.model, extractor, content_s, style, start, observer
        )
        previous = result.image
        yield result
