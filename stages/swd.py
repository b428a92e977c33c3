"""The sliced Wasserstein style kind: a painting's style as the distributions of its feature
vectors projected on random directions, compared through their quantile functions (Heitz,
Vanhoey, Chambon & Belcour 2021, "A Sliced Wasserstein Loss for Neural Texture Synthesis",
CVPR, Sec. 3–4; ``stages.sliced``).

Unlike the Gram matrix and W2's Gaussian fit, it matches the whole marginal distribution along
each direction (its shape, not two moments). Choices, measured in ``benchmarks/``:

- directions: ``C`` per layer (as Heitz et al.), drawn once from a fixed seed per channel count
  and kept for the whole render (redrawing them at every evaluation, as the paper does with
  Adam, makes the objective noisy for L-BFGS's line search);
- the painting's quantiles are interpolated at the image's quantile levels, so image and
  painting may have any pixel counts;
- a guide weighs positions by ``g²`` (as the guided Gram matrix): weighted quantiles;
- a blend is the weighted *mixture* of the paintings' feature distributions: their atoms merged
  with mass ``w_k / N_k`` each.

Representation (``stages.losses.StyleKind``): ``(1, n, N, 2)`` float32, each position's
projection on each direction and its weight. It is not a mean over positions: a tiled stage
cannot pool it (``pooled = False``; the runner refuses such a stage with one line). Memory: a
representation holds ``2·n·N`` floats per layer (relu1_1 of a 1024×768 image: 400 MB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .distributions import PerTarget
from .sliced import project, random_directions, sliced_distance, weighted_quantiles

SEED = 20210619
"""Seeds the directions of each channel count (the same directions in every run)."""

_DIRECTIONS: dict[tuple[int, str], Tensor] = {}


def directions(channels: int, device: torch.device) -> Tensor:
    """``(C, C)`` unit directions for a layer of ``channels`` channels, the same in every run
    (seeded by :data:`SEED` and the channel count), cached per device."""
    key = (channels, str(device))
    if key not in _DIRECTIONS:
        generator = torch.Generator().manual_seed(SEED + channels)
        _DIRECTIONS[key] = random_directions(channels, channels, generator).to(device)
    return _DIRECTIONS[key]


def _quantile_function(target: Tensor) -> Tensor:
    """A target's quantile function: its atoms (zero-mass ones dropped) as quantiles at
    ``(i + ½)/M``, ``(n, M)``."""
    values, mass = target[0, ..., 0], target[0, ..., 1]
    kept = mass[0] > 0  # a position's weight is the same on every direction
    values, mass = values[:, kept], mass[:, kept]
    return weighted_quantiles(values, mass, values.shape[-1])


_QUANTILES = PerTarget(_quantile_function)


@dataclass(frozen=True)
class SlicedWasserstein:
    """The sliced Wasserstein style loss (module docstring). A frozen value, so equal kinds
    share cached targets (``stages.blend.StyleTargets``)."""

    pooled = False
    """Its representation is not a mean over positions: tiled stages cannot use it."""

    def represent(self, features: Tensor, guide: Tensor | None, energy: float | Tensor) -> Tensor:
        """``(1, C, h, w)`` features under ``guide`` (``(1, 1, h, w)`` in 0–1, ``None``:
        everywhere) → ``(1, C, h·w, 2)`` float32: each position's projection on each of the
        layer's directions and its weight ``g²`` (``energy`` is not needed: quantiles are
        normalized by the total weight)."""
        projected = project(features, directions(features.shape[1], features.device))
        if guide is None:
            weights = torch.ones_like(projected)
        else:
            weights = guide.detach().float().pow(2).flatten(1)[:, None, :].expand_as(projected)
        return torch.stack([projected, weights], dim=-1)

    def blend(self, weighted: Sequence[tuple[float, Tensor]]) -> Tensor:
        """The mixture of the paintings: their atoms concatenated, painting ``k``'s weights
        scaled to carry ``w_k`` of the total.

        Raises:
            ValueError: no pair.
        """
        if not weighted:
            raise ValueError("a blend needs at least one painting")
        parts = []
        for share, target in weighted:
            mass = target[..., 1]  # (1, n, N): a position's weight on every direction
            total = mass[:, 0].sum(dim=-1).clamp_min(1e-12)
            parts.append(torch.stack([target[..., 0], mass * (share / total)], dim=-1))
        return torch.cat(parts, dim=2)

    def score(self, representation: Tensor, target: Tensor, target_energy: Tensor) -> Tensor:
        """Relative sliced W2² of the image's projections against the target's quantile
        function (``sliced.sliced_distance``): 0-d float32 ≥ 0."""
        values, weights = representation[..., 0], representation[..., 1]
        guided = bool((weights != 1).any())
        distance = sliced_distance(values, weights if guided else None, _QUANTILES(target))
        return distance.sum()


SWD = SlicedWasserstein()
"""The sliced Wasserstein kind (``style_loss: swd``; registered in ``vocabulary.STYLE_KINDS``)."""
