"""Nothing is lost: NaN recovery, interruption with a checkpoint, --resume, failed writes."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_PRESET, render_cli
from PIL import Image
from stylecascade.cli import app
from stylecascade.errors import DivergedError
from stylecascade.output import save_image
from stylecascade.runner import run_stages, schedule
from stylecascade.stages import cascade
from stylecascade.stages.blend import StyleTargets, WeightedStyle
from stylecascade.stages.cascade import StageInterrupted
from stylecascade.stages.losses import Objective
from typer.testing import CliRunner

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


class _Flaky(Objective):
    """An objective whose evaluations numbered in ``calls`` (counted over the whole run) give a
    NaN style term."""

    def __init__(self, objective: Objective, calls: range, counter: list[int]) -> None:
        super().__init__(
            objective.extractor, objective.feature_terms, objective.image_terms, objective.reference
        )
        self.calls, self.counter = calls, counter

    def __call__(self, image):
        self.counter[0] += 1
        terms = super().__call__(image)
        if self.counter[0] in self.calls:
            terms["style"] = terms["style"] * float("nan")
        return terms


@dataclasses.dataclass(frozen=True)
class _FlakyProblem(cascade.Problem):
    calls: range = range(0)
    counter: list = dataclasses.field(default_factory=lambda: [0])

    def objective(self, stage, content):
        return _Flaky(super().objective(stage, content), self.calls, self.counter)


def _longer_first_stage(preset, iterations):
    longer = dataclasses.replace(preset.stages[0], iterations=iterations)
    return dataclasses.replace(preset, stages=(longer, *preset.stages[1:]))


def _run(extractor, preset, content, style, observer=None):
    return list(run_stages(extractor, preset, content, [WeightedStyle(style)], observer=observer))


def _run_flaky(extractor, preset, content, style, calls):
    """The cascade of ``preset`` with NaN style terms at the evaluations numbered in ``calls``."""
    model = preset.model
    targets = StyleTargets(extractor, [WeightedStyle(style)], model.style_layers)
    problem = _FlakyProblem(extractor, content, targets, model.content_layers, calls=calls)
    plan = schedule(preset, tuple(content.shape[-2:]))
    return list(cascade.run_schedule(problem, plan, content))


def test_a_nan_stretch_is_recovered_from_the_best_iterate(
    tiny_extractor, tiny_preset, content_image, style_image
):
    preset = _longer_first_stage(tiny_preset, 30)
    results = _run_flaky(tiny_extractor(LAYERS), preset, content_image, style_image, range(4, 13))
    assert results[0].recoveries >= 1 and results[0].evaluations >= 30
    for result in results:
        assert torch.isfinite(result.image).all()
        assert result.loss_end["total"] < result.loss_start["total"]


def test_the_convergence_window_starts_again_after_a_nan_restart(
    tiny_extractor, tiny_preset, content_image, style_image
):
    stage = dataclasses.replace(tiny_preset.stages[0], iterations=100, tolerance=0.99)
    preset = dataclasses.replace(tiny_preset, stages=(stage,))
    # NaN at evaluations 25–30, seen at the check after 30: the restart clears the window, so
    # the earliest convergence is 30 evaluations later (40 without the reset).
    (result,) = _run_flaky(
        tiny_extractor(LAYERS), preset, content_image, style_image, range(25, 31)
    )
    assert result.recoveries == 1 and result.stop == "converged"
    assert result.evaluations == 60


def test_persistent_nan_stops_with_a_clear_error(
    tiny_extractor, tiny_preset, content_image, style_image
):
    preset = _longer_first_stage(tiny_preset, 60)
    flaky = range(3, 10**6)
    message = (
        "stage 1 diverged: NaN/inf losses even after halving the step size 3 times; "
        "lower its lr or use optimizer: adam in the preset"
    )
    with pytest.raises(cascade.Divergence, match=re.escape(message)):
        _run_flaky(tiny_extractor(LAYERS), preset, content_image, style_image, flaky)


@pytest.mark.parametrize(
    "weight, start, message",
    [
        (
            1e300,
            None,
            "stage 1 diverged: its style loss is inf at the starting image, before any step: "
            "style_weight 1e+300 × the style loss overflows float32; lower style_weight",
        ),
        (1.0, float("nan"), "stage 1 diverged: its starting image holds NaN or infinity"),
    ],
    ids=["overflow", "NaN start"],
)
def test_divergence_names_its_cause_when_known(
    tiny_extractor, tiny_preset, content_image, style_image, weight, start, message
):
    """Issue 14, case 23: before, both read "… lower its lr", which cannot help."""
    extractor = tiny_extractor(LAYERS)
    model = tiny_preset.model
    targets = StyleTargets(extractor, [WeightedStyle(style_image)], model.style_layers)
    problem = cascade.Problem(extractor, content_image, targets, model.content_layers)
    plan = schedule(tiny_preset, tuple(content_image.shape[-2:]))[:1]
    terms = tuple(
        dataclasses.replace(t, weight=weight) if t.name == "style" else t for t in plan[0].terms
    )
    plan = [dataclasses.replace(plan[0], terms=terms, iterations=50)]
    image = content_image.clone()
    if start is not None:
        image[..., 3, 5] = start
    with pytest.raises(cascade.Divergence, match=re.escape(message)):
        list(cascade.run_schedule(problem, plan, image))


def test_the_runner_reports_divergence_as_one_line(
    monkeypatch, tiny_extractor, tiny_preset, content_image, style_image
):
    def diverge(*args, **kwargs):
        raise cascade.Divergence("stage 1 diverged: the cause")
        yield

    monkeypatch.setattr(cascade, "run_schedule", diverge)
    with pytest.raises(DivergedError, match="^stage 1 diverged: the cause$") as info:
        _run(tiny_extractor(LAYERS), tiny_preset, content_image, style_image)
    assert info.value.exit_code == 1


def test_a_nan_image_is_never_written(tmp_path):
    image = torch.full((1, 3, 4, 4), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        save_image(image, tmp_path / "o.png")
    assert list(tmp_path.iterdir()) == []


class _StopAt:
    def __init__(self, stage, evaluation):
        self.at, self.stage = (stage, evaluation), None

    def stage_started(self, index, count, stage):
        self.stage = index

    def iteration(self, done, terms):
        if (self.stage, done) == self.at:
            raise KeyboardInterrupt

    def stage_finished(self, result):
        pass


def test_interrupt_carries_the_best_image_so_far(
    tiny_extractor, tiny_preset, content_image, style_image
):
    with pytest.raises(StageInterrupted) as info:
        _run(tiny_extractor(LAYERS), tiny_preset, content_image, style_image, _StopAt(1, 4))
    assert (info.value.index, info.value.evaluations) == (1, 4)
    assert info.value.image.shape == (1, 3, 48, 64)
    assert 0 <= info.value.image.min() and info.value.image.max() <= 1


# --- command line ------------------------------------------------------------------------------

SLOW_SECOND_STAGE = """
description: stage 2 runs long enough to be interrupted
model:
  pooling: max
  content_layers: {relu4_2: 1}
  style_layers: {relu1_1: 1, relu2_1: 1, relu3_1: 1, relu4_1: 1, relu5_1: 1}
