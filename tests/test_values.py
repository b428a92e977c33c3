"""Values that mean nothing are refused or mean something (issue 36, class 8): every number
of the record has its bounds and is finite (``record.check_bounds``), a stage's cap of
evaluations is exact (``stages.optim``) and the progress never counts past it, a mask's grey
is a weight (``stages.blend.mask_strength``), and one name rule (``naming.check_name``) for
every name the project gives a file."""

import dataclasses
import io
import math
import typing
from collections.abc import Sequence
from dataclasses import fields

import pytest
import torch
from rich.console import Console
from stylecascade import progress
from stylecascade.errors import ArgumentError, StyleCascadeError
from stylecascade.naming import output_name
from stylecascade.preset import PresetError
from stylecascade.preset_files import save_user_preset, user_presets
from stylecascade.record import PARTS, Inspection, spec_of
from stylecascade.request import RenderRequest
from stylecascade.runner import run_stages
from stylecascade.stages.blend import WeightedStyle
from stylecascade.stages.cascade import Stage
from stylecascade.stages.optim import optimize

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"]


def _numbers() -> list[tuple[type, str, type]]:
    """``(part, field, int or float)`` of every number of the record (lists of numbers too)."""
    found = []
    for part in [*PARTS.values(), Inspection]:
        hints = typing.get_type_hints(part)
        for f in fields(part):
            kinds = set(typing.get_args(hints[f.name])) | {hints[f.name]}
            for kind in list(kinds):
                if typing.get_origin(kind) is Sequence:
                    kinds |= set(typing.get_args(kind))
            number = next((k for k in (float, int) if k in kinds), None)
            if number is not None:
                found.append((part, f.name, number))
    return found


NUMBERS = _numbers()


def test_every_number_of_the_record_has_a_lower_bound():
    assert len(NUMBERS) >= 20
    missing = [name for _, name, _ in NUMBERS if spec_of(_field(name)).at_least is None]
    assert not missing, f"numbers without a lower bound: {missing}"


def _field(name: str):
    return next(f for part in [*PARTS.values(), Inspection] for f in fields(part) if f.name == name)


REQUEST_NUMBERS = [(name, kind) for part, name, kind in NUMBERS if part is not Inspection]


def _refused(name: str, value) -> ArgumentError:
    value = [value] if name == "blend_weights" else value
    with pytest.raises(ArgumentError) as info:
        RenderRequest.of(**{name: value}).check()
    assert info.value.arguments[0] == name, info.value
    return info.value


@pytest.mark.parametrize(("name", "kind"), REQUEST_NUMBERS)
def test_each_number_below_its_bound_is_refused_naming_its_field(name, kind):
    low = spec_of(_field(name)).at_least
    below = low - 1 if kind is int else (low - 1 if low >= 1 else -1.0)
    assert "must be" in str(_refused(name, below))


@pytest.mark.parametrize("name", [n for n, kind in REQUEST_NUMBERS if kind is float])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_each_float_must_be_finite(name, value):
    assert "must be" in str(_refused(name, value))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("dpi", 1e-320, "dpi must be 1 … 65535; got 1e-320"),  # a file would say DPI (0, 0)
        ("dpi", 0.5, "dpi must be 1 … 65535; got 0.5"),
        ("max_input_pixels", -1, "max_input_pixels must be 0 … "),  # 0: no limit
        ("max_input_pixels", 2**70, "max_input_pixels must be 0 … 1099511627776"),
        ("threads", 10**6, "threads must be 1 … 1024"),
        ("tile_size", -5, "tile_size must be 0 … 32768"),
        ("iterations", 10**9, "iterations must be 1 … 100000"),
        ("style_weight", -1.0, "style_weight must be 0 … 1e+20"),
        ("size", 10, "size must be 64 … 32768; got 10"),
        ("jpeg_quality", 100, "jpeg_quality must be 1 … 95"),
        ("seed", -1, "seed must be 0 … 18446744073709551615; got -1"),
    ],
)
def test_the_instances_say_the_bound(name, value, message):
    assert str(_refused(name, value)).startswith(message)


# --- the cap of evaluations is exact -------------------------------------------------------


def _problem():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 16, 16)
    image = torch.rand(1, 3, 16, 16).requires_grad_(True)

    def objective():
        loss = ((image - target) ** 2).mean() * 256 + image.sum() * 1e-3
        loss.backward()
        return loss

    return image, objective


@pytest.mark.parametrize("name", ["lbfgs", "adam"])
@pytest.mark.parametrize("cap", [1, 2, 3, 4, 5, 9])
def test_an_optimizer_makes_exactly_its_cap_of_evaluations(name, cap):
    image, objective = _problem()
    seen: list[int] = []
    count = optimize(image, name, 1.0 if name == "lbfgs" else 0.05, cap, objective, seen.append)
    assert count == cap and seen == list(range(1, cap + 1))


@pytest.mark.parametrize("caps", [(1, 3), (3, 1)])
def test_a_stage_stops_at_its_cap_and_says_so(tiny_extractor, tiny_preset, content_image, caps):
    stages = tuple(
        dataclasses.replace(s, iterations=c, tolerance=0.0)
        for s, c in zip(tiny_preset.stages, caps, strict=True)
    )
    preset = dataclasses.replace(tiny_preset, stages=stages)
    styles = [WeightedStyle(content_image.flip(-1))]
    results = list(run_stages(tiny_extractor(LAYERS), preset, content_image, styles))
    assert [(r.evaluations, r.stop) for r in results] == [(c, "cap") for c in caps]
    assert [len(r.loss_trace) for r in results] == list(caps)


