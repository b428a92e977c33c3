"""Resampling of float images between stage sizes (never through 8-bit)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def fit_long_edge(height: int, width: int, long_edge: int) -> tuple[int, int]:
    """Size with the given long edge and the same aspect ratio.

    Args:
        height, width: source size in px (> 0).
        long_edge: target long edge in px (> 0).

    Returns:
        ``(H, W)`` in px, each rounded to the nearest integer and at least 1.
    """
    scale = long_edge / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic resampling in float, antialiased when shrinking, clamped to 0–1.

    Keys' cubic convolution (a = −0.75, PyTorch's bicubic); when shrinking, the kernel is
    stretched by the scale factor (as Pillow does) so that detail finer than the new pixel grid is
    averaged, not aliased. Bicubic overshoot at edges is clamped back into 0–1.

    Args:
        image: ``(B, C, H, W)`` float in 0–1.
        size: target ``(H, W)`` in px.

    Returns:
        ``(B, C, *size)`` float tensor in 0–1, same dtype and memory format as ``image``.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image.clone()
    out = F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def resize_long_edge(image: Tensor, long_edge: int) -> Tensor:
    """:func:`resize` to the given long edge (px), keeping the aspect ratio.

    Args:
        image: ``(B, C, H, W)`` float in 0–1.
        long_edge: target long edge in px.

    Returns:
        ``(B, C, H', W')`` with ``max(H', W') == long_edge``.
    """
    return resize(image, fit_long_edge(image.shape[-2], image.shape[-1], long_edge))
