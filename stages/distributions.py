"""Style statistics beyond the Gram matrix: the distribution of a layer's feature vectors.

The Gram matrix matches only the second moments of the features. Two losses compare more of
their distribution (pure functions; the style kinds that use them are ``stages.w2`` and
``stages.swd``):

- **Wasserstein-2 between Gaussian fits** (here; Li, Wang, Liu & Hou 2017, "Demystifying Neural
  Style Transfer", IJCAI, Sec. 4; Kolkin, Salavon & Shakhnarovich 2019, "Style Transfer by
  Relaxed Optimal Transport and Self-Similarity", CVPR, Sec. 2.2): each layer's feature vectors
  are summarized by their mean ``μ`` and covariance ``Σ`` (:func:`moments`), and the closed form
  of the W2 distance between two Gaussians (Dowson & Landau 1982; Olkin & Pukelsheim 1982)
  compares them, ``‖μ − μt‖² + tr(Σ + Σt − 2 (Σt^½ Σ Σt^½)^½)`` (:func:`w2_gaussian`). It needs
  a matrix square root with a stable gradient (:func:`sqrtm_psd`).
- **Sliced Wasserstein** (``stages.sliced``; Heitz, Vanhoey, Chambon & Belcour 2021, "A Sliced
  Wasserstein Loss for Neural Texture Synthesis", CVPR, Sec. 3–4): the features are projected
  on random unit directions and each 1-D distribution is compared with the painting's through
  its quantile function. It matches the full marginal distributions along the directions, not
  only two moments.

Normalization (the convention of ``stages/losses.py``: every loss is a mean over positions,
and each layer's error is relative to its target's energy, so one weight serves from 256 px to
4096 px and every layer has a say): both distances are expected squared distances between
feature vectors (W2²: under the optimal coupling of the two Gaussians; sliced: of projected
values), so both are divided by the target's mean square, :func:`second_moment` for W2
(``E‖f‖² = ‖μt‖² + tr Σt``) and ``sliced.quantile_energy`` for the sliced distance
(``E[(θ·f)²]`` over the directions), through :func:`relative`. The result is dimensionless,
independent of the number of positions and of a scale of the features — the content loss's
``mean((F − P)²) / mean(P²)`` with the optimal transport plan in place of the position-by-
position correspondence.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .gram import gram_matrix

TINY = 1e-12
"""Floor of a total weight (an empty region's moments are 0, not NaN)."""

EPS = 1e-8
"""Added to a target's energy in :func:`relative` (as ``losses.relative_error``)."""


def check_guide(features: Tensor, guide: Tensor | None) -> None:
    """Refuse ``features`` that are not ``(B, C, H, W)`` or a ``guide`` that is not
    ``(B or 1, 1, H, W)``, with a ``ValueError`` naming the shapes."""
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
        second: ``(B, C, C)`` ``Σ w·f·fᵀ`` (``C·Σw`` times the Gram matrix of ``stages.gram``).
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
            autocast off (through :func:`~stylecascade.stages.gram.gram_matrix`).
        guide: ``(B or 1, 1, H, W)`` weights per position in 0–1 (a mask at this layer,
            ``guides.layer_guide``), a constant (no gradient flows to it); ``None``: 1.
            The weight of a position is ``g`` itself — a probability weight — where the guided
            Gram matrix (``gram.guided_gram``) weighs by ``g²``; the two agree for binary
            masks.

    Returns:
        :class:`Moments` (sums, float32).

    Raises:
        ValueError: ``features`` is not 4-d, or ``guide`` does not match its shape.
    """
    check_guide(features, guide)
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
