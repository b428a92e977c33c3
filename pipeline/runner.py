"""From a preset to a run of the cascade: the schedule, the memory plan, and the errors that
name the preset's fields.

The maths of the stages (objective, evaluators, the stage loop, NaN recovery) lives in
``stylecascade.stages.cascade``; this module turns a validated :class:`Preset` into its
schedule of :class:`~stylecascade.stages.cascade.Stage` (sizes from the content's aspect ratio,
the style size of each stage, tiles where a stage does not fit in memory) and runs it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from .choices import check_seed
from .device import precision
from .errors import ArgumentError, DivergedError, UsageError
from .images import load_image
from .memory import USABLE_FRACTION, activation_bytes_per_pixel, free_bytes, plan_stage
from .preset import ModelConfig, Preset, StageConfig, TilingConfig
from .stages import cascade
from .stages.blend import Native, StyleSize, StyleTargets, WeightedStyle, style_size
from .stages.cascade import Observer, Stage, StageResult, StageRunner
from .stages.gram import gram_matrix
from .stages.guides import guide_energy
from .stages.initial import initial_image
from .stages.losses import Objective
from .stages.resample import fit_long_edge
from .stages.stopping import StopHandle
from .stages.terms import untileable, weighted_terms
from .stages.tiling import tile_grid
from .stages.vgg import VGGFeatures

__all__ = ["Observer", "StageResult", "check_sizes", "planned", "run_stages", "schedule"]


def stage_sizes(content_hw: tuple[int, int], preset: Preset) -> list[tuple[int, int]]:
    """``(H, W)`` of every stage: the content's aspect ratio at each stage's long edge."""
    return [fit_long_edge(*content_hw, stage.long_edge) for stage in preset.stages]


PAINTING_BYTES_PER_PIXEL = 1024
"""Peak bytes per painting pixel while its style targets are computed (VGG forward without
gradients: conv1_x's 64-channel float32 maps in flight, the style layers' features kept).
Measured on the CPU (peak RSS over the baseline, Gram targets at relu1_1 … relu5_1): 789 B/px
at 1024 × 640 px, 771 B/px at 2048 × 1280 px; 1024 keeps a 30 % margin."""


def _check_painting_memory(
    index: int, what: str, size: tuple[int, int], available: int | None
) -> None:
    """Refuse a painting whose style targets at ``size`` px would not fit in ``available``.

    Raises:
        UsageError: naming the stage, the painting's size there and the memory it needs.
    """
    need = size[0] * size[1] * PAINTING_BYTES_PER_PIXEL
    if available is not None and need > available * USABLE_FRACTION:
        raise ArgumentError(
            "size",
            f"stage {index + 1}: the {what} resized to {size[1]}×{size[0]} px (its style size "
            f"there) needs about {need / 2**30:.2g} GiB for its style targets and "
            f"{available / 2**30:.2g} GiB is free; render at a smaller {{}}, or give the "
            f"preset a style_scale below 1",
        )


def style_edge(stage: StageConfig) -> StyleSize:
    """The style size of a stage: its long edge × ``style_scale`` in px, or with
    ``style_basis: painting`` the painting's own long edge × ``style_scale``
    (``stages.blend.Native``)."""
    if stage.style_basis == "painting":
        return Native(stage.style_scale)
    return round(stage.long_edge * stage.style_scale)


MASK_ASPECT_TOLERANCE = 0.02
"""How far a mask's aspect ratio may differ from its image's (relative) before it is refused:
a mask is stretched to its image, so a 3:2 mask on a 4:3 photo would misplace its regions."""


def check_sizes(
    content_hw: tuple[int, int],
    style_sets: Sequence[Sequence[WeightedStyle]],
    preset: Preset,
    min_size: int,
    available: int | None = None,
) -> None:
    """Refuse a preset whose stages would feed the network images smaller than it needs,
    paintings whose style targets would not fit in memory, and masks whose aspect ratio is not
    their image's.

    Args:
        content_hw: ``(H, W)`` of the photo.
        style_sets: the paintings of each set (:meth:`~stylecascade.preset.Preset.style_sets`).
        preset: the resolved preset.
        min_size: the network's smallest input edge in px.
        available: free memory in bytes (:func:`~stylecascade.memory.free_bytes`; ``None``:
            unknown, not checked).

    Raises:
        UsageError: a stage's content or style image would be under ``min_size`` px on a side;
            a painting at a stage's style size would need more than ``available`` for its
            style targets (:data:`PAINTING_BYTES_PER_PIXEL`);
            a mask whose aspect ratio differs from its image's; an empty mask on a painting;
            masks that leave a stage no painting.
    """
    _sets, chosen = preset.style_sets()
    for i, (stage, (h, w), index) in enumerate(
        zip(preset.stages, stage_sizes(content_hw, preset), chosen, strict=True)
    ):
        styles = style_sets[index]
        shorts = [("image", min(h, w))]
        for n, style in enumerate(styles):
            edge = style_size(style, style_edge(stage))
            what = "style image" if len(styles) == 1 else f"style image {n + 1}"
            painting = fit_long_edge(*style.image.shape[-2:], edge)
            shorts.append((what, min(painting)))
            _check_painting_memory(i, what, painting, available)
            _check_aspect(style.mask, content_hw, f"the mask of {what}", "photo")
            _check_aspect(style.style_mask, style.image.shape[-2:], f"the mask on {what}", what)
            if style.style_mask is not None and not bool(style.style_mask.max() > 0):
                raise UsageError(f"the mask on {what} is empty (all black): it takes nothing")
        if not any(_applies(style, (h, w), preset.model) for style in styles):
            raise UsageError(
                f"stage {i + 1} ({w}×{h} px): every painting's mask is empty there (all black, "
                f"or no white area its style layers see at this size in guides: "
                f"{preset.model.guides}); give the masks white areas"
            )
        for what, short in shorts:
            if short < min_size:
                raise UsageError(
                    f"stage {i + 1} ({stage.long_edge} px long edge) would make a {short} px "
                    f"short edge for the {what}; the network needs at least {min_size} px. "
                    f"Use a larger final size or a preset whose first stage is larger"
                )
    edge = preset.tiling.tile_edge
    for i, stage in enumerate(schedule(preset, content_hw)):
        if edge and max(stage.size) > edge:
            refuse_tiles(i, stage, f"is larger than the tile size {edge} px")


def _applies(style: WeightedStyle, image_hw: tuple[int, int], model: ModelConfig) -> bool:
    """Whether a painting has a say at a stage of ``image_hw`` px: no mask, or a mask with
    energy at one of its style layers (``stages.guides.guide_energy``)."""
    if style.mask is None:
        return True
    layers = style.layers or model.style_layers
    return any(
        bool(guide_energy(style.mask, image_hw, layer, model.guides) > 0) for layer in layers
    )


def _check_aspect(mask: Tensor | None, image_hw: Sequence[int], what: str, image: str) -> None:
    if mask is None:
        return
    (mh, mw), (h, w) = mask.shape[-2:], image_hw
    if abs((mw / mh) / (w / h) - 1) > MASK_ASPECT_TOLERANCE:
        raise UsageError(
            f"{what} is {mw}×{mh} px, the {image} {w}×{h} px: a mask must have the aspect ratio "
            f"of the image it lies on (any size)"
        )


def schedule(preset: Preset, content_hw: tuple[int, int]) -> list[Stage]:
    """The preset's stages for a content image of ``content_hw`` = ``(H, W)`` px, untiled and
    not yet planned for memory (:func:`planned`); each takes its set of paintings
    (:meth:`~stylecascade.preset.Preset.style_sets`) and its terms from its weights
    (``stages.terms.weighted_terms``)."""
    _sets, chosen = preset.style_sets()
    return [
        Stage(
            size=size,
            iterations=config.iterations,
            style_edge=style_edge(config),
            tolerance=config.tolerance,
            optimizer=config.optimizer,
            lr=config.lr,
            terms=weighted_terms(
                config.content_weight,
                config.style_weight,
                config.tv_weight,
                config.style_loss or preset.model.style_loss,
            ),
            tile_overlap=preset.tiling.overlap,
            style_set=styles,
            content_layers=config.content_layers,
            style_layers=config.style_layers,
            history=config.history,
            content_from=config.content_from,
        )
        for config, size, styles in zip(
            preset.stages, stage_sizes(content_hw, preset), chosen, strict=True
        )
    ]


def refuse_tiles(index: int, stage: Stage, why: str) -> None:
    """Refuse to tile a stage whose style loss cannot pool tiles (``swd``, whose sorted
    projections need every position of the image at once).

    Raises:
        UsageError: naming the stage, why it would be tiled, and what to use instead.
    """
    kinds = untileable(stage.terms)
    if kinds:
        h, w = stage.size
        raise UsageError(
            f"stage {index + 1} ({w}×{h} px) {why}, and style_loss {kinds[0]} cannot run in "
            f"tiles; use style_loss: w2 for that stage (its moments pool over tiles exactly) "
            f"or a smaller size"
        )


def start_name(preset: Preset) -> str:
    """What the first stage starts from: ``init_image`` when the preset has one, else its
    ``init``."""
    return "init_image" if preset.init_image is not None else preset.init


def start_image(
    preset: Preset, content: Tensor, paintings: Sequence[WeightedStyle]
) -> Tensor | Literal["noise"]:
    """The first stage's start: the preset's ``init_image`` (read as inputs are, on the
    content's device; the cascade resizes it to the stage), else
    :func:`~stylecascade.stages.initial.initial_image` of its ``init``.

    Raises:
        UsageError: an unreadable ``init_image``.
    """
    if preset.init_image is None:
        return initial_image(preset.init, content, paintings[0].image)
    return load_image(preset.init_image, "init").to(content.device)


def refuse_idle(index: int, stage: Stage, start: str) -> None:
    """Refuse, before any work, a stage whose objective is 0 everywhere or already at its
    optimum where it starts: every weight 0, or only the content term from the photo itself.

    Raises:
        UsageError: naming the stage and the weights that leave it nothing to do.
    """
    active = [t for t in stage.terms if t.weight > 0]
    weights = ", ".join(f"{t.weight_field} {t.weight:g}" for t in stage.terms)
    if not active:
        reason = "every weight is 0"
    elif start == "content" and all(t.loss == "content" for t in active):
        reason = "only the content term is weighted and the stage starts from the photo"
    else:
        return
    raise ArgumentError(
        "style_weight",
        f"stage {index + 1} would return its start unchanged: {reason} ({weights}); raise "
        f"{{}} or the preset's style_weight",
    )


UNMOVED = 1e-6
"""A stage whose loss fell by less than this fraction did nothing (the draft's stages lower it
by 79–85 %: 10 → 1.5, 8.1 → 1.4, 8.4 → 1.8 on the bundled pair)."""


def refuse_unmoved(result: StageResult) -> None:
    """Stop a render whose stage did not lower its loss (by :data:`UNMOVED`: settings that
    leave nothing to optimize, such as a step size of 1e-12), instead of returning its start
    as if it were a result.

    Raises:
        UsageError: naming the stage, its loss and its optimizer settings.
    """
    before, after = result.loss_start["total"], result.loss_end["total"]
    if result.evaluations > 1 and not after < before * (1 - UNMOVED):
        stage = result.stage
        raise UsageError(
            f"stage {result.index + 1} did not lower its loss ({before:.6g} → "
            f"{after:.6g} in {result.evaluations} evaluations, {stage.optimizer} lr "
            f"{stage.lr:g}): check the preset's lr and weights"
        )


MAX_TILE_COVERAGE = 4.0
"""Most times a tiled evaluation may compute each pixel (tiles × tile area ÷ image area): a
tile barely larger than its overlap covers each pixel thousands of times (65 px tiles with a
64 px overlap on a 1024 px stage: 0 evaluations in 2 minutes)."""


def refuse_overlapping_tiles(index: int, size: tuple[int, int], tile: int, overlap: int) -> None:
    """Refuse a tiling that would make each evaluation compute the image more than
    :data:`MAX_TILE_COVERAGE` times over.

    Raises:
        ArgumentError: (argument ``tile_size``) naming the coverage and the smallest tile edge
            that keeps under it.
    """
    h, w = size
    count = len(tile_grid(h, w, tile, overlap, (0, 0)))
    coverage = count * min(tile, h) * min(tile, w) / (h * w)
    if coverage > MAX_TILE_COVERAGE:
        raise ArgumentError(
            "tile_size",
            f"stage {index + 1} ({w}×{h} px): {tile} px tiles overlapping by {overlap} px "
            f"compute each pixel {coverage:.0f} times per evaluation ({count} tiles); choose "
            f"{{}} of at least {2 * overlap} px (or 0: tile only when needed)",
        )


def planned(
    index: int, stage: Stage, tiling: TilingConfig, per_pixel: float, available: int | None
) -> Stage:
    """``stage`` planned for memory (:func:`stylecascade.memory.plan_stage`): a stage that does
    not fit, or is larger than a forced tile edge, is tiled and runs Adam with ``tiling.lr``.

    Args:
        index: the stage's 0-based number (for the error message).
        stage: the stage from :func:`schedule`.
        tiling: the preset's tiling settings.
        per_pixel: activation bytes per pixel (:func:`activation_bytes_per_pixel`).
        available: free memory in bytes now (:func:`free_bytes`), ``None`` if unknown.

    Raises:
        UsageError: the stage does not fit even in the smallest tiles.
        ArgumentError: tiles so small against their overlap that the work is endless
            (:func:`refuse_overlapping_tiles`).
    """
    try:
        plan = plan_stage(
            *stage.size,
            per_pixel,
            stage.optimizer,
            available,
            tile_edge=tiling.tile_edge,
            overlap=tiling.overlap,
            history=stage.history,
        )
    except MemoryError as exc:
        raise UsageError(f"stage {index + 1}: {exc}") from None  # refused before any work
    if plan.tile_edge is None:
        return dataclasses.replace(stage, estimate_bytes=plan.estimate_bytes)
    refuse_tiles(index, stage, "does not fit in memory untiled")
    refuse_overlapping_tiles(index, stage.size, plan.tile_edge, tiling.overlap)
    return dataclasses.replace(
        stage,
        optimizer="adam",
        lr=tiling.lr,
        tile_edge=plan.tile_edge,
        estimate_bytes=plan.estimate_bytes,
    )


def stage_planner(
    extractor: VGGFeatures,
    tiling: TilingConfig,
    autocast: AbstractContextManager,
    device: torch.device,
) -> Callable[[int, Stage], Stage]:
    """``(index, stage) → stage`` planned for the memory free when it is called
    (:func:`planned`), with the activation bytes per pixel of the stage's own network (its
    layers: a detail stage through ``relu2_1`` needs far less than the whole model), measured
    once per layer set."""
    per_pixel = functools.cache(
        lambda layers: _per_pixel(extractor.through(layers), autocast, device)
    )

    def prepare(index: int, stage: Stage) -> Stage:
        bytes_per_pixel = per_pixel(stage.layers(extractor.layers))
        return planned(index, stage, tiling, bytes_per_pixel, free_bytes(device))

    return prepare


def _per_pixel(
    extractor: VGGFeatures, autocast: AbstractContextManager, device: torch.device
) -> float:
    """Activation bytes per pixel of a stage's network on ``device``
    (:func:`activation_bytes_per_pixel`), under the precision its evaluations run in, with the
    float32 copies a style term keeps of its layers (``gram_matrix``): without them a poster's
    4724 px stage through relu2_1 was planned at 16.6 GiB and used over 24."""
    with autocast:
        return activation_bytes_per_pixel(
            lambda x: sum(gram_matrix(f).mean() for f in extractor(x).values()), device
        )


class Placement(Protocol):
    """Where stages run when not here (``stylecascade.tile_cluster.TiledCluster``)."""

    def prepare(self, index: int, stage: Stage) -> Stage:
        """``stage`` planned for where it runs (tiled or not); refuses one that fits nowhere."""
        ...

    def runner(self, objective: Objective, stage: Stage) -> StageRunner:
        """Where the stage's evaluations run (``stages.cascade.StageRunner``)."""
        ...

    def profile(self) -> dict[str, Any]:
        """For the manifest's ``cluster``: where the stages' time went."""
        ...


