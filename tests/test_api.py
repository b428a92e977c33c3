"""The public Python API: ``from stylecascade import render``, with the real VGG19 weights on
small images; it gives what the command line writes."""

import re

import numpy as np
import pytest
import stylecascade
import torch
from PIL import Image
from stylecascade import Renderer, RenderResult, StyleCascadeError, load_preset, render
from stylecascade.cli import app
from stylecascade.images import load_image
from typer.testing import CliRunner


def test_all_names_exactly_the_public_surface():
    assert sorted(stylecascade.__all__) == sorted(
        ["Preset", "RenderRequest", "RenderResult", "Renderer", "StyleCascadeError", "__version__",
         "launch", "load_preset", "render", "render_batch"]
    )  # fmt: skip
    for name in stylecascade.__all__:
        assert getattr(stylecascade, name) is not None


def test_render_returns_the_image_the_stages_and_the_manifest(tmp_path, photos, tiny_preset_file):
    result = render(photos[0], photos[1], preset=str(tiny_preset_file), device="cpu", seed=3)
    assert isinstance(result, RenderResult)
    assert result.image.size == (64, 48) and result.image.mode == "RGB"
    assert [s.size for s in result.stages] == [(32, 24), (64, 48)]
    assert result.tensor.shape == (1, 3, 48, 64)
    manifest = result.manifest
    assert manifest["status"] == "done" and manifest["output"] is None
    assert manifest["seed"] == 3 and [s["size"] for s in manifest["stages"]] == [[32, 24], [64, 48]]
    assert manifest["styles"] == [{"image": str(photos[1]), "weight": 1.0}]

    out = tmp_path / "cli.png"
    args = ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file),
            "-o", str(out), "--device", "cpu", "--seed", "3", "-q"]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    with Image.open(out) as written:
        assert np.array_equal(np.asarray(written), np.asarray(result.image))  # API == CLI


def test_pil_images_and_tensors_render_like_paths(photos, tiny_preset_file):
    preset = load_preset(str(tiny_preset_file))
    renderer = Renderer(preset.resolved(styles=[photos[1]]), device="cpu")
    from_path = renderer.render(photos[0])
    with Image.open(photos[0]) as photo:
        from_pil = renderer.render(photo)
    from_tensor = renderer.render(load_image(photos[0], "content")[0])
    assert torch.equal(from_path.tensor, from_pil.tensor)
    assert torch.equal(from_path.tensor, from_tensor.tensor)
    assert from_pil.manifest["content"] == "<PIL image>"
    style = load_image(photos[1], "style")
    in_memory = render(photos[0], [style], preset=preset, device="cpu")
    assert torch.equal(in_memory.tensor, from_path.tensor)
    assert in_memory.manifest["styles"] == [{"image": "<tensor>", "weight": 1.0}]


def test_a_renderer_keeps_the_network_and_targets_across_calls(photos, tiny_preset_file):
    preset = load_preset(str(tiny_preset_file)).resolved(styles=[photos[1]])
    renderer = Renderer(preset, device="cpu")
    renderer.render(photos[0])
    network, targets = renderer.network, renderer.shared_targets
    renderer.render(photos[2])
    assert targets is not None
    assert renderer.network is network and renderer.shared_targets is targets


@pytest.mark.parametrize(
    "content, message",
    [
        (torch.zeros(3, 8), "must be float (3, H, W)"),
        (torch.full((3, 40, 40), 2.0), "values must be finite and in 0–1"),
        (42, "content must be a path (str or Path) or a PIL image or a tensor; got 42"),
        ("missing.jpg", "content image missing.jpg: no such file"),
    ],
)
def test_bad_inputs_raise_one_error_type(photos, tiny_preset_file, content, message):
    with pytest.raises(StyleCascadeError, match=re.escape(message)):
        render(content, photos[1], preset=str(tiny_preset_file), device="cpu")


def test_render_is_the_function_after_every_module_is_imported():
    import stylecascade
    import stylecascade.batch  # noqa: F401  (imports the render job module)
    import stylecascade.cli  # noqa: F401

    assert callable(stylecascade.render) and stylecascade.render.__module__ == "stylecascade.api"


def test_the_usage_guide_names_every_public_name():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "usage.md").read_text(encoding="utf-8")
    sentence = text.partition("`stylecascade.__all__` is the public surface:")[2]
    listed = re.findall(r"`(\w+)`", sentence.partition(" — ")[0])
    assert sorted(listed) == sorted(stylecascade.__all__)
