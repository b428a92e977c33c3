"""The print recipe (issue 34): detail stages with their own layers (in presets, the schema,
``base:`` chains, the manifest and resume), the network run only as deep as a stage's
layers, the painting at its own pixels in the stages that ask for it, and the print preset's
speckle at a small size."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import EXAMPLES, TINY_PRESET
from PIL import Image
from stylecascade import render
from stylecascade.launch import launch
from stylecascade.preset_files import load_preset
from stylecascade.preset_schema import preset_schema
from stylecascade.request import RenderRequest
from stylecascade.runner import schedule, style_edge
from stylecascade.stages.blend import Native, WeightedStyle, style_size
from stylecascade.stages.blend import style_image as resized
from stylecascade.stages.quality import speckle_density
from stylecascade.stages.stopping import StopHandle
from stylecascade.stages.terms import TermContext, build_objective, weighted_terms

DETAIL = {
    "style_layers": {"relu1_1": 1, "relu2_1": 1},
    "content_layers": {"relu2_1": 1},
    "style_basis": "painting",
    "content_from": "previous",
    "history": 5,
}
"""A detail stage's own fields."""


def _detailed(tmp_path, **more):
    data = yaml.safe_load(TINY_PRESET)
    data["stages"][1].update(DETAIL, **more)
    path = tmp_path / "detail.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_stage_has_its_own_layers_basis_history_and_content(tmp_path):
    preset = load_preset(str(_detailed(tmp_path)))
    coarse, detail = preset.stages
    assert coarse.style_layers is None and coarse.style_basis == "stage" and coarse.history == 20
    assert detail.style_layers == {"relu1_1": 1, "relu2_1": 1}
    assert (detail.style_basis, detail.content_from, detail.history) == ("painting", "previous", 5)
    assert preset.layers >= {"relu1_1", "relu2_1", "relu4_2", "relu5_1"}
    stages = schedule(preset, (48, 64))
    assert stages[1].layers(preset.layers) == {"relu1_1", "relu2_1"}
    assert stages[0].layers(preset.layers) == preset.layers
    assert style_edge(preset.stages[1]) == Native(1.0) and style_edge(preset.stages[0]) == 32


def test_the_stage_fields_are_in_the_schema_and_refused_when_wrong(tmp_path):
    stage = preset_schema()["properties"]["stages"]["items"]["properties"]
    assert stage["style_basis"]["enum"] == ["stage", "painting"]
    assert stage["content_from"]["enum"] == ["photo", "previous"]
    assert {"style_layers", "content_layers", "history"} <= set(stage)
    with pytest.raises(Exception, match=r"stages\[1\]\.style_basis.*stage, painting"):
        load_preset(str(_detailed(tmp_path, style_basis="canvas")))
    with pytest.raises(Exception, match=r"stages\[1\]\.style_layers.*relu9_9"):
        load_preset(str(_detailed(tmp_path, style_layers={"relu9_9": 1})))


def test_defaults_and_a_base_chain_carry_the_stage_fields(tmp_path):
    data = yaml.safe_load(TINY_PRESET)
    data["defaults"].update(style_layers={"relu1_1": 1}, history=7)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(data))
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\ndescription: child\ndefaults: {history: 9}\n")
    preset = load_preset(str(child))
    assert [s.style_layers for s in preset.stages] == [{"relu1_1": 1}] * 2
    assert [s.history for s in preset.stages] == [9, 9]


def test_the_network_through_a_stages_layers_gives_the_same_features_and_loss(
    tiny_extractor, content_image, style_image
):
    full = tiny_extractor(["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"])
    short = full.through({"relu1_1", "relu2_1"})
    assert short.deepest == "relu2_1" and len(short.net) < len(full.net)
    assert full.through(full.layers) is full and full.deepest == "relu5_1"
    a, b = full(content_image), short(content_image)
    assert set(b) == {"relu1_1", "relu2_1"}
    for layer in b:
        assert torch.equal(a[layer], b[layer])
    terms = weighted_terms(1.0, 0.0, 0.0)[:1]  # the content term alone
    losses = [
        build_objective(terms, TermContext(net, content_image, {"relu2_1": 1.0}, lambda k: []))(
            content_image.flip(-1)
        )
        for net in (full, short)
    ]
    assert torch.equal(losses[0]["content"], losses[1]["content"])


def test_a_native_style_size_is_the_paintings_own_pixels(style_image):
    style = WeightedStyle(style_image, 1.0)
    assert style_size(style, Native(1.0)) == 64 and style_size(style, Native(0.5)) == 32
    assert resized(style, Native(1.0)) is style_image  # its own pixels, untouched
    assert resized(style, 256).shape[-1] == 256  # relative: follows the stage
    assert resized(style, Native(0.5)).shape[-1] == 32


def test_a_detail_stage_is_in_the_manifest_and_resumes_to_the_same_image(tmp_path, photos):
    preset = load_preset(str(_detailed(tmp_path)))

    class StopAfterFirstStage:
        def __init__(self, stop):
            self.stop = stop

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

        def stage_finished(self, result):
            self.stop.stop()

    out, whole = tmp_path / "out.png", tmp_path / "whole.png"
    common = {"photos": [photos[0]], "styles": [photos[1]], "preset": preset, "device": "cpu",
              "quiet": True, "threads": 1}  # fmt: skip
    stop = StopHandle()
    [first] = launch(RenderRequest.of(output=out, **common), observer=StopAfterFirstStage(stop),
                     stop=stop)  # fmt: skip
    assert first.status == "interrupted"
    [resumed] = launch(RenderRequest.of(output=out, resume=True, **common))
    [again] = launch(RenderRequest.of(output=whole, **common))
    assert resumed.status == again.status == "done"
    manifest = json.loads(out.with_suffix(".json").read_text())
    stage = manifest["preset"]["stages"][1]
    assert {k: stage[k] for k in DETAIL} == DETAIL
    with Image.open(out) as a, Image.open(whole) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


PRINT_SPECKLE_BOUND = 2.5e-2
"""Speckle density allowed for ``print --size 512`` (its 512 px stage is a detail stage with
the painting at its own pixels): a guard against it growing. Measured 1.7e-2 here (and at
1024 px), against 1.1e-4 for the earlier ``draft`` + SWD and 6.0e-3 for crowsonkb's (the
goal, missed: the bundled painting is a 1024 px JPEG whose grain comes through at its own
pixels; docs/performance.md)."""


def test_the_print_recipe_at_a_small_size_keeps_its_speckle_bound():
    pair = (EXAMPLES / "tubingen.jpg", EXAMPLES / "starry_night.jpg")
    result = render(*pair, preset="print", size=512, device="cpu")
    stages = result.manifest["stages"]
    assert [max(s["size"]) for s in stages] == [128, 256, 512]
    assert result.manifest["preset"]["stages"][-1]["style_basis"] == "painting"
    assert speckle_density(result.tensor) <= PRINT_SPECKLE_BOUND
