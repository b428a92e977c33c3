"""What a layer keeps: images reconstructed from one layer's features or from Gram matrices
(Gatys, Ecker & Bethge 2016, Fig. 1; Mahendran & Vedaldi 2015).

Starting from white noise, an image is optimized so that its features at one layer match the
content image's (content reconstruction: lower layers give back the photo almost exactly,
higher ones keep the layout and lose the exact pixels), or so that its Gram matrices at a set of
layers match the painting's (style reconstruction: more layers give larger-scale texture with
no layout).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .blend import painting_regions
from .losses import total
from .optim import optimize
from .terms import TermContext, TermSpec, build_objective
from .vgg import VGGFeatures


def reconstruct(
    extractor: VGGFeatures,
    target: Tensor,
    layers: Sequence[str],
    term: str,
    iterations: int,
    generator: torch.Generator,
) -> Tensor:
    """Reconstruct an image from its representation at ``layers``.

    Args:
        extractor: the network, returning at least ``layers``.
        target: ``(1, 3, H, W)`` image in 0–1 whose representation is matched.
        layers: one layer for ``content``; any set for ``style`` (equal weights).
        term: ``"content"`` (feature maps, relative squared error) or ``"style"`` (Gram
            matrices): the term of that name, its loss ``content`` or ``gram`` (``stages.terms``).
        iterations: L-BFGS evaluations.
        generator: seeds the white-noise start.

    Returns:
        ``(1, 3, H, W)`` reconstruction in 0–1.

    Raises:
        ValueError: unknown ``term``.
    """
    losses = {"content": "content", "style": "gram"}
    if term not in losses:
        raise ValueError(f"term must be 'content' or 'style'; got {term!r}")
    weights = dict.fromkeys(layers, 1.0)
    context = TermContext(extractor, target, weights, painting_regions(extractor, target, weights))
    objective = build_objective([TermSpec(term, losses[term], 1.0)], context)
    noise = torch.rand(target.shape, generator=generator, dtype=torch.float32)
    image = noise.to(target.device).requires_grad_(True)
    pixels = target.shape[-2] * target.shape[-1]
    # Normalize by the start so that the value L-BFGS sees starts at 1 whatever the layers.
    with torch.no_grad():
        start = total(objective(image)).clamp_min(1e-12)

    def evaluate() -> Tensor:
        value = total(objective(image)) / start * pixels
        value.backward()
        return value

    optimize(image, "lbfgs", 1.0, iterations, evaluate)
    return image.detach().clamp(0.0, 1.0)
