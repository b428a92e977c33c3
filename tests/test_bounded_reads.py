"""Every file goes through one bounded reader (issue 25, items 6, 8 and 11): no read of a
device or FIFO, none without a bound, no document nested deeper than the bound, and one broken
saved preset never hides the others."""

import os
import subprocess
import sys

import pytest
from stylecascade.cli import app
from stylecascade.reading import MAX_DEPTH
from typer.testing import CliRunner

runner = CliRunner()


def _one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


def _cli(*args, home=None):
    """The CLI in its own process, so that a read that blocks fails the test after 60 s
    instead of hanging it."""
    env = {**os.environ, "STYLECASCADE_HOME": str(home)} if home else None
    command = [sys.executable, "-m", "stylecascade", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    return done.returncode, done.stdout + done.stderr


def _render(photos, *args):
    return runner.invoke(app, ["render", str(photos[0]), "-s", str(photos[1]), *map(str, args)])


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_device_or_fifo_as_preset_is_one_line(photos, fifo, special, no_network):
    path = fifo if special == "fifo" else special
    kind = "a FIFO (named pipe)" if special == "fifo" else "a character device"
    code, output = _cli("render", photos[0], "-s", photos[1], "-p", path, "-q")
    assert code == 2 and output.strip() == f"error: {path}: is {kind}, not a preset file"
    _one_line_error(runner.invoke(app, ["presets", "validate", str(path)]), 2, kind)


def test_base_dev_zero_and_manifest_dev_zero_are_one_line(photos, tmp_path, no_network):
    preset = tmp_path / "p.yaml"
    preset.write_text("base: /dev/zero\n")
    _one_line_error(_render(photos, "-p", preset, "-q"), 2, "/dev/zero: is a character device")
    result = runner.invoke(app, ["inspect", "--manifest", "/dev/zero", "--out-dir", str(tmp_path)])
    _one_line_error(result, 2, "--manifest /dev/zero: is a character device, not a JSON file")


def test_an_image_that_is_a_device_is_one_line(photos, no_network):
    result = runner.invoke(app, ["render", "/dev/zero", "-s", str(photos[1]), "-q"])
    _one_line_error(result, 2, "content image /dev/zero: is a character device, not an image")


def test_a_preset_over_its_bound_is_refused_unread(photos, tmp_path, no_network):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(8 << 30)  # 8 GB, sparse: reading it would take minutes and memory
    _one_line_error(_render(photos, "-p", big, "-q"), 2, "larger than 1048576 bytes")


def _deep_yaml(levels):
    return "stages: " + "[" * levels + "]" * levels + "\n"


def _deep_json(levels):
    return '{"preset": ' + "[" * levels + "]" * levels + "}"


@pytest.mark.parametrize("levels", [3000, 5000])
def test_deeply_nested_yaml_is_one_line(photos, tmp_path, levels, no_network):
    preset = tmp_path / "deep.yaml"
    preset.write_text(_deep_yaml(levels))
    message = f"{preset}: nested deeper than {MAX_DEPTH} levels"
    _one_line_error(_render(photos, "-p", preset, "-q"), 2, message)
    _one_line_error(runner.invoke(app, ["presets", "validate", str(preset)]), 2, message)


def test_deeply_nested_json_is_one_line(photos, tmp_path, no_network):
    manifest = tmp_path / "deep.json"
    manifest.write_text(_deep_json(100_000))
    message = f"{manifest}: nested deeper than {MAX_DEPTH} levels"
    _one_line_error(_render(photos, "-p", manifest, "-q"), 2, message)
    result = runner.invoke(app, ["presets", "save", "x", "--from", str(manifest)])
    _one_line_error(result, 2, message)
    args = ["inspect", "--manifest", str(manifest), "--out-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    _one_line_error(result, 2, message)


def test_one_broken_saved_preset_never_hides_the_others(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "bad.yaml").write_text("stages: [\n")
    (folder / "folder.yaml").mkdir()
    (folder / "dangling.yaml").write_text("base: nowhere.yaml\n")
    (folder / "fine.yaml").write_text("base: draft\ndescription: mine\n")
    os.mkfifo(folder / "pipe.yaml")
    code, output = _cli("presets", "list", home=tmp_path)
    assert code == 0, output
    rows = {line.split("│")[1].strip(): line for line in output.splitlines() if "│" in line}
    for name in ("draft", "standard", "print", "fine"):
        assert "cannot be read" not in rows[name], rows[name]
    for name in ("bad", "folder", "dangling", "pipe"):
        assert "cannot be read" in rows[name], output
    assert "not valid YAML" in output and "is a directory" in output
    assert "is a FIFO" in output and "no such file" in output
