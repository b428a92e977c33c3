"""Tiled evaluation of the style-transfer objective, for stages larger than device memory.

The image stays whole; only the network runs tile by tile. Each evaluation:

1. shifts the tile grid by a random offset (so no seam stays in one place from one evaluation
   to the next);
2. runs the network on every tile without gradients and sums the tiles' pooled representations
   (the style term's, in its kind's representation: Gram matrices) into the whole image's,
   ``G = Σ_t n_t·G_t / Σ_t n_t`` (``n_t``: the tile's pixels), and scores each pooled term
   once, on ``G``;
3. for each tile, runs the network again with gradients and backpropagates its local terms
   (the content loss, against the content image's features on the same crop, relative to the
   whole content target's energy, measured once per stage) plus the *linearized* pooled terms
   ``⟨∂L_style/∂G, G_t⟩``, where the slope (``2(G − A)/(C²·E_A)`` for the style loss, with
   ``E_A = mean(A²)``, taken by autograd) is evaluated at the whole image's Gram matrix ``G``
   and the stage's style target ``A``. Its gradient is exactly the whole-image style loss's
   gradient through that tile, so every tile pulls towards the *global* style
   statistics; a tile of sky is not asked to hold all of the painting's colors by itself;
4. blends the tiles' pixel gradients with feathered weights (linear ramps across each overlap,
   normalized to sum 1 per pixel), so a pixel near a tile border, where the network sees zero
   padding instead of its neighbours, takes its gradient mostly from the tile that sees it well;
5. adds the gradient of the TV term, computed on the whole image.

Overlaps count twice in ``G`` and the blended field is not the exact gradient of one scalar
function, so tiled stages use Adam, which tolerates such approximate gradients, rather than
L-BFGS, whose line search assumes exact ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from .evaluator import Evaluator
from .losses import FeatureTerm, Objective, detached, energy, total
from .vgg import VGGFeatures

Parts = dict[str, dict[str, Tensor]]
"""``{term: {layer: tensor}}``: one tile's share of a pooled quantity, or the pooled sum."""


