"""Color preservation (Gatys, Bethge, Hertzmann & Shechtman 2017, "Preserving Color in Neural
Artistic Style Transfer", and Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style
Transfer", Sec. 3).

Modes:

- ``none``: the render takes the painting's colors.
- ``luminance``: after optimization, keep the render's luminance and put back the content's
  chroma (:func:`keep_content_chroma`).
- ``histogram``: before optimization, recolor each style image so that its color mean and
  covariance match the content's (:func:`match_color`).
- ``luminance-only``: optimize on luminance alone, the style's luminance mean and standard
  deviation matched to the content's (:func:`match_luminance`), then recombine with the
  content's chroma (:func:`keep_content_chroma`).

Color space: full-range YCbCr with BT.601 coefficients (the JPEG/JFIF form) on the
gamma-encoded sRGB values. Gatys et al. 2017 use YIQ, which has the same luminance row; YCbCr is
linear and exactly invertible, so with ``luminance`` the output's chroma is the content's up to
clipping into 0–1. CIELAB would separate lightness from color more perceptually, but it is
non-linear and its round trip leaves the sRGB gamut for saturated colors more often.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .resample import resize
from .vocabulary import COLOR_MODES

SHARED_TARGET_MODES = ("none", "luminance")
"""Modes whose style targets do not depend on the content image (``histogram`` and
``luminance-only`` adapt the paintings to each photo), so a batch can share them."""

_RGB_TO_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
_CHROMA_OFFSET = torch.tensor([0.0, 0.5, 0.5])


def _apply(matrix: Tensor, image: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(image), image)


def rgb_to_ycbcr(image: Tensor) -> Tensor:
    """sRGB to full-range YCbCr (ITU-T T.871, BT.601 coefficients).

    Args:
        image: ``(B, 3, H, W)`` sRGB in 0–1.

    Returns:
        ``(B, 3, H, W)``: Y in 0–1, Cb and Cr in 0–1 centred on 0.5.
    """
    return _apply(_RGB_TO_YCBCR, image) + _CHROMA_OFFSET.to(image).view(1, 3, 1, 1)


def ycbcr_to_rgb(image: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`; not clamped (out-of-gamut values fall outside 0–1).

    Args:
        image: ``(B, 3, H, W)`` Y, Cb, Cr in 0–1.

    Returns:
        ``(B, 3, H, W)`` sRGB.
    """
    centred = image - _CHROMA_OFFSET.to(image).view(1, 3, 1, 1)
    return _apply(torch.linalg.inv(_RGB_TO_YCBCR.double()).float(), centred)


def luminance(image: Tensor) -> Tensor:
    """BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``.

    Args:
        image: ``(B, 3, H, W)`` sRGB in 0–1.

    Returns:
        ``(B, 1, H, W)`` in 0–1.
    """
    return rgb_to_ycbcr(image)[:, :1]


def keep_content_chroma(stylized: Tensor, content: Tensor) -> Tensor:
    """The stylized image's luminance with the content's chroma (Cb, Cr), clamped into 0–1.

    Args:
        stylized: ``(B, 3, H, W)`` sRGB in 0–1.
        content: ``(B, 3, H', W')`` sRGB in 0–1; resized to ``H, W`` by the caller.

    Returns:
        ``(B, 3, H, W)`` sRGB in 0–1.

    Raises:
        ValueError: the two images differ in size.
    """
    if stylized.shape != content.shape:
        raise ValueError(f"sizes differ: {tuple(stylized.shape)} vs {tuple(content.shape)}")
    ycbcr = torch.cat([luminance(stylized), rgb_to_ycbcr(content)[:, 1:]], dim=1)
    return ycbcr_to_rgb(ycbcr).clamp(0.0, 1.0)


def _mean_cov(image: Tensor) -> tuple[Tensor, Tensor]:
    pixels = image[0].reshape(image.shape[1], -1).double()
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    return mean, centred @ centred.T / pixels.shape[1]


def _sqrtm(cov: Tensor, power: float, floor: float) -> Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(floor).pow(power)) @ vectors.T


COV_FLOOR = 1e-6
"""Smallest eigenvalue of a color covariance used when inverting it (0–1 units squared). A
grayscale or flat image has a singular covariance; the floor keeps its inverse square root
finite, so such an image is recolored by shifting its mean and scaling its one axis of
variation."""


