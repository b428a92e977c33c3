import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from conftest import TINY_PRESET, edited_tiny_preset
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from stylecascade.errors import ArgumentError, UsageError
from stylecascade.preset import MIN_STAGE_EDGE, PresetError, scaled_stages
from stylecascade.preset_files import bundled_presets, load_preset, parse_preset


def test_bundled_presets_load():
    names = set(bundled_presets())
    assert {"draft", "standard", "print"} <= names
    for name in names:
        preset = load_preset(name)
        sizes = [s.long_edge for s in preset.stages]
        assert sizes == sorted(set(sizes))
        assert preset.description


def test_bundled_preset_sizes():
    assert load_preset("draft").stages[-1].long_edge == 512
    assert [s.long_edge for s in load_preset("standard").stages] == [256, 512, 1024]
    assert load_preset("print").stages[-1].long_edge == 4096


def test_defaults_are_merged_into_stages(tiny_preset):
    first, second = tiny_preset.stages
    assert (first.long_edge, first.iterations, second.long_edge, second.iterations) == (
        32,
        8,
        64,
        6,
    )
    assert first.style_weight == second.style_weight == 200.0
    assert first.style_scale == 1.0  # built-in default
    assert tiny_preset.model.style_layers["relu3_1"] == 1.0


def test_yaml_1_1_exponent_strings_are_numbers():
    text = TINY_PRESET.replace("style_weight: 200.0", "style_weight: 1e4")
    assert parse_preset(text, "t", "t.yaml").stages[0].style_weight == 1e4


def test_record_reads_real_annotations_including_optional_numbers():
    from dataclasses import dataclass, field

    from stylecascade.preset_reader import Reader

    @dataclass(frozen=True)
    class Record:
        count: int | None = field(default=None, metadata={"positive": True})
        scale: float = 1.0

    reader = Reader("r.yaml")
    assert reader.record(Record, {"count": "3", "scale": 2}, "r") == Record(3, 2.0)
    assert reader.record(Record, {"count": None}, "r") == Record(None, 1.0)
    with pytest.raises(PresetError, match="r.count: must be a whole number; got 2.5"):
        reader.record(Record, {"count": 2.5}, "r")
    with pytest.raises(PresetError, match="r.scale: must be a number; got nothing"):
        reader.record(Record, {"scale": None}, "r")


