"""The command line: error handling without weights (fast), and one end-to-end render with the
real VGG19 weights on small versions of the example images."""

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from PIL import Image
from stylecascade import __main__ as entry
from stylecascade.cli import app
from stylecascade.images import load_image
from stylecascade.preset_files import bundled_presets
from stylecascade.stages.color import rgb_to_ycbcr
from stylecascade.stages.resample import resize
from typer.testing import CliRunner

runner = CliRunner()


def _render(*args):
    return runner.invoke(app, ["render", *map(str, args)])


def _one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_content(tmp_path, photos):
    result = _render(
        tmp_path / "nope.jpg", "-s", photos[1], "-o", tmp_path / "o.png", "--device", "cpu"
    )
    _one_line_error(result, 2, "content image", "nope.jpg: no such file")


def test_not_an_image(tmp_path, photos):
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    result = _render(photos[0], "-s", fake, "-o", tmp_path / "o.png", "--device", "cpu")
    _one_line_error(result, 2, "style image", "fake.jpg: not an image file Pillow can read")


def test_existing_output_is_not_overwritten(tmp_path, photos):
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    result = _render(photos[0], "-s", photos[1], "-o", out, "--device", "cpu")
    _one_line_error(result, 2, "o.png already exists; pass --overwrite")
    assert out.read_bytes() == b"precious"


