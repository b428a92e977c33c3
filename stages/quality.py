"""Image-quality measures for tests and benchmarks: speckle density and sliced Wasserstein
distances between point sets (pixel colours, VGG feature vectors).

- :func:`speckle_density` (ours) counts isolated outlier pixels, the "salt and pepper" that an
  optimization can leave behind: a pixel is a speckle when its luminance differs from the median
  of its 3×3 neighbourhood by more than a threshold (the impulse test of switching median
  filters). Smooth shading and texture whose contrast stays below the threshold count nothing.
- :func:`sliced_wasserstein` compares two distributions of points by the Wasserstein-2 distance
  of their 1-D projections, averaged over random directions (Rabin, Peyré, Delon & Bernot 2011,
  "Wasserstein Barycenter and its Application to Texture Mixing", SSVM); Heitz, Vanhoey,
  Chambon & Belcour (2021, "A Sliced Wasserstein Loss for Neural Texture Synthesis", CVPR)
  use it on VGG feature vectors as a style statistic that sees more than the Gram matrix.
  :func:`pixel_points` and :func:`feature_points` turn images and activations into point sets.

:func:`luminance` is :func:`stylecascade.stages.color.luminance` (BT.601 luma), re-exported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .color import luminance

__all__ = [
    "CHUNK_PIXELS",
    "MAX_POINTS",
    "feature_points",
    "luminance",
    "pixel_points",
    "sliced_wasserstein",
    "speckle_density",
]

CHUNK_PIXELS = 2**18
"""Pixels (batch × rows × width) whose 3×3 neighbourhoods :func:`speckle_density` unfolds at
once: 9 × 2¹⁸ float32 values, 9 MiB, so that a 4096×4096 image needs tens of MiB, not GiB."""

MAX_POINTS = 2**16
"""Default most points :func:`feature_points` and :func:`pixel_points` return (a random subset
beyond it): 65 536 positions of 512 channels are 128 MiB of float32."""


def _check_image(image: Tensor) -> None:
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W); got {tuple(image.shape)}")
    if min(image.shape[-2:]) < 2:
        raise ValueError(f"image must be at least 2×2 px; got {tuple(image.shape)}")


def _reflected_rows(start: int, stop: int, height: int, device: torch.device) -> Tensor:
    """Row indices ``start − 1 … stop`` with −1 and ``height`` reflected (as ``F.pad``'s
    ``reflect``: row −1 is row 1, row ``height`` is row ``height − 2``)."""
    rows = torch.arange(start - 1, stop + 1, device=device).abs()
    return torch.where(rows >= height, 2 * (height - 1) - rows, rows)


def _count_speckles(lum: Tensor, threshold: float) -> int:
    """Speckles in the inner rows of ``lum``, ``(B, 1, R + 2, W)``: one row above and below as
    context, reflect-padded by one column here."""
    padded = F.pad(lum, (1, 1, 0, 0), mode="reflect")
    windows = padded.unfold(2, 3, 1).unfold(3, 3, 1)  # (B, 1, R, W, 3, 3), a view
    median = windows.reshape(*windows.shape[:4], 9).median(dim=-1).values
    return int(((lum[:, :, 1:-1] - median).abs() > threshold).sum())


def speckle_density(image: Tensor, threshold: float = 0.25) -> float:
    """Fraction of pixels whose luminance differs from the median of their 3×3 neighbourhood
    (the pixel included) by more than ``threshold``.

    A lone bright pixel on a dark ground counts once; its neighbours do not (their
    neighbourhoods hold one bright value of nine, so their median is dark). Borders are
    reflect-padded. Rows are processed in chunks of about :data:`CHUNK_PIXELS` pixels, so the
    memory used beyond ``image`` stays small (tens of MiB) at any size.

    Args:
        image: ``(B, 3, H, W)`` RGB in 0–1, ``H, W ≥ 2``, any float dtype and device.
        threshold: in luminance units (0–1), ≥ 0; a pixel counts when its difference is
            strictly greater.

    Returns:
        Speckles over all ``B·H·W`` pixels, in 0–1.

    Raises:
        ValueError: ``image`` is not ``(B, 3, H, W)`` with ``H, W ≥ 2``; ``threshold`` is
            negative or not finite.
    """
    _check_image(image)
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be finite and ≥ 0; got {threshold}")
    batch, _, height, width = image.shape
    step = max(1, CHUNK_PIXELS // (batch * width))
    count = 0
    for start in range(0, height, step):
        rows = _reflected_rows(start, min(start + step, height), height, image.device)
        count += _count_speckles(luminance(image.index_select(2, rows).float()), threshold)
    return count / (batch * height * width)


def _quantile_gaps(a: Tensor, b: Tensor) -> Tensor:
    """``∫₀¹ (Q_a(t) − Q_b(t))² dt`` per column, the squared Wasserstein-2 distance between the
    empirical distributions of the columns of ``a`` ``(N, P)`` and ``b`` ``(M, P)``, both sorted
    along dim 0.

    ``Q_a`` is the step quantile function of ``N`` equally weighted values,
    ``Q_a(t) = a[⌈t·N⌉ − 1]``. The integral is exact: it sums over the intervals between the
    steps of both functions, ``{i/N} ∪ {j/M}``, at most ``N + M − 1`` of them, kept as
    integers in units of ``1/(N·M)``. For ``N = M`` it is the mean squared difference of the
    sorted values.
    """
    n, m = a.shape[0], b.shape[0]
    steps = torch.cat(
        [torch.arange(1, n + 1, device=a.device) * m, torch.arange(1, m + 1, device=a.device) * n]
    )
    ends = torch.unique(steps)  # sorted; the last is n·m
    starts = torch.cat([ends.new_zeros(1), ends[:-1]])
    widths = (ends - starts).to(a.dtype) / (n * m)
    return ((a[starts // m] - b[starts // n]).pow(2) * widths[:, None]).sum(dim=0)


def sliced_wasserstein(
    a: Tensor, b: Tensor, projections: int = 128, generator: torch.Generator | None = None
) -> float:
    """Sliced Wasserstein-2 distance between two point sets (Rabin et al. 2011, Sec. 3):
    ``SW(a, b) = sqrt(mean_θ W₂²(θ·a, θ·b))`` over ``projections`` random unit directions ``θ``.

    Each point weighs ``1/N`` (``1/M``). For ``N = M`` the 1-D distance is the mean squared
    difference of the sorted projections; for ``N ≠ M`` it is the exact integral of the squared
    difference of the two quantile functions (:func:`_quantile_gaps`), with no resampling, so
    a set and the same set repeated are at distance 0. In float32.

    Args:
        a: ``(N, D)`` points, e.g. :func:`pixel_points` (0–1 colours) or :func:`feature_points`.
        b: ``(M, D)`` points on the same device.
        projections: number of directions, ≥ 1.
        generator: draws the directions (normal vectors, normalized); the same seed gives the
            same directions, hence the same value. ``None``: torch's global generator.

    Returns:
        The distance, ≥ 0, in the units of the points.

    Raises:
        ValueError: ``a`` or ``b`` is not 2-d or has no points, their ``D`` differ, or
            ``projections < 1``.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"points must be (N, D) and (M, D); got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if min(a.shape[0], b.shape[0]) < 1:
        raise ValueError(f"point sets must not be empty; got {tuple(a.shape)}, {tuple(b.shape)}")
    if projections < 1:
        raise ValueError(f"projections must be ≥ 1; got {projections}")
    device = None if generator is None else generator.device
    directions = torch.randn(a.shape[1], projections, generator=generator, device=device)
    directions = (directions / directions.norm(dim=0)).to(a.device)
    projected_a = (a.float() @ directions).sort(dim=0).values
    projected_b = (b.float() @ directions).sort(dim=0).values
    return _quantile_gaps(projected_a, projected_b).mean().sqrt().item()