@pytest.mark.parametrize(
    "path, value, message",
    [
        (
            "colour",  # the British spelling is not a field: the key is color
            "x",
            "colour: unknown field; allowed: base, description, model, init, init_image, color",
        ),
        (
            "model.pool",
            "avg",
            "model.pool: unknown field; allowed: pooling, content_layers, style_layers",
        ),
        ("model.pooling", "min", "model.pooling: must be one of max, avg; got 'min'"),
        (
            "model.style_layers",
            {"relu9_9": 1},
            "model.style_layers.relu9_9: unknown layer; allowed: conv1_1",
        ),
        ("model.style_layers", {"relu1_1": -1}, "model.style_layers.relu1_1: weight must be ≥ 0"),
        (
            "model.style_layers",
            {"relu1_1": 0},
            "model.style_layers: layer weights must not all be 0",
        ),
        ("model.content_layers", ..., "model.content_layers: missing"),
        ("model.content_layers", [1, 2], "model.content_layers: must be a mapping"),
        (
            "init",
            "photo",
            "init: must be one of content, noise, style, style-stats, style-mean+detail; "
            "got 'photo'",
        ),
        ("precision", "fp16", "precision: must be one of fp32, tf32, bf16, auto; got 'fp16'"),
        ("tiling", {"size": -1}, "tiling.size: must be ≥ 0"),
        (
            "tiling",
            {"size": 64, "overlap": 64},
            "tiling.size: must be 0 or more than tiling.overlap",
        ),
        ("tiling", {"lr": 0}, "tiling.lr: must be > 0"),
        ("color", "sepia", "color: must be one of none, luminance, histogram, luminance-only"),
        (
            "styles",
            "a.jpg",
            "styles: must be a list of 0 to 64 {image: PATH, weight: W, mask: PATH}; got str",
        ),
        ("styles", [{"weight": 1}], "styles[0].image: missing"),
        ("styles", [{"image": "a.jpg", "weight": -2}], "styles[0].weight: must be ≥ 0"),
        ("styles", [{"image": "a.jpg", "weight": 0}], "styles: style weights must not all be 0"),
        ("styles", [{"image": "a.jpg", "mix": 1}], "styles[0].mix: unknown field; allowed: image"),
        ("defaults.optimizer", "sgd", "defaults.optimizer: must be one of lbfgs, adam; got 'sgd'"),
        ("defaults.lr", "fast", "defaults.lr: must be a number; got str 'fast'"),
        ("defaults.lr", 0, "defaults.lr: must be > 0"),
        ("defaults.style_weight", -1, "defaults.style_weight: must be ≥ 0"),
        ("stages.1.style_weight", -1, "stages[1].style_weight: must be ≥ 0"),
        ("defaults.tv_weight", float("nan"), "defaults.tv_weight: must be a finite number"),
        (
            "defaults.speed",
            1,
            "defaults.speed: unknown field; allowed: size, iterations, optimizer",
        ),
        ("stages.0.iterations", 0, "stages[0].iterations: must be > 0; got 0"),
        ("stages.0.iterations", 2.5, "stages[0].iterations: must be a whole number; got 2.5"),
        ("stages.0.iterations", True, "stages[0].iterations: must be a number; got bool True"),
        ("stages.0.size", ..., "stages[0].size: missing"),
        ("stages.1.size", 32, "stages[1].size: stage sizes must increase; got 32 after 32"),
        ("stages", [], "stages: must be a list of 1 to 64 stages; got list []"),
        ("stages.0.size", 99999999999999999999, "stages[0].size: must be ≤ 32768; got"),
        ("stages.0.iterations", 10**6, "stages[0].iterations: must be ≤ 100000"),
        ("defaults.style_scale", 100, "defaults.style_scale: must be ≤ 8; got 100"),
        ("defaults.tolerance", 2, "defaults.tolerance: must be ≤ 1; got 2"),
        ("stages.0.style_weight", 1e300, "stages[0].style_weight: must be ≤ 1e+20; got 1e+300"),
        (
            "model.style_layers.relu1_1",
            1e21,
            "model.style_layers.relu1_1: weight must be ≤ 1e+20; got 1e+21",
        ),
        ("stages", ..., "stages: missing"),
    ],
)
def test_invalid_presets_name_file_field_and_allowed_values(path, value, message):
    with pytest.raises(PresetError) as info:
        parse_preset(yaml.safe_dump(edited_tiny_preset(path, value)), "bad", "my/bad.yaml")
    assert str(info.value).startswith(f"my/bad.yaml: {message}")
    assert "\n" not in str(info.value)


def test_malformed_yaml_names_the_line():
    with pytest.raises(
        PresetError, match=r"bad.yaml: not valid YAML at line 2, column 15: mapping values"
    ):
        parse_preset("model:\n  pooling: avg: max\n", "bad", "bad.yaml")


def test_not_a_mapping():
    with pytest.raises(PresetError, match="bad.yaml: must be a mapping of key: value; got list"):
        parse_preset("- 1\n- 2\n", "bad", "bad.yaml")


def test_load_preset_from_file(tiny_preset_file):
    preset = load_preset(str(tiny_preset_file))
    assert preset.name == "tiny" and len(preset.stages) == 2


def test_unknown_preset_name_lists_bundled():
    with pytest.raises(
        UsageError, match="unknown preset 'fancy'; known presets: draft, print, standard"
    ):
        load_preset("fancy")


def test_missing_preset_file():
    with pytest.raises(PresetError, match="nope.yaml: no such file"):
        load_preset("nope.yaml")


