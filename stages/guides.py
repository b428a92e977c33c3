"""Spatial control: the regions and guides of the style term (Gatys, Ecker, Bethge, Hertzmann &
Shechtman 2017, "Controlling Perceptual Factors in Neural Style Transfer", CVPR, Sec. 4.1).

A *guidance channel* (a mask: ``(1, 1, H, W)`` in 0–1, white = this region) says where a
painting applies. At each style layer the guide is brought to the layer's resolution
(:func:`layer_guide`) and multiplies the feature maps before their Gram matrix is taken; the
guided Gram is divided by the guide's energy, ``mean(g²)`` at that layer, so it is the Gram
matrix *of the region* whatever its size, and a small region counts as much as a large one
(Sec. 4.1, "normalised by the guidance channel"). Each region is scored against its own target
(the painting's Gram matrix, itself guided when the painting has a mask), and the regions'
losses are summed by weight: pixels outside every mask keep only the content loss, pixels
under several masks are pulled by each. The normalization makes a guide say *where*, not *how
much* (a uniform grey guide is the whole image); a photo-side mask's level is its painting's
strength, carried by the region's weight (``stages.blend.mask_strength``: a 50 % grey mask
applies its painting at half its share). The style term (``stages.losses.StyleTerm``) does this
for any style kind (``stages.losses.StyleKind``) with the regions and guides made here: the
kind turns guided features into its representation (the Gram kind:
``stages.gram.guided_gram``), the term brings the regions, guides and layers.

Two ways to bring a guide to a layer (Sec. 4.1 discusses both):

- ``resize``: the mean of the guide over each neuron's 2^k × 2^k cell (area downsampling);
- ``inside``: then keep a neuron only as far as its whole receptive field lies in the region
  (a min filter over the receptive field, :func:`receptive_field`), so that no neuron near a
  boundary mixes the statistics of two regions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from .vocabulary import GUIDE_MODE, GUIDE_MODES, LAYER_NAMES


@dataclass(frozen=True)
class Region:
    """One region of a stage's style term.

    Attributes:
        weight: its share of the style term (the painting's normalized blend weight).
        layers: ``{layer: weight}`` its style layers (normalized within the region).
        targets: ``{layer: target}`` the painting's (possibly guided) targets in the style
            kind's representation (the Gram kind: ``(1, C, C)`` Gram matrices).
        guide: ``(1, 1, H, W)`` content-side guidance channel in 0–1 at any size, ``None``
            for the whole image.
        strength: how strongly it pulls, 0–1 (its guide's level: ``stages.blend.
            mask_strength``); multiplies its share of the style term after the regions'
            shares are normalized, so a weak region is not made up for by the others.
    """

    weight: float
    layers: Mapping[str, float]
    targets: Mapping[str, Tensor]
    guide: Tensor | None = None
    strength: float = 1.0


def pools_before(layer: str) -> int:
    """How many 2×2 pools precede ``layer`` in VGG19 (its stride is ``2 ** pools_before``)."""
    return sum(1 for name in LAYER_NAMES[: LAYER_NAMES.index(layer)] if name.startswith("pool"))


def receptive_field(layer: str) -> int:
    """Receptive field of a ``layer`` neuron in input px (3×3 convolutions, 2×2 pools):
    ``conv1_1`` 3, ``relu2_1`` 10, ``relu3_1`` 24, ``relu4_1`` 68, ``relu5_1`` 156."""
    field, stride = 1, 1
    for name in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]:
        if name.startswith("conv"):
            field += 2 * stride
        elif name.startswith("pool"):
            field += stride
            stride *= 2
    return field


def layer_size(image_hw: tuple[int, int], layer: str) -> tuple[int, int]:
    """``(h, w)`` of ``layer``'s feature maps for an ``(H, W)`` input (each pool floors)."""
    k = pools_before(layer)
    return image_hw[0] >> k, image_hw[1] >> k


def layer_guide(guide: Tensor, size: tuple[int, int], layer: str, mode: str = GUIDE_MODE) -> Tensor:
    """A guidance channel at ``layer``'s resolution.

    Args:
        guide: ``(1, 1, H, W)`` in 0–1 at the input image's resolution.
        size: ``(h, w)`` of the layer's feature maps.
        layer: the layer (its stride and receptive field).
        mode: ``resize`` (area mean over each neuron's cell) or ``inside`` (then the minimum
            over the receptive field, in cells: a neuron counts only as far as all it sees is
            in the region). See the module's description.

    Returns:
        ``(1, 1, h, w)`` float32 in 0–1.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in GUIDE_MODES:
        raise ValueError(f"guide mode must be one of {', '.join(GUIDE_MODES)}; got {mode!r}")
    cells = F.adaptive_avg_pool2d(guide.float(), size)
    if mode == "resize":
        return cells
    reach = receptive_field(layer) // (2 ** pools_before(layer)) // 2  # in cells, each side
    if reach == 0:
        return cells
    window = 2 * reach + 1
    eroded = -F.max_pool2d(-cells, (window, 1), stride=1, padding=(reach, 0))
    return -F.max_pool2d(-eroded, (1, window), stride=1, padding=(0, reach))


def guide_energy(
    guide: Tensor, image_hw: tuple[int, int], layer: str, mode: str = GUIDE_MODE
) -> Tensor:
    """``mean(g²)`` of a guide at ``layer`` for an image of ``image_hw`` = ``(H, W)`` px: the
    normalizer of a region's guided Gram matrix; 0 when the region vanishes at that layer.

    Args:
        guide: ``(1, 1, H', W')`` in 0–1 at any size (resized to ``image_hw`` first).
        image_hw: the stage's image size in px.
        layer: the style layer.
        mode: :func:`layer_guide`'s mode.

    Returns:
        0-d float32 tensor in 0–1.
    """
    at_size = guide_at_size(guide, image_hw)
    return layer_guide(at_size, layer_size(image_hw, layer), layer, mode).pow(2).mean()


def guide_at_size(guide: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """A guide at the stage's ``(H, W)`` (bilinear, antialiased when shrinking), in 0–1."""
    if tuple(guide.shape[-2:]) == tuple(image_hw):
        return guide.float()
    resized = F.interpolate(
        guide.float(), size=image_hw, mode="bilinear", align_corners=False, antialias=True
    )
    return resized.clamp(0.0, 1.0)
