"""Writing float images as print-ready files: PNG 8/16-bit, TIFF 8/16-bit, JPEG.

Every file carries its DPI (PNG ``pHYs``, TIFF resolution tags, JPEG JFIF density), its ICC
profile (the render is sRGB: inputs are converted to sRGB when read; ``profile`` converts it
into Adobe RGB, Display P3 or a lab's profile with LittleCMS, :mod:`stylecascade.profiles`) and
the render's provenance (PNG ``iTXt`` chunks, TIFF ``Software``/``ImageDescription``, JPEG
comment; a print's trim and bleed among them). Pillow writes 8-bit files; it cannot write
16-bit RGB, so pypng writes 16-bit PNG and tifffile writes TIFF (Pillow's libtiff writes 8-bit
LZW TIFF: tifffile needs the ``imagecodecs`` package for LZW). Every write goes through the
one writer (:func:`stylecascade.files.atomic_write`). Loads without torch: the command line
checks an output's format and options before torch is imported.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import png
import tifffile
from PIL import Image, PngImagePlugin

from .choices import COMPRESSION_NAMES, OUTPUT_FORMATS
from .errors import ArgumentError, UsageError
from .files import atomic_write, check_folder
from .printsize import DEFAULT_DPI, MAX_BLEED_MM, MAX_SAFE_MARGIN_MM, check_dpi, parse_length
from .profiles import SRGB_ICC, check_intent, convert, output_profile

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "SRGB_ICC",
    "OutputOptions",
    "check_options",
    "check_output",
    "options_of",
    "quantize",
    "save_image",
    "to_pil",
]

BIT_DEPTHS = (8, 16)
COMPRESSIONS = dict(zip(COMPRESSION_NAMES, (None, "lzw", "zlib"), strict=True))
"""TIFF compressions by name → tifffile's (``deflate``: zlib, TIFF tag 8; ``lzw``: tag 5)."""
INCH_PER_METRE = 39.3700787


@dataclass(frozen=True)
class OutputOptions:
    """How the final image is encoded.

    Attributes:
        bit_depth: 8 or 16 bits per channel (16: PNG and TIFF only).
        jpeg_quality: 1–95 (Pillow's scale; 95 is visually lossless).
        dpi: print resolution written into the file, dots per inch (> 0), or ``None``.
        profile: output ICC profile: ``srgb``, ``adobe-rgb``, ``display-p3`` or a path to an
            RGB ``.icc``/``.icm`` file; the render is converted into it and it is embedded.
        intent: rendering intent of that conversion: ``perceptual`` or ``relative``.
        black_point_compensation: LittleCMS's black-point compensation in that conversion.
        compression: TIFF only: ``none``, ``lzw`` or ``deflate`` (lossless all).
        print_size: the print's trim size, e.g. ``30x40cm`` (with ``bleed``/``safe_margin``).
        bleed: bleed beyond the trim on every side, e.g. ``3mm`` (0–25 mm; a number is mm),
            or ``None``; needs ``print_size``: the job renders trim + bleed
            (:func:`~stylecascade.printsize.with_bleed`).
        safe_margin: distance inside the trim to keep text and faces in, e.g. ``5mm``
            (0–50 mm), or ``None``; needs ``print_size``: writes ``OUT.guide.png``.
    """

    bit_depth: int = 8
    jpeg_quality: int = 95
    dpi: float | None = None
    profile: str = "srgb"
    intent: str = "perceptual"
    black_point_compensation: bool = True
    compression: str = "deflate"
    print_size: str | None = None
    bleed: str | None = None
    safe_margin: str | None = None


def options_of(fields: Mapping[str, Any]) -> OutputOptions:
    """The writer's options from a request's fields (``RenderRequest.fields()``), each taken
    from the field of the same name (a new output option is a record field and an
    :class:`OutputOptions` field: nothing here); ``dpi`` is 300 unless given
    (``printsize.DEFAULT_DPI``)."""
    values = {**fields, "dpi": fields.get("dpi") or DEFAULT_DPI}
    names = [f.name for f in dataclasses.fields(OutputOptions)]
    return OutputOptions(**{name: values[name] for name in names if name in values})


