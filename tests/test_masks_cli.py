"""Spatial control through the command line (issue 16): ``--mask`` per ``--style`` with the
real VGG19 weights on small images, and its errors as one line each."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_PRESET
from PIL import Image
from stylecascade.cli import app
from stylecascade.images import load_image
from stylecascade.preset_files import load_preset
from stylecascade.renderer import load_network
from stylecascade.stages.blend import WeightedStyle, blended_targets, style_targets
from stylecascade.stages.losses import relative_error
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
        app,
        ["inspect", "--manifest", str(out.with_suffix(".json")), "--out-dir", str(folder), "-q"],
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


def _tiny_preset(tmp_path, extra="", name="tiny.yaml"):
    (tmp_path / name).write_text(TINY_PRESET + extra)
    return tmp_path / name


def test_masks_that_leave_no_painting_are_refused_before_the_weights_load(
    tmp_path, photos, no_network
):
    """Review findings 1, 2 and 4: before, a traceback after the weights loaded (or, for an
    empty mask on the painting, a style loss of 6e14 and a garbage image)."""
    w, h = Image.open(photos[0]).size
    Image.new("L", (w, h), 0).save(tmp_path / "black.png")
    speck = Image.new("L", (w * 4, h * 4), 0)
    speck.paste(255, (100, 100, 102, 102))
    speck.save(tmp_path / "speck.png")
    sw, sh = Image.open(photos[1]).size
    Image.new("L", (sw, sh), 0).save(tmp_path / "sblack.png")
    deep = (
        _tiny_preset(tmp_path)
        .read_text()
        .replace(
            "style_layers: {relu1_1: 1, relu2_1: 1, relu3_1: 1, relu4_1: 1, relu5_1: 1}",
            "style_layers: {relu4_1: 1, relu5_1: 1}\n  guides: inside",
        )
    )
    (tmp_path / "deep.yaml").write_text(deep)
    extra = f"styles: [{{image: {photos[1]}, style_mask: sblack.png}}]\n"
    painting_mask = _tiny_preset(tmp_path, extra, "painting-mask.yaml")
    cases = [
        (["-s", photos[1], "--mask", tmp_path / "black.png", "-p", _tiny_preset(tmp_path)],
         "stage 1 (32×24 px): every painting's mask is empty there"),
        (["-s", photos[1], "--mask", tmp_path / "speck.png", "-p", tmp_path / "deep.yaml"],
         "in guides: inside); give the masks white areas"),
        (["-p", painting_mask], "the mask on style image is empty (all black): it takes nothing"),
    ]  # fmt: skip
    for args, message in cases:
        result = _render(photos[0], *args, "-o", tmp_path / "o.png", "-q")
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines


def test_one_file_as_a_painting_and_as_a_mask(tmp_path, photos):
    """Review finding 6: before, the mask reused the painting's RGB decode (a traceback)."""
    from stylecascade.preset_files import parse_preset
    from stylecascade.renderer import load_style_sets

    text = PRESET + f"styles: [{{image: {photos[0]}, mask: {photos[0]}}}]\n"
    (style,) = load_style_sets(parse_preset(text, "p", "p.yaml"))[0]
    assert style.image.shape[1] == 3 and style.mask.shape[1] == 1


def test_a_painting_color_mode_without_a_mask_applies_everywhere(tmp_path, photos):
    """Review finding 5: before, ``color:`` without a mask was ignored in the output."""
    from stylecascade.preset_files import parse_preset
    from stylecascade.renderer import Renderer
    from stylecascade.stages.color import rgb_to_ycbcr

    text = PRESET + f"styles: [{{image: {photos[1]}, color: luminance}}]\n"
    renderer = Renderer(parse_preset(text, "p", "p.yaml"), device="cpu")
    generator = torch.Generator().manual_seed(0)
    image, content = (0.3 + 0.4 * torch.rand(1, 3, 8, 8, generator=generator) for _ in "ab")
    shown = renderer.shown(image, content)
    torch.testing.assert_close(rgb_to_ycbcr(shown)[:, 1:], rgb_to_ycbcr(content)[:, 1:])


def test_inspect_with_a_missing_mask_creates_nothing(tmp_path, photos):
    """Review finding 7: before, it created the -o folder and then failed."""
    styles = [{"image": str(photos[1]), "mask": str(tmp_path / "gone.png")}]
    manifest = {
        "preset": {**yaml.safe_load(PRESET), "styles": styles},
        "content": str(photos[0]),
        "stages": [{"size": [8, 6], "loss_trace": [1.0, 0.5]}],
    }
    (tmp_path / "o.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(
        app, ["inspect", "--manifest", str(tmp_path / "o.json"), "--out-dir", str(tmp_path / "new")]
    )
    assert result.exit_code == 2 and "gone.png: no such file" in result.output, result.output
    assert not (tmp_path / "new").exists()


def test_the_python_api_takes_mask_paths(photos):
    from PIL import Image as PILImage
    from stylecascade import render
    from stylecascade.errors import UsageError

    with pytest.raises(UsageError, match=r"^masks must be a list \(each a path"):
        render(photos[0], photos[1], masks=[PILImage.new("L", (4, 3))])
