"""One print on a Ray cluster (``render PHOTO --cluster``, issue 35), end to end on a local Ray
with 2 CPU actors of one thread each: the print equals the local one, an actor killed
mid-evaluation leaves the same print (and the log and manifest say so), Ctrl-C keeps the stage
checkpoint for ``--resume``, and a stage too large for every actor is refused before any work.
Real weights, a two-stage preset whose second stage (160 × 120 px) runs in 96 px tiles
(``--tile-size 96``: 4 to 9 tiles an evaluation), the first untiled on one actor."""

import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES
from PIL import Image
from stylecascade.cli import app
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

PRESET = """
description: a tiny print whose last stage runs in tiles
model:
  pooling: avg
  content_layers: {relu4_2: 1}
  style_layers: {relu1_1: 1, relu2_1: 1, relu3_1: 1, relu4_1: 1, relu5_1: 1}
init: content
tiling: {overlap: 16, lr: 0.02}
defaults: {optimizer: lbfgs, lr: 1.0, content_weight: 1.0, style_weight: 200.0, tv_weight: 0.1}
stages:
  - {size: 64, iterations: 6}
  - {size: 160, iterations: 5}
"""
COMMON = ["--tile-size", "96", "--seed", "3", "--threads", "1", "--device", "cpu"]
ON_RAY = ["--cluster", "local", "--actors", "2", "--cpus-per-actor", "1"]
TOLERANCE = 1  # of 255: the actors' kernels are this process's; a print differs by rounding


pytestmark = pytest.mark.usefixtures("no_ray_address")


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """The photo, the painting, the preset and the local print: ``(args, local output)``."""
    root = tmp_path_factory.mktemp("print")
    preset = root / "print.yaml"
    preset.write_text(PRESET)
    args = [EXAMPLES / "tubingen.jpg", "-s", EXAMPLES / "starry_night.jpg", "-p", preset]
    local = root / "local" / "print.png"
    result = _invoke("render", *args, "-o", local, *COMMON, "-q")
    assert result.exit_code == 0, result.output
    return args, local


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(int)


def _assert_same_print(path: Path, local: Path) -> None:
    ours, theirs = _pixels(path), _pixels(local)
    assert ours.shape == theirs.shape == (120, 160, 3)
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_a_print_on_the_cluster_is_the_local_print(studio, tmp_path):
    args, local = studio
    output = tmp_path / "print.png"
    result = _invoke("render", *args, "-o", output, *COMMON, *ON_RAY)
    assert result.exit_code == 0, result.output
    _assert_same_print(output, local)
    text = result.output.replace("\n", " ")
    assert re.search(r"started 2 tile actors: actor 1 \(\S+, pid \d+\); actor 2 ", text)
    assert "device cpu, its tiles on cluster local (1 node" in text
    assert re.search(
        r"stage 64×48 untiled on one actor, 7 evaluations, each [\d.]+ s: compute", text
    )
    assert re.search(
        r"stage 160×120 in 96 px tiles, 6 evaluations, each .* driver [\d.]+ s, \d", text
    )
    cluster = json.loads(output.with_suffix(".json").read_text())["cluster"]
    assert cluster["where"].startswith("cluster local") and len(cluster["actors"]) == 2
    first, second = cluster["stages"]
    assert first["size"] == [64, 48] and first["tile_edge"] is None
    assert second["size"] == [160, 120] and second["tile_edge"] == 96
    times = second["times"]
    assert times["evaluations"] == 6 and times["actors"] == 2 and 4 <= times["tiles"] <= 9
    assert times["compute"] > 0 and times["transfer"] > 0 and times["bytes_in"] > 0
    parts = ("waiting", "put", "get", "reduction", "driver")
    assert sum(times[k] for k in parts) == pytest.approx(times["wall"], rel=1e-6)
    assert cluster["actor_deaths"] == [] and not ray.is_initialized()


class _Killer:
    """An observer that SIGKILLs the second actor of the print's pool (``workers``: the pools
    started) in the tiled stage's second evaluation, after its third tile pass."""

    def __init__(self, workers):
        self.workers, self.stage, self.done, self.killed = workers, -1, 0, None

    def input_started(self, name):
        pass

    def input_finished(self):
        pass

    def stage_started(self, index, count, stage):
        self.stage, self.done = index, 0

    def iteration(self, done, terms):
        self.done = done

    def tile(self, done, total):
        if self.stage == 1 and self.done == 1 and done == 3 and self.killed is None:
            self.killed = self.workers[-1][1]
            os.kill(self.killed.actor.pid, signal.SIGKILL)

    def stage_finished(self, result):
        pass


