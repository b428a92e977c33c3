"""Output ICC profiles and the conversion of a render into one, with LittleCMS.

The render is sRGB. ``srgb`` writes it as it is with LittleCMS's own sRGB profile; ``adobe-rgb``
(a profile compatible with Adobe RGB (1998): its D65 white, its primaries R 0.64/0.33,
G 0.21/0.71, B 0.15/0.06 and its gamma 563/256) and ``display-p3`` (Apple's Display P3: DCI-P3
primaries R 0.68/0.32, G 0.265/0.69, B 0.15/0.06, D65, the sRGB tone curve) are matrix/TRC ICC v4
profiles made by LittleCMS's ``cmsCreateRGBProfile`` and kept here as bytes (Pillow's
``ImageCms.createProfile`` makes sRGB and LAB only; no well-kept PyPI package ships these two
with a clear licence). They hold only the published numbers, so no one's copyright:
their copyright tag says "No copyright, use freely". ``tests/test_printlab.py`` makes them again
with the system's LittleCMS (where there is one) and compares, and checks their colorants.
A ``FILE.icc`` is any RGB output or display profile (a lab's paper profile); CMYK is refused.

Conversion: 8-bit with Pillow's ``ImageCms`` (LittleCMS 2, the chosen intent and black-point
compensation). LittleCMS through Pillow converts 8-bit images only, so a 16-bit image goes
through a dense table of that same transform (52³ 8-bit colours converted by LittleCMS,
:data:`TABLE_STEP`), trilinearly interpolated: 16-bit gradations stay smooth and monotonic, and
the colours are as accurate as LittleCMS's 8-bit ones (mean ΔE76 about 0.25 from exact float
maths; the bounds are in ``tests/test_printlab.py``).
"""

from __future__ import annotations

import base64
import io
import itertools
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from .choices import INTENT_NAMES, PROFILE_NAMES
from .errors import ArgumentError, UsageError
from .reading import Bound, read_bytes

INTENTS = dict(
    zip(
        INTENT_NAMES,
        (ImageCms.Intent.PERCEPTUAL, ImageCms.Intent.RELATIVE_COLORIMETRIC),
        strict=True,
    )
)
"""Rendering intents by name (relative: relative colorimetric). A matrix/TRC profile
(``adobe-rgb``, ``display-p3``) has no perceptual table: both give the same colours."""
PROFILE_FILE = Bound(16 << 20, "ICC profile")
"""An ICC profile file: a paper's printer profile is 0.5–4 MB."""
CHUNK_PIXELS = 1 << 20
"""Pixels converted at a time through the 16-bit table (about 100 MB of temporaries)."""

_ADOBE_RGB = (
    "AAACYGxjbXMEQAAAbW50clJHQiBYWVogB9AAAQABAAAAAAAAYWNzcEFQUEwAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAPbWAAEAAAAA0y1sY21zAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAL"
    "ZGVzYwAAAQgAAABcY3BydAAAAWQAAABMd3RwdAAAAbAAAAAUY2hhZAAAAcQAAAAsclhZWgAAAfAAAAAUYlhZWgAA"
    "AgQAAAAUZ1hZWgAAAhgAAAAUclRSQwAAAiwAAAAQZ1RSQwAAAiwAAAAQYlRSQwAAAiwAAAAQY2hybQAAAjwAAAAk"
    "bWx1YwAAAAAAAAABAAAADGVuVVMAAABAAAAAHABDAG8AbQBwAGEAdABpAGIAbABlACAAdwBpAHQAaAAgAEEAZABv"
    "AGIAZQAgAFIARwBCACAAKAAxADkAOQA4ACltbHVjAAAAAAAAAAEAAAAMZW5VUwAAADAAAAAcAE4AbwAgAGMAbwBw"
    "AHkAcgBpAGcAaAB0ACwAIAB1AHMAZQAgAGYAcgBlAGUAbAB5WFlaIAAAAAAAAPbWAAEAAAAA0y1zZjMyAAAAAAAB"
    "DEIAAAXe///zJQAAB5MAAP2Q///7of///aIAAAPcAADAblhZWiAAAAAAAACcGAAAT6UAAAT8WFlaIAAAAAAAACYx"
    "AAAQLwAAvptYWVogAAAAAAAANI0AAKAsAAAPlXBhcmEAAAAAAAAAAAACMwBjaHJtAAAAAAADAAAAAKPXAABUewAA"
    "NcMAALXDAAAmZgAAD1w="
)
_DISPLAY_P3 = (
    "AAACRGxjbXMEQAAAbW50clJHQiBYWVogB9AAAQABAAAAAAAAYWNzcEFQUEwAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAPbWAAEAAAAA0y1sY21zAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAL"
    "ZGVzYwAAAQgAAAAwY3BydAAAATgAAABMd3RwdAAAAYQAAAAUY2hhZAAAAZgAAAAsclhZWgAAAcQAAAAUYlhZWgAA"
    "AdgAAAAUZ1hZWgAAAewAAAAUclRSQwAAAgAAAAAgZ1RSQwAAAgAAAAAgYlRSQwAAAgAAAAAgY2hybQAAAiAAAAAk"
    "bWx1YwAAAAAAAAABAAAADGVuVVMAAAAUAAAAHABEAGkAcwBwAGwAYQB5ACAAUAAzbWx1YwAAAAAAAAABAAAADGVu"
    "VVMAAAAwAAAAHABOAG8AIABjAG8AcAB5AHIAaQBnAGgAdAAsACAAdQBzAGUAIABmAHIAZQBlAGwAeVhZWiAAAAAA"
    "AAD21gABAAAAANMtc2YzMgAAAAAAAQxCAAAF3v//8yUAAAeTAAD9kP//+6H///2iAAAD3AAAwG5YWVogAAAAAAAA"
    "g98AAD2/////u1hZWiAAAAAAAAAoOAAAEQsAAMi5WFlaIAAAAAAAAEq/AACxNwAACrlwYXJhAAAAAAADAAAAAmZm"
    "AADypwAADVkAABPQAAAKW2Nocm0AAAAAAAMAAAAArhQAAFHsAABD1wAAsKQAACZmAAAPXA=="
)


