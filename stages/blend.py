"""Multi-style blending: one style target per layer from several paintings.

Following jcjohnson/neural-style's ``-style_blend_weights``, the target Gram matrix of each layer
is the weighted sum of every style image's Gram matrix at that layer. Each style image is resized
on its own to the stage's style size (times its own ``scale``), so paintings of different pixel
sizes contribute brush strokes of the same scale.

A painting is never used sharper than its own pixels downsampled by :data:`GRAIN_FACTOR`
(:func:`style_image`): a photographed or scanned painting carries sensor, canvas and JPEG grain
at its native pixel scale, and shallow style layers (relu1_1, relu2_1) copy that grain into the
render as isolated bright and dark pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import Tensor

from .losses import normalized, style_targets
from .resample import resize_long_edge
from .vgg import VGGFeatures


@dataclass(frozen=True)
class WeightedStyle:
    """One painting of a blend.

    Attributes:
        image: ``(1, 3, H, W)`` sRGB in 0–1 at full resolution.
        weight: its share of the blend, ≥ 0 (see :func:`normalize_weights`).
        scale: multiplies the stage's style size for this painting (> 0).
    """

    image: Tensor
    weight: float = 1.0
    scale: float = 1.0


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


def style_size(style: WeightedStyle, long_edge: int) -> int:
    """Long edge in px that ``style`` is resized to for a stage whose style size is
    ``long_edge`` px (at least 1)."""
    return max(1, round(long_edge * style.scale))


GRAIN_FACTOR = 2**0.5
"""A style image is resized to a stage's style size through ``native / GRAIN_FACTOR`` px when the
stage asks for more: detail finer than that is the painting's capture grain, not its brushwork.
Measured on the bundled Starry Night (1024 px JPEG): speckle density
(``stages.quality.speckle_density``) 0.113 at 1024 px, 2.4e-3 through 724 px, 1.5e-5 through
512 px; the ``print --size 1024`` final stage (a 512 px crop, 40 evaluations) went from 8.1e-3
to 1.2e-4 through 724 px (3.8e-6 through 512 px, visibly softer strokes)."""


def style_image(style: WeightedStyle, long_edge: int) -> Tensor:
    """The painting at a stage's style size, band-limited to its native resolution divided by
    :data:`GRAIN_FACTOR` (antialiased bicubic down to that size, bicubic up to ``long_edge``).

    Args:
        style: the painting, ``(1, 3, H, W)`` in 0–1.
        long_edge: the stage's style size in px (before ``style.scale``).

    Returns:
        ``(1, 3, h, w)`` in 0–1 with long edge :func:`style_size` px.
    """
    size = style_size(style, long_edge)
    sharpest = max(1, round(max(style.image.shape[-2:]) / GRAIN_FACTOR))
    if size <= sharpest:
        return resize_long_edge(style.image, size)
    return resize_long_edge(resize_long_edge(style.image, sharpest), size)


def blended_targets(
    extractor: VGGFeatures,
    styles: Sequence[WeightedStyle],
    long_edge: int,
    layers: Iterable[str],
) -> dict[str, Tensor]:
    """Target Gram matrices of a blend: ``Σ_i w_i · G_l(style_i)`` per layer ``l``.

    Args:
        extractor: the network, on the styles' device.
        styles: the paintings; their weights are normalized here (:func:`normalize_weights`).
        long_edge: the stage's style size in px (stage size × ``style_scale``).
        layers: style layer names.

    Returns:
        ``{layer: (1, C, C)}`` float32 Gram matrices (normalized by ``C·H·W``).

    Raises:
        ValueError: invalid weights.
    """
    layers = list(layers)
    weights = normalize_weights([s.weight for s in styles])
    blend: dict[str, Tensor] = {}
    for style, weight in zip(styles, weights, strict=True):
        if weight == 0:
            continue
        for layer, gram in style_targets(extractor, style_image(style, long_edge), layers).items():
            blend[layer] = blend[layer] + weight * gram if layer in blend else weight * gram
    return blend


class StyleTargets:
    """The blended style targets of each style size, computed on first use and kept.

    A batch of renders with the same paintings reuses them across content images.

    Args:
        extractor: the network, on the styles' device.
        styles: the paintings of the blend.
        layers: the style layers.
    """

    def __init__(
        self, extractor: VGGFeatures, styles: Sequence[WeightedStyle], layers: Iterable[str]
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