def match_color(style: Tensor, content: Tensor) -> Tensor:
    """Linear color transfer: recolor ``style`` so that its color mean and covariance match
    ``content``'s (Gatys et al. 2017, "Controlling Perceptual Factors", Sec. 3.1, Eq. 6).

    ``x' = A (x − μ_s) + μ_c`` with the symmetric (eigen/PCA) form
    ``A = Σ_c^½ Σ_s^-½`` (the image-analogies color matching of Hertzmann et al. 2001, which
    Gatys et al. list beside the Cholesky form); it maps the style's colors without the
    rotation that the Cholesky factor's channel ordering introduces.

    Args:
        style: ``(1, 3, H, W)`` sRGB in 0–1.
        content: ``(1, 3, H', W')`` sRGB in 0–1 (any size).

    Returns:
        ``(1, 3, H, W)`` in 0–1 (clamped; clamping moves the statistics only where the
        transfer leaves the gamut).
    """
    mean_s, cov_s = _mean_cov(style)
    mean_c, cov_c = _mean_cov(content)
    transform = _sqrtm(cov_c, 0.5, 0.0) @ _sqrtm(cov_s, -0.5, COV_FLOOR)
    pixels = style[0].reshape(3, -1).double()
    out = transform @ (pixels - mean_s) + mean_c
    return out.reshape(style.shape).to(style.dtype).clamp(0.0, 1.0)


def match_luminance(style: Tensor, content: Tensor) -> Tensor:
    """The style's luminance, its mean and standard deviation matched to the content's, as a
    gray RGB image (Gatys et al. 2017, "Controlling Perceptual Factors", Sec. 3.2:
    ``L' = σ_c / σ_s · (L_s − μ_s) + μ_c``).

    Args:
        style: ``(1, 3, H, W)`` sRGB in 0–1.
        content: ``(1, 3, H', W')`` sRGB in 0–1.

    Returns:
        ``(1, 3, H, W)`` gray (three equal channels) in 0–1.
    """
    lum_s, lum_c = luminance(style), luminance(content)
    std_s = lum_s.std().clamp_min(COV_FLOOR**0.5)
    matched = (lum_s - lum_s.mean()) * (lum_c.std() / std_s) + lum_c.mean()
    return gray(matched.clamp(0.0, 1.0))


def gray(lum: Tensor) -> Tensor:
    """``(B, 1, H, W)`` luminance → ``(B, 3, H, W)`` gray RGB, the input the network expects."""
    return lum.expand(-1, 3, -1, -1).contiguous()


def color_inputs(mode: str, content: Tensor, styles: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """The images the optimization sees under a color mode.

    Args:
        mode: one of :data:`COLOR_MODES`.
        content: ``(1, 3, H, W)`` sRGB in 0–1.
        styles: ``(1, 3, H_i, W_i)`` sRGB in 0–1 each.

    Returns:
        ``(content, styles)``: unchanged for ``none`` and ``luminance``; styles recolored by
        :func:`match_color` for ``histogram``; gray content and :func:`match_luminance`
        styles for ``luminance-only``.

    Raises:
        ValueError: unknown mode.
    """
    if mode in SHARED_TARGET_MODES:
        return content, styles
    if mode == "histogram":
        return content, [match_color(style, content) for style in styles]
    if mode == "luminance-only":
        return gray(luminance(content)), [match_luminance(style, content) for style in styles]
    raise ValueError(f"color mode must be one of {COLOR_MODES}; got {mode!r}")


def color_output(mode: str, image: Tensor, content: Tensor) -> Tensor:
    """The render as the user sees it under a color mode: for ``luminance`` and
    ``luminance-only`` the image's luminance with the content's chroma
    (:func:`keep_content_chroma`), otherwise ``image`` itself.

    Args:
        mode: one of :data:`COLOR_MODES`.
        image: ``(1, 3, H, W)`` optimized image in 0–1.
        content: ``(1, 3, H, W)`` sRGB content in 0–1 at the same size (original colors).
    """
    if mode in ("luminance", "luminance-only"):
        return keep_content_chroma(image, content)
    return image


def regional_output(
    mode: str, image: Tensor, content: Tensor, regions: Sequence[tuple[str, Tensor]]
) -> Tensor:
    """:func:`color_output` with modes set per region: the render's ``mode`` everywhere, then
    each region's own mode under its mask (``out + m · (own − out)``; a later region over an
    earlier one where they overlap).

    Args:
        mode: the render's mode, one of :data:`COLOR_MODES`.
        image: ``(1, 3, H, W)`` optimized image in 0–1.
        content: ``(1, 3, H, W)`` sRGB content in 0–1 at the same size.
        regions: ``(mode, mask)`` pairs, each mask ``(1, 1, h, w)`` in 0–1 at any size.
    """
    out = color_output(mode, image, content)
    for own, mask in regions:
        m = resize(mask.to(image), tuple(image.shape[-2:])).clamp(0.0, 1.0)
        out = out + m * (color_output(own, image, content) - out)
    return out
