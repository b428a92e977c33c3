"""Sliced Wasserstein statistics of a layer's feature vectors, pure functions (used by
``stages.swd``): Heitz, Vanhoey, Chambon & Belcour 2021, "A Sliced Wasserstein Loss for Neural
Texture Synthesis", CVPR, Sec. 3–4.

The features are projected on random unit directions (:func:`random_directions`,
:func:`project`) and each 1-D distribution is compared with the painting's through its quantile
function (:func:`target_quantiles`, :func:`mixture_quantiles`, :func:`sliced_wasserstein`,
:func:`sliced_distance`). It matches the full marginal distributions along the directions, not
only two moments. The distance is relative to the target's mean square along the directions
(:func:`quantile_energy`), the normalization of ``stages.distributions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor

from .distributions import TINY, check_guide, relative
from .losses import normalized


def _float32(device: torch.device) -> AbstractContextManager:
    """Autocast off: products of features stay in float32 (half precision overflows)."""
    kind = device.type
    return torch.autocast(kind, enabled=False) if kind in ("cuda", "cpu") else nullcontext()


def random_directions(c: int, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` directions drawn uniformly on the unit sphere of ``R^c`` (normalized Gaussian
    vectors; Heitz et al. 2021, Sec. 3.2, draw ``n = C`` per layer).

    Args:
        c: channels, ≥ 1; n: directions, ≥ 1.
        generator: draws them (the same seed, the same directions); its device is theirs.
            ``None``: torch's global generator, on the CPU.

    Returns:
        ``(n, c)`` float32, each row of norm 1.

    Raises:
        ValueError: ``c`` or ``n`` below 1.
    """
    if c < 1 or n < 1:
        raise ValueError(f"need c ≥ 1 and n ≥ 1; got c={c}, n={n}")
    device = None if generator is None else generator.device
    normal = torch.randn(n, c, generator=generator, device=device)
    return normal / normal.norm(dim=1, keepdim=True)


def project(features: Tensor, directions: Tensor) -> Tensor:
    """``(B, n, H·W)`` float32 projections ``θ·f`` of every position of ``(B, C, H, W)``
    features on every direction of ``(n, C)`` ``directions`` (autocast off).

    Raises:
        ValueError: ``directions`` is not ``(n, C)``.
    """
    if directions.dim() != 2 or directions.shape[1] != features.shape[1]:
        raise ValueError(
            f"directions must be (n, {features.shape[1]}); got {tuple(directions.shape)}"
        )
    with _float32(features.device):
        return directions.to(features.device).float() @ features.float().flatten(2)


def weighted_quantiles(values: Tensor, mass: Tensor, count: int) -> Tensor:
    """The quantile function of weighted atoms at the levels ``(i + ½)/count``.

    Atoms ``values`` ``(…, M)`` (any order) of positive ``mass`` ``(…, M)`` are sorted; atom
    ``k`` stands at the middle of its step of the CDF, ``cₖ = (Σ_{j<k} mⱼ + mₖ/2) / Σ m``,
    and the quantile function is the piecewise-linear curve through the points ``(cₖ, vₖ)``,
    constant beyond the first and last. For ``M`` equal masses and ``count = M`` it returns
    the sorted values themselves. Returns ``(…, count)``.
    """
    values, order = values.sort(dim=-1)
    mass = mass.expand_as(order).gather(-1, order)
    cdf = mass.cumsum(-1)
    centers = ((cdf - mass / 2) / cdf[..., -1:]).contiguous()
    levels = (torch.arange(count, device=values.device) + 0.5) / count
    levels = levels.expand(*centers.shape[:-1], count).contiguous()
    last = values.shape[-1] - 1
    upper = torch.searchsorted(centers, levels).clamp(max=last)
    lower = (upper - 1).clamp(min=0)
    c0, c1 = centers.gather(-1, lower), centers.gather(-1, upper)
    v0, v1 = values.gather(-1, lower), values.gather(-1, upper)
    t = ((levels - c0) / (c1 - c0).clamp_min(TINY)).clamp(0, 1)
    return v0 + t * (v1 - v0)