def _srgb_icc() -> bytes:
    """LittleCMS's sRGB profile with its creation date (ICC header bytes 24–35) fixed, so that
    the same render gives the same file, byte for byte."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)
    return bytes(data)


SRGB_ICC = _srgb_icc()
ADOBE_RGB_ICC = base64.b64decode("".join(_ADOBE_RGB))
DISPLAY_P3_ICC = base64.b64decode("".join(_DISPLAY_P3))
BUILT_IN = {"srgb": SRGB_ICC, "adobe-rgb": ADOBE_RGB_ICC, "display-p3": DISPLAY_P3_ICC}


@dataclass(frozen=True)
class OutputProfile:
    """An output profile.

    Attributes:
        name: ``srgb``, ``adobe-rgb``, ``display-p3``, or the file's name.
        icc: the profile's bytes (embedded in the output file).
        description: the profile's own description (its ``desc`` tag).
    """

    name: str
    icc: bytes
    description: str

    @property
    def is_srgb(self) -> bool:
        """Whether the render is written as it is (no conversion)."""
        return self.icc == SRGB_ICC


def _parsed(icc: bytes, what: str) -> ImageCms.ImageCmsProfile:
    """``icc`` read by LittleCMS; only RGB display, output or colour-space profiles pass.

    Raises:
        ArgumentError: not an ICC profile, or not an RGB one (a CMYK one says why).
    """
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError, ValueError):
        raise ArgumentError("profile", f"{{}} {what}: not an ICC profile") from None
    space = profile.profile.xcolor_space.strip()
    if space != "RGB" or profile.profile.device_class not in ("mntr", "prtr", "spac"):
        hint = "; send RGB (the lab converts to its inks)" if space == "CMYK" else ""
        raise ArgumentError(
            "profile",
            f"{{}} {what}: a {space} {profile.profile.device_class} profile; "
            f"stylecascade writes RGB files only{hint}",
        )
    return profile


def output_profile(spec: str | Path) -> OutputProfile:
    """The profile named ``spec``: ``srgb``, ``adobe-rgb``, ``display-p3`` or an ICC file.

    Raises:
        ArgumentError: an unknown name, a file that cannot be read (too large, missing) or
            that is not an RGB ICC profile.
    """
    text = str(spec)
    if text.lower() in BUILT_IN:
        icc = BUILT_IN[text.lower()]
        return OutputProfile(text.lower(), icc, _parsed(icc, text).profile.profile_description)
    path = Path(text)
    if path.suffix.lower() not in (".icc", ".icm"):
        names = ", ".join(PROFILE_NAMES)
        raise ArgumentError("profile", f"{{}} {text!r}: use one of {names} or a FILE.icc")
    try:
        icc = read_bytes(path, PROFILE_FILE, f"profile {path}")
    except UsageError as exc:
        raise ArgumentError("profile", f"{{}}: {exc}") from None
    return OutputProfile(path.name, icc, _parsed(icc, str(path)).profile.profile_description)


def check_intent(intent: str) -> None:
    """Raises: ArgumentError: ``intent`` is not ``perceptual`` or ``relative``."""
    if intent not in INTENTS:
        raise ArgumentError("intent", f"{{}} must be one of {', '.join(INTENTS)}; got {intent!r}")


@lru_cache(maxsize=4)
def _transform(icc: bytes, intent: str, black_point: bool) -> ImageCms.ImageCmsTransform:
    """sRGB → ``icc`` with LittleCMS (8-bit RGB), cached per profile and choice."""
    flags = ImageCms.Flags.BLACKPOINTCOMPENSATION if black_point else ImageCms.Flags.NONE
    try:
        return ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(io.BytesIO(SRGB_ICC)),
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            "RGB",
            "RGB",
            renderingIntent=INTENTS[intent],
            flags=flags,
        )
    except ImageCms.PyCMSError as exc:
        raise ArgumentError("profile", f"{{}}: LittleCMS cannot convert into it ({exc})") from None


TABLE_STEP = 5
"""Spacing of the 16-bit conversion's table in 8-bit levels: 52 nodes a channel (0, 5, … 255),
each converted by LittleCMS. Finer tables are no more accurate (the nodes' 8-bit rounding
dominates: mean ΔE76 0.26 at step 1, 0.23 at step 5) and twice as slow."""


@lru_cache(maxsize=4)
def _table(icc: bytes, intent: str, black_point: bool) -> np.ndarray:
    """The transform at the table's nodes: ``(52³, 3)`` float32 in 0–255, node ``(r, g, b)``
    at ``(r · 52 + g) · 52 + b`` (1.7 MB)."""
    levels = np.arange(0, 256, TABLE_STEP, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    image = Image.fromarray(grid.reshape(1, -1, 3), "RGB")
    converted = ImageCms.applyTransform(image, _transform(icc, intent, black_point))
    assert converted is not None
    return np.asarray(converted, dtype=np.float32).reshape(-1, 3)


def _interpolate(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of :func:`_table` at ``pixels`` (``(N, 3)`` uint16, 0–65535):
    ``(N, 3)`` uint16."""
    n = 255 // TABLE_STEP + 1
    position = pixels.astype(np.float32) * np.float32((n - 1) / 65535)
    low = np.minimum(position.astype(np.int32), n - 2)
    high, low_weight = position - low, 1 - (position - low)
    base = (low[:, 0] * n + low[:, 1]) * n + low[:, 2]
    result = np.zeros(pixels.shape, np.float32)
    for corner in itertools.product((0, 1), repeat=3):
        weights = [high[:, k] if corner[k] else low_weight[:, k] for k in range(3)]
        offset = (corner[0] * n + corner[1]) * n + corner[2]
        result += (weights[0] * weights[1] * weights[2])[:, None] * table[base + offset]
    return np.clip(result * np.float32(65535 / 255) + 0.5, 0, 65535).astype(np.uint16)


