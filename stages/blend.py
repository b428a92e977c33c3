"""Multi-style blending: one style target per layer from several paintings.

Following jcjohnson/neural-style's ``-style_blend_weights``, the target Gram matrix of each layer
is the weighted sum of every style image's Gram matrix at that layer; any style kind
(``stages.losses.StyleKind``) makes and blends its own targets the same way (``kind.represent``,
``kind.blend``). Each style image is resized
on its own to the stage's style size (times its own ``scale``), so paintings of different pixel
sizes contribute brush strokes of the same scale.

A painting is never used sharper than its own pixels downsampled by :data:`GRAIN_FACTOR`
(:func:`style_image`): a photographed or scanned painting carries sensor, canvas and JPEG grain
at its native pixel scale, and shallow style layers (relu1_1, relu2_1) copy that grain into the
render as isolated bright and dark pixels.

Spatial and scale control (Gatys et al. 2017, Secs. 4 and 6): a painting may carry a mask on
the photo (where it applies), a mask on itself (which part of it to take), and its own style
layers; such paintings become regions of a guided style term (:func:`style_regions`,
``stages.guides``). A cascade may give some stages other paintings (:class:`StyleTargets`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .gram import GRAM
from .guides import Region, layer_guide, layer_size
from .losses import StyleKind, normalized
from .resample import resize, resize_long_edge
from .vgg import VGGFeatures


@dataclass(frozen=True)
class WeightedStyle:
    """One painting of a blend.

    Attributes:
        image: ``(1, 3, H, W)`` sRGB in 0–1 at full resolution.
        weight: its share of the blend, ≥ 0 (see :func:`normalize_weights`).
        scale: multiplies the stage's style size for this painting (> 0).
        mask: ``(1, 1, H', W')`` guidance channel on the photo in 0–1, any size with the
            photo's aspect ratio; ``None``: everywhere. Its values are weights: white is the
            painting's full share, black none, grey a part (:func:`mask_strength`).
        style_mask: ``(1, 1, H, W)`` guidance channel on the painting in 0–1 (white: take
            the style from here); ``None``: the whole painting. Its values weigh the
            painting's pixels against each other (a uniform grey takes the whole painting).
        layers: ``{layer: weight}`` its own style layers (scale control: shallow layers for
            fine texture, deep ones for large strokes); ``None``: the preset's.
        color: its own color mode (``stages.color``), ``None``: the render's; the caller
            prepares ``image`` for it and shows its region with it.
    """

    image: Tensor
    weight: float = 1.0
    scale: float = 1.0
    mask: Tensor | None = None
    style_mask: Tensor | None = None
    layers: Mapping[str, float] | None = None
    color: str | None = None

    @property
    def plain(self) -> bool:
        """Whether it applies everywhere with the preset's layers (it then joins the blend)."""
        return self.mask is None and self.style_mask is None and self.layers is None


def normalize_weights(weights: Sequence[float]) -> list[float]:
    """Blend weights scaled to sum to 1.

    Args:
        weights: one finite weight ≥ 0 per style, at least one of them > 0.

    Returns:
        The weights divided by their sum.

    Raises:
        ValueError: no weights, a negative or non-finite weight, or all weights 0
            (``stages.losses.weight_problem``).
    """
    if not weights:
        raise ValueError("at least one style weight is needed")
    return list(normalized(dict(enumerate(weights)), "style").values())


@dataclass(frozen=True)
class Native:
    """A style size relative to the painting itself: its own long edge × ``factor`` (SPST's
    choice, Galerne et al. 2024, Sec. 3: at the finest scales the painting at its own
    resolution, so the texture at 1:1 is the painting's real brushwork), where an ``int``
    style size is relative to the render (the stage's long edge × ``style_scale``)."""

    factor: float = 1.0


StyleSize = int | Native
"""A stage's style size: px of the long edge, or :class:`Native`."""


def style_size(style: WeightedStyle, long_edge: StyleSize) -> int:
    """Long edge in px that ``style`` is resized to for a stage whose style size is
    ``long_edge`` (px, or :class:`Native`: the painting's own long edge × its factor), times
    the painting's own ``scale`` (at least 1)."""
    if isinstance(long_edge, Native):
        return max(1, round(max(style.image.shape[-2:]) * long_edge.factor * style.scale))
    return max(1, round(long_edge * style.scale))


GRAIN_FACTOR = 2**0.5
"""A style image is resized to a stage's style size through ``native / GRAIN_FACTOR`` px when the
stage asks for more: detail finer than that is the painting's capture grain, not its brushwork.
Measured on the bundled Starry Night (1024 px JPEG): speckle density
(``stages.quality.speckle_density``) 0.113 at 1024 px, 2.4e-3 through 724 px, 1.5e-5 through
512 px; the ``print --size 1024`` final stage (a 512 px crop, 40 evaluations) went from 8.1e-3
to 1.2e-4 through 724 px (3.8e-6 through 512 px, visibly softer strokes). A :class:`Native`
style size is not band-limited: it asks for the painting's own pixels."""


