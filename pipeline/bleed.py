"""A print's bleed on the pixels: the photo extended to the output's trim + bleed
(:func:`extend_photo`), and the guide image that shows the trim and the safe margin
(:func:`guide_image`). The sizes come from :func:`stylecascade.printsize.with_bleed`."""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from .errors import ArgumentError
from .printsize import BleedPlan, mm_to_px
from .stages.resample import resize

GUIDE_LONG_EDGE = 2048
"""Largest long edge of the guide image (px): it is for looking at, not for printing."""
TRIM_COLOUR = (255, 0, 64)
SAFE_COLOUR = (0, 200, 255)
BLEED_SHADE = 0.45
"""Brightness kept in the bleed area of the guide (0–1): what the lab cuts off is dimmed."""


def extend_photo(photo: Tensor, plan: BleedPlan) -> Tensor:
    """The photo as the output shows it: cropped to ``plan.box`` (a wider crop than the trim
    where the photo has the pixels), reflected at its edges where it has none
    (``torch.nn.functional.pad``, ``reflect``: the edge pixel is not repeated), resized to the
    output's size.

    Args:
        photo: ``(1, 3, H, W)`` float in 0–1, ``(H, W) == plan.photo_hw``.
        plan: the print (:func:`~stylecascade.printsize.with_bleed`).

    Returns:
        ``(1, 3, H', W')`` float in 0–1, ``(H', W') == plan.size_px`` (bicubic, clamped).

    Raises:
        ArgumentError: ``photo`` is not the size the plan was made for.
    """
    if tuple(photo.shape[-2:]) != plan.photo_hw:
        raise ArgumentError(
            "bleed", f"{{}}: planned for a {plan.photo_hw} px photo, got {tuple(photo.shape[-2:])}"
        )
    top, left, bottom, right = plan.box
    height, width = plan.photo_hw
    inside = photo[..., max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    pad_top, pad_bottom, pad_left, pad_right = plan.reflected
    if any(plan.reflected):
        inside = F.pad(inside, (pad_left, pad_right, pad_top, pad_bottom), mode="reflect")
    return resize(inside, plan.size_px).clamp(0, 1)


def guide_image(image: np.ndarray, bleed_px: int, safe_mm: float | None, dpi: float) -> Image.Image:
    """A picture for checking a print: the bleed dimmed, the trim line (red) and the safe
    margin's line (cyan, ``safe_mm`` inside the trim), at most 2048 px on the long edge.

    Args:
        image: ``(H, W, 3)`` uint8 sRGB, the output's pixels (trim + bleed).
        bleed_px: the bleed on every side in px (0: the whole image is the trim).
        safe_mm: the safe margin inside the trim, mm, or ``None`` (the trim line only).
        dpi: dots per inch of ``image``.

    Returns:
        An RGB PIL image (downscaled by a whole factor where larger than 2048 px).

    Raises:
        ArgumentError: the safe margin leaves nothing inside the trim.
    """
    height, width = image.shape[:2]
    safe_px = bleed_px + (0 if safe_mm is None else mm_to_px(safe_mm, dpi))
    if 2 * safe_px >= min(height, width):
        raise ArgumentError("safe_margin", f"{{}} {safe_mm:g} mm leaves nothing inside the trim")
    factor = max(1, math.ceil(max(height, width) / GUIDE_LONG_EDGE))
    shaded = image.astype(np.float32)
    mask = np.ones((height, width), bool)
    mask[bleed_px : height - bleed_px, bleed_px : width - bleed_px] = False
    shaded[mask] *= BLEED_SHADE
    guide = Image.fromarray(shaded.round().astype(np.uint8), "RGB").reduce(factor)
    draw = ImageDraw.Draw(guide)
    line = max(1, round(min(guide.size) / 400))
    for inset, colour in ((bleed_px, TRIM_COLOUR), (safe_px, SAFE_COLOUR)):
        if inset or colour == TRIM_COLOUR:
            right, bottom = (width - inset) / factor - 1, (height - inset) / factor - 1
            box = (inset / factor, inset / factor, right, bottom)
            draw.rectangle(box, outline=colour, width=line)
    return guide