def feature_points(
    features: Tensor, max_points: int | None = MAX_POINTS, generator: torch.Generator | None = None
) -> Tensor:
    """The feature vectors of one image's positions as a point set.

    Args:
        features: ``(1, C, H, W)`` activations (or pixels).
        max_points: most points to return, ≥ 1; with more positions, a random subset of
            ``max_points`` distinct positions (drawn by ``generator``) is returned. ``None``:
            every position.
        generator: draws the subset; ``None``: torch's global generator.

    Returns:
        ``(min(H·W, max_points), C)``, same dtype and device; without subsampling, row
        ``h·W + w`` is position ``(h, w)`` (a view of ``features``).

    Raises:
        ValueError: ``features`` is not ``(1, C, H, W)``, or ``max_points < 1``.
    """
    if features.dim() != 4 or features.shape[0] != 1:
        raise ValueError(f"features must be (1, C, H, W); got {tuple(features.shape)}")
    if max_points is not None and max_points < 1:
        raise ValueError(f"max_points must be ≥ 1; got {max_points}")
    points = features[0].flatten(1).T
    if max_points is None or points.shape[0] <= max_points:
        return points
    device = None if generator is None else generator.device
    chosen = torch.randperm(points.shape[0], generator=generator, device=device)[:max_points]
    return points[chosen.to(features.device)]


def pixel_points(
    image: Tensor, max_points: int | None = MAX_POINTS, generator: torch.Generator | None = None
) -> Tensor:
    """The colours of an image's pixels as a point set (:func:`feature_points`).

    Args:
        image: ``(1, 3, H, W)`` RGB in 0–1.
        max_points, generator: as for :func:`feature_points`.

    Returns:
        ``(min(H·W, max_points), 3)`` RGB in 0–1.

    Raises:
        ValueError: ``image`` is not ``(1, 3, H, W)``, or ``max_points < 1``.
    """
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image must be (1, 3, H, W); got {tuple(image.shape)}")
    return feature_points(image, max_points, generator)
