"""What a job does for a print lab, beside the writer: the photo extended for a bleed before
the render (:func:`prepare_print`), the print's entry in the manifest and in the file's text
(:func:`print_entry`, :func:`print_text`), and the safe-margin guide (:func:`write_guide`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from .bleed import extend_photo, guide_image
from .errors import ArgumentError
from .files import atomic_write, reporting_write_errors
from .output import OutputOptions, quantize
from .preset import Preset
from .printsize import (
    DEFAULT_DPI,
    MAX_SAFE_MARGIN_MM,
    BleedPlan,
    mm_to_px,
    parse_length,
    with_bleed,
)
from .profiles import output_profile
from .stages.resample import fit_long_edge


def guide_path(output: Path) -> Path:
    """``OUT.guide.png`` beside ``OUT.tif``: the safe-margin guide."""
    return Path(output).with_name(Path(output).stem + ".guide.png")


def prepare_print(
    photo: Tensor, options: OutputOptions, preset: Preset
) -> tuple[BleedPlan | None, Tensor]:
    """The photo a print with bleed renders: cropped to the trim's aspect ratio and extended by
    the bleed (:func:`~stylecascade.bleed.extend_photo`), at the output's size.

    Args:
        photo: ``(1, 3, H, W)`` float in 0–1.
        options: the output's options; nothing happens without ``bleed``.
        preset: the resolved preset; its last stage must be the plan's long edge.

    Returns:
        ``(plan, photo)``: ``(None, photo)`` without a bleed.

    Raises:
        ArgumentError: a bad bleed; masks with a bleed (they would no longer line up); a
            render whose final size is not the print's with bleed (the caller must size it
            with ``printsize.final_long_edge(..., bleed)``); a safe margin that leaves nothing
            inside the trim.
    """
    if options.bleed is None or options.print_size is None:
        final_hw = fit_long_edge(*photo.shape[-2:], preset.stages[-1].long_edge)
        _check_safe_margin(options, final_hw, 0)
        return None, photo
    plan = with_bleed(options.print_size, options.dpi, options.bleed, tuple(photo.shape[-2:]))
    if any(s.mask or s.style_mask for s in preset.styles):
        raise ArgumentError("bleed", "{} cannot be used with {} yet", "masks")
    final = preset.stages[-1].long_edge
    if final != max(plan.size_px):
        raise ArgumentError(
            "bleed",
            f"{{}}: the render's final long edge is {final} px, the print with bleed needs "
            f"{max(plan.size_px)} px (printsize.final_long_edge(..., bleed))",
        )
    _check_safe_margin(options, plan.size_px, plan.bleed_px)
    return plan, extend_photo(photo, plan)


def _check_safe_margin(options: OutputOptions, size_hw: tuple[int, int], bleed_px: int) -> None:
    """Raises: ArgumentError: the safe margin leaves nothing inside the trim of an output of
    ``size_hw`` px with ``bleed_px`` of bleed."""
    if options.safe_margin is None:
        return
    safe_mm = parse_length(options.safe_margin, "safe_margin", MAX_SAFE_MARGIN_MM)
    inset = bleed_px + mm_to_px(safe_mm, options.dpi or DEFAULT_DPI)
    if 2 * inset >= min(size_hw):
        raise ArgumentError("safe_margin", f"{{}} {safe_mm:g} mm leaves nothing inside the trim")


def print_entry(options: OutputOptions, plan: BleedPlan | None) -> dict[str, Any]:
    """The manifest's ``print``: the file's encoding (bit depth, DPI, profile, intent,
    black-point compensation, TIFF compression) and, with a bleed, the trim and bleed
    (:meth:`~stylecascade.printsize.BleedPlan.manifest`)."""
    profile = output_profile(options.profile)
    entry: dict[str, Any] = {
        "bit_depth": options.bit_depth,
        "dpi": options.dpi,
        "profile": profile.name,
        "profile_description": profile.description,
        "intent": options.intent,
        "black_point_compensation": options.black_point_compensation,
        "compression": options.compression,
        "jpeg_quality": options.jpeg_quality,
        "print_size": options.print_size,
        "safe_margin": options.safe_margin,
    }
    return {**entry, **(plan.manifest() if plan else {})}


def print_text(plan: BleedPlan | None) -> dict[str, str]:
    """The trim and bleed as the file's text (PNG ``iTXt``, TIFF ``ImageDescription``):
    ``stylecascade:trim`` ``300x400mm 3543x4724px``, ``stylecascade:bleed`` ``3mm 35px``."""
    if plan is None:
        return {}
    (th, tw), (ph, pw) = plan.trim_mm, plan.trim_px
    return {
        "stylecascade:trim": f"{tw:g}x{th:g}mm {pw}x{ph}px",
        "stylecascade:bleed": f"{plan.bleed_mm:g}mm {plan.bleed_px}px",
    }


def write_guide(
    image: Tensor, output: Path, options: OutputOptions, plan: BleedPlan | None
) -> None:
    """Write ``OUT.guide.png`` (:func:`~stylecascade.bleed.guide_image`) with a safe margin.

    Args:
        image: ``(1, 3, H, W)`` sRGB float in 0–1, the render as written.

    Raises:
        StyleCascadeError: it cannot be written.
    """
    if options.safe_margin is None:
        return
    safe_mm = parse_length(options.safe_margin, "safe_margin", MAX_SAFE_MARGIN_MM)
    dpi = options.dpi or DEFAULT_DPI
    guide = guide_image(quantize(image), plan.bleed_px if plan else 0, safe_mm, dpi)
    shown = dpi * guide.width / image.shape[-1]  # the guide may be downscaled
    path = guide_path(output)
    with reporting_write_errors(path):
        atomic_write(path, lambda tmp: guide.save(tmp, "PNG", dpi=(shown, shown)))
