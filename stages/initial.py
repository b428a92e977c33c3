"""How the coarsest stage starts: the first stage's initial image.

- ``content``: the photo (Gatys et al. 2016 start from noise; jcjohnson's ``-init image``);
- ``noise``: uniform noise in 0–1 (drawn by the cascade from the seed);
- ``style``: the first painting, resized to the photo;
- ``style-stats``: the photo recoloured with the painting's colour mean and covariance
  (``stages.color.match_color``, Gatys et al. 2017, Sec. 3.1): the painting's palette, the
  photo's layout;
- ``style-mean+detail``: the painting's mean colour plus the photo's detail above a low-pass
  of :data:`DETAIL_OCTAVES` octaves, as STROTSS starts (Kolkin et al. 2019, Sec. 4: the
  painting's mean colour plus the photo's high-frequency Laplacian levels).

Every start is then optimized; what each does to colour and structure is measured in
``benchmarks/style_losses.py`` (``--inits``).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from .color import match_color
from .resample import resize

DETAIL_OCTAVES = 3
"""Octaves below the photo's resolution that ``style-mean+detail`` removes (a low-pass at
1/8 of its size): what stays is edges and textures, not colour or shading."""


def initial_image(init: str, content: Tensor, painting: Tensor) -> Tensor | Literal["noise"]:
    """The first stage's start for a preset's ``init`` (``vocabulary.INITS``).

    Args:
        init: one of ``content``, ``noise``, ``style``, ``style-stats``,
            ``style-mean+detail``.
        content: ``(1, 3, H, W)`` the photo in 0–1.
        painting: ``(1, 3, h, w)`` the first painting in 0–1.

    Returns:
        ``(1, 3, H', W')`` in 0–1 (any size: the cascade resizes it to the stage), or
        ``"noise"``.

    Raises:
        ValueError: an unknown ``init``.
    """
    if init == "noise":
        return "noise"
    if init == "content":
        return content
    if init == "style":
        return painting
    if init == "style-stats":
        return match_color(content, painting)
    if init == "style-mean+detail":
        h, w = content.shape[-2:]
        scale = 2**DETAIL_OCTAVES
        low = resize(resize(content, (max(1, h // scale), max(1, w // scale))), (h, w))
        mean = painting.mean(dim=(2, 3), keepdim=True).to(content)
        return (mean + content - low).clamp(0.0, 1.0)
    raise ValueError(f"unknown init {init!r}")
