"""Reading every kind of input image: each works correctly or fails with one clear line."""

import io
import struct
import warnings

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms
from stylecascade.errors import UsageError
from stylecascade.images import as_tensor, load_image

RGB = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)


def _save(path, img, **options):
    img.save(path, **options)
    return path


def _pixels(tensor):
    return (tensor[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize(
    "make, expected",
    [
        ("rgb_png", RGB),
        ("gray", np.repeat(np.array([[0, 128], [255, 64]], np.uint8)[..., None], 3, axis=2)),
        ("palette", RGB),
        ("rgba_on_white", np.array([[[255, 0, 0], [255, 255, 255]]], np.uint8)),
        ("la", np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8)),
        ("cmyk", np.array([[[255, 255, 255], [0, 0, 0]]], np.uint8)),
    ],
)
def test_modes_become_srgb(tmp_path, make, expected):
    path = tmp_path / f"{make}.png"
    if make == "rgb_png":
        _save(path, Image.fromarray(RGB))
    elif make == "gray":
        _save(path, Image.fromarray(np.array([[0, 128], [255, 64]], np.uint8)))
    elif make == "palette":
        _save(path, Image.fromarray(RGB).convert("P"))
    elif make == "rgba_on_white":
        rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 0]]], np.uint8)  # opaque red, clear blue
        _save(path, Image.fromarray(rgba, "RGBA"))
    elif make == "la":
        _save(path, Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), "LA"))
    elif make == "cmyk":
        path = path.with_suffix(".jpg")
        cmyk = np.array([[[0, 0, 0, 0], [0, 0, 0, 255]]], np.uint8)
        _save(path, Image.fromarray(cmyk, "CMYK"), quality=100)
    got = _pixels(load_image(path, "content"))
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 3


def test_16_bit_gray_png_keeps_its_precision(tmp_path):
    levels = np.array([[0, 257 * 100 + 128], [65535, 1000]], np.uint16)
    path = _save(tmp_path / "g16.png", Image.fromarray(levels))
    got = load_image(path, "content")[0, 0].numpy()
    np.testing.assert_allclose(got, levels / 65535, atol=1e-6)


def test_16_bit_rgb_tiff(tmp_path):
    levels = (np.arange(12).reshape(2, 2, 3) * 5000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c16.tif", levels, photometric="rgb")
    got = load_image(tmp_path / "c16.tif", "content")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, levels / 65535, atol=1 / 255)


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    img = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    _save(tmp_path / "r.jpg", img, exif=exif)
    assert load_image(tmp_path / "r.jpg", "content").shape == (1, 3, 40, 20)


def _exif_block(entries: list[tuple[int, int, bytes]]) -> bytes:
    """A little-endian EXIF block of ``(tag, type, value bytes)`` entries; values over 4
    bytes go after the directory, as the TIFF specification lays them out."""
    data_at = 8 + 2 + 12 * len(entries) + 4
    directory, extra = struct.pack("<H", len(entries)), b""
    for tag, kind, value in entries:
        if len(value) > 4:
            directory += struct.pack("<HHII", tag, kind, 1, data_at + len(extra))
            extra += value
        else:
            directory += struct.pack("<HHI", tag, kind, 1) + value.ljust(4, b"\0")
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + directory + b"\0\0\0\0" + extra


ROTATE_6 = (0x0112, 3, struct.pack("<H", 6))  # orientation: rotate 90° clockwise to display


