"""Content, style (Gram) and total-variation losses of neural style transfer.

Gatys, Ecker & Bethge (2016), "Image Style Transfer Using Convolutional Neural Networks", CVPR:
the content loss compares feature maps, the style loss compares Gram matrices of feature maps,
and the image is optimized to minimize their weighted sum.

Normalization (ours, so that one set of weights gives the same look at 256 px and at 4096 px):
every loss is a *mean* over positions, never a sum, so its value does not grow with the number of
pixels. Gatys et al. sum the squared errors and divide the style term by ``4·N²·M²``; that
constant already makes the style term size-independent, but their content term grows with the
image area. Here:

- content: ``mean((F − P)²)`` over ``C·H·W`` — the mean squared error of the feature maps;
- style: ``mean((G(F) − G(S))²)`` over ``C·C`` with ``G(F) = F·Fᵀ / (C·H·W)``, the Gram matrix
  normalized by ``C·H·W`` (Johnson et al. 2016 normalize the same way);
- TV: ``mean(Δx²) + mean(Δy²)`` of neighbouring pixels in 0–1 units, the squared (β = 2)
  total variation of Mahendran & Vedaldi (2015), per pixel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vgg import VGGFeatures


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
    """Gram matrix of feature maps, normalized by ``C·H·W``.

    Args:
        features: ``(B, C, H, W)`` activations, any float dtype.

    Returns:
        ``(B, C, C)`` float32 tensor ``G[b, i, j] = Σ_hw F[b,i,h,w]·F[b,j,h,w] / (C·H·W)``.
        Computed in float32 even for bf16/fp16 inputs (Gram sums overflow half precision).
        Its backward costs one batched matrix product instead of two.
    """
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()
    return _Gram.apply(flat, c * h * w)


class ContentLoss(nn.Module):
    """Mean squared error between feature maps and a fixed target (Gatys et al. 2016, Eq. 1,
    divided by the number of elements instead of halved).

    Args:
        target: ``(B, C, H, W)`` activations of the content image at the same layer and size.
    """

    def __init__(self, target: Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach().float())

    def forward(self, features: Tensor) -> Tensor:
        """``features``: ``(B, C, H, W)`` like the target. Returns a 0-d float32 loss."""
        return F.mse_loss(features.float(), self.target)


class StyleLoss(nn.Module):
    """Mean squared error between the Gram matrix of feature maps and a target Gram matrix
    (Gatys et al. 2016, Eq. 4, with the normalization of :func:`gram_matrix`).

    Args:
        target: ``(B, C, C)`` target Gram matrix, e.g. ``gram_matrix(style_features)``; a blend of
            several styles is a weighted sum of their Gram matrices.
    """

    def __init__(self, target: Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach().float())

    def forward(self, features: Tensor) -> Tensor:
        """``features``: ``(B, C, H, W)``, any ``H, W``. Returns a 0-d float32 loss."""
        return F.mse_loss(gram_matrix(features), self.target)


def tv_loss(image: Tensor) -> Tensor:
    """Squared total variation per pixel (Mahendran & Vedaldi 2015, β = 2).

    Args:
        image: ``(B, 3, H, W)`` in 0–1, ``H, W ≥ 2``.

    Returns:
        0-d tensor ``mean(Δx²) + mean(Δy²)`` with ``Δx = x[..., :, 1:] − x[..., :, :-1]`` and
        ``Δy = x[..., 1:, :] − x[..., :-1, :]``.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


@dataclass(frozen=True)
class LossTerms:
    """Weighted loss terms of one evaluation (0-d tensors); ``total`` is what is optimized."""

    content: Tensor
    style: Tensor
    tv: Tensor

    @property
    def total(self) -> Tensor:
        return self.content + self.style + self.tv

    def detach(self) -> LossTerms:
        """The same values, cut from the autograd graph (keeps no activations alive)."""
        return LossTerms(self.content.detach(), self.style.detach(), self.tv.detach())

    def as_floats(self) -> dict[str, float]:
        """``{"content", "style", "tv", "total"}`` as Python floats (synchronizes the device)."""
        values = torch.stack([self.content, self.style, self.tv, self.total]).tolist()
        return dict(zip(("content", "style", "tv", "total"), values, strict=True))


def _normalized(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"layer weights must sum to a positive number, got {dict(weights)}")
    return {layer: w / total for layer, w in weights.items()}


class StyleTransferLoss(nn.Module):
    """The weighted objective of Gatys et al. (2016), Eq. 7, plus a TV regularizer:

    ``α·Σ_l a_l·content_l + β·Σ_l b_l·style_l + γ·tv``

    where the per-layer weights ``a_l`` and ``b_l`` are normalized to sum to 1, so that ``α``,
    ``β`` and ``γ`` (``content_weight``, ``style_weight``, ``tv_weight``) keep their meaning when
    layers are added or removed.

    Args:
        extractor: the network; must return every layer named in both target mappings.
        content_targets: ``{layer: (1, C, H, W) content activations}`` at this stage's size.
        style_targets: ``{layer: (1, C, C) target Gram matrix}``.
        content_layers: ``{layer: weight ≥ 0}``; same keys as ``content_targets``.
        style_layers: ``{layer: weight ≥ 0}``; same keys as ``style_targets``.
        content_weight, style_weight, tv_weight: ``α, β, γ ≥ 0``.

    Raises:
        ValueError: layer weights that do not sum to a positive number.
    """

    def __init__(
        self,
        extractor: VGGFeatures,
        content_targets: Mapping[str, Tensor],
        style_targets: Mapping[str, Tensor],
        content_layers: Mapping[str, float],
        style_layers: Mapping[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.content = nn.ModuleDict({k: ContentLoss(v) for k, v in content_targets.items()})
        self.style = nn.ModuleDict({k: StyleLoss(v) for k, v in style_targets.items()})
        self.content_layers = _normalized(content_layers)
        self.style_layers = _normalized(style_layers)
        self.weights = (content_weight, style_weight, tv_weight)

    def forward(self, image: Tensor) -> LossTerms:
        """Evaluate the objective.

        Args:
            image: ``(1, 3, H, W)`` in 0–1, the same ``H, W`` as the content targets.

        Returns:
            :class:`LossTerms` with each term already multiplied by its weight.
        """
        feats = self.extractor(image)
        content_weight, style_weight, tv_weight = self.weights
        content = sum(w * self.content[k](feats[k]) for k, w in self.content_layers.items())
        style = sum(w * self.style[k](feats[k]) for k, w in self.style_layers.items())
        return LossTerms(
            content=content_weight * content,
            style=style_weight * style,
            tv=tv_weight * tv_loss(image.float()),
        )


def content_targets(
    extractor: VGGFeatures, content: Tensor, layers: Iterable[str]
) -> dict[str, Tensor]:
    """Activations of the content image, ``{layer: (1, C, H', W')}``; ``content`` is
    ``(1, 3, H, W)`` in 0–1 at the stage's size."""
    with torch.no_grad():
        feats = extractor(content)
    return {layer: feats[layer].detach() for layer in layers}


def style_targets(
    extractor: VGGFeatures, style: Tensor, layers: Iterable[str]
) -> dict[str, Tensor]:
    """Gram matrices of the style image: ``{layer: (1, C, C)}`` float32 (see :func:`gram_matrix`);
    ``style`` is ``(1, 3, H, W)`` in 0–1 at its stage size."""
    with torch.no_grad():
        feats = extractor(style)
    return {layer: gram_matrix(feats[layer]) for layer in layers}
