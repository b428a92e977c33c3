"""Print sizes: ``30x40cm`` at a DPI → the final stage's long edge in px."""

from __future__ import annotations

import math
import re

from .errors import ArgumentError

UNITS_PER_INCH = {"cm": 2.54, "mm": 25.4, "in": 1.0}
MAX_LONG_EDGE = 32768
"""Largest final long edge accepted (px). 32768 px is a 2.7 m print at 300 DPI; beyond it every
stage is tiled for hours, so a bigger number is almost surely a typo."""
MIN_LONG_EDGE = 64
DEFAULT_DPI = 300.0
"""DPI of ``--print-size`` without ``--dpi``, and the DPI written into every output file
without ``--dpi`` (PNG pHYs, TIFF and JPEG resolution tags)."""

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*(cm|mm|in)\s*$", re.I)


def check_dpi(dpi: float) -> None:
    """The one rule for ``--dpi``: a finite number > 0.

    Raises:
        UsageError: anything else (0, negative, inf, nan).
    """
    if not 0 < dpi < math.inf:
        raise ArgumentError("dpi", f"{{}} must be a number > 0; got {dpi}")


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
    match = _PATTERN.match(print_size)
    if not match:
        raise ArgumentError(
            "print_size",
            f"{{}} {print_size!r}: write it as WIDTHxHEIGHT with a unit, "
            f"e.g. 30x40cm, 8x10in or 210x297mm",
        )
    check_dpi(dpi)
    width, height, unit = float(match[1]), float(match[2]), match[3].lower()
    if min(width, height) <= 0:
        raise ArgumentError("print_size", f"{{}} {print_size!r}: both sides must be > 0")
    long_edge = round(max(width, height) / UNITS_PER_INCH[unit] * dpi)
    if not MIN_LONG_EDGE <= long_edge <= MAX_LONG_EDGE:
        raise ArgumentError(
            "print_size",
            f"{{}} {print_size} at {dpi:g} DPI is {long_edge} px on the long edge; "
            f"stylecascade renders {MIN_LONG_EDGE}–{MAX_LONG_EDGE} px",
        )
    return long_edge


def final_long_edge(size: int | None, print_size: str | None, dpi: float | None) -> int | None:
    """The final stage's long edge from ``--size`` or ``--print-size``/``--dpi``.

    Args:
        size: long edge in px, or ``None``.
        print_size: e.g. ``30x40cm``, or ``None``.
        dpi: dots per inch for ``print_size`` (default 300).

    Returns:
        The long edge in px, or ``None`` to keep the preset's.

    Raises:
        UsageError: both ``size`` and ``print_size``, or a size outside 64–32768 px.
    """
    if size is not None and print_size is not None:
        raise ArgumentError("size", "give {} or {}, not both", "print_size")
    if print_size is not None:
        return print_long_edge(print_size, DEFAULT_DPI if dpi is None else dpi)
    if size is not None and not MIN_LONG_EDGE <= size <= MAX_LONG_EDGE:
        raise ArgumentError("size", f"{{}} must be {MIN_LONG_EDGE}–{MAX_LONG_EDGE} px; got {size}")
    return size
