"""The time gate (issue 37, friction 1): every path that can start a long render — a single
photo, a batch, ``render()`` — says its estimate and, on a CPU, refuses one over 30 minutes
without ``yes`` (exit 2 / an error naming how to go on), never one at or below its preset's own
size; a suggestion is accepted when taken; a batch is priced from its photos' headers without
the weights. The studio's side: tests/test_studio_gate.py."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from stylecascade import estimate, gate, render, render_batch
from stylecascade.cli import app
from stylecascade.gate import TooLong, Work, check_time, photo_shapes, suggested_size
from stylecascade.launch import resolve_look
from stylecascade.options import flag_of
from stylecascade.request import RenderRequest
from typer.testing import CliRunner

CPU = torch.device("cpu")
NEVER_QUICK = 1e-4
"""GFLOP/s of a probe so slow that every size takes longer than the limit."""


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private STYLECASCADE_HOME (nothing learned: the estimate probes) that reads the real
    cached weights."""
    from stylecascade.paths import home as real_home

    private = tmp_path / "home"
    private.mkdir()
    (private / "weights").symlink_to(real_home() / "weights", target_is_directory=True)
    monkeypatch.setenv("STYLECASCADE_HOME", str(private))
    return private


def _probe_at(monkeypatch, rate: float) -> None:
    monkeypatch.setattr(estimate, "probe_rate", lambda *args: (rate, False))


def test_a_suggested_size_is_accepted_when_taken():
    def seconds_at(edge: int) -> float:
        return (edge / 100) ** 2 * 60

    size = suggested_size(seconds_at, 4724, limit=1800)
    assert size is not None and size % 8 == 0 and seconds_at(size) <= 1800 < seconds_at(size + 8)
    assert suggested_size(seconds_at, 64, limit=1800) is None  # at the minimum
    assert suggested_size(lambda edge: 1e9, 512, limit=1800) is None  # never quick
    assert suggested_size(seconds_at, 80, limit=1e9) == 72
    assert suggested_size(lambda edge: 0.0, 120) >= gate.MIN_LONG_EDGE == 64
    assert suggested_size(lambda dpi: dpi * 10.0, 301, 1000, minimum=7, step=1) == 100  # a DPI


def _passed_the_gate(result) -> bool:
    """Whether a render run with :func:`no_weights` got past the gate (to the weights)."""
    return isinstance(result.exception, AssertionError) and "weights were loaded" in str(
        result.exception
    )


@pytest.mark.parametrize("batch", [False, True])
def test_a_long_render_asks_for_yes_before_any_weights_are_read(
    tmp_path, photos, tiny_preset_file, monkeypatch, home, no_weights, batch
):
    """Issue 37: a batch started a 3 h render unasked; pricing one must not load the network
    (the preset and its photos' headers are enough). The gate refuses a long render above its
    preset's own size (64 px here) with exit 2, naming --yes; at that size, or with --yes, the
    render goes on (to the weights, which this test refuses)."""
    _probe_at(monkeypatch, NEVER_QUICK)
    out = tmp_path / "out"
    where = ["--out-dir", str(out)] if batch else ["-o", str(out / "o.png")]
    given = map(str, photos[::2]) if batch else [str(photos[0])]
    args = ["render", *given, "-s", str(photos[1]), "-p", str(tiny_preset_file),
            "--device", "cpu", *where]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--size", "96"])
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: this render would take up to ") and "pass --yes" in last
    assert "--size" not in last and "an H100: about" in last  # no size is quick enough
    assert "estimate: at most" in result.output and not list(out.glob("*.png"))
    assert _passed_the_gate(CliRunner().invoke(app, args))  # the preset's own size
    assert _passed_the_gate(CliRunner().invoke(app, [*args, "--size", "64"]))
    assert _passed_the_gate(CliRunner().invoke(app, [*args, "--size", "96", "--yes"]))