def test_a_stage_too_small_for_the_network_is_refused(tmp_path, photos, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (640, 40), (90, 120, 200)).save(tmp_path / "strip.png")
    result = _render(tmp_path / "strip.png", "-s", photos[1], "--device", "cpu", "--size", "128")
    _one_line_error(result, 2, "would make a 8 px short edge", "the network needs at least 16 px")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (
            ["--preset", "fancy"],
            ["unknown preset 'fancy'; known presets: draft, print, standard"],
        ),
        (["--device", "tpu"], ["--device tpu: unknown device; choose one of auto, cuda, mps, cpu"]),
        (["--size", "8"], ["--size must be 64 … 32768; got 8"]),
        (["--size", "100", "--print-size", "10x15cm"], ["give --size or --print-size, not both"]),
        (["--print-size", "big"], ["--print-size 'big': write it as WIDTHxHEIGHT with a unit"]),
        (["--print-size", "3x4m"], ["write it as WIDTHxHEIGHT with a unit, e.g. 30x40cm"]),
        (["--print-size", "3x4km"], ["write it as WIDTHxHEIGHT"]),
        (["--print-size", "100x300cm"], ["at 300 DPI is 35433 px on the long edge"]),
        (["--print-size", "10x15cm", "--dpi", "0"], ["--dpi must be 1 … 65535; got 0.0"]),
        (["--dpi", "inf"], ["--dpi must be a finite number; got inf"]),
        (["--threads", "0"], ["--threads must be 1 … 1024; got 0"]),
        (["--seed", str(2**64)], [f"--seed must be 0 … {2**64 - 1}; got {2**64}"]),
        (["--seed", "-1"], ["--seed must be 0 … "]),
        (["--color", "sepia"], ["--color must be one of none, luminance, histogram"]),
        (["--blend-weight", "-1"], ["--blend-weight must be 0 … 1e+20; got -1.0"]),
        (["--bit-depth", "12"], ["--bit-depth must be 8 or 16; got 12"]),
        (["-o", "o.jpg", "--bit-depth", "16"], ["JPEG has 8 bits only"]),
        (["-o", "o.jpg", "--jpeg-quality", "0"], ["--jpeg-quality must be 1 … 95; got 0"]),
        (["--resume"], ["--resume: no checkpoint"]),
        (["--max-input-pixels", "1000"], ["over the limit of 1,000 px", "--max-input-pixels"]),
        (["--preset", "broken.yaml"], ["broken.yaml: not valid YAML at line 2"]),
        (["-o", "broken.yaml/o.png"], ["-o broken.yaml: exists and is not a folder"]),
        (["--save-stages", "broken.yaml"], ["--save-stages broken.yaml: exists and is not a"]),
        (["-o", "o.gif"], ["unsupported extension '.gif'"]),
        (["--weights", "/no/such.pt"], ["--weights /no/such.pt: no such file"]),
    ],
)
def test_usage_errors(tmp_path, photos, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    result = _render(photos[0], "-s", photos[1], "--device", "cpu", "--preset", "draft", *args)
    _one_line_error(result, 2, *fragments)


def test_invalid_preset_file(tmp_path, photos, tiny_preset_file):
    tiny_preset_file.write_text(
        tiny_preset_file.read_text().replace("pooling: avg", "pooling: median")
    )
    result = _render(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", tmp_path / "o.png")
    _one_line_error(
        result, 2, f"{tiny_preset_file}: model.pooling: must be one of max, avg; got 'median'"
    )


def test_presets_list_and_show():
    listed = runner.invoke(app, ["presets", "list"])
    assert listed.exit_code == 0
    for name in ("draft", "standard", "print"):
        assert name in listed.output
    shown = runner.invoke(app, ["presets", "show", "standard"])
    assert shown.exit_code == 0
    assert yaml.safe_load(shown.output) == yaml.safe_load(bundled_presets()["standard"].read_text())
    _one_line_error(runner.invoke(app, ["presets", "show", "fancy"]), 2, "unknown preset 'fancy'")


def test_weights_fetch_unknown_source():
    result = runner.invoke(app, ["weights", "fetch", "--source", "vgg16"])
    _one_line_error(result, 2, "unknown weights source 'vgg16'; choose caffe, torchvision")


def test_render_end_to_end_with_real_weights(tmp_path, photos, tiny_preset_file):
    """The installed console script, the real Caffe VGG19 weights (fetched on first use), two
    stages 64 → 128 px."""
    tiny_preset_file.write_text(
        tiny_preset_file.read_text()
        .replace("size: 32, iterations: 8", "size: 64, iterations: 12")
        .replace("size: 64, iterations: 6", "size: 128, iterations: 8")
    )
    out, stages_dir = tmp_path / "prints" / "a" / "out.png", tmp_path / "stages"
    command = [
        sys.executable, "-m", "stylecascade", "render", str(photos[0]), "--style", str(photos[1]),
        "--preset", str(tiny_preset_file), "-o", str(out), "--save-stages", str(stages_dir),
        "--device", "cpu", "--seed", "7", "--threads", "1",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env=os.environ | {"COLUMNS": "120"}
    )
    assert done.returncode == 0, done.stderr
    assert f"created folder {out.parent}" in done.stderr
    assert f"created folder {stages_dir}" in done.stderr
    assert "wrote" in done.stderr
    # stderr is a pipe here: plain timestamped lines, no bars
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d stage 2/2 128×96 lbfgs: started", done.stderr, re.M
    )
    assert "━" not in done.stderr

    with Image.open(out) as img:
        assert img.size == (128, 96) and img.mode == "RGB"
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.01)  # the default DPI
    assert sorted(p.name for p in stages_dir.iterdir()) == [
        "out.stage1.64x48.png",
        "out.stage2.128x96.png",
    ]

    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["seed"] == 7 and manifest["device"] == "cpu" and manifest["threads"] == 1
    assert manifest["preset"]["name"] == "tiny"
    assert manifest["preset"]["stages"][1]["size"] == 128
    assert manifest["weights"]["source"] == "caffe" and len(manifest["weights"]["sha256"]) == 64
    assert {"python", "stylecascade", "torch", "torchvision"} <= set(manifest["versions"])
    assert [s["size"] for s in manifest["stages"]] == [[64, 48], [128, 96]]
    for stage in manifest["stages"]:
        assert stage["iterations"] >= 8 and stage["seconds"] > 0
        assert stage["stop"] in ("converged", "cap") and stage["tolerance"] == 0.01
        assert (
            set(stage["loss_start"])
            == set(stage["loss_end"])
            == {"content", "style", "tv", "total"}
        )
        assert stage["loss_end"]["style"] < stage["loss_start"]["style"]

    first = out.read_bytes()
    again = subprocess.run(command, capture_output=True, text=True)  # the same render: kept
    assert again.returncode == 0 and "this render was done before" in again.stderr
    other = [*command, "--seed", "8"]  # another seed into the same file: refused
    refused = subprocess.run(other, capture_output=True, text=True)
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert out.read_bytes() == first  # nothing was touched

    quiet = subprocess.run([*command, "--overwrite", "--quiet"], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    assert out.read_bytes() == first  # same inputs and seed: the same image, bit for bit


def test_two_styles_and_luminance_end_to_end(tmp_path, photos, tiny_preset_file):
    """Two paintings blended 1:3 with the photo's colors kept, real weights, CLI in-process."""
    out = tmp_path / "blend.png"
    result = _render(
        photos[0], "-s", photos[1], "-s", photos[2], "--blend-weight", 1, "--blend-weight", 3,
        "--color", "luminance", "--preset", tiny_preset_file, "-o", out, "--device", "cpu", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["color"] == "luminance"
    assert [(Path(s["image"]).name, s["weight"]) for s in manifest["styles"]] == [
        ("starry_night.png", 1.0),
        ("the_scream.png", 3.0),
    ]
    content = load_image(photos[0], "content")
    with Image.open(out) as img:
        assert img.size == (64, 48)
    rendered = load_image(out, "output")
    expected = rgb_to_ycbcr(resize(content, rendered.shape[-2:]))[:, 1:]
    assert (rgb_to_ycbcr(rendered)[:, 1:] - expected).abs().mean().item() < 1 / 255


def test_mismatched_blend_weights(tmp_path, photos):
    result = _render(
        photos[0], "-s", photos[1], "--blend-weight", 1, "--blend-weight", 2,
        "-o", tmp_path / "o.png", "--device", "cpu",
    )  # fmt: skip
    _one_line_error(result, 2, "--blend-weight given 2 times for 1 style image(s)")


def test_no_style(tmp_path, photos):
    result = _render(photos[0], "-o", tmp_path / "o.png", "--device", "cpu")
    _one_line_error(result, 2, "no style image; give one with --style")


def test_help_and_a_bad_path_answer_without_importing_torch(tmp_path):
    """torch takes seconds to import; --help and a missing photo must not wait for it."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from stylecascade.cli import app\n"
        "for args in (['--help'], ['render', 'nope.jpg', '-s', 'x.jpg'], ['presets', 'list']):\n"
        "    print(CliRunner().invoke(app, args).exit_code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert done.stdout.split("\n")[:3] == ["0 False", "2 False", "0 False"]


def test_presets_validate_checks_that_style_files_exist(tmp_path, tiny_preset_file):
    tiny_preset_file.write_text(tiny_preset_file.read_text() + "styles:\n  - {image: gone.jpg}\n")
    result = runner.invoke(app, ["presets", "validate", str(tiny_preset_file)])
    _one_line_error(result, 2, f"styles[0].image: {tmp_path / 'gone.jpg'}: no such file")


def test_dash_h_is_help_and_flags_read_as_flags():
    result = runner.invoke(app, ["render", "-h"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert any(all(w in line for w in ("--output", "-o", "FILE")) for line in lines)
    assert any("--size" in line and "PX" in line for line in lines)
    assert "<int>" not in result.output  # every value option shows its metavar
    assert not any("<bool>" in line and "--help" not in line for line in lines)
    assert "--install-completion" in runner.invoke(app, ["-h"]).output


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["render", "p.jpg", "--size", "abc"],
            "error: Invalid value for '--size': Input should be",
        ),
        (["render"], "error: Missing argument 'CONTENT'. (see stylecascade render -h)"),
        (
            ["render", "p.jpg", "--frob"],
            "error: No such option: --frob (see stylecascade render -h)",
        ),
    ],
)
def test_the_frameworks_usage_errors_are_one_line_too(args, line):
    done = subprocess.run(
        [sys.executable, "-m", "stylecascade", *args], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(line), done.stderr


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys):
    class Interrupting(types.ModuleType):
        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "stylecascade.cli", Interrupting("stylecascade.cli"))
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "error: interrupted while starting; nothing was done\n"


def _every_command(command, path=()):
    """``(path, command)`` for the root group and every group and command below it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _every_command(sub, (*path, name))


def test_every_help_names_its_parameters_plainly_at_80_columns():
    import typer

    for path, _command in _every_command(typer.main.get_command(app)):
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        usage = next(line for line in result.output.splitlines() if "Usage:" in line)
        assert "{" not in usage, usage
        for shown in ("<list", "<str>", "<bool>", "<path>", "<Path>"):
            assert shown not in result.output, (path, result.output)
        commands = result.output.partition("Commands")[2]
        assert "..." not in commands, (path, result.output)


def test_every_command_summary_is_whole_in_plain_help_at_80_columns():
    import typer

    for path, group in _every_command(typer.main.get_command(app)):
        names = getattr(group, "commands", {})
        if not names:
            continue
        limit = 80 - 2 - 6 - max(map(len, names))  # click's formatter: width less the names
        for name, command in names.items():
            summary = command.get_short_help_str(limit)
            assert not summary.endswith("..."), f"{' '.join([*path, name])}: {summary}"