def test_an_actor_killed_mid_evaluation_leaves_the_same_print(
    studio, tmp_path, monkeypatch, caplog
):
    from stylecascade import tile_cluster
    from stylecascade.launch import launch
    from stylecascade.request import RenderRequest

    started = []

    def start(*args, **kwargs):
        started.append(workers := real(*args, **kwargs))
        return workers

    real = tile_cluster.start_tile_actors
    monkeypatch.setattr(tile_cluster, "start_tile_actors", start)
    killer = _Killer(started)
    args, local = studio
    output = tmp_path / "print.png"
    request = RenderRequest.of(
        photos=[args[0]], styles=[args[2]], preset=str(args[4]), output=output, tile_size=96,
        seed=3, threads=1, device="cpu", cluster="local", actors=2, cpus_per_actor=1,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="stylecascade.cluster"):
        (outcome,) = launch(request, observer=killer)
    assert outcome.status == "done", outcome.message
    _assert_same_print(output, local)
    victim = killer.killed
    assert victim is not None
    logged = [r.message for r in caplog.records if r.name == "stylecascade.cluster"]
    assert any(m.startswith(f"{victim} died during an evaluation") for m in logged), logged
    cluster = json.loads(output.with_suffix(".json").read_text())["cluster"]
    (death,) = cluster["actor_deaths"]
    assert death.startswith(f"{victim} died during an evaluation (its tile ")
    assert cluster["stages"][1]["times"]["deaths"] == 1


def test_ctrl_c_keeps_the_stage_checkpoint_and_resume_finishes_the_print(studio, tmp_path):
    args, local = studio
    output = tmp_path / "print.png"
    command = [
        sys.executable, "-m", "stylecascade", "render", *map(str, args), "-o", str(output),
        *COMMON, *ON_RAY, "--print-every", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # until the tiled stage's first evaluation is done
        seen.append(line)
        if re.search(r"stage 2/2 160×120: 1/5, ", line):
            break
    assert proc.poll() is None, "".join(seen)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: interrupted in stage 2/2 after "), stderr
    assert last.endswith("run the same command with --resume to continue from stage 2")
    state = output.with_name("print.png.checkpoint") / "state.json"
    assert len(json.loads(state.read_text())["stages"]) == 1
    folder = state.parent
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["interrupted"]["stage"] == 2
    assert manifest["cluster"]["stages"][-1]["tile_edge"] == 96
    assert (folder / "partial.png").exists() and not output.exists()

    resumed = subprocess.run([*command, "-q", "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_print(output, local)
    stages = json.loads(output.with_suffix(".json").read_text())["cluster"]["stages"]
    assert [s["size"] for s in stages] == [[160, 120]]  # stage 1 came from the checkpoint
    assert not folder.exists()


def test_a_stage_too_large_for_every_actor_is_refused_before_any_work(
    studio, tmp_path, monkeypatch
):
    """Actors of 1 GiB (Ray's ``memory`` resource): a 1024 px stage in forced 960 px tiles
    needs more; the refusal names the largest actor and the tile that would fit, before any
    stage and before the output's folder is made."""
    from stylecascade import tile_cluster

    real = tile_cluster.start_tile_actors
    small = functools.partial(real, memory_per_actor=2**30)
    monkeypatch.setattr(tile_cluster, "start_tile_actors", small)
    args, _local = studio
    output = tmp_path / "prints" / "print.png"  # its folder is made only once every check passed
    began = time.monotonic()
    result = _invoke(
        "render", *args, "-o", output, *COMMON[2:], "--size", "1024", "--tile-size", "960",
        *ON_RAY,
    )  # fmt: skip
    assert result.exit_code == 2, result.output  # refused before any work, as locally
    (line,) = result.output.strip().splitlines()[-1:]
    message = re.fullmatch(
        r"error: stage 2 \(1024×768 px\) in 960 px tiles needs about ([\d.]+) GiB on an actor; "
        r"the largest actor, actor 1 \(\S+, pid \d+\), has 1\.00 GiB free; tiles of at most "
        r"(\d+) px would fit it: --tile-size (\d+)",
        line,
    )
    assert message, result.output
    need, fit, flag = float(message[1]), int(message[2]), int(message[3])
    assert need > 0.9 and 256 <= fit < 960 and fit % 64 == 0 and flag == fit
    assert "stage 1/2" not in result.output  # refused before any stage began
    assert list(tmp_path.iterdir()) == [] and not ray.is_initialized()  # no folder made
    assert time.monotonic() - began < 120