def test_a_batch_is_priced_from_a_bounded_sample_of_headers(tmp_path, monkeypatch):
    sizes = [(40 + i, 30) for i in range(10)]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"p{i}.png")
        Image.new("RGB", size).save(paths[-1])
    (tmp_path / "p3.png").write_bytes(b"not an image")  # left out: its own job says why
    monkeypatch.setattr(gate, "MAX_PRICED", 4)
    assert photo_shapes(paths, None) == [(30, 40), (30, 46), (30, 49)]  # p0, p3 (bad), p6, p9
    monkeypatch.setattr(gate, "MAX_PRICED", 64)
    assert len(photo_shapes(paths, None)) == 9 and photo_shapes(paths, 30 * 44) == [
        (30, 40), (30, 41), (30, 42), (30, 44)  # over the pixel bound: left out
    ]  # fmt: skip
    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.new("RGB", (80, 60)).save(turned, exif=exif)
    cut = tmp_path / "cut.jpg"  # a header without its pixels: still priced, nothing decoded
    data = turned.read_bytes()
    cut.write_bytes(data[: data.index(b"\xff\xda") + 20])  # cut in the scan
    assert photo_shapes([turned, cut], None) == [(80, 60), (80, 60)]


def _request(**knobs) -> RenderRequest:
    return RenderRequest.of(photos=["p.png"], styles=["s.png"], **knobs)


def _refused(request: RenderRequest, default_edge: int = 64) -> TooLong:
    preset = resolve_look(request, CPU).preset
    with pytest.raises(TooLong) as refused:
        check_time(None, request, Work(preset, CPU, ((768, 1024),)), default_edge)
    return refused.value


def _accepted(request: RenderRequest, default_edge: int = 64) -> str:
    preset = resolve_look(request, CPU).preset
    return check_time(None, request, Work(preset, CPU, ((768, 1024),)), default_edge)


@pytest.mark.parametrize("bleed", [None, "3mm"])
def test_a_print_sizes_suggestion_is_a_dpi_accepted_when_taken(
    tiny_preset_file, monkeypatch, home, bleed
):
    """``--size`` cannot go beside ``--print-size``: a print is offered a lower ``--dpi``."""
    _probe_at(monkeypatch, 20.0)  # 30 × 40 cm at 300 DPI takes hours, at 30 DPI minutes
    request = _request(preset=str(tiny_preset_file), print_size="30x40cm", bleed=bleed)
    refused = _refused(request)
    field, dpi = refused.suggestion
    assert field == "dpi" and 1 <= dpi < 300
    assert f"--dpi {dpi} (at most 30 min)" in refused.named(flag_of) and "pass --yes" in str(
        refused.named(flag_of)
    )
    assert f"dpi={dpi} (at most" in str(refused) and "pass yes=True" in str(refused)
    assert _accepted(request.replace(dpi=float(dpi))).startswith("at most ")
    _refused(request.replace(dpi=float(dpi + 1)))  # the largest that is accepted


def test_a_sizes_suggestion_is_accepted_when_taken(tiny_preset_file, monkeypatch, home):
    _probe_at(monkeypatch, 20.0)
    request = _request(preset=str(tiny_preset_file), size=4096)
    field, size = _refused(request).suggestion
    assert field == "size" and 64 <= size < 4096 and size % 8 == 0
    assert _accepted(request.replace(size=size)).startswith("at most ")
    _refused(request.replace(size=size + 8))
    assert _accepted(request.replace(yes=True)).startswith("at most ")  # yes: never refused
    assert _accepted(request, default_edge=4096)  # its preset's own size: never refused


def test_render_in_python_asks_where_someone_can_answer(
    photos, tiny_preset_file, monkeypatch, capsys, home, no_weights
):
    """``render(yes=False)`` raises the gate's error naming ``yes=True``; ``yes=None`` asks
    only in a notebook or on a terminal, where the estimate is said with the bars. A render the
    gate lets through goes on to the weights (refused here)."""
    _probe_at(monkeypatch, NEVER_QUICK)
    given = {"preset": str(tiny_preset_file), "device": "cpu"}
    passed = pytest.raises(AssertionError, match="weights were loaded")
    with pytest.raises(TooLong, match=r"would take up to .* pass yes=True to start it"):
        render(photos[0], photos[1], size=96, yes=False, **given)
    with passed:
        render(photos[0], photos[1], yes=False, **given)  # the preset's own size
    with passed:
        render(photos[0], photos[1], size=96, **given)  # a script: stderr is no terminal
    monkeypatch.setattr("stylecascade.api.progress_by_default", lambda: True)  # a notebook
    with pytest.raises(TooLong, match="pass yes=True"):
        render(photos[0], photos[1], size=96, **given)
    assert "estimate: at most" in capsys.readouterr().err
    with passed:
        render(photos[0], photos[1], size=96, yes=True, **given)
    with pytest.raises(TooLong, match="pass yes=True"):
        render_batch([photos[0]], photos[0].parent / "out", photos[1], size=96, **given)