def convert(
    array: np.ndarray, profile: OutputProfile, intent: str = "perceptual", black_point: bool = True
) -> np.ndarray:
    """An sRGB image converted into ``profile`` with LittleCMS.

    Args:
        array: ``(H, W, 3)`` uint8 (0–255) or uint16 (0–65535) sRGB.
        profile: the output profile; sRGB returns ``array`` as it is.
        intent: ``perceptual`` or ``relative`` (relative colorimetric).
        black_point: black-point compensation (Adobe's; LittleCMS
            ``cmsFLAGS_BLACKPOINTCOMPENSATION``).

    Returns:
        ``(H, W, 3)`` of the same dtype, in ``profile``'s colours.

    Raises:
        ArgumentError: an unknown intent, or a profile LittleCMS cannot convert into.
    """
    check_intent(intent)
    if profile.is_srgb:
        return array
    if array.dtype == np.uint8:
        image = Image.fromarray(np.ascontiguousarray(array), "RGB")
        converted = ImageCms.applyTransform(image, _transform(profile.icc, intent, black_point))
        assert converted is not None
        return np.asarray(converted)
    table = _table(profile.icc, intent, black_point)
    flat = array.reshape(-1, 3)
    out = np.empty_like(flat)
    for start in range(0, len(flat), CHUNK_PIXELS):
        out[start : start + CHUNK_PIXELS] = _interpolate(table, flat[start : start + CHUNK_PIXELS])
    return out.reshape(array.shape)