@pytest.mark.parametrize(
    "exif",
    [
        _exif_block([ROTATE_6, (0x011A, 10, struct.pack("<ii", -72, 1))]),  # negative XResolution
        _exif_block([ROTATE_6, (0x011A, 5, struct.pack("<II", 72, 1))])[:36],  # cut short
    ],
    ids=["negative rational", "truncated"],
)
def test_corrupt_exif_is_read_upright_without_warnings(tmp_path, exif):
    """Issue 14, case 11: before, ``struct.error`` and Pillow's ``Corrupt EXIF`` warnings."""
    img = Image.new("RGB", (40, 20), "red")
    img.paste((0, 0, 255), (0, 0, 10, 10))  # blue top-left corner: top-right once upright
    _save(tmp_path / "bad.jpg", img, exif=exif, quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = load_image(tmp_path / "bad.jpg", "content")
    assert image.shape == (1, 3, 40, 20)
    assert image[0, 2, :5, -5:].mean() > 0.9 and image[0, 2, -5:, :5].mean() < 0.1


@settings(max_examples=200, deadline=None, derandomize=True)
@given(tail=st.binary(max_size=64), cut=st.integers(0, 80))
def test_any_exif_block_gives_an_image_or_one_usage_error(tmp_path_factory, tail, cut):
    """Fuzzed EXIF: a valid header with random entries, cut anywhere."""
    path = tmp_path_factory.mktemp("exif") / "f.jpg"
    block = _exif_block([ROTATE_6])[: 18 + cut] + tail
    Image.new("RGB", (8, 6), "red").save(path, exif=block)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            image = load_image(path, "content")
        except UsageError as exc:
            assert str(exc).startswith(f"content image {path}: ")
        else:
            assert image.shape[-2:] in ((6, 8), (8, 6))


def _swapped_primaries_icc() -> bytes:
    """An RGB ICC profile whose red and green colorants are swapped (the sRGB profile with the
    offsets of its rXYZ and gXYZ tags exchanged): a pure red pixel means sRGB green."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = int.from_bytes(data[128:132], "big")
    entries = {bytes(data[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, green = entries[b"rXYZ"], entries[b"gXYZ"]
    data[red + 4 : red + 12], data[green + 4 : green + 12] = (
        data[green + 4 : green + 12],
        data[red + 4 : red + 12],
    )
    return bytes(data)


def test_embedded_icc_profile_is_converted_to_srgb(tmp_path):
    img = Image.fromarray(np.full((2, 2, 3), (255, 0, 0), np.uint8))
    plain = _pixels(load_image(_save(tmp_path / "plain.png", img), "content"))[0, 0]
    tagged = _save(tmp_path / "swapped.png", img, icc_profile=_swapped_primaries_icc())
    converted = _pixels(load_image(tagged, "content"))[0, 0]
    assert tuple(plain) == (255, 0, 0)
    assert converted[1] > 200 and converted[0] < 60  # red in that profile is sRGB green


@pytest.mark.parametrize(
    "make, message",
    [
        ("missing", "no such file"),
        ("directory", "is a directory, not an image file"),
        ("empty", "the file is empty (0 bytes)"),
        ("text", "not an image file Pillow can read"),
        ("truncated", "cannot decode"),
    ],
)
def test_bad_files_fail_with_one_line_naming_the_file(tmp_path, make, message):
    path = tmp_path / "in.png"
    if make == "directory":
        path.mkdir()
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "text":
        path.write_text("hello")
    elif make == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
            buffer, "PNG"
        )
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(UsageError) as info:
        load_image(path, "style")
    text = str(info.value)
    assert text.startswith(f"style image {path}: ") and message in text and "\n" not in text


def test_decompression_bomb_guard_and_override(tmp_path):
    path = _save(tmp_path / "big.png", Image.new("RGB", (200, 100)))
    with pytest.raises(UsageError, match=r"200×100 px is over the limit of 10,000 px .* 20000"):
        load_image(path, "content", max_pixels=10_000)
    assert load_image(path, "content", max_pixels=20_000).shape == (1, 3, 100, 200)
    assert load_image(path, "content", max_pixels=None).shape == (1, 3, 100, 200)


def test_bytes_decode_as_the_file_does(tmp_path):
    """A cluster actor receives photos as bytes; it must read them as the file is read."""
    from stylecascade.images import read_image_bytes

    path = _save(tmp_path / "p.png", Image.fromarray(RGB).rotate(90, expand=True))
    assert torch.equal(
        read_image_bytes(path.read_bytes(), str(path), "content"), load_image(path, "content")
    )
    with pytest.raises(UsageError, match=r"^content image x.png: the file is empty \(0 bytes\)$"):
        read_image_bytes(b"", "x.png", "content")
    with pytest.raises(
        UsageError, match="^content image x.png: not an image file Pillow can read$"
    ):
        read_image_bytes(b"\x89PNG broken", "x.png", "content")


@pytest.mark.parametrize(
    ("values", "mode", "fragment"),
    [
        ([[70000, 0]], np.int32, "32-bit integer gray values 0…70000 lie outside 0–65535"),
        ([[-5, 100]], np.int32, "32-bit integer gray values -5…100 lie outside 0–65535"),
        ([[255.0, 0.0]], np.float32, "float gray values 0…255 lie outside 0–1"),
        ([[np.nan, 0.5]], np.float32, "a float image with values that are not finite"),
    ],
)
def test_32_bit_gray_outside_its_range_is_refused_never_clipped(tmp_path, values, mode, fragment):
    """Issue 25.2: these loaded all white or all black."""
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, np.array(values, dtype=mode))
    with pytest.raises(UsageError, match=f"content image {path}: {fragment}; readable: 8-"):
        load_image(path, "content")
    with Image.open(path) as img, pytest.raises(UsageError, match=f"content image: {fragment}"):
        as_tensor(img, "content")


@pytest.mark.parametrize(
    ("values", "mode", "scale"),
    [([[65535, 0, 1000]], np.int32, 65535), ([[1.0, 0.0, 0.25]], np.float32, 1)],
)
def test_32_bit_gray_in_range_is_read_by_its_full_scale(tmp_path, values, mode, scale):
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, np.array(values, dtype=mode))
    image = load_image(path, "content")
    expected = torch.tensor(values, dtype=torch.float64) / scale
    assert image.shape == (1, 3, 1, 3)
    torch.testing.assert_close(image[0].double(), expected.expand(3, 1, 3), atol=1e-7, rtol=0)