def target_quantiles(
    features: Tensor, directions: Tensor, count: int, guide: Tensor | None = None
) -> Tensor:
    """A painting's projected feature distributions, as ``count`` quantiles per direction
    (Heitz et al. 2021, Sec. 3: the sorted projections), resampled so that the image and the
    painting may have different numbers of positions.

    Each position is an atom weighted by the guide; quantile ``i`` is the quantile function at
    level ``(i + ½)/count``, linearly interpolated between the atoms' CDF mid-steps
    (:func:`weighted_quantiles`). Positions of zero weight are dropped first.

    Args:
        features: ``(1, C, H, W)`` one painting's activations, any float dtype.
        directions: ``(n, C)`` unit vectors (:func:`random_directions`).
        count: quantiles per direction, ≥ 1 (e.g. the image's positions at this layer).
        guide: ``(1, 1, H, W)`` weights per position in 0–1 (the painting's mask at this
            layer); ``None``: 1.

    Returns:
        ``(n, count)`` float32, each row non-decreasing. No gradient.

    Raises:
        ValueError: ``features`` is not ``(1, C, H, W)``, the shapes do not match,
            ``count < 1``, or the guide is negative or leaves no position.
    """
    check_guide(features, guide)
    if features.shape[0] != 1 or count < 1:
        raise ValueError(
            f"need (1, C, H, W) features and count ≥ 1; got {tuple(features.shape)}, count={count}"
        )
    with torch.no_grad():
        projected = project(features, directions)[0]
        if guide is None:  # equal masses: the levels of the sorted values are (k + ½)/N
            return _resampled(projected.sort(dim=-1).values, count)
        weights = guide.float().flatten().to(projected.device)
        if not (weights.min() >= 0 and weights.max() > 0):
            raise ValueError("the guide must be ≥ 0 and leave at least one position")
        kept = weights > 0
        return weighted_quantiles(projected[:, kept], weights[kept][None], count)


def mixture_quantiles(quantiles: Sequence[Tensor], weights: Sequence[float], count: int) -> Tensor:
    """The quantiles of a weighted *mixture* of paintings (a feature drawn from painting ``k``
    with probability ``wₖ``) — its quantile function, not the average of the paintings'.

    Method: painting ``k``'s ``Mₖ`` quantiles are atoms of mass ``wₖ/Mₖ`` each; the atoms of
    all paintings are merged and sorted, and the mixture's weighted CDF is inverted at the
    levels ``(i + ½)/count`` as in :func:`target_quantiles`. (Averaging quantiles would give
    the displacement interpolation of the paintings, a different distribution: two point masses
    at 0 and 1 average to one at ``w₁``.)

    Args:
        quantiles: ``(n, Mₖ)`` per painting (:func:`target_quantiles`), the same directions.
        weights: one per painting, finite, ≥ 0, not all 0 (normalized to sum 1).
        count: quantiles per direction of the result, ≥ 1.

    Returns:
        ``(n, count)`` float32, each row non-decreasing.

    Raises:
        ValueError: no paintings, as many weights as paintings, weights breaking
            ``vocabulary.weight_problem``, rows that differ, or ``count < 1``.
    """
    if not quantiles or len(quantiles) != len(weights) or count < 1:
        raise ValueError(
            f"need paintings, one weight each and count ≥ 1; got "
            f"{len(quantiles)} paintings, {len(weights)} weights, count={count}"
        )
    if len({q.shape[:-1] for q in quantiles}) != 1:
        raise ValueError(
            f"quantiles must share their directions; got {[tuple(q.shape) for q in quantiles]}"
        )
    shares = normalized(dict(enumerate(weights)), "painting")
    parts = [(q.float(), shares[k]) for k, q in enumerate(quantiles) if shares[k] > 0]
    values = torch.cat([q for q, _ in parts], dim=-1)
    mass = torch.cat([torch.full(q.shape[-1:], w / q.shape[-1], device=q.device) for q, w in parts])
    return weighted_quantiles(values, mass.expand_as(values), count)


def quantile_energy(quantiles: Tensor) -> Tensor:
    """``E[(θ·f)²]`` of a painting's projections, averaged over the directions: the mean square
    of its quantiles, 0-d — the denominator of the relative sliced distance (for directions
    uniform on the sphere it is ``E‖f‖² / C``, the per-channel
    ``distributions.second_moment``)."""
    return quantiles.float().pow(2).mean()


