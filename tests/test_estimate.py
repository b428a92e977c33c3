"""The estimate said before a render starts, and the --yes gate for long CPU renders (issue
28, item 1)."""

import json

import pytest
import torch
from stylecascade import estimate
from stylecascade.cli import app
from stylecascade.estimate import duration, render_estimate
from stylecascade.stages.vgg import evaluation_flops
from typer.testing import CliRunner


def test_the_work_of_an_evaluation_is_counted_from_the_network():
    assert evaluation_flops("relu5_1", 384, 512) == pytest.approx(284.0e9, rel=1e-3)
    assert evaluation_flops("relu5_1", 768, 1024) == pytest.approx(4 * 284.0e9, rel=1e-3)
    assert evaluation_flops("relu1_1", 10, 10) == 2 * 2 * 3 * 64 * 9 * 100
    assert evaluation_flops("relu4_2", 384, 512) < evaluation_flops("relu5_1", 384, 512)


def test_a_render_estimate_sums_every_stage_at_its_cap():
    result = render_estimate([(96, 128), (192, 256)], [10, 5], {"relu5_1", "relu1_1"}, 100.0)
    flops = 10 * evaluation_flops("relu5_1", 96, 128) + 5 * evaluation_flops("relu5_1", 192, 256)
    assert result.flops == pytest.approx(flops)
    assert result.seconds == pytest.approx(flops * estimate.OVERHEAD / 100e9)
    assert [duration(s) for s in (42, 95, 7300)] == ["42 s", "1 min 35 s", "2 h 1 min"]


def test_the_rate_is_probed_once_and_kept(tmp_path, monkeypatch, tiny_extractor):
    monkeypatch.setenv("STYLECASCADE_HOME", str(tmp_path))
    monkeypatch.setattr(estimate, "_MEASURED", {})
    probes = []
    monkeypatch.setattr(estimate, "_probe", lambda *a: probes.append(1) or 42.0)
    net = tiny_extractor({"relu5_1"})
    for _ in range(2):
        rate = estimate.device_rate(net, torch.device("cpu"), "fp32", torch.no_grad())
    assert rate == 42.0 and probes == [1]
    assert list(json.loads((tmp_path / "rates.json").read_text()).values()) == [42.0]
    (tmp_path / "rates.json").write_text("[[[")  # damaged: probed again, rewritten
    monkeypatch.setattr(estimate, "_MEASURED", {})  # (in a new process)
    assert estimate.device_rate(net, torch.device("cpu"), "fp32", torch.no_grad()) == 42.0
    assert probes == [1, 1]


def test_a_long_cpu_render_asks_for_yes_and_says_what_is_quicker(
    tmp_path, photos, tiny_preset_file, monkeypatch
):
    monkeypatch.setattr(estimate, "device_rate", lambda *a: 1e-4)  # a very slow machine
    out = tmp_path / "o.png"
    args = ["render", str(photos[0]), "-s", str(photos[1]), "-p", str(tiny_preset_file),
            "-o", str(out), "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: this render would take up to ") and "pass --yes" in last
    assert "or render at --size 32 (about a quarter: " in last and "an H100: about" in last
    assert "estimate: at most" in result.output and not out.exists()
    monkeypatch.setattr(estimate, "device_rate", lambda *a: 1e6)
    result = CliRunner().invoke(app, [*args, "-q"])
    assert result.exit_code == 0 and out.exists(), result.output
