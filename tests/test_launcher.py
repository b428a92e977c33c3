"""One launcher for the command line and the Python API: every option has its API twin,
messages name what the caller typed, and a script renders a batch exactly as the CLI does."""

import json

import numpy as np
import pytest
import typer
from conftest import render_cli
from PIL import Image
from stylecascade.api import render_batch
from stylecascade.cli import app
from stylecascade.errors import ArgumentError
from stylecascade.options import flag_of
from typer.testing import CliRunner

runner = CliRunner()


def _render_params() -> dict[str, object]:
    command = typer.main.get_command(app).commands["render"]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params}


def test_each_option_sits_in_a_help_panel():
    for name, param in _render_params().items():
        if param.param_type_name == "option" and name != "help":
            assert getattr(param, "rich_help_panel", None), f"{name} is in no --help panel"


def test_help_shows_the_panels_in_80_columns():
    result = runner.invoke(app, ["render", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    for panel in ("Inputs", "Look", "Output", "Print", "Performance", "Batch and cluster"):
        assert panel in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


@pytest.mark.parametrize(
    ("argument", "flag"),
    [("blend_weights", "--blend-weight"), ("out_dir", "--out-dir"), ("output", "-o")],
)
def test_an_argument_error_names_the_api_argument_or_the_flag(argument, flag):
    exc = ArgumentError(argument, "{} is wrong; see {}", "style_weight")
    assert str(exc) == f"{argument} is wrong; see style_weight"
    assert exc.named(flag_of) == f"{flag} is wrong; see --style-weight"


def test_the_old_share_spelling_answers_with_the_new_flag(photos):
    args = ["render", str(photos[0]), "-s", str(photos[1]), "-s", str(photos[2]),
            "--style-weight", "3", "--style-weight", "1"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--blend-weight" in result.output and "Traceback" not in result.output


def test_a_count_mismatch_names_the_flag_on_the_command_line_and_the_argument_in_python(
    photos, tmp_path, no_network
):
    args = ["render", str(photos[0]), "-s", str(photos[1]), "--blend-weight", "1",
            "--blend-weight", "2", "-o", str(tmp_path / "x.png")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "error: --blend-weight given 2 times" in result.output
    with pytest.raises(ArgumentError, match="^blend_weights given 2 times"):
        render_batch([photos[0]], tmp_path, [photos[1]], blend_weights=[1, 2], device="cpu")


def test_style_weight_scales_beta_in_every_stage(photos, tmp_path, tiny_preset_file):
    out = tmp_path / "x.png"
    args = ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file),
            "--style-weight", "0.5", "--tv-weight", "3", "--content-weight", "2",
            "-o", str(out), "--device", "cpu", "-q"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    stages = json.loads(out.with_suffix(".json").read_text())["preset"]["stages"]
    assert [s["style_weight"] for s in stages] == [100.0, 100.0]  # 200 × 0.5
    assert [s["content_weight"] for s in stages] == [2.0, 2.0]
    assert [s["tv_weight"] for s in stages] == [0.0, 0.0]  # 0 × 3


def test_render_batch_renders_as_the_command_line_does(photos, tmp_path, tiny_preset_file):
    mask = tmp_path / "mask.png"
    Image.new("L", (160, 120), 255).save(mask)
    tiny_preset_file.write_text(tiny_preset_file.read_text() + "tiling: {overlap: 8}\n")
    look = {"bit_depth": 16, "dpi": 150.0, "tile_size": 40, "color": "luminance"}
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    args = ["render", str(photos[0]), "--out-dir", str(cli_dir), "-p", str(tiny_preset_file),
            "-s", str(photos[1]), "-s", str(photos[2]), "--blend-weight", "3",
            "--blend-weight", "1", "--mask", str(mask), "--mask", "none",
            "--save-stages", str(cli_dir / "stages"), "--bit-depth", "16", "--dpi", "150",
            "--tile-size", "40", "--color", "luminance", "--device", "cpu", "--seed", "5",
            "--threads", "1", "-q"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    outcomes = render_batch(
        [photos[0]], api_dir, [photos[1], photos[2]], preset=str(tiny_preset_file),
        blend_weights=[3, 1], masks=[mask, None], save_stages=api_dir / "stages",
        device="cpu", seed=5, threads=1, **look,
    )  # fmt: skip
    assert [o.status for o in outcomes] == ["done"]
    name = "tubingen-starry_night+the_scream"
    cli, api = cli_dir / f"{name}.png", api_dir / f"{name}.png"
    with Image.open(cli) as a, Image.open(api) as b:
        assert a.mode == b.mode == "I;16" or a.mode == b.mode
        assert a.info.get("dpi") == b.info.get("dpi")
        assert np.array_equal(np.asarray(a), np.asarray(b))
    manifests = [json.loads(p.with_suffix(".json").read_text()) for p in (cli, api)]
    assert manifests[0]["preset"] == manifests[1]["preset"]
    assert sorted(p.name for p in (cli_dir / "stages").iterdir()) == sorted(
        p.name for p in (api_dir / "stages").iterdir()
    )


def test_a_batch_names_the_flag_of_an_output_option_once_before_any_photo(
    photos, tmp_path, no_network
):
    args = ["render", str(photos[0]), str(photos[2]), "--out-dir", str(tmp_path / "out"),
            "-s", str(photos[1]), "--bit-depth", "12", "-q"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ["error: --bit-depth must be 8 or 16; got 12"]  # checked once, up front
    assert not (tmp_path / "out").exists()


def test_a_single_style_weight_with_several_paintings_says_what_it_now_means(
    photos, tmp_path, no_network
):
    args = ["render", str(photos[0]), "-s", str(photos[1]), "-s", str(photos[2]),
            "--style-weight", "3", "-o", str(tmp_path / "x.png"), "--bit-depth", "12"]  # fmt: skip
    result = runner.invoke(app, args)
    assert "note: --style-weight scales the style loss" in result.output
    assert "--blend-weight" in result.output and result.exit_code == 2


def test_jcjohnsons_knobs_override_the_preset_in_every_stage(tiny_preset):
    """Issue 28.2: --iterations, --init and --style-scale were "No such option"; iterations
    scale the caps (the last stage's becomes N), not replace them."""
    base = [s.iterations for s in tiny_preset.stages]
    look = tiny_preset.resolved(iterations=12, init="noise", style_scale=0.5)
    assert [s.iterations for s in look.stages] == [round(b * 12 / base[-1]) for b in base]
    assert look.stages[-1].iterations == 12 and look.init == "noise"
    assert [s.style_scale for s in look.stages] == [s.style_scale * 0.5 for s in tiny_preset.stages]
    for knob, value, message in [
        ("iterations", 0, "iterations must be 1 … 100000; got 0"),
        ("init", "photo", "init must be one of content, noise, style"),
        ("style_scale", 20.0, "style_scale multiplies each stage's style_scale"),
    ]:
        with pytest.raises(ArgumentError, match=message):
            tiny_preset.resolved(**{knob: value})


def test_jcjohnsons_flags_on_the_command_line(tmp_path, photos, tiny_preset_file, no_network):
    assert [flag_of(k) for k in ("iterations", "init", "style_scale")] == [
        "--iterations", "--init", "--style-scale",
    ]  # fmt: skip
    result = CliRunner().invoke(
        app,
        ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file),
         "-o", str(tmp_path / "o.png"), "--iterations", "0"],
    )  # fmt: skip
    assert result.exit_code == 2 and "--iterations must be 1 … 100000; got 0" in result.output


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--original-colors", "2"], "--original-colors takes 0 or 1 (neural-style's); got 2"),
        (["--original-colors", "1", "--color", "none"], "--original-colors 1 means --color lumi"),
    ],
)
def test_original_colors_is_neural_styles_knob(tmp_path, photos, no_network, args, line):
    result = CliRunner().invoke(
        app, ["render", str(photos[0]), "-s", str(photos[1]), "-o", str(tmp_path / "o.png"), *args]
    )
    assert result.exit_code == 2 and line in result.output, result.output


def test_original_colors_means_a_color_mode():
    from stylecascade.cli import _original_colors

    assert [_original_colors(1, None), _original_colors(0, None)] == ["luminance", "none"]
    assert _original_colors(None, "histogram") == "histogram"


def test_save_every_and_print_every_act_every_n_evaluations(tmp_path, photos, tiny_preset_file):
    """Issue 28.2: jcjohnson's -save_iter and -print_iter habits."""
    stages = tmp_path / "st"
    result = CliRunner().invoke(
        app,
        ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file),
         "-o", str(tmp_path / "o.png"), "--save-stages", str(stages), "--save-every", "4",
         "--print-every", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    snapshots = sorted(p.name for p in stages.glob("o.stage*.e*.png"))
    assert snapshots and all(int(n.split(".e")[1].removesuffix(".png")) % 4 == 0 for n in snapshots)
    lines = [line for line in result.output.splitlines() if "/" in line and " s · content" in line]
    assert lines and all(int(line.split(": ")[1].split("/")[0]) % 3 == 0 for line in lines)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--save-every", "5"], "--save-every writes into the --save-stages folder"),
        (["--save-every", "0", "--save-stages", "st"], "--save-every must be 1 … 100000; got 0"),
        (["--print-every", "-2"], "--print-every must be 1 … 100000; got -2"),
    ],
)
def test_save_every_and_print_every_are_checked_before_any_work(tmp_path, photos, extra, message):
    result = CliRunner().invoke(
        app, ["render", str(photos[0]), "-s", str(photos[1]), "-o", str(tmp_path / "o.png"), *extra]
    )
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o.png").exists()


def test_init_image_starts_the_first_stage_from_that_image(tmp_path, photos, tiny_preset_file):
    """Issue 28.2: jcjohnson's -init_image. From the photo the content term starts at 0; from
    the painting it does not. The manifest records the file (its contents in the
    fingerprint); a missing one is refused before any work."""
    losses = {}
    for name, extra in (("photo", []), ("painting", ["--init-image", str(photos[2])])):
        out = tmp_path / f"{name}.png"
        result = render_cli(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out, *extra)
        assert result.exit_code == 0, result.output
        manifest = json.loads(out.with_suffix(".json").read_text())
        losses[name] = manifest["stages"][0]["loss_start"]["content"]
        if extra:
            assert manifest["preset"]["init_image"] == str(photos[2].absolute())
    assert losses["photo"] == 0 and losses["painting"] > 0.1
    missing = CliRunner().invoke(
        app, ["render", str(photos[0]), "-s", str(photos[1]), "--init-image", "no.png", "-o",
              str(tmp_path / "m.png")],
    )  # fmt: skip
    assert (
        missing.exit_code == 2
        and "init image" in missing.output
        and "no such file" in (missing.output)
    )
    assert not (tmp_path / "m.png").exists()