@dataclass(frozen=True)
class Tile:
    """A crop ``[top:bottom, left:right]`` of the image, in px."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def window(self) -> tuple:
        """Index of the tile in a ``(B, C, H, W)`` tensor: ``image[tile.window]``."""
        return (..., slice(self.top, self.bottom), slice(self.left, self.right))

    @property
    def pixels(self) -> int:
        """Its area in px."""
        return (self.bottom - self.top) * (self.right - self.left)


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


def energy_parts(
    extractor: VGGFeatures, local: Sequence[FeatureTerm], reference: Tensor, tile: Tile
) -> Parts:
    """One tile's share of the local terms' target energies: ``{term: {layer: mean(T²)·n}}``
    (``n``: the tile's pixels), ``T`` made from the reference's crop.

    Args:
        extractor: the network.
        local: the non-pooled feature terms (content).
        reference: ``(1, 3, H, W)`` the content image at the stage's size, 0–1.
        tile: the crop.
    """
    with torch.no_grad():
        features = extractor(reference[tile.window])
        return {
            term.name: {
                layer: energy(target) * tile.pixels
                for layer, target in term.targets_of(features).items()
            }
            for term in local
        }


def pooled_parts(
    extractor: VGGFeatures, pooled: Sequence[FeatureTerm], crop: Tensor, tile: Tile
) -> Parts:
    """One tile's share of the pooled terms' representations: ``{term: {layer: R_t·n}}``,
    without gradients.

    Args:
        extractor: the network.
        pooled: the pooled feature terms (style).
        crop: ``(1, 3, h, w)`` the image's crop ``image[tile.window]``, 0–1.
        tile: where the crop lies (a guided term crops its guides the same way).
    """
    with torch.no_grad():
        features = extractor(crop)
        return {
            term.name: {
                layer: rep * tile.pixels
                for layer, rep in term.representations(features, tile.window).items()
            }
            for term in pooled
        }


def add_parts(sums: Parts, part: Parts) -> Parts:
    """``sums + part``, layer by layer, in place (a layer not yet in ``sums`` is taken as it
    is); returns ``sums``."""
    for name, layers in part.items():
        held = sums.setdefault(name, {})
        for layer, value in layers.items():
            held[layer] = held[layer] + value if layer in held else value
    return sums


@dataclass(frozen=True)
class TileTerms:
    """What a tile's backward pass reads besides the network and the crop.

    Attributes:
        local: the non-pooled feature terms (content), scored on the crop.
        pooled: the pooled feature terms (style), linearized.
        reference: ``(1, 3, H, W)`` the content image at the stage's size, 0–1 (cropped).
    """

    local: Sequence[FeatureTerm]
    pooled: Sequence[FeatureTerm]
    reference: Tensor


def tile_gradient(
    extractor: VGGFeatures,
    terms: TileTerms,
    crop: Tensor,
    tile: Tile,
    slopes: Mapping[str, Mapping[str, Tensor]],
    energies: Mapping[str, Mapping[str, Tensor]],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Backpropagate one tile's local terms plus the linearized pooled terms
    ``⟨∂L/∂R, R_t⟩`` (the module's step 3), both × the tile's pixels ``n``.

    Args:
        extractor: the network.
        terms: the stage's terms and reference image.
        crop: ``(1, 3, h, w)`` the image's crop ``image[tile.window]``, 0–1.
        tile: where the crop lies.
        slopes: ``{term: {layer: ∂value/∂R}}`` of the pooled terms at the whole image.
        energies: ``{term: {layer: mean(T²)}}`` of the local terms' whole-image targets.

    Returns:
        ``(gradient of the crop (1, 3, h, w), {local term: weighted value × n})``.
    """
    with torch.no_grad():
        reference = extractor(terms.reference[tile.window])
    crop = crop.detach().clone().requires_grad_(True)
    features = extractor(crop)
    values = {
        term.name: term.weighted(
            term.representations(features), term.targets_of(reference), energies[term.name]
        )
        for term in terms.local
    }
    linear = sum(
        (slopes[term.name][k] * rep).sum()
        for term in terms.pooled
        for k, rep in term.representations(features, tile.window).items()
    )
    ((total(values) + linear) * tile.pixels).backward()
    return crop.grad, {name: v.detach() * tile.pixels for name, v in values.items()}


class TileRunner(Protocol):
    """Runs a tiled evaluation's per-tile passes and yields their results in tile order: on
    this process (:class:`LocalTiles`) or elsewhere (a cluster's actors), the evaluator's
    reduction, scoring and stitching unchanged."""

    def evaluation(self) -> AbstractContextManager:
        """A context around one evaluation (a cluster's runner times it)."""
        ...

    def energies(self, tiles: Sequence[Tile]) -> Iterator[Parts]:
        """:func:`energy_parts` of each tile, in order."""
        ...

    def pooled(self, image: Tensor, tiles: Sequence[Tile]) -> Iterator[Parts]:
        """:func:`pooled_parts` of each tile of ``image`` ``(1, 3, H, W)``, in order."""
        ...

    def gradients(
        self,
        image: Tensor,
        tiles: Sequence[Tile],
        slopes: Parts,
        energies: Parts,
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        """:func:`tile_gradient` of each tile of ``image``, in order."""
        ...


class LocalTiles:
    """The tiles' passes on this process, one after the other (:class:`TileRunner`).

    Args:
        objective: the stage's objective (its network, terms and reference).
    """

    def __init__(self, objective: Objective) -> None:
        self.extractor = objective.extractor
        self.terms = TileTerms(
            [t for t in objective.feature_terms if not t.pooled],
            [t for t in objective.feature_terms if t.pooled],
            objective.reference,
        )

    def evaluation(self) -> AbstractContextManager:
        return nullcontext()

    def energies(self, tiles: Sequence[Tile]) -> Iterator[Parts]:
        for tile in tiles:
            yield energy_parts(self.extractor, self.terms.local, self.terms.reference, tile)

    def pooled(self, image: Tensor, tiles: Sequence[Tile]) -> Iterator[Parts]:
        for tile in tiles:
            yield pooled_parts(self.extractor, self.terms.pooled, image.detach()[tile.window], tile)

    def gradients(
        self, image: Tensor, tiles: Sequence[Tile], slopes: Parts, energies: Parts
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        for tile in tiles:
            crop = image.detach()[tile.window]
            yield tile_gradient(self.extractor, self.terms, crop, tile, slopes, energies)


class TiledEvaluator(Evaluator):
    """Evaluates a stage's objective tile by tile (see the module's description).

    Args:
        objective: the stage's terms; its ``reference`` (the content image) is cropped for the
            non-pooled terms' targets.
        image: ``(1, 3, H, W)`` the leaf tensor being optimized.
        tile_edge: tile edge in px.
        overlap: overlap of neighbouring tiles in px (the feather ramp).
        generator: draws the grid offsets; seeded, so a tiled stage is deterministic.
        autocast: context each evaluation runs in.
        on_tile: called ``(done, total)`` after each tile of an evaluation's two passes (the
            pooled representations, then the tiles' backward: ``total`` is twice the tiles), so
            progress can advance inside an evaluation that takes minutes.
        runner: runs the tiles' passes (default :class:`LocalTiles`: here, one by one; a
            cluster's runner spreads them over actors). The reduction, the pooled terms'
            scores and the stitching stay here, so every runner gives the same evaluation.
    """

    def __init__(
        self,
        objective: Objective,
        image: Tensor,
        tile_edge: int,
        overlap: int,
        generator: torch.Generator,
        autocast: AbstractContextManager | None = None,
        on_tile: Callable[[int, int], None] | None = None,
        runner: TileRunner | None = None,
    ) -> None:
        super().__init__(objective, image, autocast)
        self.tile_edge, self.overlap, self.generator = tile_edge, overlap, generator
        self.on_tile = on_tile
        self.runner = LocalTiles(objective) if runner is None else runner
        self.energies = self._target_energies()

    def _target_energies(self) -> Parts:
        """``{term: {layer: mean(T²)}}`` of the local terms' whole-image targets, from the
        reference's crops on the unshifted grid (pixel-weighted; equal to the untiled energies
        up to the crops' zero-padded borders). Computed once: every tile's relative error is
        divided by the whole image's energy, as in the untiled objective."""
        local = [t for t in self.objective.feature_terms if not t.pooled]
        height, width = self.image.shape[-2:]
        tiles = tile_grid(height, width, self.tile_edge, self.overlap, (0, 0))
        sums: Parts = {t.name: {} for t in local}
        with self.autocast:
            for part in self.runner.energies(tiles):
                add_parts(sums, part)
        covered = sum(tile.pixels for tile in tiles)
        return {name: {k: v / covered for k, v in e.items()} for name, e in sums.items()}

    def tiles(self) -> list[Tile]:
        """This evaluation's tiles, the grid shifted by a fresh random offset."""
        stride = self.tile_edge - self.overlap
        dy, dx = torch.randint(0, stride, (2,), generator=self.generator).tolist()
        return tile_grid(*self.image.shape[-2:], self.tile_edge, self.overlap, (dy, dx))

    def _whole(self, tiles: list[Tile], terms: list[FeatureTerm]) -> Parts:
        """The pooled terms' representations of the whole image: the pixel-weighted mean of
        the tiles' (``{term: {layer: representation}}``)."""
        sums: Parts = {term.name: {} for term in terms}
        for count, part in enumerate(self.runner.pooled(self.image, tiles), 1):
            add_parts(sums, part)
            self._tile_done(count, len(tiles))
        covered = sum(tile.pixels for tile in tiles)
        return {name: {k: v / covered for k, v in reps.items()} for name, reps in sums.items()}

    def _tile_done(self, done: int, tiles: int) -> None:
        """Report ``done`` of the evaluation's ``2 × tiles`` tile passes to :attr:`on_tile`."""
        if self.on_tile is not None:
            self.on_tile(done, 2 * tiles)

    def _scored(self, terms: list[FeatureTerm], whole: Parts) -> tuple[dict[str, Tensor], Parts]:
        """Each pooled term's weighted value at the whole image, and its slope ``∂value/∂R``
        with respect to each layer's representation (the linearization the tiles use)."""
        values, slopes = {}, {}
        for term in terms:
            leaves = {k: v.clone().requires_grad_(True) for k, v in whole[term.name].items()}
            with torch.enable_grad():
                value = term.weighted(leaves)
                grads = torch.autograd.grad(value, list(leaves.values()))
            values[term.name] = value.detach()
            slopes[term.name] = dict(zip(leaves, grads, strict=True))
        return values, slopes

    def evaluate(self) -> tuple[Tensor, dict[str, Tensor]]:
        with self.runner.evaluation(), self.autocast:
            return self._evaluate()

    def _evaluate(self) -> tuple[Tensor, dict[str, Tensor]]:
        image, objective = self.image, self.objective
        height, width = image.shape[-2:]
        tiles = self.tiles()
        pooled = [t for t in objective.feature_terms if t.pooled]
        local = [t for t in objective.feature_terms if not t.pooled]
        pooled_values, slopes = self._scored(pooled, self._whole(tiles, pooled))
        grad = torch.zeros_like(image)
        weights = torch.zeros((1, 1, height, width), device=image.device)
        sums = {term.name: torch.zeros((), device=image.device) for term in local}
        steps = self.runner.gradients(image, tiles, slopes, self.energies)
        for count, (tile, (crop_grad, values)) in enumerate(zip(tiles, steps, strict=True), 1):
            self._tile_done(len(tiles) + count, len(tiles))
            weight = feather(tile, height, width, self.overlap).to(image.device)
            grad[tile.window] += crop_grad.to(image.device) * weight
            weights[tile.window] += weight
            sums = {name: sums[name] + values[name].to(image.device) for name in sums}
        covered = sum(tile.pixels for tile in tiles)
        area = height * width
        image_values = objective.image_values(image)
        if image_values:
            (total(image_values) * area).backward()  # into image.grad
        if image.grad is None:
            image.grad = grad / weights
        else:
            image.grad += grad / weights
        terms = {  # in the objective's order
            t.name: pooled_values[t.name] if t.pooled else sums[t.name] / covered
            for t in objective.feature_terms
        }
        terms.update(detached(image_values))
        return total(terms) * area, terms