def _refuse_up_front(
    preset: Preset, stages: Sequence[Stage], prepare: Callable[[int, Stage], Stage], every: bool
) -> None:
    """Refuse, before any work, a stage that cannot run tiled or whose forced tiles are too
    small, or (``every``: on a cluster) that fits no actor (``prepare`` plans it), and one with
    nothing to do (:func:`refuse_idle`).

    Raises:
        UsageError, StyleCascadeError: see :func:`planned` and :func:`refuse_idle`.
    """
    for index, stage in enumerate(stages):
        if every or untileable(stage.terms) or preset.tiling.tile_edge:
            prepare(index, stage)
        refuse_idle(index, stage, start_name(preset) if index == 0 else "previous")


def run_stages(
    extractor: VGGFeatures,
    preset: Preset,
    content: Tensor,
    styles: Sequence[WeightedStyle],
    *,
    seed: int = 0,
    observer: Observer | None = None,
    targets: StyleTargets | None = None,
    resume: tuple[int, Tensor] | None = None,
    stage_styles: Sequence[Sequence[WeightedStyle]] = (),
    stop: StopHandle | None = None,
    tiles: Placement | None = None,
) -> Iterator[StageResult]:
    """Run the preset's stages coarse to fine, yielding each stage's result as it finishes.

    Args:
        extractor: VGG features with every layer the preset's losses read, on the target device.
        preset: the validated preset.
        content: ``(1, 3, H, W)`` content image in 0–1 at full resolution, on the device.
        styles: the paintings of the blend, ``(1, 3, H_i, W_i)`` in 0–1 at full resolution, on
            the device.
        seed: seeds the ``noise`` initialization and the tile offsets.
        observer: progress receiver.
        targets: style targets to reuse (e.g. across a batch); built from ``styles`` if ``None``.
        resume: ``(k, image)``: skip stages before ``k`` and start stage ``k`` from ``image``,
            the result of stage ``k − 1`` (``(1, 3, h, w)`` in 0–1).
        stage_styles: the paintings of the stages' own sets 1, 2, …
            (:meth:`~stylecascade.preset.Preset.style_sets`), like ``styles``.
        stop: ends the render from another thread (``stages.stopping.StopHandle``).
        tiles: plans every stage for the actors' memory before any work and runs its
            evaluations there (:class:`Placement`; image and optimizer stay here); ``None``: here.

    Yields:
        :class:`StageResult` per stage run; the last one's ``image`` is the final result.

    Raises:
        UsageError: a stage would be smaller than the network's minimum input size; a mask
            with another aspect ratio than its image.
        UsageError: a stage does not fit in memory even in 256 px tiles.
        DivergedError: a stage kept producing NaN or infinite losses (the cascade's
            ``stages.cascade.Divergence``, an ``ArithmeticError``, turned into this
            :class:`StyleCascadeError` that names the preset fields to change).
        StageInterrupted: SIGINT (``KeyboardInterrupt``) during a stage, or ``stop`` set;
            carries its best iterate.
    """
    content_hw = (content.shape[-2], content.shape[-1])
    available = free_bytes(content.device)
    check_sizes(content_hw, [styles, *stage_styles], preset, extractor.min_size, available)
    model = preset.model
    if targets is None:
        targets = StyleTargets(extractor, styles, model.style_layers, stage_styles)
    check_seed(seed)
    torch.manual_seed(seed)
    _effective, autocast = precision(preset.precision, content.device)
    local = stage_planner(extractor, preset.tiling, autocast, content.device)
    prepare = local if tiles is None else tiles.prepare
    stages = schedule(preset, content_hw)
    _refuse_up_front(preset, stages, prepare, tiles is not None)
    problem = cascade.Problem(extractor, content, targets, model.content_layers, model.guides)
    first = [styles, *stage_styles][preset.style_sets()[1][0]]  # the first stage's paintings
    first, start = resume if resume is not None else (0, start_image(preset, content, first))
    try:
        for result in cascade.run_schedule(
            problem,
            stages,
            start,
            first=first,
            seed=seed,
            observer=observer,
            autocast=autocast,
            prepare=prepare,
            stop=stop,
            runners=None if tiles is None else tiles.runner,
        ):
            refuse_unmoved(result)
            yield result
    except cascade.Divergence as exc:
        raise DivergedError(str(exc)) from None