defaults: {content_weight: 1.0, style_weight: 50.0, tv_weight: 1.0e+4}
stages:
  - {size: 64, iterations: 10}
  - {size: 96, iterations: 100}
"""


@pytest.fixture
def job(tmp_path, photos):
    preset = tmp_path / "slow.yaml"
    preset.write_text(SLOW_SECOND_STAGE)

    def command(out, *extra):
        return [
            sys.executable, "-m", "stylecascade", "render", str(photos[0]), "-s", str(photos[1]),
            "--preset", str(preset), "-o", str(out), "--device", "cpu", "-q", *extra,
        ]  # fmt: skip

    return command


def _interrupt_in_stage_2(command, out, signum):
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    state = Path(str(out) + ".checkpoint") / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well into stage 2
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


def test_sigint_saves_a_checkpoint_and_resume_finishes_the_same_image(tmp_path, job):
    out = tmp_path / "out.png"
    code, stderr = _interrupt_in_stage_2(job(out), out, signal.SIGINT)
    assert code == 130, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: interrupted in stage 2/2 after ") and "--resume" in line
    folder = Path(str(out) + ".checkpoint")
    assert not out.exists() and not out.with_suffix(".json").exists()
    with Image.open(folder / "partial.png") as partial:
        assert partial.size == (96, 72)
    saved = json.loads((folder / "manifest.json").read_text())
    assert saved["status"] == "interrupted" and saved["interrupted"]["stage"] == 2
    assert len(saved["stages"]) == 1

    refused = subprocess.run(job(out), capture_output=True, text=True)
    assert refused.returncode == 2 and "pass --resume to continue it" in refused.stderr

    loud = [arg for arg in job(out, "--resume") if arg != "-q"]
    resumed = subprocess.run(loud, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at stage 2/2 (1 finished in {folder})" in resumed.stderr
    assert not folder.exists()
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["status"] == "done" and len(manifest["stages"]) == 2
    assert manifest["stages"][0] == saved["stages"][0]

    whole = tmp_path / "whole.png"
    assert subprocess.run(job(whole), capture_output=True).returncode == 0
    with Image.open(out) as a, Image.open(whole) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))  # resuming changes nothing


def test_sigterm_saves_a_checkpoint_too(tmp_path, job):
    out = tmp_path / "out.png"
    code, stderr = _interrupt_in_stage_2(job(out), out, signal.SIGTERM)
    assert code == 143, stderr
    assert (Path(str(out) + ".checkpoint") / "partial.png").exists()


def test_resume_refuses_a_missing_or_foreign_checkpoint(tmp_path, job):
    out = tmp_path / "out.png"
    missing = subprocess.run(job(out, "--resume"), capture_output=True, text=True)
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr
    folder = Path(str(out) + ".checkpoint")
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"fingerprint": "other", "stages": []}))
    foreign = subprocess.run(job(out, "--resume"), capture_output=True, text=True)
    assert foreign.returncode == 2 and "was made with other inputs" in foreign.stderr


def test_a_failed_write_leaves_no_partial_output(tmp_path, photos, tiny_preset_file, monkeypatch):
    import stylecascade.output as output

    def full_disk(array, tmp, options, text, *icc):
        Path(tmp).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output, "_png_pillow", full_disk)
    out = tmp_path / "o.png"
    result = CliRunner().invoke(
        app,
        ["render", str(photos[0]), "-s", str(photos[1]), "--preset", str(tiny_preset_file),
         "-o", str(out), "--device", "cpu", "-q"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip() == f"error: cannot write {out}: No space left on device"
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden == []  # no temporary left, no lock (it lives in the lock folder)
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs")
def test_unwritable_output_folder_is_refused_up_front(photos):
    result = CliRunner().invoke(
        app, ["render", str(photos[0]), "-s", str(photos[1]), "-o", "/sys/kernel/o.png"]
    )
    assert result.exit_code == 2
    assert (
        result.output == "error: cannot write /sys/kernel/o.png: /sys/kernel: permission denied\n"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--style-weight", "0", "--tv-weight", "0"], "only the content term is weighted"),
        (["--style-weight", "0", "--tv-weight", "0", "--content-weight", "0"], "every weight"),
    ],
)
def test_a_render_that_would_return_the_photo_says_so_up_front(
    tmp_path, photos, tiny_preset_file, args, fragment
):
    """Issue 25.4: these returned the photo unchanged with exit 0."""
    out = tmp_path / "o.png"
    result = render_cli(photos[0], "-s", photos[1], "-p", tiny_preset_file, "-o", out, "-q", *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: stage 1 would return its start unchanged: ")
    assert fragment in result.output and not out.exists()


def test_a_stage_whose_loss_does_not_move_stops_the_render(tmp_path, photos):
    """Adam with lr 0 (the class: settings that leave nothing to optimize)."""
    preset = tmp_path / "still.yaml"
    preset.write_text(
        TINY_PRESET.replace("optimizer: lbfgs\n  lr: 1.0", "optimizer: adam\n  lr: 1e-12")
    )
    out = tmp_path / "o.png"
    result = CliRunner().invoke(
        app,
        ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(preset), "-o", str(out), "-q"],
    )
    assert result.exit_code == 2, result.output
    assert "stage 1 did not lower its loss" in result.output
    assert "adam lr 1e-12): check the preset's lr and weights" in result.output and not out.exists()


def test_a_painting_too_large_for_memory_is_refused_up_front(
    tmp_path, photos, tiny_preset_file, monkeypatch, no_network
):
    """Issue 25.9: a painting resized to a panorama's size asked for 64 GB: a traceback."""
    monkeypatch.setattr("stylecascade.job.free_bytes", lambda device: 2 << 20)  # 2 MiB free
    out = tmp_path / "o.png"
    result = CliRunner().invoke(
        app,
        ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file),
         "-o", str(out), "-q"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: stage 2: the style image resized to 64×40 px")
    assert "needs about 0.0024 GiB for its style targets and 0.002 GiB is free" in result.output
    assert not out.exists()