def sliced_wasserstein(
    features: Tensor, directions: Tensor, target_quantiles: Tensor, guide: Tensor | None = None
) -> Tensor:
    """The relative sliced Wasserstein-2 loss (Heitz et al. 2021, Eq. 6, with our
    normalization): the mean over directions and positions of ``(sorted θ·f − Q_θ(t))²``,
    divided by :func:`quantile_energy` of the targets (:func:`relative`).

    The image's projections on each direction are sorted; the position of rank ``k`` stands at
    the quantile level ``t = (Σ_{j<k} wⱼ + wₖ/2) / Σ w`` (``(k + ½)/N`` without a guide) and is
    compared with the target's quantile function at ``t``, linear between the target's levels
    ``(i + ½)/M``. With a guide each position's squared difference weighs ``w`` (a weighted
    mean); an image whose guide is all 0 scores 0. For ``N = M`` without guides this is the
    paper's mean squared difference of sorted projections.

    Args:
        features: ``(B, C, H, W)`` the image's activations, any float dtype (float32 inside).
        directions: ``(n, C)`` those the targets were made with.
        target_quantiles: ``(n, M)`` (:func:`target_quantiles`, :func:`mixture_quantiles`).
        guide: ``(B or 1, 1, H, W)`` weights per position in 0–1, a constant; ``None``: 1.

    Returns:
        ``(B,)`` float32 ≥ 0, dimensionless; gradients flow to ``features``.

    Raises:
        ValueError: shapes that do not match.
    """
    check_guide(features, guide)
    projected = project(features, directions)
    weights = None
    if guide is not None:
        weights = guide.detach().float().flatten(1)[:, None, :].expand_as(projected)
    return sliced_distance(projected, weights, target_quantiles)


def sliced_distance(projected: Tensor, weights: Tensor | None, quantiles: Tensor) -> Tensor:
    """The relative sliced Wasserstein-2 loss of projections already made
    (:func:`sliced_wasserstein` without the projection): the image's projections are sorted
    and compared with the target's quantile function at their levels.

    Args:
        projected: ``(B, n, N)`` the image's projections ``θ·f`` (:func:`project`).
        weights: ``(B, n, N)`` each position's weight ≥ 0 (a guide), a constant; ``None``:
            equal weights.
        quantiles: ``(n, M)`` the target's quantiles at levels ``(i + ½)/M``.

    Returns:
        ``(B,)`` float32 ≥ 0, relative to :func:`quantile_energy` of ``quantiles``.

    Raises:
        ValueError: ``quantiles`` does not have one row per direction.
    """
    if quantiles.shape[0] != projected.shape[1] or quantiles.dim() != 2:
        raise ValueError(
            f"target_quantiles must be ({projected.shape[1]}, M); got {tuple(quantiles.shape)}"
        )
    values, order = projected.sort(dim=-1)
    quantiles = quantiles.float().to(values.device)
    if weights is None:
        squared = (values - _resampled(quantiles, values.shape[-1])).pow(2).mean(-1)
    else:
        weights = weights.gather(-1, order)
        cdf = weights.cumsum(-1)
        total = cdf[..., -1:].clamp_min(TINY)
        targets = _at_levels(quantiles, (cdf - weights / 2) / total)
        squared = (weights * (values - targets).pow(2)).sum(-1) / total[..., 0]
    return relative(squared.mean(-1), quantile_energy(quantiles))


def _resampled(quantiles: Tensor, count: int) -> Tensor:
    """Quantiles ``(n, M)`` at levels ``(i + ½)/M`` read at the levels ``(k + ½)/count``:
    linear between them, constant beyond the first and last (``F.interpolate``'s ``linear``
    without corner alignment maps exactly these levels). Returns ``(n, count)``."""
    if quantiles.shape[-1] == count:
        return quantiles
    return F.interpolate(quantiles[None], size=count, mode="linear", align_corners=False)[0]


def _at_levels(quantiles: Tensor, levels: Tensor) -> Tensor:
    """Quantiles ``(n, M)`` at levels ``(i + ½)/M``, read at ``levels`` ``(B, n, N)`` in 0–1
    (one level per position and direction, a guided image's): as :func:`_resampled`.
    Returns ``(B, n, N)``."""
    m = quantiles.shape[-1]
    x = (levels * m - 0.5).clamp(0, m - 1)
    lower = x.floor().long().clamp(max=max(m - 2, 0))
    upper = (lower + 1).clamp(max=m - 1)
    rows = quantiles.expand(levels.shape[0], -1, -1)
    v0, v1 = rows.gather(-1, lower), rows.gather(-1, upper)
    return v0 + (x - lower) * (v1 - v0)
