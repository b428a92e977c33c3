"""Style statistics beyond the Gram matrix: the distribution of a layer's feature vectors.

The Gram matrix matches only the second moments of the features. Two losses compare more of
their distribution (pure functions here; the terms that use them live elsewhere):

- **Wasserstein-2 between Gaussian fits** (Li, Wang, Liu & Hou 2017, "Demystifying Neural Style
  Transfer", IJCAI, Sec. 4; Kolkin, Salavon & Shakhnarovich 2019, "Style Transfer by Relaxed
  Optimal Transport and Self-Similarity", CVPR, Sec. 2.2): each layer's feature vectors are
  summarized by their mean ``μ`` and covariance ``Σ`` (:func:`moments`), and the closed form of
  the W2 distance between two Gaussians (Dowson & Landau 1982; Olkin & Pukelsheim 1982)
  compares them, ``‖μ − μt‖² + tr(Σ + Σt − 2 (Σt^½ Σ Σt^½)^½)`` (:func:`w2_gaussian`). It needs
  a matrix square root with a stable gradient (:func:`sqrtm_psd`).
- **Sliced Wasserstein** (Heitz, Vanhoey, Chambon & Belcour 2021, "A Sliced Wasserstein Loss
  for Neural Texture Synthesis", CVPR, Sec. 3–4): the features are projected on random unit
  directions (:func:`random_directions`) and each 1-D distribution is compared with the
  painting's through its quantile function (:func:`target_quantiles`,
  :func:`mixture_quantiles`, :func:`sliced_wasserstein`). It matches the full marginal
  distributions along the directions, not only two moments.

Normalization (the convention of ``stages/losses.py``: every loss is a mean over positions,
and each layer's error is relative to its target's energy, so one weight serves from 256 px to
4096 px and every layer has a say): both distances are expected squared distances between
feature vectors (W2²: under the optimal coupling of the two Gaussians; sliced: of projected
values), so both are divided by the target's mean square, :func:`second_moment` for W2
(``E‖f‖² = ‖μt‖² + tr Σt``) and :func:`quantile_energy` for the sliced distance
(``E[(θ·f)²]`` over the directions), through :func:`relative`. The result is dimensionless,
independent of the number of positions and of a scale of the features — the content loss's
``mean((F − P)²) / mean(P²)`` with the optimal transport plan in place of the position-by-
position correspondence.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .gram import gram_matrix
from .losses import normalized

TINY = 1e-12
"""Floor of a total weight (an empty region's moments are 0, not NaN)."""

EPS = 1e-8
"""Added to a target's energy in :func:`relative` (as ``losses.relative_error``)."""


def _float32(device: torch.device) -> AbstractContextManager:
    """Autocast off: products of features stay in float32 (half precision overflows)."""
    kind = device.type
    return torch.autocast(kind, enabled=False) if kind in ("cuda", "cpu") else nullcontext()


def _check_guide(features: Tensor, guide: Tensor | None) -> None:
    if features.dim() != 4:
        raise ValueError(f"features must be (B, C, H, W); got {tuple(features.shape)}")
    b, _, h, w = features.shape
    if guide is not None and (
        guide.dim() != 4 or guide.shape[0] not in (1, b) or tuple(guide.shape[1:]) != (1, h, w)
    ):
        raise ValueError(f"guide must be (B or 1, 1, {h}, {w}); got {tuple(guide.shape)}")


class PerTarget:
    """A value derived from a target tensor (fixed for a stage: W2's Gaussian fit and square
    root, SWD's quantile function), computed on first use and dropped with the target.

    Args:
        derive: target (detached) → the value.
    """

    def __init__(self, derive: Callable[[Tensor], Any]) -> None:
        self._derive, self._values = derive, {}

    def __call__(self, target: Tensor) -> Any:
        """The value of ``target``, derived once while ``target`` lives."""
        key = id(target)
        if key not in self._values:
            self._values[key] = self._derive(target.detach())
            weakref.finalize(target, self._values.pop, key, None)
        return self._values[key]


@dataclass(frozen=True)
class Moments:
    """Weighted sums of a layer's feature vectors, float32: they add up over tiles.

    Attributes:
        weight: ``(B,)`` ``Σ w`` over positions (the number of positions without a guide).
        first: ``(B, C)`` ``Σ w·f``.
        second: ``(B, C, C)`` ``Σ w·f·fᵀ`` (``C·Σw`` times the Gram matrix of ``losses``).
    """

    weight: Tensor
    first: Tensor
    second: Tensor

    def __add__(self, other: Moments) -> Moments:
        """The moments of both sets of positions together (two tiles of one image)."""
        return Moments(
            self.weight + other.weight, self.first + other.first, self.second + other.second
        )

    def scaled(self, share: float) -> Moments:
        """The same distribution carried by a total weight ``share`` (every sum × ``share /
        Σw``), so that ``a.scaled(0.25) + b.scaled(0.75)`` are the moments of the mixture
        that draws a painting ``a`` feature with probability 0.25 whatever the paintings'
        pixel counts (its covariance includes the spread between the paintings' means)."""
        k = share / self.weight.clamp_min(TINY)
        weight = torch.full_like(self.weight, share)
        return Moments(weight, self.first * k[:, None], self.second * k[:, None, None])

    @property
    def mean(self) -> Tensor:
        """``(B, C)`` float32 ``μ = Σ w·f / Σ w`` (0 where ``Σ w = 0``)."""
        return self.first / self.weight.clamp_min(TINY)[:, None]

    @property
    def covariance(self) -> Tensor:
        """``(B, C, C)`` float32 ``Σ = E[f·fᵀ] − μ·μᵀ``, symmetric PSD up to rounding (formed
        in float64 against the cancellation of the two terms)."""
        w = self.weight.double().clamp_min(TINY)[:, None, None]
        mu = self.first.double()[:, :, None] / w
        cov = self.second.double() / w - mu @ mu.mT
        return ((cov + cov.mT) / 2).float()


def moments(features: Tensor, guide: Tensor | None = None) -> Moments:
    """Weighted moments of a layer's feature vectors (positions are samples).

    Args:
        features: ``(B, C, H, W)`` activations, any float dtype; computed in float32 with
            autocast off (through :func:`~stylecascade.stages.losses.gram_matrix`).
        guide: ``(B or 1, 1, H, W)`` weights per position in 0–1 (a mask at this layer,
            ``guides.layer_guide``), a constant (no gradient flows to it); ``None``: 1.
            The weight of a position is ``g`` itself — a probability weight — where the guided
            Gram matrix (``guides.guided_gram``) weighs by ``g²``; the two agree for binary
            masks.

    Returns:
        :class:`Moments` (sums, float32).

    Raises:
        ValueError: ``features`` is not 4-d, or ``guide`` does not match its shape.
    """
    _check_guide(features, guide)
    b, c, h, w = features.shape
    if guide is None:
        total = torch.full((b,), float(h * w), device=features.device)
        rooted, weighted = features, features.float()
    else:
        weights = guide.detach().float().expand(b, 1, h, w)
        total = weights.sum(dim=(1, 2, 3))
        rooted, weighted = features * weights.sqrt(), features.float() * weights
    second = gram_matrix(rooted) * (c * h * w)
    return Moments(total, weighted.sum(dim=(2, 3)), second)


class _SqrtmPSD(torch.autograd.Function):
    """``S = U·diag(√max(λ, 0))·Uᵀ`` from ``eigh`` in float64; the backward solves the
    Sylvester equation ``X·S + S·X = G`` in the eigenbasis (see :func:`sqrtm_psd`)."""

    @staticmethod
    def forward(ctx, a: Tensor) -> Tensor:
        a64 = a.double()
        lam, u = torch.linalg.eigh((a64 + a64.mT) / 2)
        s = lam.clamp_min(0).sqrt()
        ctx.save_for_backward(u, s)
        return ((u * s[..., None, :]) @ u.mT).to(a.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        u, s = ctx.saved_tensors
        g = grad.double()
        inner = u.mT @ ((g + g.mT) / 2) @ u
        floor = (1e-6 * s.amax(dim=-1)).clamp_min(TINY)[..., None, None]
        sums = (s[..., :, None] + s[..., None, :]).maximum(floor)
        return (u @ (inner / sums) @ u.mT).to(grad.dtype)


def sqrtm_psd(a: Tensor) -> Tensor:
    """The principal square root of symmetric positive semi-definite matrices.

    Method: eigendecomposition in float64 (``torch.linalg.eigh`` of ``(A + Aᵀ)/2``),
    eigenvalues clamped at 0 (rounding makes a PSD matrix's smallest ones slightly negative),
    ``S = U·diag(√λ)·Uᵀ``. The backward is our own: ``dS`` solves ``dS·S + S·dS = dA``, so the
    gradient is ``∂A = U·((Uᵀ·sym(G)·U) ⊘ (√λᵢ + √λⱼ))·Uᵀ`` (Higham 2008, "Functions of
    Matrices", Sec. 6.1). Its denominators are sums, never differences, of eigenvalues: stable
    for repeated eigenvalues (``eigh``'s own backward divides by ``λᵢ − λⱼ``); they are floored
    at ``10⁻⁶·max √λ`` (10⁻¹² for a zero matrix), so the gradient stays finite for singular
    matrices, where the exact one is infinite. Measured against 20 float32 Newton–Schulz
    iterations on a 2-core CPU, covariance-like matrices at C = 64…512 (``benchmarks/
    distributions.py``, 1 thread): forward + backward 5–9× faster (0.9 ms … 74 ms), relative
    error ~3·10⁻⁸ against ~10⁻⁴.

    Args:
        a: ``(B, C, C)`` (any leading dims) symmetric PSD, any float dtype; only its
            symmetric part is read.

    Returns:
        ``(B, C, C)`` symmetric PSD, ``a``'s dtype.

    Raises:
        ValueError: ``a`` is not a batch of square matrices.
    """
    if a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a must be (B, C, C); got {tuple(a.shape)}")
    return _SqrtmPSD.apply(a)


def w2_gaussian(
    mean: Tensor,
    cov: Tensor,
    target_mean: Tensor,
    target_cov: Tensor,
    target_cov_sqrt: Tensor | None = None,
) -> Tensor:
    """Squared Wasserstein-2 distance between two Gaussians ``N(μ, Σ)`` and ``N(μt, Σt)``
    (Li et al. 2017, Sec. 4; Kolkin et al. 2019, Eq. 4; Dowson & Landau 1982):
    ``‖μ − μt‖² + tr(Σ + Σt − 2·(Σt^½·Σ·Σt^½)^½)``, computed in float64, clamped ≥ 0.

    Args:
        mean, target_mean: ``(B, C)`` (a target of batch 1 broadcasts).
        cov, target_cov: ``(B, C, C)`` symmetric PSD (:attr:`Moments.covariance`).
        target_cov_sqrt: ``Σt^½`` (:func:`sqrtm_psd`), precomputed once for a fixed target;
            ``None``: computed here.

    Returns:
        ``(B,)`` ≥ 0 in squared feature units, float32 (float64 for float64 inputs).
        Gradients flow to every input; finite for singular covariances (:func:`sqrtm_psd`).

    Raises:
        ValueError: shapes that do not match ``(B, C)`` and ``(B, C, C)``.
    """
    c = mean.shape[-1]
    shapes = [tuple(t.shape[-2:]) for t in (cov, target_cov)]
    if mean.dim() != 2 or target_mean.shape[-1] != c or shapes != [(c, c), (c, c)]:
        raise ValueError(
            f"need means (B, C) and covariances (B, C, C); got {tuple(mean.shape)}, "
            f"{tuple(cov.shape)}, {tuple(target_mean.shape)}, {tuple(target_cov.shape)}"
        )
    root = sqrtm_psd(target_cov.double()) if target_cov_sqrt is None else target_cov_sqrt
    root = root.double()
    cross = sqrtm_psd(root @ cov.double() @ root)
    offset = (mean.double() - target_mean.double()).pow(2).sum(-1)
    distance = offset + _trace(cov.double()) + _trace(target_cov.double()) - 2 * _trace(cross)
    return distance.clamp_min(0).to(torch.promote_types(mean.dtype, torch.float32))


def second_moment(mean: Tensor, cov: Tensor) -> Tensor:
    """``E‖f‖² = ‖μ‖² + tr Σ``: the mean square of the target's feature vectors, ``(B,)``,
    the denominator of a relative W2 (``relative(w2_gaussian(…), second_moment(μt, Σt))``).

    Why: W2² is the expected squared distance ``E‖f − f'‖²`` between image and painting
    features under the optimal coupling, a sum over the ``C`` channels like ``E‖f‖²``; their
    ratio is the relative error of ``losses.relative_error`` with the optimal coupling in place
    of the position-by-position one: dimensionless, the same for a layer whose activations are
    10⁴ × another's, and independent of the pixel count (moments are means).

    Args:
        mean: ``(B, C)``; cov: ``(B, C, C)``.
    """
    return mean.pow(2).sum(-1) + _trace(cov)


def _trace(matrices: Tensor) -> Tensor:
    """``(B,)`` traces of ``(B, C, C)`` matrices."""
    return matrices.diagonal(dim1=-2, dim2=-1).sum(-1)


def relative(distance: Tensor, energy: Tensor) -> Tensor:
    """``distance / (energy + ε)`` with the energy a constant (no gradient) and ε =
    :data:`EPS`: a squared distance relative to the target's mean square (the module's
    normalization). Shapes broadcast; ``(B,)`` in, ``(B,)`` out."""
    return distance / (energy.detach() + EPS)


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
    _check_guide(features, guide)
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
    uniform on the sphere it is ``E‖f‖² / C``, the per-channel :func:`second_moment`)."""
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
    _check_guide(features, guide)
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
