"""Spatial control through the command line (issue 16): ``--mask`` per ``--style`` with the
real VGG19 weights on small images, and its errors as one line each."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from stylecascade.api import load_network
from stylecascade.cli import app
from stylecascade.config import load_preset
from stylecascade.images import load_image
from stylecascade.stages.blend import WeightedStyle, blended_targets
from stylecascade.stages.losses import relative_error, style_targets
from typer.testing import CliRunner

PRESET = """
description: two small stages, enough evaluations to show each half's painting
model:
  pooling: avg
  content_layers: {relu4_2: 1}
  style_layers: {relu1_1: 1, relu2_1: 1, relu3_1: 1, relu4_1: 1, relu5_1: 1}
defaults: {optimizer: lbfgs, content_weight: 1.0, style_weight: 200.0, tv_weight: 1.0}
stages:
  - {size: 64, iterations: 40}
  - {size: 128, iterations: 30}
"""
LAYERS = ["relu1_1", "relu2_1"]


def _render(*args):
    return CliRunner().invoke(app, ["render", *map(str, args)])


@pytest.fixture
def halves(tmp_path, photos):
    """Left-white and right-white masks at a quarter of the photo's size (any size works)."""
    w, h = Image.open(photos[0]).size
    left = Image.new("L", (w // 4, h // 4), 0)
    left.paste(255, (0, 0, w // 8, h // 4))
    left.save(tmp_path / "left.png")
    Image.eval(left, lambda v: 255 - v).save(tmp_path / "right.png")
    (tmp_path / "p.yaml").write_text(PRESET)
    return tmp_path / "left.png", tmp_path / "right.png", tmp_path / "p.yaml"


def test_two_paintings_on_two_halves_end_to_end(tmp_path, photos, halves):
    left, right, preset = halves
    out = tmp_path / "o.png"
    result = _render(
        photos[0], "-s", photos[1], "--mask", left, "-s", photos[2], "--mask", right,
        "-p", preset, "-o", out, "--device", "cpu", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert [s["mask"] for s in manifest["styles"]] == [str(left), str(right)]
    image = load_image(out, "output")
    extractor = load_network("caffe", load_preset(str(preset)), torch.device("cpu")).extractor
    paintings = [
        blended_targets(extractor, [WeightedStyle(load_image(p, "style"))], 128, LAYERS)
        for p in photos[1:]
    ]
    w = image.shape[-1]
    sides = {"left": (image[..., : w * 2 // 5], 0), "right": (image[..., w * 3 // 5 :], 1)}
    for side, (part, own) in sides.items():
        grams = style_targets(extractor, part, LAYERS)
        for layer in LAYERS:
            to_own = relative_error(grams[layer], paintings[own][layer]).item()
            to_other = relative_error(grams[layer], paintings[1 - own][layer]).item()
            assert to_own * 2 < to_other, (side, layer, to_own, to_other)
    _inspect_shows_the_masks_at_each_stage(out, tmp_path)


def _inspect_shows_the_masks_at_each_stage(out, folder):
    shown = CliRunner().invoke(
        app, ["inspect", "--manifest", str(out.with_suffix(".json")), "-o", str(folder), "-q"]
    )
    assert shown.exit_code == 0, shown.output
    with Image.open(folder / "masks.png") as sheet:
        pixels = np.asarray(sheet.convert("L")).astype(float)
        size = sheet.size
    # 2 stages × 2 masks × (the photo under the mask, the mask at relu5_1): 2 rows of 4
    assert size[0] > 4 * 64 and size[1] > 2 * 48
    assert (pixels > 250).mean() > 0.2 and (pixels < 5).mean() > 0.1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--mask", "LEFT"], "--mask given 1 times for 2 style image(s); give one per --style"),
        (["--mask", "LEFT", "--mask", "WIDE"], "the mask of style image 2 is 40×10 px, the photo"),
        (["--mask", "none", "--mask", "NOPE"], "mask image NOPE: no such file"),
    ],
)
def test_mask_errors_are_one_line_before_any_work(tmp_path, photos, halves, extra, message):
    left, _right, preset = halves
    Image.new("L", (40, 10), 255).save(tmp_path / "wide.png")
    names = {"LEFT": left, "WIDE": tmp_path / "wide.png", "NOPE": tmp_path / "nope.png"}
    extra = [str(names.get(a, a)) for a in extra]
    message = message.replace("NOPE", str(tmp_path / "nope.png"))
    result = _render(
        photos[0], "-s", photos[1], "-s", photos[2], *extra, "-p", preset,
        "-o", tmp_path / "o.png", "-q",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