def output_format(path: Path) -> str:
    """Pillow format name for an output path's extension.

    Raises:
        UsageError: unsupported extension.
    """
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(
            f"output {path}: unsupported extension {Path(path).suffix!r}; "
            f"use one of {', '.join(OUTPUT_FORMATS)}"
        )
    return fmt


def check_output(path: Path, options: OutputOptions) -> None:
    """Refuse an output that cannot be written, before any work is done (whether it may
    replace an existing file is the job's rule: ``stylecascade.job``; the write rule's other
    checks: ``stylecascade.write_checks``).

    Raises:
        UsageError: unknown extension, 16 bits for JPEG, a bad option (:func:`check_options`),
            a file where its folder must be (:func:`~stylecascade.files.check_folder`; a
            missing folder is created before the work).
    """
    path = Path(path)
    fmt = output_format(path)
    check_options(options, fmt)
    if options.bit_depth == 16 and fmt == "JPEG":
        raise UsageError(f"output {path}: JPEG has 8 bits only; use .png or .tif for 16 bits")
    check_folder(path.parent, "output")


def check_options(options: OutputOptions, fmt: str | None = None) -> None:
    """Refuse options no output takes: a bit depth, quality or DPI out of range, an unknown
    profile, intent or compression, a bleed or safe margin without a print size; ``fmt``
    (``PNG``, ``TIFF``, ``JPEG``; ``None``: not known yet) for what depends on the format.

    Raises:
        ArgumentError: naming the option's field.
    """
    if options.bit_depth not in BIT_DEPTHS:
        raise ArgumentError("bit_depth", f"{{}} must be 8 or 16; got {options.bit_depth}")
    if not 1 <= options.jpeg_quality <= 95:
        raise ArgumentError("jpeg_quality", f"{{}} must be 1–95; got {options.jpeg_quality}")
    if options.dpi is not None:
        check_dpi(options.dpi)
    output_profile(options.profile)
    check_intent(options.intent)
    _check_print(options, fmt)


def _check_print(options: OutputOptions, fmt: str | None) -> None:
    """The compression, bleed and safe margin (each needs ``print_size``).

    Raises:
        ArgumentError: an unknown compression, 16-bit LZW without ``imagecodecs``, a bleed or
            safe margin without a print size or out of its bounds.
    """
    if options.compression not in COMPRESSIONS:
        names = ", ".join(COMPRESSIONS)
        got = options.compression
        raise ArgumentError("compression", f"{{}} must be one of {names}; got {got!r}")
    if fmt == "TIFF" and options.compression == "lzw" and options.bit_depth == 16:
        if importlib.util.find_spec("imagecodecs") is None:
            raise ArgumentError(
                "compression",
                "{} lzw at 16 bits needs the imagecodecs package (pip install imagecodecs); "
                "use deflate or none",
            )
    for field, value, largest in (
        ("bleed", options.bleed, MAX_BLEED_MM),
        ("safe_margin", options.safe_margin, MAX_SAFE_MARGIN_MM),
    ):
        if value is not None:
            if options.print_size is None:
                raise ArgumentError(field, "{} needs {}", "print_size")
            parse_length(value, field, largest)


def quantize(image: Tensor, bit_depth: int = 8) -> np.ndarray:
    """Quantize ``(1, 3, H, W)`` floats in 0–1 to an ``(H, W, 3)`` array, rounding to the
    nearest level: uint8 (0–255) for 8 bits, uint16 (0–65535) for 16.

    Raises:
        ValueError: the image holds NaN or infinite values (never written).
    """
    import torch  # this module loads without torch

    pixels = image.detach()[0].float()
    if not torch.isfinite(pixels).all():
        raise ValueError("the image holds NaN or infinite values")
    top, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    levels = pixels.clamp(0, 1).mul(top).round().permute(1, 2, 0).cpu().numpy()
    return levels.astype(dtype)


def to_pil(image: Tensor) -> Image.Image:
    """``(1, 3, H, W)`` floats in 0–1 as an 8-bit RGB PIL image (:func:`quantize`).

    Raises:
        ValueError: the image holds NaN or infinite values.
    """
    return Image.fromarray(quantize(image, 8), "RGB")


def _png_pillow(
    array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str], icc: bytes
):
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    extra = {"dpi": (options.dpi, options.dpi)} if options.dpi else {}
    Image.fromarray(array, "RGB").save(tmp, "PNG", pnginfo=info, icc_profile=icc, **extra)


