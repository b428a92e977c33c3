"""Tiled evaluation of the style-transfer objective, for stages larger than device memory.

The image stays whole; only the network runs tile by tile. Each evaluation:

1. shifts the tile grid by a random offset (so no seam stays in one place from one evaluation
   to the next);
2. runs the network on every tile without gradients and sums the tiles' Gram matrices into the
   Gram matrix of the whole image, ``G = Σ_t n_t·G_t / Σ_t n_t`` (``n_t``: the tile's pixels);
3. for each tile, runs the network again with gradients and backpropagates its content loss
   (against the content image's features on the same crop) plus the *linearized* style loss
   ``⟨∂L_style/∂G, G_t⟩``, where ``∂L_style/∂G = 2(G − A)/C²`` is taken at the whole image's
   Gram matrix ``G`` and the stage's style target ``A``. Its gradient is exactly the whole-image
   style loss's gradient through that tile, so every tile pulls towards the *global* style
   statistics; a tile of sky is not asked to hold all of the painting's colours by itself;
4. blends the tiles' pixel gradients with feathered weights (linear ramps across each overlap,
   normalized to sum 1 per pixel), so a pixel near a tile border, where the network sees zero
   padding instead of its neighbours, takes its gradient mostly from the tile that sees it well;
5. adds the gradient of the TV term, computed on the whole image.

Overlaps count twice in ``G`` and the blended field is not the exact gradient of one scalar
function, so tiled stages use Adam, which tolerates such approximate gradients, rather than
L-BFGS, whose line search assumes exact ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .losses import LossTerms, StyleTransferLoss, gram_matrix, tv_loss


@dataclass(frozen=True)
class Tile:
    """A crop ``[top:bottom, left:right]`` of the image, in px."""

    top: int
    bottom: int
    left: int
    right: int


def _starts(length: int, tile: int, stride: int, offset: int) -> list[int]:
    """Tile starts along one axis covering ``0…length`` with the grid shifted by ``offset``."""
    if length <= tile:
        return [0]
    starts, position = [0], stride - offset
    while position + tile < length:
        if position > 0:
            starts.append(position)
        position += stride
    starts.append(length - tile)
    return sorted(set(starts))


def tile_grid(
    height: int, width: int, tile: int, overlap: int, offset: tuple[int, int]
) -> list[Tile]:
    """Overlapping tiles covering an image, the grid shifted by ``offset``.

    Args:
        height, width: image size in px.
        tile: tile edge in px (tiles at the image's far edges are moved inward, never cut).
        overlap: minimum overlap of neighbouring tiles in px, ``0 ≤ overlap < tile``.
        offset: ``(dy, dx)`` in ``0 … tile − overlap − 1``: how far the grid is shifted.

    Returns:
        Tiles in row-major order; every pixel is in at least one tile.

    Raises:
        ValueError: ``overlap`` not in ``0 … tile − 1``.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in 0…{tile - 1} px; got {overlap}")
    stride = tile - overlap
    rows = _starts(height, tile, stride, offset[0])
    cols = _starts(width, tile, stride, offset[1])
    return [
        Tile(top, min(top + tile, height), left, min(left + tile, width))
        for top in rows
        for left in cols
    ]


def feather(tile: Tile, height: int, width: int, ramp: int) -> Tensor:
    """Blending weight of a tile: 1 inside, rising linearly over ``ramp`` px from each side that
    lies inside the image (sides on the image border stay at full weight).

    Returns:
        ``(1, 1, h, w)`` float32 weights in (0, 1] for the tile's ``h × w`` px.
    """
    h, w = tile.bottom - tile.top, tile.right - tile.left

    def ramp_1d(n: int, low_inside: bool, high_inside: bool) -> Tensor:
        position = torch.arange(n, dtype=torch.float32)
        weight = torch.ones(n)
        if ramp > 0 and low_inside:
            weight = torch.minimum(weight, (position + 1) / (ramp + 1))
        if ramp > 0 and high_inside:
            weight = torch.minimum(weight, (n - position) / (ramp + 1))
        return weight

    ys = ramp_1d(h, tile.top > 0, tile.bottom < height)
    xs = ramp_1d(w, tile.left > 0, tile.right < width)
    return (ys[:, None] * xs[None, :])[None, None]


class TiledObjective:
    """Evaluates a stage's objective tile by tile (see the module's description).

    Args:
        make_loss: builds the loss of one tile from that tile's content crop ``(1, 3, h, w)``;
            its extractor, content targets, style targets and weights are used (its TV weight
            is ignored: TV is computed here on the whole image).
        content: ``(1, 3, H, W)`` content image of the stage, in 0–1.
        image: ``(1, 3, H, W)`` the leaf tensor being optimized.
        tile: tile edge in px.
        overlap: overlap of neighbouring tiles in px (the feather ramp).
        tv_weight: weight of the TV term.
        generator: draws the grid offsets; seeded, so a tiled stage is deterministic.
    """

    def __init__(
        self,
        make_loss: Callable[[Tensor], StyleTransferLoss],
        content: Tensor,
        image: Tensor,
        tile: int,
        overlap: int,
        tv_weight: float,
        generator: torch.Generator,
    ) -> None:
        self.make_loss, self.content, self.image = make_loss, content, image
        self.tile, self.overlap, self.tv_weight = tile, overlap, tv_weight
        self.generator = generator

    def tiles(self) -> list[Tile]:
        """This evaluation's tiles, the grid shifted by a fresh random offset."""
        stride = self.tile - self.overlap
        dy, dx = torch.randint(0, stride, (2,), generator=self.generator).tolist()
        return tile_grid(*self.image.shape[-2:], self.tile, self.overlap, (dy, dx))

    def _whole_gram(self, tiles: list[tuple[Tile, StyleTransferLoss]]) -> dict[str, Tensor]:
        """Gram matrices of the whole image, from the tiles' (pixel-weighted)."""
        sums: dict[str, Tensor] = {}
        total = 0
        with torch.no_grad():
            for tile, loss in tiles:
                crop = self.image.detach()[..., tile.top : tile.bottom, tile.left : tile.right]
                feats = loss.extractor(crop)
                pixels = crop.shape[-2] * crop.shape[-1]
                for layer in loss.style_layers:
                    gram = gram_matrix(feats[layer]) * pixels
                    sums[layer] = sums[layer] + gram if layer in sums else gram
                total += pixels
        return {layer: gram / total for layer, gram in sums.items()}

    def __call__(self) -> tuple[Tensor, LossTerms]:
        """Accumulate the blended gradient into ``image.grad``.

        Returns:
            ``(value, terms)``: the value the optimizer sees (``terms.total × H·W``) and the
            weighted loss terms: content averaged over the tiles by pixel count, style from
            the whole image's Gram matrices, TV of the whole image.
        """
        image = self.image
        height, width = image.shape[-2:]
        tiles = [
            (t, self.make_loss(self.content[..., t.top : t.bottom, t.left : t.right]))
            for t in self.tiles()
        ]
        whole = self._whole_gram(tiles)
        loss0 = tiles[0][1]
        _, style_weight, _ = loss0.weights
        style = sum(
            w * F.mse_loss(whole[k], loss0.style[k].target) for k, w in loss0.style_layers.items()
        )
        slopes = {  # ∂ mean((G − A)²) / ∂G
            k: 2 * (whole[k] - loss0.style[k].target) / whole[k].numel() for k in whole
        }
        grad = torch.zeros_like(image)
        weights = torch.zeros((1, 1, height, width), device=image.device)
        content = torch.zeros((), device=image.device)
        covered = 0
        for tile, loss in tiles:
            window = (..., slice(tile.top, tile.bottom), slice(tile.left, tile.right))
            crop = image.detach()[window].clone().requires_grad_(True)
            feats = loss.extractor(crop)
            content_weight = loss.weights[0]
            tile_content = content_weight * sum(
                w * loss.content[k](feats[k]) for k, w in loss.content_layers.items()
            )
            linear_style = style_weight * sum(
                w * (slopes[k] * gram_matrix(feats[k])).sum() for k, w in loss.style_layers.items()
            )
            pixels = crop.shape[-2] * crop.shape[-1]
            ((tile_content + linear_style) * pixels).backward()
            weight = feather(tile, height, width, self.overlap).to(image.device)
            grad[window] += crop.grad * weight
            weights[window] += weight
            content = content + tile_content.detach() * pixels
            covered += pixels
        area = height * width
        tv = self.tv_weight * tv_loss(image)
        (tv * area).backward()  # into image.grad
        image.grad += grad / weights
        terms = LossTerms(content / covered, style_weight * style.detach(), tv.detach())
        return terms.total * area, terms
