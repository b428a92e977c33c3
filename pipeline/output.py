"""Writing float images as print-ready files: PNG 8/16-bit, TIFF 8/16-bit, JPEG.

Every file carries its DPI (PNG ``pHYs``, TIFF resolution tags, JPEG JFIF density), an sRGB ICC
profile (the pixels are sRGB: inputs are converted to sRGB when read) and the render's
provenance (PNG ``tEXt`` chunks, TIFF ``Software``/``ImageDescription``, JPEG comment). Pillow
writes 8-bit files; it cannot write 16-bit RGB, so pypng writes 16-bit PNG and tifffile writes
TIFF. Every write is atomic (temporary file + rename).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
import tifffile
import torch
from PIL import Image, ImageCms, PngImagePlugin
from torch import Tensor

from .errors import ArgumentError, UsageError
from .files import atomic_write
from .naming import OUTPUT_FORMATS
from .printsize import check_dpi

BIT_DEPTHS = (8, 16)


def _srgb_icc() -> bytes:
    """LittleCMS's sRGB profile with its creation date (ICC header bytes 24–35) fixed, so that
    the same render gives the same file, byte for byte."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)
    return bytes(data)


SRGB_ICC = _srgb_icc()
INCH_PER_METRE = 39.3700787


@dataclass(frozen=True)
class OutputOptions:
    """How the final image is encoded.

    Attributes:
        bit_depth: 8 or 16 bits per channel (16: PNG and TIFF only).
        jpeg_quality: 1–95 (Pillow's scale; 95 is visually lossless).
        dpi: print resolution written into the file, dots per inch (> 0), or ``None``.
    """

    bit_depth: int = 8
    jpeg_quality: int = 95
    dpi: float | None = None


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
    replace an existing file is the job's rule: ``stylecascade.job``).

    Raises:
        UsageError: unknown extension, 16 bits for JPEG, a bad quality or DPI, a missing
            folder (one that cannot be written: :func:`~stylecascade.files.check_outputs`).
    """
    path = Path(path)
    fmt = output_format(path)
    if options.bit_depth not in BIT_DEPTHS:
        raise ArgumentError("bit_depth", f"{{}} must be 8 or 16; got {options.bit_depth}")
    if options.bit_depth == 16 and fmt == "JPEG":
        raise UsageError(f"output {path}: JPEG has 8 bits only; use .png or .tif for 16 bits")
    if not 1 <= options.jpeg_quality <= 95:
        raise ArgumentError("jpeg_quality", f"{{}} must be 1–95; got {options.jpeg_quality}")
    if options.dpi is not None:
        check_dpi(options.dpi)
    if not path.parent.is_dir():
        raise UsageError(f"output {path}: folder {path.parent} does not exist")


def quantize(image: Tensor, bit_depth: int = 8) -> np.ndarray:
    """Quantize ``(1, 3, H, W)`` floats in 0–1 to an ``(H, W, 3)`` array, rounding to the
    nearest level: uint8 (0–255) for 8 bits, uint16 (0–65535) for 16.

    Raises:
        ValueError: the image holds NaN or infinite values (never written).
    """
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


def _png_pillow(array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str]):
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_itxt(key, value)
    extra = {"dpi": (options.dpi, options.dpi)} if options.dpi else {}
    Image.fromarray(array, "RGB").save(tmp, "PNG", pnginfo=info, icc_profile=SRGB_ICC, **extra)


def _png_16(array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str]):
    h, w, _ = array.shape
    density = {}
    if options.dpi:
        per_metre = round(options.dpi * INCH_PER_METRE)
        density = {"x_pixels_per_unit": per_metre, "y_pixels_per_unit": per_metre}
    writer = png.Writer(w, h, greyscale=False, bitdepth=16, unit_is_meter=bool(density), **density)
    buffer = io.BytesIO()
    writer.write_array(buffer, array.reshape(-1))
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    extra = [(b"iCCP", b"sRGB\0\0" + zlib.compress(SRGB_ICC))]
    for key, value in text.items():  # iTXt: keyword, no compression, no language tags
        extra.append((b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode()))
    with open(tmp, "wb") as handle:
        png.write_chunks(handle, chunks[:1] + extra + chunks[1:])


def _tiff(array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str]):
    resolution = {"resolution": (options.dpi, options.dpi), "resolutionunit": "INCH"}
    tifffile.imwrite(
        tmp,
        array,
        photometric="rgb",
        compression="zlib",
        iccprofile=SRGB_ICC,
        description=json.dumps(text, ensure_ascii=False),
        software=text.get("Software"),
        metadata=None,
        **(resolution if options.dpi else {}),
    )


def _jpeg(array: np.ndarray, tmp: Path, options: OutputOptions, text: dict[str, str]):
    extra = {"dpi": (options.dpi, options.dpi)} if options.dpi else {}
    Image.fromarray(array, "RGB").save(
        tmp,
        "JPEG",
        quality=options.jpeg_quality,
        subsampling=0,  # 4:4:4; chroma subsampling smears fine painted strokes
        icc_profile=SRGB_ICC,
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
        options: bit depth, JPEG quality, DPI (default 8-bit, quality 95, no DPI).
        provenance: text written into the file (e.g. ``Software``, preset, seed).

    Raises:
        UsageError: unsupported extension.
        ValueError: NaN or infinite pixels (nothing is written).
        OSError: the file cannot be written.
    """
    options = options or OutputOptions()
    fmt = output_format(path)
    array = quantize(image, options.bit_depth)
    # file names that are not valid UTF-8 (lone surrogates) are written as \\udcNN escapes
    text = {
        k: v.encode("utf-8", "backslashreplace").decode() for k, v in (provenance or {}).items()
    }
    if fmt == "PNG":
        writer = _png_16 if options.bit_depth == 16 else _png_pillow
    else:
        writer = {"TIFF": _tiff, "JPEG": _jpeg}[fmt]
    atomic_write(path, lambda tmp: writer(array, tmp, options, text))