def test_with_final_size_scales_every_stage(tiny_preset):
    scaled = tiny_preset.with_final_size(256)
    assert [s.long_edge for s in scaled.stages] == [128, 256]
    assert scaled.stages[0].iterations == tiny_preset.stages[0].iterations
    first, second = tiny_preset.stages
    close = dataclasses.replace(
        tiny_preset,
        stages=(
            dataclasses.replace(first, long_edge=1000),
            dataclasses.replace(first, long_edge=1001),
            dataclasses.replace(second, long_edge=2000),
        ),
    )
    with pytest.raises(ArgumentError, match=r"scaled to stage sizes \[500, 500, 1000\]"):
        close.with_final_size(1000)
    # An earlier stage that rounds onto a final size under the floor is dropped, not an error.
    assert [s.long_edge for s in close.with_final_size(100).stages] == [100]


@pytest.mark.parametrize(
    ("preset", "size", "edges", "dropped", "settings_of"),
    [
        # a smaller render that dropped stages runs the preset's first stages' settings (issue
        # 28.6: draft --size 128 ran the last stage's 50 evaluations alone, a blur)
        ("print", 1024, [128, 256, 512, 1024], (64,), [0, 1, 2, 3]),
        ("draft", 200, [128, 200], (50, 100), [0, 1]),  # a floor stage replaces 50 and 100
        ("draft", 160, [160], (40, 80), [0]),  # within √2 of the floor: no floor stage
        ("draft", 64, [64], (16, 32), [0]),
        ("standard", 4096, [1024, 2048, 4096], (), [0, 1, 2]),
    ],
)
def test_scaled_stages_start_at_the_floor(preset, size, edges, dropped, settings_of):
    original = load_preset(preset).stages
    ladder = scaled_stages(original, size)
    assert [s.long_edge for s in ladder.stages] == edges
    assert ladder.dropped == dropped and ladder.floor == min(MIN_STAGE_EDGE, size)
    assert ladder.inserted == (preset == "draft" and size == 200)
    stages = ladder.stages
    assert [s.iterations for s in stages] == [original[i].iterations for i in settings_of]
    assert MIN_STAGE_EDGE == 128


def test_a_presets_own_small_stage_is_kept(tiny_preset):
    # 32 → 64 px at its own size: nothing was pushed under the floor by scaling.
    ladder = scaled_stages(tiny_preset.stages, 64)
    assert [s.long_edge for s in ladder.stages] == [32, 64] and ladder.dropped == ()


def test_readme_shows_the_real_draft_preset():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    shown = readme.split("`stylecascade presets show draft` prints:", 1)[1]
    block = shown.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == yaml.safe_load(bundled_presets()["draft"].read_text())


def test_preset_styles_are_relative_to_the_preset_file(tmp_path):
    text = TINY_PRESET + "color: luminance\nstyles:\n  - {image: art/a.jpg, weight: 3}\n"
    preset = parse_preset(text, "t", "t.yaml", tmp_path)
    assert preset.color == "luminance"
    assert [(s.image, s.weight, s.scale) for s in preset.styles] == [
        (str(tmp_path / "art/a.jpg"), 3.0, 1.0)
    ]


def test_resolved_puts_command_line_choices_over_the_preset(tiny_preset, tmp_path):
    styled = tiny_preset.resolved(
        styles=[Path("a.jpg"), Path("b.jpg")], blend_weights=[1, 3], color="histogram", size=128
    )
    assert [Path(s.image).name for s in styled.styles] == ["a.jpg", "b.jpg"]
    assert all(Path(s.image).is_absolute() for s in styled.styles)
    assert [s.weight for s in styled.styles] == [1, 3]
    assert styled.color == "histogram" and styled.stages[-1].long_edge == 128
    # equal weights by default; the preset's own styles when none are given
    assert [s.weight for s in tiny_preset.resolved(styles=[Path("a.jpg")] * 2).styles] == [1.0, 1.0]
    assert styled.resolved().styles == styled.styles


