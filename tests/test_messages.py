"""Messages name the right thing (issue 36, class 10): one path check
(``reading.path_problem``) says what is wrong with a path the user gave — missing, a folder
where a file goes, a device, a file where a folder goes — and names the field that gave it,
which each command words as its own flag; a refused output names only the options that
placed it (one render's ``-o``; a batch's ``--out-dir``/``--name``; ``--compact``); a bind
that fails for its address blames ``--host``."""

from __future__ import annotations

import re

import pytest
import yaml
from PIL import Image
from stylecascade.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def _error(args: list, code: int = 2) -> str:
    """The one ``error:`` line of ``stylecascade ARGS``."""
    result = runner.invoke(app, [str(a) for a in args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == code and len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


@pytest.fixture
def things(tmp_path):
    """A file, a folder, a photo and a painting."""
    (tmp_path / "afile").write_text("text")
    (tmp_path / "adir").mkdir()
    for name, color in (("photo.png", "red"), ("painting.png", "blue")):
        Image.new("RGB", (80, 60), color).save(tmp_path / name)
    return tmp_path


def test_inspect_stages_given_a_file_says_it_is_a_file(things):
    line = _error(["inspect", "--save-stages", things / "afile", "--out-dir", things / "out"])
    assert line == f"--save-stages {things / 'afile'}: is a file, not a folder"
    assert not (things / "out").exists()


@pytest.mark.parametrize(
    ("weights", "said"),
    [
        ("/dev/zero", "/dev/zero: is a character device, not a weights file"),
        ("adir", "adir: is a directory, not a weights file"),
        ("gone.pt", "gone.pt: no such file (or use one of: caffe, torchvision)"),
    ],
)
def test_weights_that_are_no_file_say_what_they_are(things, monkeypatch, no_weights, weights, said):
    monkeypatch.chdir(things)
    render = ["render", "photo.png", "-s", "painting.png", "-o", "o.png", "--weights", weights]
    assert _error(render) == f"--weights {said}"
    assert _error(["studio", ".", "--weights", weights]) == f"--weights {said}"


def test_a_studio_folder_that_is_a_file_says_so(things):
    line = _error(["studio", things / "afile"])
    assert line == f"studio folder {things / 'afile'}: is a file, not a folder"


def test_a_host_that_is_not_this_machines_is_blamed_not_the_port(things):
    pytest.importorskip("fastapi", reason="the studio extra is not installed")
    line = _error(["studio", things, "--host", "192.0.2.1", "--port", "0"])  # TEST-NET-1
    assert line.startswith("--host 192.0.2.1: not an address of this machine"), line
    assert "--port" not in line


def test_weights_export_into_a_folder_names_compact(things, no_weights):
    line = _error(["weights", "export", "--compact", things / "adir"])
    assert line.endswith("is an existing folder, not a file: choose another --compact"), line
    assert not re.search(r"\s(-o|--out-dir|--name)\b", line), line


def test_a_batch_output_in_the_way_names_out_dir_and_name_never_o(things, no_weights):
    out = things / "out"
    (out / "photo.png").mkdir(parents=True)
    args = ["render", things / "photo.png", things / "painting.png", "-s", things / "painting.png"]
    line = _error([*args, "--out-dir", out, "--name", "{content}.png"])
    assert line.endswith("is an existing folder, not a file: choose another --out-dir or --name")
    assert not re.search(r"\s-o\b", line), line


def test_one_output_in_the_way_names_o_alone(things, no_weights):
    (things / "in-the-way.png").mkdir()
    args = ["render", things / "photo.png", "-s", things / "painting.png"]
    line = _error([*args, "-o", things / "in-the-way.png"])
    assert line.endswith("is an existing folder, not a file: choose another -o"), line
    assert "--out-dir" not in line and "--name" not in line


def test_presets_validate_says_what_a_painting_path_is(things):
    preset = things / "p.yaml"
    preset.write_text(
        yaml.safe_dump({"base": "draft", "styles": [{"image": str(things / "adir")}]})
    )
    line = _error(["presets", "validate", preset])
    assert (
        line == f"{preset}: styles[0].image: {things / 'adir'}: is a directory, not an image file"
    )