def style_image(style: WeightedStyle, long_edge: StyleSize) -> Tensor:
    """The painting at a stage's style size: relative to the render, band-limited to its
    native resolution divided by :data:`GRAIN_FACTOR` (antialiased bicubic down to that size,
    bicubic up to ``long_edge``); :class:`Native`, its own pixels resized by the factor alone
    (the painting as it is at factor 1).

    Args:
        style: the painting, ``(1, 3, H, W)`` in 0–1.
        long_edge: the stage's style size (px before ``style.scale``, or :class:`Native`).

    Returns:
        ``(1, 3, h, w)`` in 0–1 with long edge :func:`style_size` px.
    """
    size = style_size(style, long_edge)
    native = max(style.image.shape[-2:])
    if isinstance(long_edge, Native):
        return style.image if size == native else resize_long_edge(style.image, size)
    sharpest = max(1, round(native / GRAIN_FACTOR))
    if size <= sharpest:
        return resize_long_edge(style.image, size)
    return resize_long_edge(resize_long_edge(style.image, sharpest), size)


def style_targets(
    extractor: VGGFeatures,
    style: Tensor,
    layers: Iterable[str],
    kind: StyleKind = GRAM,
) -> dict[str, Tensor]:
    """One painting's targets over the whole of it, in ``kind``'s representation (the Gram
    kind: ``{layer: (1, C, C)}`` float32 Gram matrices, Gatys et al. 2016, Eq. 3).

    Args:
        extractor: the network, on the painting's device.
        style: ``(1, 3, H, W)`` the painting in 0–1, at its stage size.
        layers: style layer names.
        kind: the style kind.
    """
    with torch.no_grad():
        features = extractor(style)
    return {layer: kind.represent(features[layer], None, 1.0) for layer in layers}


def painting_regions(
    extractor: VGGFeatures, style: Tensor, layers: Mapping[str, float]
) -> Callable[[StyleKind], list[Region]]:
    """The style regions of one painting at its given size over the whole image, for any kind
    (``stages.terms.TermContext.style_regions``): one region of weight 1 whose targets are
    :func:`style_targets`.

    Args:
        extractor: the network, on the painting's device.
        style: ``(1, 3, H, W)`` the painting in 0–1, used at this size.
        layers: ``{layer: weight ≥ 0}`` its style layers.
    """
    return lambda kind: [Region(1.0, dict(layers), style_targets(extractor, style, layers, kind))]


def blended_targets(
    extractor: VGGFeatures,
    styles: Sequence[WeightedStyle],
    long_edge: StyleSize,
    layers: Iterable[str],
    kind: StyleKind = GRAM,
) -> dict[str, Tensor]:
    """Targets of a blend per layer, ``kind.blend`` of the paintings' targets with their
    weights (the Gram kind: ``Σ_i w_i · G_l(style_i)``).

    Args:
        extractor: the network, on the styles' device.
        styles: the paintings; their weights are normalized here (:func:`normalize_weights`).
        long_edge: the stage's style size in px (stage size × ``style_scale``).
        layers: style layer names.
        kind: the style kind.

    Returns:
        ``{layer: target}`` float32 (the Gram kind: ``(1, C, C)`` normalized by ``C·H·W``).

    Raises:
        ValueError: invalid weights.
    """
    layers = list(layers)
    weights = normalize_weights([s.weight for s in styles])
    each = [
        style_targets(extractor, style_image(style, long_edge), layers, kind) if weight else {}
        for style, weight in zip(styles, weights, strict=True)
    ]
    return {
        layer: kind.blend([(w, t[layer]) for w, t in zip(weights, each, strict=True) if w])
        for layer in layers
    }


def _targets(
    extractor: VGGFeatures,
    style: WeightedStyle,
    long_edge: StyleSize,
    layers: Iterable[str],
    kind: StyleKind,
) -> dict[str, Tensor]:
    """One painting's targets at a stage's style size, guided by its ``style_mask``
    (normalized by the mask's energy at each layer: the targets of the masked part)."""
    image = style_image(style, long_edge)
    if style.style_mask is None:
        return style_targets(extractor, image, layers, kind)
    mask = resize(style.style_mask.to(image), tuple(image.shape[-2:])).clamp(0.0, 1.0)
    with torch.no_grad():
        features = extractor(image)
    targets = {}
    for layer in layers:
        guide = layer_guide(mask, layer_size(tuple(image.shape[-2:]), layer), layer)
        energy = guide.pow(2).mean().clamp_min(1e-12)
        targets[layer] = kind.represent(features[layer], guide, energy)
    return targets


