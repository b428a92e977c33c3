"""Print sizes: ``30x40cm`` at a DPI → the final stage's long edge in px; a bleed beyond the
trim (:func:`with_bleed`: the output's size and how the photo is extended to fill it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .choices import MAX_DPI, MIN_DPI
from .errors import ArgumentError

UNITS_PER_INCH = {"cm": 2.54, "mm": 25.4, "in": 1.0}
MAX_LONG_EDGE = 32768
"""Largest final long edge accepted (px). 32768 px is a 2.7 m print at 300 DPI; beyond it every
stage is tiled for hours, so a bigger number is almost surely a typo."""
MIN_LONG_EDGE = 64
DEFAULT_DPI = 300.0
"""DPI of ``--print-size`` without ``--dpi``, and the DPI written into every output file
without ``--dpi`` (PNG pHYs, TIFF and JPEG resolution tags)."""

MAX_BLEED_MM = 25.0
"""Largest ``--bleed`` (mm). Labs ask 2–5 mm; a centimetre or two is a typo or a poster hung
around a frame."""
MAX_SAFE_MARGIN_MM = 50.0
"""Largest ``--safe-margin`` (mm); labs ask 3–10 mm inside the trim."""
MM_PER_INCH = 25.4

_LENGTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(cm|mm|in)?\s*$", re.I)
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*(cm|mm|in)\s*$", re.I)


def check_dpi(dpi: float) -> None:
    """The one rule for ``--dpi``: :data:`~stylecascade.choices.MIN_DPI` …
    :data:`~stylecascade.choices.MAX_DPI` (the record's bounds of ``dpi``).

    Raises:
        UsageError: anything else (under 1, e.g. 1e-320 that a file would store as 0; inf, nan).
    """
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise ArgumentError("dpi", f"{{}} must be {MIN_DPI:g} … {MAX_DPI:g}; got {dpi}")


def mm_to_px(mm: float, dpi: float) -> int:
    """``mm`` at ``dpi`` in whole px, rounded to the nearest (3 mm at 300 DPI: 35.4 → 35 px)."""
    return round(mm / MM_PER_INCH * dpi)


def parse_length(text: str | float, field: str, largest_mm: float) -> float:
    """A length such as ``3mm``, ``0.3cm`` or ``0.125in`` (a bare number is mm) in mm.

    Raises:
        ArgumentError (naming ``field``): unreadable, ≤ 0 or over ``largest_mm``.
    """
    match = _LENGTH.match(str(text))
    if not match:
        raise ArgumentError(field, f"{{}} {text!r}: write a length such as 3mm, 0.3cm or 0.125in")
    mm = round(float(match[1]) * MM_PER_INCH / UNITS_PER_INCH[(match[2] or "mm").lower()], 6)
    if not 0 < mm <= largest_mm:
        raise ArgumentError(field, f"{{}} must be > 0 and at most {largest_mm:g} mm; got {text}")
    return mm


def print_size_mm(print_size: str) -> tuple[float, float]:
    """``(width, height)`` in mm of ``WxH`` with a unit, as written (``30x40cm`` → 300, 400).

    Raises:
        ArgumentError: unreadable, or a side ≤ 0.
    """
    match = _PATTERN.match(print_size)
    if not match:
        raise ArgumentError(
            "print_size",
            f"{{}} {print_size!r}: write it as WIDTHxHEIGHT with a unit, "
            f"e.g. 30x40cm, 8x10in or 210x297mm",
        )
    per_mm = MM_PER_INCH / UNITS_PER_INCH[match[3].lower()]
    width, height = round(float(match[1]) * per_mm, 6), round(float(match[2]) * per_mm, 6)
    if min(width, height) <= 0:
        raise ArgumentError("print_size", f"{{}} {print_size!r}: both sides must be > 0")
    return width, height


def print_long_edge(print_size: str, dpi: float) -> int:
    """The long edge in px of a print of ``print_size`` at ``dpi``.

    The print's aspect ratio is not forced on the image: the image keeps the content's aspect
    ratio, and its long edge fills the print's long edge.

    Args:
        print_size: ``WxH`` with a unit, e.g. ``30x40cm``, ``10x15 cm``, ``8x10in``, ``210x297mm``.
        dpi: dots per inch, > 0.

    Returns:
        ``round(long side in inches × dpi)`` px, e.g. ``15 cm at 300 DPI → 1772``.

    Raises:
        UsageError: an unreadable size, a DPI ≤ 0, or a result outside 64–32768 px.
    """
    width, height = print_size_mm(print_size)
    check_dpi(dpi)
    long_edge = mm_to_px(max(width, height), dpi)
    _check_long_edge(long_edge, "print_size", print_size, dpi)
    return long_edge


def _check_long_edge(long_edge: int, field: str, what: str, dpi: float) -> None:
    """Raises: ArgumentError (naming ``field``): ``long_edge`` outside 64–32768 px."""
    if not MIN_LONG_EDGE <= long_edge <= MAX_LONG_EDGE:
        raise ArgumentError(
            field,
            f"{{}} {what} at {dpi:g} DPI is {long_edge} px on the long edge; "
            f"stylecascade renders {MIN_LONG_EDGE}–{MAX_LONG_EDGE} px",
        )


def final_long_edge(
    size: int | None, print_size: str | None, dpi: float | None, bleed: str | None = None
) -> int | None:
    """The final stage's long edge from ``--size`` or ``--print-size``/``--dpi``/``--bleed``.

    Args:
        size: long edge in px, or ``None``.
        print_size: e.g. ``30x40cm``, or ``None``.
        dpi: dots per inch for ``print_size`` (default 300).
        bleed: e.g. ``3mm`` beyond the trim on every side (needs ``print_size``): the long
            edge is then the trim's plus twice the bleed (:func:`with_bleed`).

    Returns:
        The long edge in px, or ``None`` to keep the preset's.

    Raises:
        UsageError: both ``size`` and ``print_size``, a bleed without ``print_size``, or a
            size outside 64–32768 px.
    """
    if size is not None and print_size is not None:
        raise ArgumentError("size", "give {} or {}, not both", "print_size")
    if bleed is not None and print_size is None:
        raise ArgumentError("bleed", "{} needs {}", "print_size")
    if print_size is not None:
        dpi = DEFAULT_DPI if dpi is None else dpi
        edge = print_long_edge(print_size, dpi)
        if bleed is not None:
            edge += 2 * mm_to_px(parse_length(bleed, "bleed", MAX_BLEED_MM), dpi)
            _check_long_edge(edge, "bleed", f"{print_size} with {bleed} of bleed", dpi)
        return edge
    if size is not None and not MIN_LONG_EDGE <= size <= MAX_LONG_EDGE:
        raise ArgumentError("size", f"{{}} must be {MIN_LONG_EDGE}–{MAX_LONG_EDGE} px; got {size}")
    return size


@dataclass(frozen=True)
class BleedPlan:
    """A print with bleed: the output covers the trim plus ``bleed_px`` on every side.

    Sizes are ``(H, W)``, oriented as the photo (a landscape photo gets a landscape print).

    Attributes:
        trim_mm: the trim (the print's size) in mm.
        bleed_mm: the bleed beyond the trim on every side, mm (0: none).
        dpi: dots per inch.
        trim_px: the trim in px at ``dpi`` (each side rounded to the nearest px).
        bleed_px: the bleed in px at ``dpi`` (rounded to the nearest px).
        box: ``(top, left, bottom, right)`` in the photo's px of what the output shows: the
            largest centred crop of the photo in the trim's aspect ratio, widened by the bleed.
            Parts beyond the photo (negative, or past its height or width) are filled by
            reflecting the photo at its edge.
        photo_hw: the photo's ``(H, W)`` in px.
    """

    trim_mm: tuple[float, float]
    bleed_mm: float
    dpi: float
    trim_px: tuple[int, int]
    bleed_px: int
    box: tuple[int, int, int, int]
    photo_hw: tuple[int, int]

    @property
    def size_px(self) -> tuple[int, int]:
        """The output's ``(H, W)`` in px: the trim plus twice the bleed."""
        return self.trim_px[0] + 2 * self.bleed_px, self.trim_px[1] + 2 * self.bleed_px

    @property
    def reflected(self) -> tuple[int, int, int, int]:
        """Photo px filled by reflection beyond each edge: ``(top, bottom, left, right)``."""
        top, left, bottom, right = self.box
        height, width = self.photo_hw
        return max(0, -top), max(0, bottom - height), max(0, -left), max(0, right - width)

    @property
    def extension(self) -> str:
        """How the bleed was filled: ``crop`` (the photo had the pixels), ``reflection``
        (none to spare: the photo is reflected at its edges) or ``crop and reflection``."""
        top, left, bottom, right = self.box
        height, width = self.photo_hw
        spare = top > 0 or left > 0 or bottom < height or right < width
        if not any(self.reflected):
            return "crop"
        return "crop and reflection" if spare else "reflection"

    def manifest(self) -> dict[str, object]:
        """The plan as the manifest says it (sizes ``[W, H]``)."""
        (th, tw), (h, w) = self.trim_mm, self.size_px
        return {
            "trim_mm": [round(tw, 2), round(th, 2)],
            "bleed_mm": round(self.bleed_mm, 2),
            "dpi": self.dpi,
            "trim_px": [self.trim_px[1], self.trim_px[0]],
            "bleed_px": self.bleed_px,
            "size_px": [w, h],
            "extension": self.extension,
            "photo_box": list(self.box),
        }


def with_bleed(
    print_size: str, dpi: float | None, bleed: str | None, photo_hw: tuple[int, int]
) -> BleedPlan:
    """The output of a print with bleed: its size, and which part of the photo fills it.

    The trim takes the print's aspect ratio (turned to the photo's orientation): the largest
    centred crop of the photo in that ratio fills it. The bleed around it takes the photo's
    pixels beyond that crop where there are (a wider crop), else the photo reflected at its
    edge. The final long edge is ``max(size_px)``, the same for every photo
    (:func:`final_long_edge` with ``bleed``).

    Args:
        print_size: the trim, e.g. ``30x40cm``.
        dpi: dots per inch (default 300).
        bleed: e.g. ``3mm`` on every side, or ``None`` (no bleed: the trim crop alone).
        photo_hw: the photo's ``(H, W)`` in px.

    Raises:
        ArgumentError: a bad print size, DPI or bleed; an output outside 64–32768 px; a
            bleed wider than the photo can reflect.
    """
    dpi = DEFAULT_DPI if dpi is None else dpi
    check_dpi(dpi)
    sides = sorted(print_size_mm(print_size))
    landscape = photo_hw[1] > photo_hw[0]
    trim_mm = (sides[0], sides[1]) if landscape else (sides[1], sides[0])
    bleed_mm = 0.0 if bleed is None else parse_length(bleed, "bleed", MAX_BLEED_MM)
    trim_px = (mm_to_px(trim_mm[0], dpi), mm_to_px(trim_mm[1], dpi))
    bleed_px = mm_to_px(bleed_mm, dpi)
    _check_long_edge(max(trim_px) + 2 * bleed_px, "bleed", f"{print_size} with bleed", dpi)
    scale = min(photo_hw[0] / trim_px[0], photo_hw[1] / trim_px[1])  # photo px per output px
    half_h, half_w = (trim_px[0] / 2 + bleed_px) * scale, (trim_px[1] / 2 + bleed_px) * scale
    centre_y, centre_x = photo_hw[0] / 2, photo_hw[1] / 2
    box = (
        round(centre_y - half_h),
        round(centre_x - half_w),
        round(centre_y + half_h),
        round(centre_x + half_w),
    )
    plan = BleedPlan(trim_mm, bleed_mm, dpi, trim_px, bleed_px, box, photo_hw)
    if max(plan.reflected[:2]) >= photo_hw[0] or max(plan.reflected[2:]) >= photo_hw[1]:
        raise ArgumentError("bleed", f"{{}} {bleed}: wider than the photo can be reflected")
    return plan
