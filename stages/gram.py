"""The Gram style kind: a painting's style as the Gram matrices of its feature maps (Gatys,
Ecker & Bethge 2016, Eq. 3–5), optionally under a guidance channel (Gatys et al. 2017,
Sec. 4.1).

A *style kind* (``stages.losses.StyleKind``) says how features become a representation, how
several paintings' targets blend and how a representation is scored against its target; the
style term (``stages.losses.StyleTerm``) brings the regions, guides and layers, and the
registry (``stages.vocabulary.STYLE_KINDS``) names the kind ``gram``.

The Gram matrix is normalized by ``C·H·W``, so it is a mean over positions: the Gram matrix of
a whole image is the pixel-weighted mean of its tiles' (``stages.tiling`` pools it), and a
painting's blend target is the weighted sum of the paintings' Gram matrices
(jcjohnson/neural-style's ``-style_blend_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from .losses import relative_error


class _Gram(torch.autograd.Function):
    """``G = F·Fᵀ / n`` with a backward of one batched product, ``∂F = (∂G + ∂Gᵀ)·F / n``,
    where autograd's generic backward of ``bmm`` would run two."""

    @staticmethod
    def forward(ctx, flat: Tensor, n: int) -> Tensor:
        ctx.save_for_backward(flat)
        ctx.n = n
        return torch.bmm(flat, flat.transpose(1, 2)) / n

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (flat,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), flat) / ctx.n, None


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of feature maps, normalized by ``C·H·W`` (Gatys et al. 2016, Eq. 3).

    Args:
        features: ``(B, C, H, W)`` activations, any float dtype.

    Returns:
        ``(B, C, C)`` float32 tensor ``G[b, i, j] = Σ_hw F[b,i,h,w]·F[b,j,h,w] / (C·H·W)``.
        Computed in float32 even for bf16/fp16 inputs (Gram sums overflow half precision).
        Its backward costs one batched matrix product instead of two.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()
    kind = features.device.type  # autocast would lower the product to half precision
    with torch.autocast(kind, enabled=False) if kind in ("cuda", "cpu") else nullcontext():
        return _Gram.apply(flat, c * h * w)


def guided_gram(features: Tensor, guide: Tensor | None, energy: float | Tensor = 1.0) -> Tensor:
    """The guided Gram matrix ``G = (F·g)(F·g)ᵀ / (C·H·W) / energy`` (Gatys et al. 2017,
    Sec. 4.1), with the normalization of :func:`gram_matrix`.

    Args:
        features: ``(1, C, h, w)`` activations.
        guide: ``(1, 1, h, w)`` the guide at this layer in 0–1 (``stages.guides.layer_guide``),
            ``None``: 1.
        energy: ``mean(g²)`` of the guide over the whole image at this layer (> 0), so that
            ``G`` is the region's Gram matrix whatever its size; 1 without a guide.

    Returns:
        ``(1, C, C)`` float32.
    """
    return gram_matrix(features if guide is None else features * guide) / energy


def linear_blend(weighted: Sequence[tuple[float, Tensor]]) -> Tensor:
    """``Σ_i w_i · T_i`` over ``(w_i, T_i)`` pairs, summed in order: the blend of targets that
    are means over positions (Gram matrices, moments), jcjohnson/neural-style's
    ``-style_blend_weights``.

    Raises:
        ValueError: no pair.
    """
    blend = None
    for weight, target in weighted:
        blend = weight * target if blend is None else blend + weight * target
    if blend is None:
        raise ValueError("a blend needs at least one painting")
    return blend


@dataclass(frozen=True)
class Gram:
    """The style loss of Gatys et al. (2016), Eq. 4: squared error of (guided) Gram matrices,
    relative to each target's energy (``stages.losses.relative_error``). A frozen value, so
    that equal kinds share cached targets (``stages.blend.StyleTargets``)."""

    pooled = True
    """Its representation is a mean over positions: tiles pool exactly."""

    def represent(self, features: Tensor, guide: Tensor | None, energy: float | Tensor) -> Tensor:
        """:func:`guided_gram`: ``(1, C, h, w)`` features → ``(1, C, C)`` float32; a mean over
        positions, so tiles pool by pixel-weighted mean."""
        return guided_gram(features, guide, energy)

    def blend(self, weighted: Sequence[tuple[float, Tensor]]) -> Tensor:
        """``Σ_i w_i · G_i`` over ``(w_i, (1, C, C) G_i)`` pairs (:func:`linear_blend`).

        Raises:
            ValueError: no pair.
        """
        return linear_blend(weighted)

    def score(self, representation: Tensor, target: Tensor, target_energy: Tensor) -> Tensor:
        """:func:`~stylecascade.stages.losses.relative_error` of ``(1, C, C)`` Gram matrices;
        ``target_energy`` is ``mean(T²)``. Returns a 0-d float32 tensor ≥ 0."""
        return relative_error(representation, target, target_energy)


GRAM = Gram()
"""The Gram kind (the default style loss; registered in ``vocabulary.STYLE_KINDS``)."""
