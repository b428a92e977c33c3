"""Reading image files into float tensors (Pillow)."""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError
from torch import Tensor

from .choices import MAX_INPUT_PIXELS
from .errors import ArgumentError, ArgumentTypeError, StyleCascadeError, UsageError, literal
from .reading import image_bound, open_regular

_SRGB = ImageCms.createProfile("sRGB")


def _to_srgb(img: Image.Image) -> Image.Image:
    """Convert an image with an embedded ICC profile to sRGB (perceptual intent); an image
    without one, or with a profile LittleCMS cannot use, is taken to be sRGB already."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "CMYK", "L"):
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(img, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img


GRAY_RANGES = {"I": 65535.0, "F": 1.0}
"""Full scale of Pillow's 32-bit gray modes (integer ``I``: 16-bit files open as ``I`` or
``I;16``, so 0–65535; float ``F``: 0–1); pixels outside it are refused, never clipped."""


def _to_rgb(img: Image.Image, name: str) -> np.ndarray:
    """``(H, W, 3)`` float32 in 0–1 from any Pillow mode: 16-bit and 32-bit gray keep their
    precision, transparency is composited on white, everything else goes through Pillow's RGB
    conversion.

    Raises:
        UsageError: 32-bit gray values outside :data:`GRAY_RANGES` (``name`` says whose)."""
    if img.mode.startswith("I;16"):
        gray = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode in GRAY_RANGES:
        return np.repeat(_gray(img, name)[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return np.asarray(_to_srgb(img).convert("RGB"), dtype=np.float32) / 255.0


def _gray(img: Image.Image, name: str) -> np.ndarray:
    """A 32-bit gray image (mode ``I`` or ``F``) as ``(H, W)`` float32 in 0–1 by its mode's
    full scale (:data:`GRAY_RANGES`)."""
    values = np.asarray(img, dtype=np.float64)
    top = GRAY_RANGES[img.mode]
    kind = "float" if img.mode == "F" else "32-bit integer"
    if not np.isfinite(values).all():
        problem = f"a {kind} image with values that are not finite"
    elif values.min() < 0 or values.max() > top:
        problem = f"{kind} gray values {values.min():g}…{values.max():g} lie outside 0–{top:g}"
    else:
        return (values / top).astype(np.float32)
    raise UsageError(
        f"{name}: {problem}; readable: 8- and 16-bit images, 32-bit integer gray in 0–65535, "
        f"float gray in 0–1"
    )


@contextmanager
def _quiet_metadata() -> Iterator[None]:
    """Silence Pillow's warnings while it parses metadata (``Corrupt EXIF data``, printed on
    stderr otherwise): it reads what it can, and only the orientation and ICC profile matter
    here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned upright by its EXIF orientation (Pillow's ``ImageOps.exif_transpose``),
    whatever else its EXIF holds: Pillow cannot write back some values it read (a negative
    ``XResolution`` rational: ``struct.error``), so such a block is reduced to the
    orientation."""
    with _quiet_metadata():
        try:
            return ImageOps.exif_transpose(img)
        except (struct.error, OverflowError):
            exif = img.getexif()  # the parsed block, which exif_transpose reads again
            orientation = exif.get(ExifTags.Base.Orientation)
            exif.clear()
            if orientation is not None:
                exif[ExifTags.Base.Orientation] = orientation
            img.info["exif"] = exif.tobytes()  # the bytes the upright copy carries
            return ImageOps.exif_transpose(img)


def load_image(path: Path, role: str, max_pixels: int | None = MAX_INPUT_PIXELS) -> Tensor:
    """Read an image file as sRGB floats.

    The EXIF orientation is applied (the image comes out upright); an embedded ICC profile is
    converted to sRGB, images without one are taken as sRGB; transparent pixels are composited
    on white; palette, grayscale, 16-bit and CMYK images become RGB (16-bit gray keeps its
    precision; 16-bit color is read at 8 bits by Pillow; 32-bit gray by its full scale,
    :data:`GRAY_RANGES`).

    Args:
        path: the image file.
        role: what the image is for (``"content"``, ``"style"``), used in error messages.
        max_pixels: refuse images with more pixels (decompression-bomb guard); ``None``: no
            limit.

    Returns:
        ``(1, 3, H, W)`` float32 tensor in 0–1 on the CPU.

    Raises:
        UsageError: missing, empty, truncated or undecodable file, not a regular file (a
            directory, FIFO, device), an image over ``max_pixels`` (or a file over the bytes
            such an image can take); 32-bit gray values outside their full scale.
    """
    with open_regular(path, image_bound(max_pixels), f"{role} image {path}") as handle:
        return _decode(handle, os.fstat(handle.fileno()).st_size, str(path), role, max_pixels)


def read_image_bytes(
    data: bytes, name: str, role: str, max_pixels: int | None = MAX_INPUT_PIXELS
) -> Tensor:
    """Decode an image file's bytes exactly as :func:`load_image` reads the file (a cluster
    actor receives photos as bytes).

    Args:
        data: the whole file.
        name: how messages name the image (its path on the machine that read it).
        role: what the image is for (``"content"``, ``"style"``), used in error messages.
        max_pixels: decompression-bomb guard; ``None``: no limit.

    Returns:
        ``(1, 3, H, W)`` float32 tensor in 0–1 on the CPU.

    Raises:
        UsageError: empty, truncated or undecodable bytes, or an image over ``max_pixels``.
    """
    return _decode(io.BytesIO(data), len(data), name, role, max_pixels)


def _decode(source: BinaryIO, size: int, name: str, role: str, max_pixels: int | None) -> Tensor:
    """The image in ``source`` (``size`` bytes) as ``(1, 3, H, W)`` sRGB floats in 0–1."""
    if size == 0:
        raise UsageError(f"{role} image {name}: the file is empty (0 bytes)")
    try:
        with _open_unguarded(source) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise ArgumentError(
                    "max_input_pixels",
                    f"{role} image {literal(name)}: {width}×{height} px is over the limit of "
                    f"{max_pixels:,} px that guards against decompression bombs; pass "
                    f"{{}} {width * height} to allow it",
                )
            array = _to_rgb(_upright(img), f"{role} image {name}")
    except StyleCascadeError:
        raise
    except UnidentifiedImageError:
        raise UsageError(f"{role} image {name}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UsageError(f"{role} image {name}: cannot decode ({exc})") from None
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _open_unguarded(source: BinaryIO) -> Image.Image:
    """``Image.open`` without Pillow's own decompression-bomb limit (we apply ours)."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with _quiet_metadata():
            return Image.open(source)
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def load_mask(path: str | Path, role: str, max_pixels: int | None = MAX_INPUT_PIXELS) -> Tensor:
    """Read a mask (a guidance channel): its luminance, white = 1 (:func:`load_image`, then
    BT.601 weights; a transparent pixel counts as white).

    Returns:
        ``(1, 1, H, W)`` float32 in 0–1 on the CPU.

    Raises:
        UsageError: as :func:`load_image`, naming ``role`` (``mask``).
    """
    return mask_from(load_image(Path(path), role, max_pixels))