def test_the_log_never_counts_past_the_cap_nor_a_negative_time_left(monkeypatch):
    out = io.StringIO()
    clock = iter([100.0, 100.0 + progress.LOG_EVERY_SECONDS + 1, 200.0, 300.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    log = progress.LogProgress(Console(file=out, width=200))
    log.stage_started(0, 1, Stage(size=(48, 64), iterations=12, style_edge=64))
    log.iteration(13, {"content": torch.tensor(1.0)})
    line = out.getvalue().splitlines()[-1]
    assert "12/12" in line and "13/12" not in line and "≤ 0 s left" in line, line
    assert progress.time_left(10.0, 13, 12) == 0.0 and progress.time_left(10.0, 0, 12) == 120.0


# --- a mask's grey is a weight ---------------------------------------------------------------


def _render(tiny_extractor, tiny_preset, content, style, mask=None, style_weight=1.0):
    """The tiny preset with Adam (no line search: a render moves smoothly with its weights)."""
    stages = tuple(
        dataclasses.replace(
            s, iterations=20, tolerance=0.0, optimizer="adam", lr=0.02,
            style_weight=s.style_weight * style_weight,
        )
        for s in tiny_preset.stages
    )  # fmt: skip
    preset = dataclasses.replace(tiny_preset, stages=stages)
    styles = [WeightedStyle(style, mask=mask)]
    return list(run_stages(tiny_extractor(LAYERS), preset, content, styles))[-1].image


def test_a_grey_mask_applies_its_painting_in_proportion(
    tiny_extractor, tiny_preset, content_image, style_image
):
    """A uniform 50 % grey mask is the painting at half its style weight, 1/255 at 1/255 of
    it: before, the region's normalized statistics lost the level and both were white."""
    h, w = content_image.shape[-2:]

    def render(level=None, style_weight=1.0):
        mask = None if level is None else torch.full((1, 1, h, w), level)
        return _render(tiny_extractor, tiny_preset, content_image, style_image, mask, style_weight)

    white, grey, faint = render(1.0), render(0.5), render(1 / 255)
    assert (grey - white).abs().mean() > 2e-3 and (faint - white).abs().mean() > 1e-2
    torch.testing.assert_close(white, render(), atol=1e-5, rtol=0)  # white: as no mask
    torch.testing.assert_close(grey, render(style_weight=0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(faint, render(style_weight=1 / 255), atol=1e-5, rtol=0)


# --- one name rule ---------------------------------------------------------------------------

LOOK_ALIKES = ["DRAFT", "Draft", "draft ", " draft", "draft\n", "ｄｒａｆｔ", "\u202edraft"]
ODD = ["a\nb", "a\rb", "look\u202egnp", "tab\tbed", "zero\u200bwidth", "nul\x00", "x" * 300]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("name", LOOK_ALIKES + ODD)
def test_no_saved_preset_shadows_a_bundled_one_or_holds_odd_characters(home, tiny_preset, name):
    with pytest.raises(PresetError, match="^preset name "):
        save_user_preset(name, tiny_preset)
    assert not (home / "presets").exists() or not list((home / "presets").iterdir())


def test_a_saved_name_cannot_look_like_another_saved_one(home, tiny_preset):
    save_user_preset("my-look", tiny_preset)
    save_user_preset("my-look", tiny_preset)  # the same name again: the same file
    with pytest.raises(PresetError, match="looks like 'my-look'"):
        save_user_preset("My-Look", tiny_preset)
    assert list(user_presets()) == ["my-look"]


def test_files_made_by_hand_with_such_names_are_no_presets(home, tiny_preset):
    folder = home / "presets"
    folder.mkdir(parents=True)
    for stem in ("DRAFT", "Draft", "draft ", "a\u202eb", "fine"):
        (folder / f"{stem}.yaml").write_text("base: draft\n")
    assert list(user_presets()) == ["fine"]
    from stylecascade.preset_files import ignored_presets

    assert len(ignored_presets()) == 4


@pytest.mark.parametrize("stem", ["a\nb", "\u202egnp.exe", "tab\tbed"])
def test_a_name_pattern_never_makes_a_file_name_with_odd_characters(tmp_path, tiny_preset, stem):
    with pytest.raises(ArgumentError) as info:
        output_name("{content}.png", tmp_path / f"{stem}.jpg", tiny_preset, 0)
    assert info.value.arguments == ("name",) and "holds U+" in str(info.value)


@pytest.mark.parametrize("name", ["a\nb.png", "gnp\u202e.png", " o.png"])
def test_an_output_file_name_keeps_the_name_rule(tmp_path, name):
    with pytest.raises(StyleCascadeError) as info:
        RenderRequest.of(photos=[tmp_path / "p.png"], output=str(tmp_path / name)).check()
    assert isinstance(info.value, ArgumentError) and info.value.arguments == ("output",)


def test_presets_list_shows_one_draft_and_says_which_files_it_ignored(home):
    from stylecascade.cli import app
    from typer.testing import CliRunner

    folder = home / "presets"
    folder.mkdir(parents=True)
    for stem in ("DRAFT", "Draft", "draft "):
        (folder / f"{stem}.yaml").write_text("base: draft\n")
    result = CliRunner().invoke(app, ["presets", "list"])
    rows = [line.split("│")[1].strip() for line in result.output.splitlines() if "│" in line]
    assert result.exit_code == 0 and [r for r in rows if r.casefold() == "draft"] == ["draft"]
    assert result.output.count("ignored ") == 3 and "looks like 'draft'" in result.output


def test_an_exported_weights_file_keeps_the_name_rule(tmp_path):
    from stylecascade.cli import app
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        app, ["weights", "export", "--compact", str(tmp_path / "vgg\u202etp.pt")]
    )
    assert result.exit_code == 2 and "--compact 'vgg\\u202etp.pt': holds U+202E" in result.output