def _png_16(array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str], icc: bytes):
    h, w, _ = array.shape
    density = {}
    if options.dpi:
        per_metre = round(options.dpi * INCH_PER_METRE)
        density = {"x_pixels_per_unit": per_metre, "y_pixels_per_unit": per_metre}
    writer = png.Writer(w, h, greyscale=False, bitdepth=16, unit_is_meter=bool(density), **density)
    buffer = io.BytesIO()
    writer.write_array(buffer, array.reshape(-1))
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    name = b"sRGB" if icc == SRGB_ICC else b"ICC profile"
    extra = [(b"iCCP", name + b"\0\0" + zlib.compress(icc))]
    for key, value in text.items():  # iTXt: keyword, no compression, no language tags
        extra.append((b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode()))
    with open(tmp, "wb") as handle:
        png.write_chunks(handle, chunks[:1] + extra + chunks[1:])


def _tiff(array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str], icc: bytes):
    if options.compression == "lzw" and array.dtype == np.uint8:
        return _tiff_lzw_8(array, tmp, options, text, icc)
    resolution = {"resolution": (options.dpi, options.dpi), "resolutionunit": "INCH"}
    tifffile.imwrite(
        tmp,
        array,
        photometric="rgb",
        compression=COMPRESSIONS[options.compression],
        iccprofile=icc,
        description=json.dumps(text, ensure_ascii=False),
        software=text.get("Software"),
        metadata=None,
        **(resolution if options.dpi else {}),
    )


def _tiff_lzw_8(
    array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str], icc: bytes
):
    """8-bit LZW TIFF through Pillow's libtiff (tifffile needs imagecodecs for LZW); the
    description is ASCII JSON (libtiff's tag is ASCII)."""
    extra = {"dpi": (options.dpi, options.dpi)} if options.dpi else {}
    Image.fromarray(array, "RGB").save(
        tmp,
        "TIFF",
        compression="tiff_lzw",
        icc_profile=icc,
        description=json.dumps(text),
        software=text.get("Software", "").encode("ascii", "replace").decode(),
        **extra,
    )


def _jpeg(array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str], icc: bytes):
    extra = {"dpi": (options.dpi, options.dpi)} if options.dpi else {}
    Image.fromarray(array, "RGB").save(
        tmp,
        "JPEG",
        quality=options.jpeg_quality,
        subsampling=0,  # 4:4:4; chroma subsampling smears fine painted strokes
        icc_profile=icc,
        comment=json.dumps(text, ensure_ascii=False).encode(),
        **extra,
    )


def save_image(
    image: Tensor,
    path: Path,
    options: OutputOptions | None = None,
    provenance: dict[str, str] | None = None,
) -> None:
    """Write an image atomically; the format follows the extension.

    Args:
        image: ``(1, 3, H, W)`` sRGB float in 0–1, any device; quantized once here.
        path: ``.png``, ``.jpg``/``.jpeg`` or ``.tif``/``.tiff``.
        options: bit depth, JPEG quality, DPI, profile (with intent and black-point
            compensation), TIFF compression (default 8-bit, quality 95, no DPI, sRGB,
            deflate).
        provenance: text written into the file (e.g. ``Software``, preset, seed).

    Raises:
        UsageError: unsupported extension; an unreadable profile (``ArgumentError``).
        ValueError: NaN or infinite pixels (nothing is written).
        OSError: the file cannot be written.
    """
    options = options or OutputOptions()
    fmt = output_format(path)
    profile = output_profile(options.profile)
    array = convert(
        quantize(image, options.bit_depth),
        profile,
        options.intent,
        options.black_point_compensation,
    )
    # file names that are not valid UTF-8 (lone surrogates) are written as \\udcNN escapes
    text = {
        k: v.encode("utf-8", "backslashreplace").decode() for k, v in (provenance or {}).items()
    }
    if fmt == "PNG":
        writer = _png_16 if options.bit_depth == 16 else _png_pillow
    else:
        writer = {"TIFF": _tiff, "JPEG": _jpeg}[fmt]
    atomic_write(path, lambda tmp: writer(array, tmp, options, text, profile.icc))