def mask_from(rgb: Tensor) -> Tensor:
    """The mask an image ``(1, 3, H, W)`` in 0–1 stands for: its BT.601 luminance,
    ``(1, 1, H, W)`` in 0–1."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True).clamp(0.0, 1.0)


ImageSource = str | Path | Image.Image | Tensor
"""An image given to the Python API: a file path, a PIL image, or a float tensor."""


def as_tensor(source: ImageSource, role: str, max_pixels: int | None = MAX_INPUT_PIXELS) -> Tensor:
    """Any :data:`ImageSource` as ``(1, 3, H, W)`` float32 sRGB in 0–1 on the CPU.

    Args:
        source: a path (read by :func:`load_image`); a PIL image of any mode (EXIF orientation
            and ICC profile applied as for files); or a float tensor ``(3, H, W)`` or
            ``(1, 3, H, W)`` with values in 0–1.
        role: what the image is for, in error messages.
        max_pixels: decompression-bomb guard for files.

    Raises:
        UsageError: an unreadable file.
        ArgumentError: (a ``ValueError``, argument ``content`` or ``styles``) a tensor of the
            wrong shape or dtype, values outside 0–1 or not finite, a closed PIL image.
        ArgumentTypeError: (a ``TypeError``) another type.
    """
    argument = "styles" if role == "style" else role
    if isinstance(source, (str, Path)):
        return load_image(Path(source), role, max_pixels)
    if isinstance(source, Image.Image):
        try:
            array = _to_rgb(_upright(source), f"{role} image")
        except (OSError, ValueError) as exc:  # a closed image: "Operation on closed image"
            message = f"{role} image: cannot read the PIL image ({exc})"
            raise ArgumentError(argument, message) from None
        return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
    if isinstance(source, Tensor):
        return _checked_tensor(source, role, argument)
    raise ArgumentTypeError(
        argument,
        f"{role} image: expected a path, a PIL image or a tensor; got {type(source).__name__}",
    )


def _checked_tensor(source: Tensor, role: str, argument: str) -> Tensor:
    """A caller's image tensor as ``(1, 3, H, W)`` float32 on the CPU, checked."""
    image = source.unsqueeze(0) if source.dim() == 3 else source
    empty = image.dim() == 4 and min(image.shape[-2:]) < 1
    if image.dim() != 4 or image.shape[:2] != (1, 3) or not image.is_floating_point() or empty:
        raise ArgumentError(
            argument,
            f"{role} image: a tensor must be float (3, H, W) or (1, 3, H, W), H, W ≥ 1; got "
            f"{source.dtype} {tuple(source.shape)}",
        )
    image = image.detach().float().cpu()
    if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ArgumentError(argument, f"{role} image: tensor values must be finite and in 0–1")
    return image.contiguous()