@pytest.mark.parametrize(
    "styles, weights, color, message",
    [
        (["a.jpg"], [1, 2], None, "blend_weights given 2 times for 1 style image(s)"),
        (["a.jpg", "b.jpg"], [0, 0], None, "must be finite, ≥ 0 and not all 0"),
        (["a.jpg"], [-1], None, "must be finite, ≥ 0 and not all 0"),
        (["a.jpg"], None, "sepia", "color must be one of none, luminance, histogram"),
    ],
)
def test_resolved_refuses_bad_choices(tiny_preset, styles, weights, color, message):
    with pytest.raises(ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tiny_preset.resolved(styles=[Path(s) for s in styles], blend_weights=weights, color=color)


def test_a_manifest_of_release_0_1_is_refused_as_a_preset(tmp_path, tiny_preset):
    old = tmp_path / "old.json"
    data = {"preset": tiny_preset.to_dict(), "versions": {"stylecascade": "0.1.0"}}
    old.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(PresetError, match=r"old.json: made by stylecascade 0.1.0, whose content"):
        load_preset(str(old))


def _write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_preset_extends_its_base_and_overrides_fields(tmp_path):
    _write(tmp_path, "base.yaml", TINY_PRESET + "styles:\n  - {image: art/a.jpg}\n")
    (tmp_path / "sub").mkdir()
    child = _write(
        tmp_path / "sub",
        "child.yaml",
        "base: ../base.yaml\n"
        "model: {pooling: max}\n"
        "defaults: {tv_weight: 3.0}\n"
        "stages:\n  - {size: 48, iterations: 5}\n  - {size: 96, iterations: 4, lr: 0.5}\n",
    )
    preset, base = load_preset(str(child)), load_preset(str(tmp_path / "base.yaml"))
    assert preset.model.pooling == "max"  # merged key by key: the child's key wins …
    assert preset.model.style_layers == base.model.style_layers  # … the base's others stay
    assert [(s.long_edge, s.iterations, s.lr) for s in preset.stages] == [
        (48, 5, 1.0),
        (96, 4, 0.5),
    ]
    assert {s.tv_weight for s in preset.stages} == {3.0}
    assert {s.style_weight for s in preset.stages} == {200.0}  # from the base's defaults
    assert [s.image for s in preset.styles] == [str(tmp_path / "art/a.jpg")]  # base's folder
    assert preset.description == "based on ../base.yaml"


def test_bundled_presets_share_drafts_blocks():
    draft, standard, printing = (load_preset(n) for n in ("draft", "standard", "print"))
    for preset in (standard, printing):  # the layers and pooling; standard's style loss
        assert dataclasses.replace(preset.model, style_loss="gram") == draft.model
        assert preset.model.style_loss == "swd"
    assert {s.style_weight for s in draft.stages} == {20.0}
    assert {s.style_weight for s in standard.stages} == {60.0}  # the swd loss's scale
    assert [(s.style_loss, s.style_weight) for s in printing.stages[3:]] == [("gram", 20.0)] * 2
    assert "base: draft" in bundled_presets()["standard"].read_text()
    assert "base: standard" in bundled_presets()["print"].read_text()


@pytest.mark.parametrize(
    "text, message",
    [
        ("base: loop.yaml\n", "base: {d}/loop.yaml → {d}/loop.yaml loops"),
        ("base: [draft]\n", "base: must be a preset name or YAML file; got list"),
        ("base: nowhere.yaml\n", "nowhere.yaml: no such file"),
        ("base: fancy\n", "unknown preset 'fancy'"),
    ],
)
def test_bad_bases_are_one_clear_error(tmp_path, text, message):
    path = _write(tmp_path, "loop.yaml", text)
    with pytest.raises(PresetError) as info:
        load_preset(str(path))
    assert message.format(d=tmp_path) in str(info.value)


def test_a_scaled_preset_describes_its_new_sizes():
    draft = load_preset("draft")
    assert draft.with_final_size(512) is draft
    assert draft.with_final_size(1024).description == "draft scaled to 1024 px: 256 → 512 → 1024 px"


def _alias_bomb() -> str:
    """A flow list of nine levels, each level nine aliases of the one before: 9⁹ ≈ 387
    million leaves from 300 bytes."""
    levels = ["&a [x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "[" + ", ".join(levels) + "]"


@pytest.mark.parametrize(
    "field", ["model", "init", "styles", "tiling", "defaults", "stages", "description", "base"]
)
def test_a_yaml_alias_bomb_is_one_short_error(field):
    data = yaml.safe_load(TINY_PRESET)
    data.pop(field, None)
    text = yaml.safe_dump(data) + f"{field}: {_alias_bomb()}\n"
    with pytest.raises(PresetError) as info:
        parse_preset(text, "bomb", "bomb.yaml")
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)


def test_an_oversized_preset_file_is_refused_unread(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(PresetError, match="big.yaml: larger than 1048576 bytes; not a preset"):
        load_preset(str(big))


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["size", "iterations", "lr", "pooling", "x"]), children)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, derandomize=True)  # the same examples in every CI run
@given(
    field=st.sampled_from(["model", "stages", "defaults", "styles", "tiling", "init", "base"]),
    value=YAML_VALUES,
)
def test_any_value_in_any_field_gives_a_preset_or_one_preset_error(field, value):
    data = yaml.safe_load(TINY_PRESET)
    data[field] = value
    try:
        parse_preset(yaml.safe_dump(data), "fuzz", "fuzz.yaml")
    except PresetError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yaml: ")


