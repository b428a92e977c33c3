"""Reading images into float tensors and writing float tensors as image files (Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .errors import UsageError
from .files import atomic_write

OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}
JPEG_QUALITY = 95


def load_image(path: Path, role: str) -> Tensor:
    """Read an image file as sRGB floats.

    The EXIF orientation is applied (the image comes out upright); transparent pixels are
    composited on white; palette, grayscale and CMYK images are converted to RGB by Pillow.

    Args:
        path: the image file.
        role: what the image is for (``"content"``, ``"style"``), used in error messages.

    Returns:
        ``(1, 3, H, W)`` float32 tensor in 0–1 on the CPU.

    Raises:
        UsageError: missing file, a directory, or a file Pillow cannot decode.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{role} image {path}: no such file")
    if path.is_dir():
        raise UsageError(f"{role} image {path}: is a directory, not an image file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise UsageError(f"{role} image {path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UsageError(f"{role} image {path}: cannot decode ({exc})") from None
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


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


def check_output_path(path: Path, overwrite: bool) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    Raises:
        UsageError: unknown extension, missing folder, or an existing file without ``overwrite``.
    """
    path = Path(path)
    output_format(path)
    if not path.parent.is_dir():
        raise UsageError(f"output {path}: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise UsageError(f"output {path} already exists; pass --overwrite to replace it")


def to_uint8(image: Tensor) -> np.ndarray:
    """Quantize ``(1, 3, H, W)`` floats in 0–1 to an ``(H, W, 3)`` uint8 array, rounding to
    the nearest level."""
    array = image.detach()[0].float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(1, 2, 0).cpu().numpy()


def save_image(image: Tensor, path: Path) -> None:
    """Write an image atomically (temporary file + rename); the format follows the extension.

    Args:
        image: ``(1, 3, H, W)`` float in 0–1, any device; quantized once to 8 bits here.
        path: ``.png``, ``.jpg``/``.jpeg`` (quality 95) or ``.tif``/``.tiff``.

    Raises:
        UsageError: unsupported extension.
        OSError: the file cannot be written.
    """
    fmt = output_format(path)
    pil = Image.fromarray(to_uint8(image), "RGB")
    options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    atomic_write(path, lambda tmp: pil.save(tmp, format=fmt, **options))
