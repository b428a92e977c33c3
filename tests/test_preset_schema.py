"""The JSON Schema of presets (``preset_schema``): generated from the dataclasses, it accepts
the bundled presets and refuses what the reader refuses for the same field."""

import dataclasses
import json

import jsonschema
import pytest
import yaml
from conftest import TINY_PRESET, edited_tiny_preset
from hypothesis import given, settings
from hypothesis import strategies as st
from stylecascade.preset import StageConfig, yaml_key
from stylecascade.preset_files import PresetError, bundled_presets, parse_preset
from stylecascade.preset_schema import preset_schema

VALIDATOR = jsonschema.Draft202012Validator(preset_schema())


def test_the_schema_is_a_valid_draft_2020_12_schema_and_plain_json():
    schema = preset_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "stylecascade preset" and "$id" not in schema
    assert json.loads(json.dumps(schema)) == schema
    assert list(schema["properties"]) == [
        "base", "description", "model", "init", "init_image", "color", "styles", "precision",
        "tiling", "defaults", "stages",
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(bundled_presets()))
def test_every_bundled_preset_validates(name):
    VALIDATOR.validate(yaml.safe_load(bundled_presets()[name].read_text(encoding="utf-8")))


def test_the_tiny_preset_and_its_variants_validate():
    VALIDATOR.validate(yaml.safe_load(TINY_PRESET))
    VALIDATOR.validate(
        edited_tiny_preset("model.style_layers", ["relu1_1", "relu2_1"])
    )  # list of names
    styles = [{"image": "a.jpg", "weight": 2, "mask": "m.png", "layers": None, "color": None}]
    VALIDATOR.validate(edited_tiny_preset("styles", styles))
    VALIDATOR.validate(edited_tiny_preset("stages.1.styles", [{"image": "b.jpg"}]))


def test_the_schema_lists_every_stage_field():
    keys = [yaml_key(f) for f in dataclasses.fields(StageConfig)]
    properties = preset_schema()["properties"]
    assert list(properties["stages"]["items"]["properties"]) == keys
    assert list(properties["defaults"]["properties"]) == [k for k in keys if k != "styles"]
    assert "required" not in properties["defaults"]
    lr = properties["defaults"]["properties"]["lr"]
    assert (lr["type"], lr["exclusiveMinimum"], lr["default"]) == ("number", 0, 1.0)
    assert "step size" in lr["description"]


@pytest.mark.parametrize(
    "path, value",
    [
        ("colour", "none"),  # unknown field
        ("model.pool", "avg"),
        ("defaults.speed", 1),
        ("stages.0.zoom", 2),
        ("model.pooling", "min"),  # bad enum
        ("init", "photo"),
        ("precision", "fp16"),
        ("defaults.optimizer", "sgd"),
        ("model.style_layers", {"relu9_9": 1}),
        ("defaults.style_weight", -1),  # negative weight
        ("stages.1.tv_weight", -0.5),
        ("model.style_layers", {"relu1_1": -1}),
        ("styles", [{"image": "a.jpg", "weight": -2}]),
        ("stages.0.iterations", 0),  # other bounds
        ("stages.0.size", 40000),
        ("defaults.tolerance", 2),
        ("tiling", {"size": -1}),
        ("stages.0.iterations", 2.5),
        ("stages", []),
        ("stages.1.styles", []),
        ("styles", [{"weight": 1}]),  # a painting without its image
        ("model.content_layers", ...),  # missing without a base
        ("stages", ...),
    ],
)
def test_a_bad_preset_fails_the_schema_and_the_reader(path, value):
    data = edited_tiny_preset(path, value)
    assert not VALIDATOR.is_valid(data)
    with pytest.raises(PresetError):
        parse_preset(yaml.safe_dump(data), "bad", "bad.yaml")


def test_a_preset_with_a_base_may_leave_out_what_the_base_gives():
    VALIDATOR.validate({"base": "draft", "stages": [{"size": 256, "iterations": 3}]})
    VALIDATOR.validate({"base": "draft", "model": {"pooling": "avg"}})
    one_size = edited_tiny_preset("stages", [{"size": 8}])
    assert not VALIDATOR.is_valid(one_size)  # no iterations in the stage or the defaults
    with_defaults = one_size | {"defaults": {"iterations": 5}}
    VALIDATOR.validate(with_defaults)
    assert parse_preset(yaml.safe_dump(with_defaults), "t", "t.yaml").stages[0].iterations == 5


WORDS = st.sampled_from(["avg", "max", "lbfgs", "adam", "relu1_1", "none", "a.jpg", "x"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats() | WORDS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["size", "iterations", "lr", "pooling", "x"]), children)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    field=st.sampled_from(["model", "stages", "defaults", "styles", "tiling", "init", "color"]),
    value=VALUES,
)
def test_what_the_reader_accepts_the_schema_accepts(field, value):
    data = yaml.safe_load(TINY_PRESET)
    data[field] = value
    try:
        parse_preset(yaml.safe_dump(data), "fuzz", "fuzz.yaml")
    except PresetError:
        return
    assert VALIDATOR.is_valid(data)


def test_the_command_prints_the_schema_as_json():
    import json

    from stylecascade.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["presets", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "stylecascade preset"
    assert schema["properties"]["model"]["properties"]["style_loss"]["enum"] == [
        "gram",
        "w2",
        "swd",
    ]