def test_weight_multipliers_scale_every_stage_and_none_changes_nothing(tiny_preset):
    assert tiny_preset.resolved() == tiny_preset
    scaled = tiny_preset.resolved(content_weight=2, style_weight=0.5, tv_weight=0)
    for before, after in zip(tiny_preset.stages, scaled.stages, strict=True):
        assert after.content_weight == before.content_weight * 2
        assert after.style_weight == before.style_weight * 0.5
        assert after.tv_weight == 0.0
        assert dataclasses.replace(after, content_weight=before.content_weight,
                                   style_weight=before.style_weight) == before  # fmt: skip


@pytest.mark.parametrize(
    "arguments, argument, message",
    [
        ({"content_weight": -1}, "content_weight", "must be a finite number ≥ 0; got -1"),
        ({"style_weight": float("inf")}, "style_weight", "must be a finite number ≥ 0; got inf"),
        ({"style_weight": 1e19}, "style_weight", "makes a stage's style_weight 2e+21"),
        ({"masks": ["m.png"]}, "masks", "given 1 times for 0 style image(s); give one per styles"),
        ({"size": 0}, "size", "must be a positive number of pixels; got 0"),
        ({"tile_size": 10}, "tile_size", "must be 0 or more than the preset's tiling.overlap"),
        ({"color": {"sepia": 1}}, "color", "got {'sepia': 1}"),
    ],
)
def test_resolved_errors_name_the_argument(tiny_preset, arguments, argument, message):
    with pytest.raises(ArgumentError) as info:
        tiny_preset.resolved(**arguments)
    assert info.value.argument == argument and str(info.value).startswith(argument)
    assert message in str(info.value)
    assert info.value.named(lambda name: f"--{name}").startswith(f"--{argument}")


@pytest.mark.parametrize("field", ["image", "mask", "style_mask"])
def test_presets_validate_checks_every_stage_painting_and_mask(tmp_path, tiny_preset_file, field):
    """Issue 25.3: a missing per-stage painting was "valid"."""
    from stylecascade.cli import app
    from typer.testing import CliRunner

    painting = tmp_path / "painting.png"
    Image.new("RGB", (32, 32)).save(painting)
    own = {"image": str(painting), field: str(tmp_path / "gone.png")}
    data = yaml.safe_load(tiny_preset_file.read_text())
    data["stages"][-1]["styles"] = [own]
    tiny_preset_file.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["presets", "validate", str(tiny_preset_file)])
    n = len(data["stages"]) - 1
    assert result.exit_code == 2, result.output
    assert f"stages[{n}].styles[0].{field}: {tmp_path / 'gone.png'}: no such file" in result.output
