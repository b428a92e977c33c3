"""Issue 36, class 7: every check before any folder is made or any weight is loaded. Usage
errors left an empty ``-o`` / ``--out-dir`` / ``--save-stages`` / ``inspect --out-dir`` folder
behind and took seconds (torch imported, weights loaded); a preset's ``lr: 1e30`` was refused
only after a stage ran. Now the launcher makes folders last (``launch._make_folders``, after
the checks and the time gate), and what reads no image is checked before torch is imported
(``request_files.check_request_files``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import TINY_PRESET, edited_tiny_preset
from PIL import Image
from stylecascade.cli import app
from stylecascade.errors import StyleCascadeError
from typer.testing import CliRunner

NEW = ("n1", "n2", "n3")
"""Folders the commands name and must not create: ``new/...`` under each."""

TORCH_FREE = {
    "gif output": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                   "-o", "n1/new/x.gif"],
    "bit depth 12": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                     "-o", "n1/new/x.png", "--bit-depth", "12", "--save-stages", "n2/new"],
    "16-bit JPEG": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                    "-o", "n1/new/x.jpg", "--bit-depth", "16"],
    "bad --name": ["render", "photo.png", "painting.png", "-s", "painting.png", "-p",
                   "tiny.yaml", "--out-dir", "n1/new", "--name", "{bad}.png"],
    "missing weights": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                        "-o", "n1/new/x.png", "--weights", "missing.pt"],
    "weights a folder": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                         "-o", "n1/new/x.png", "--weights", "n3"],
    "lr 1e30": ["render", "photo.png", "-s", "painting.png", "-p", "lr.yaml",
                "-o", "n1/new/x.png", "--save-stages", "n2/new"],
    "output over the photo": ["render", "photo.png", "-s", "painting.png", "-p",
                              "tiny.yaml", "-o", "photo.png", "--save-stages", "n2/new"],
    "folder under a file": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                            "-o", "n1/new/x.png", "--save-stages", "photo.png/new"],
    "inspect missing manifest": ["inspect", "--manifest", "missing.json", "--out-dir",
                                 "n3/new"],
    "inspect bad weights": ["inspect", "photo.png", "--style", "painting.png", "--weights",
                            "missing.pt", "--out-dir", "n3/new"],
    "export missing weights": ["weights", "export", "--compact", "n1/new/c.pt",
                               "--weights", "missing.pt"],
}  # fmt: skip
"""Usage errors that read no image: refused before torch is imported."""

READING = {
    "bad painting": ["render", "photo.png", "-s", "notimage.png", "-p", "tiny.yaml",
                     "-o", "n1/new/x.png", "--save-stages", "n2/new"],
    "bad init image": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                       "-o", "n1/new/x.png", "--init-image", "notimage.png"],
    "mask bomb": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                  "-o", "n1/new/x.png", "--mask", "bomb.png", "--save-stages", "n2/new"],
    "batch .gif name": ["render", "photo.png", "painting.png", "-s", "painting.png", "-p",
                        "tiny.yaml", "--out-dir", "n1/new", "--name", "{content}.gif"],
    "batch bad painting": ["render", "photo.png", "painting.png", "-s", "notimage.png", "-p",
                           "tiny.yaml", "--out-dir", "n1/new"],
    "the --yes refusal": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                          "-o", "n1/new/x.png", "--size", "96", "--device", "cpu",
                          "--save-stages", "n2/new"],
    "stage image in the way": ["render", "photo.png", "-s", "painting.png", "-p", "tiny.yaml",
                               "-o", "n1/new/x.png", "--save-stages", "stages"],
    "inspect bad painting": ["inspect", "photo.png", "--style", "notimage.png", "--out-dir",
                             "n3/new"],
    "inspect too small": ["inspect", "photo.png", "--style", "painting.png", "--size", "20",
                          "--out-dir", "n3/new"],
    "inspect not a manifest": ["inspect", "--manifest", "tiny.yaml", "--out-dir", "n3/new"],
    "inspect empty stages": ["inspect", "--save-stages", "n2", "--out-dir", "n3/new"],
    "export bad layer": ["weights", "export", "--compact", "n1/new/c.pt", "--through",
                         "relu9_9"],
}  # fmt: skip
"""Usage errors found reading an image (or the time gate's estimate): no folder, no weights."""


@pytest.fixture(scope="session")
def bomb(tmp_path_factory) -> Path:
    """A 29 KB PNG of 20 000 × 12 000 px (240 MP, over the 200 MP guard)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (20000, 12000)).save(path)
    return path


@pytest.fixture
def work(tmp_path, monkeypatch, bomb) -> Path:
    """A folder with the files the commands name, as the working folder; ``n1`` … ``n3``
    exist (``n2`` empty), ``stages`` holds the image the render's first stage would write."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path / "home"))
    for name, size in (("photo.png", (160, 120)), ("painting.png", (160, 100))):
        Image.new("RGB", size, (90, 120, 200)).save(name)
    Path("notimage.png").write_text("hello")
    os.symlink(bomb, "bomb.png")
    Path("tiny.yaml").write_text(TINY_PRESET, encoding="utf-8")
    Path("lr.yaml").write_text(yaml.safe_dump(edited_tiny_preset("defaults.lr", 1e30)))
    for name in (*NEW, "stages"):
        Path(name).mkdir()
    Image.new("RGB", (32, 24)).save("stages/x.stage1.32x24.png")
    return tmp_path


@pytest.fixture
def never_quick(monkeypatch):
    """The time gate's probe so slow that a render above its preset's size is refused."""
    from stylecascade import estimate

    monkeypatch.setattr(estimate, "probe_rate", lambda *args: (1e-4, False))


def _folders(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_dir()}


@pytest.mark.parametrize("case", sorted({**TORCH_FREE, **READING}))
def test_a_usage_error_makes_no_folder_and_loads_no_weights(work, no_weights, never_quick, case):
    args = {**TORCH_FREE, **READING}[case]
    before = _folders(work)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith("error: "), result.output
    assert _folders(work) == before, "a folder was made"


def test_the_errors_that_read_no_image_answer_before_torch_is_imported(work):
    """In well under a second: torch is never imported (it alone takes seconds here)."""
    script = (
        "import json, sys, time\n"
        "from typer.testing import CliRunner\n"
        "from stylecascade.cli import app\n"
        "codes, began = {}, time.perf_counter()\n"
        "for name, args in json.loads(sys.argv[1]).items():\n"
        "    codes[name] = CliRunner().invoke(app, args).exit_code\n"
        "print(json.dumps({'codes': codes, 'torch': 'torch' in sys.modules,\n"
        "                  'seconds': time.perf_counter() - began}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(TORCH_FREE)],
        capture_output=True, text=True, check=True, cwd=work,
    )  # fmt: skip
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["codes"] == dict.fromkeys(TORCH_FREE, 2), answer
    assert not answer["torch"], "torch was imported"
    assert answer["seconds"] < 2 * len(TORCH_FREE) / 4, answer  # ~0.1 s each here


@pytest.mark.parametrize(
    "arguments",
    [
        {"out_dir": "n1/new", "name": "{bad}.png"},
        {"out_dir": "n1/new", "bit_depth": 12},
        {"out_dir": "n1/new", "styles": ["notimage.png"]},
        {"out_dir": "n1/new", "save_stages": "n2/new", "weights": "missing.pt"},
    ],
)
def test_a_render_batch_error_makes_no_folder(work, no_weights, arguments):
    from stylecascade import render_batch

    before = _folders(work)
    arguments = {"styles": ["painting.png"], "preset": "tiny.yaml", **arguments}
    with pytest.raises(StyleCascadeError):
        render_batch(["photo.png"], **arguments)
    assert _folders(work) == before


def test_save_every_with_a_large_cap_is_checked_in_a_moment(work, no_weights):
    """``--save-every 1`` with a 100 000-evaluation cap planned 200 000 file names, each
    probed with a temporary file: 52 s here before refusing the stage image in the way."""
    big = edited_tiny_preset("stages", [{"size": 32, "iterations": 100000},
                                        {"size": 64, "iterations": 100000}])  # fmt: skip
    Path("big.yaml").write_text(yaml.safe_dump(big))
    args = ["render", "photo.png", "-s", "painting.png", "-p", "big.yaml", "-o", "n1/new/x.png",
            "--save-stages", "stages", "--save-every", "1"]  # fmt: skip
    began = time.perf_counter()
    result = CliRunner().invoke(app, args)
    seconds = time.perf_counter() - began
    assert result.exit_code == 2 and "x.stage1.32x24.png already exists" in result.output
    assert seconds < 10, f"{seconds:.1f} s"
    assert not Path("n1/new").exists()


def test_weights_export_into_a_new_folder_makes_it_and_writes(work):
    """``weights export --compact dir/new/c.pt`` failed after loading the weights; now the
    folder is made after every check, as a render's is."""
    result = CliRunner().invoke(
        app, ["weights", "export", "--compact", "n1/new/c.pt", "--through", "relu1_2"]
    )
    assert result.exit_code == 0, result.output
    assert Path("n1/new/c.pt").stat().st_size > 0


def test_every_number_of_a_preset_has_both_bounds():
    """``lr: 1e30`` was taken (the schema had no bound for ``lr``): every numeric field of
    the preset schema (generated from the dataclasses' metadata the reader checks) is
    bounded on both sides."""
    from stylecascade.preset_schema import preset_schema

    unbounded = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") in ("number", "integer"):
                low = {"minimum", "exclusiveMinimum"} & set(node)
                high = {"maximum", "exclusiveMaximum"} & set(node)
                if not (low and high):
                    unbounded.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(preset_schema(), "")
    assert unbounded == []
