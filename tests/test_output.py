"""Print-grade output: bit depths, DPI, sRGB profile, provenance; print sizes in px."""

import json
import subprocess
import sys

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image
from stylecascade.errors import UsageError
from stylecascade.output import SRGB_ICC, OutputOptions, quantize, save_image
from stylecascade.printsize import final_long_edge, print_long_edge

PROVENANCE = {"Software": "stylecascade test", "stylecascade:seed": "7"}


@pytest.fixture
def image():
    return torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))


def test_png_8_bit_carries_dpi_profile_and_provenance(tmp_path, image):
    path = tmp_path / "o.png"
    save_image(image, path, OutputOptions(dpi=300), PROVENANCE)
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == (32, 24)
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert img.info["icc_profile"] == SRGB_ICC
        assert (
            img.text["stylecascade:seed"] == "7" and img.text["Software"] == PROVENANCE["Software"]
        )
        assert np.array_equal(np.asarray(img), quantize(image, 8))


def test_png_16_bit(tmp_path, image):
    path = tmp_path / "o16.png"
    save_image(image, path, OutputOptions(bit_depth=16, dpi=300), PROVENANCE)
    reader = png.Reader(filename=str(path))
    width, height, rows, info = reader.asDirect()
    pixels = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, 3)
    assert info["bitdepth"] == 16 and info["planes"] == 3
    assert np.array_equal(pixels, quantize(image, 16))
    assert np.abs(pixels / 65535 - image[0].permute(1, 2, 0).numpy()).max() <= 0.5 / 65535 + 1e-7
    with Image.open(path) as img:  # other readers see the metadata too
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.1)
        assert img.info["icc_profile"] == SRGB_ICC
        assert img.text["stylecascade:seed"] == "7"


@pytest.mark.parametrize("bits", [8, 16])
def test_tiff(tmp_path, image, bits):
    path = tmp_path / "o.tif"
    save_image(image, path, OutputOptions(bit_depth=bits, dpi=240), PROVENANCE)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.dtype == (np.uint8 if bits == 8 else np.uint16)
        assert np.array_equal(page.asarray(), quantize(image, bits))
        assert page.tags["XResolution"].value == (240, 1)
        assert page.tags["ResolutionUnit"].value == 2  # inch
        assert page.tags["InterColorProfile"].value == SRGB_ICC
        assert json.loads(page.description)["stylecascade:seed"] == "7"
        assert page.software == PROVENANCE["Software"]


def test_jpeg(tmp_path, image):
    high, low = tmp_path / "h.jpg", tmp_path / "l.jpg"
    save_image(image, high, OutputOptions(dpi=300), PROVENANCE)
    save_image(image, low, OutputOptions(jpeg_quality=30))
    assert low.stat().st_size < high.stat().st_size
    with Image.open(high) as img:
        assert img.info["dpi"] == (300, 300) and img.info["icc_profile"] == SRGB_ICC
        assert json.loads(img.info["comment"])["stylecascade:seed"] == "7"


def test_the_same_image_gives_the_same_file(tmp_path, image):
    for name in ("a.png", "b.png"):
        save_image(image, tmp_path / name, OutputOptions(dpi=300), PROVENANCE)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.parametrize(
    "size, dpi, expected",
    [
        ("10x15cm", 300, 1772),
        ("15x10 cm", 300, 1772),
        ("8x10in", 300, 3000),
        ("210x297mm", 150, 1754),
        ("30×40cm", 300, 4724),
    ],
)
def test_print_long_edge(size, dpi, expected):
    assert print_long_edge(size, dpi) == expected


def test_final_long_edge_defaults_to_300_dpi():
    assert final_long_edge(None, "10x15cm", None) == 1772
    assert final_long_edge(800, None, None) == 800
    assert final_long_edge(None, None, 300) is None
    with pytest.raises(UsageError, match="not both"):
        final_long_edge(800, "10x15cm", None)


SHALLOW = """
description: one quick stage on shallow layers, for the print-size test
model:
  pooling: max
  content_layers: {relu1_1: 1}
  style_layers: {relu1_1: 1}
defaults: {style_weight: 50.0}
stages:
  - {size: 512, iterations: 1}
"""


def test_print_size_end_to_end(tmp_path, photos):
    """``--print-size 10x15cm --dpi 300`` → a 1772 px long edge with 300 DPI in the file."""
    preset = tmp_path / "shallow.yaml"
    preset.write_text(SHALLOW)
    out = tmp_path / "print.png"
    done = subprocess.run(
        [sys.executable, "-m", "stylecascade", "render", str(photos[0]), "-s", str(photos[1]),
         "--preset", str(preset), "--print-size", "10x15cm", "--dpi", "300", "-o", str(out),
         "--device", "cpu", "-q"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Image.open(out) as img:
        assert max(img.size) == 1772 and img.size == (1772, 1329)
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert img.info["icc_profile"] == SRGB_ICC
        assert img.text["stylecascade:preset"] == "shallow"
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["stages"][0]["size"] == [1772, 1329]