def mask_strength(mask: Tensor) -> float:
    """How strongly a photo-side mask applies its painting, 0–1: the mask's mean value, each
    pixel weighed by its own value (``E[m²] / E[m]``): 1 for any black-and-white mask, ``c``
    for a uniform grey ``c`` (50 % grey: half the painting's share), about 1 for a white area
    with soft edges.

    A guided style term compares the *normalized* statistics of a region (Gatys et al. 2017,
    Sec. 4.1: divided by the guide's energy), so the guide alone says where, not how much: a
    uniform mask of 1/255 would pull as hard as a white one. The region's share is therefore
    multiplied by this strength (``Region.strength``, :func:`style_regions`).

    Args:
        mask: ``(1, 1, H, W)`` in 0–1, not all 0.
    """
    m = mask.float().clamp(0.0, 1.0)
    return float(m.pow(2).mean() / m.mean().clamp_min(1e-12))


def style_regions(
    extractor: VGGFeatures,
    styles: Sequence[WeightedStyle],
    long_edge: StyleSize,
    layers: Mapping[str, float],
    kind: StyleKind,
) -> list[Region]:
    """The regions of a stage's style term (``stages.losses.StyleTerm``), their targets in
    ``kind``'s representation.

    Paintings whose mask is empty are left out before the weights are normalized, so the
    render is the one without them. The plain paintings (:attr:`WeightedStyle.plain`) blend
    into one region over the whole image (:func:`blended_targets`, with their share of the
    weights); every other painting is a region of its own, of its mask's
    :func:`mask_strength` (a grey mask applies its painting partly).

    Args:
        extractor: the network, on the styles' device.
        styles: the stage's paintings.
        long_edge: the stage's style size in px.
        layers: the preset's style layers ``{layer: weight}``.
        kind: the style kind.

    Returns:
        The regions, each with its normalized weight.

    Raises:
        ValueError: no painting left (every mask empty), or invalid weights.
    """
    live = [s for s in styles if s.mask is None or bool(s.mask.max() > 0)]
    if not live:
        raise ValueError("every style's mask is empty (all black)")
    weights = normalize_weights([s.weight for s in live])
    plain = [s for s in live if s.plain]
    regions = []
    if plain:
        share = sum(w for s, w in zip(live, weights, strict=True) if s.plain)
        blend = blended_targets(extractor, plain, long_edge, layers, kind)
        regions.append(Region(share, dict(layers), blend))
    for style, weight in zip(live, weights, strict=True):
        if not style.plain and weight > 0:
            own = dict(style.layers or layers)
            targets = _targets(extractor, style, long_edge, own, kind)
            strength = 1.0 if style.mask is None else mask_strength(style.mask)
            regions.append(Region(weight, own, targets, style.mask, strength))
    return regions


class StyleTargets:
    """The style regions of each stage (:func:`style_regions`), computed on first use and
    kept, per style kind, set of paintings and style size.

    A batch of renders with the same paintings reuses them across content images.

    Args:
        extractor: the network, on the styles' device.
        styles: the paintings of the blend (the stages' set 0).
        layers: the preset's style layers ``{layer: weight}`` (or names: equal weights).
        stage_styles: further sets of paintings; a stage whose ``styles`` index is ``k ≥ 1``
            takes ``stage_styles[k - 1]`` (per-stage styles: Gatys et al. 2017, Sec. 6, done
            coarse to fine).
    """

    def __init__(
        self,
        extractor: VGGFeatures,
        styles: Sequence[WeightedStyle],
        layers: Iterable[str] | Mapping[str, float],
        stage_styles: Sequence[Sequence[WeightedStyle]] = (),
    ) -> None:
        self.extractor = extractor
        self.sets = [list(styles), *(list(s) for s in stage_styles)]
        self.layers = dict(layers) if isinstance(layers, Mapping) else dict.fromkeys(layers, 1.0)
        self._cache: dict[tuple[Any, ...], list[Region]] = {}

    def __call__(
        self,
        long_edge: StyleSize,
        styles: int = 0,
        kind: StyleKind = GRAM,
        layers: Mapping[str, float] | None = None,
    ) -> list[Region]:
        """The regions of paintings set ``styles`` at a style size of ``long_edge`` (px, or
        :class:`Native`), their targets in ``kind``'s representation, at ``layers`` (``None``:
        the preset's; a stage of its own layers runs the network only as deep as they go,
        ``VGGFeatures.through``)."""
        chosen = self.layers if layers is None else dict(layers)
        key = (kind, styles, long_edge, tuple(sorted(chosen.items())))
        if key not in self._cache:
            extractor = self.extractor.through(chosen)
            self._cache[key] = style_regions(extractor, self.sets[styles], long_edge, chosen, kind)
        return self._cache[key]
