"""Progress output: the bar's line in an 80-column terminal, timestamped lines in a log — as
units with a fake console, and through the real command line in a pseudo-terminal and a pipe
(real weights, a 64 → 128 px render)."""

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
import torch
from rich.console import Console
from stylecascade import progress
from stylecascade.progress import LogProgress, StageProgress, stage_progress, stage_weight
from stylecascade.stages.cascade import Stage

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
TERMS = {"content": torch.tensor(6.4e5), "style": torch.tensor(3.9e5), "tv": torch.tensor(2.1e3)}
STAGE = Stage(size=(768, 1024), iterations=140, style_edge=1024)


def _bar_line(width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    with StageProgress(console) as bars:
        bars.stage_started(0, 3, STAGE)
        bars.last_read = 0.0  # read the losses now
        bars.iteration(40, TERMS)
        bars.progress.refresh()
    frames = [ANSI.sub("", f) for f in re.split(r"[\r\n]", out.getvalue())]
    return next(f for f in reversed(frames) if "stage 1/3" in f)


def test_the_bar_fits_80_columns_with_its_count_and_eta():
    line = _bar_line(80)
    assert len(line) <= 80
    assert line.startswith("stage 1/3 1024×768 ━")
    assert " 40/140 " in line and " eta " in line and "content 6.4e5" in line
    assert "lbfgs" not in line  # the optimizer only on wide terminals


def test_a_wide_terminal_shows_the_optimizer_and_every_loss():
    line = _bar_line(140)
    assert "stage 1/3 1024×768 lbfgs" in line
    assert "content 6.4e5 · style 3.9e5 · tv 2.1e3" in line


def test_a_log_gets_timestamped_lines_at_start_while_running_and_at_the_end(monkeypatch):
    out = io.StringIO()
    console = Console(file=out, width=200)
    assert isinstance(stage_progress(console), LogProgress)
    clock = iter([100.0, 101.0, 100.0 + progress.LOG_EVERY_SECONDS + 1])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    log = LogProgress(console)
    log.stage_started(0, 3, STAGE)
    log.iteration(5, TERMS)  # 1 s in: nothing
    log.iteration(40, TERMS)  # past LOG_EVERY_SECONDS: a line
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(rf"{STAMP} stage 1/3 1024×768 lbfgs: started, cap 140", lines[0])
    assert re.fullmatch(
        rf"{STAMP} stage 1/3 1024×768: 40/140, 31 s, ≤ 78 s left, render ~37 min left · "
        r"content 6.4e5 · style 3.9e5 · tv 2.1e3",
        lines[1],
    )


PRESET = """
base: draft
defaults: {tolerance: 0}
stages: [{size: 64, iterations: 10}, {size: 128, iterations: 30}]
"""


@pytest.fixture
def command(tmp_path, photos):
    preset = tmp_path / "p.yaml"
    preset.write_text(PRESET)
    return [
        sys.executable, "-m", "stylecascade", "render", str(photos[0]), "-s", str(photos[1]),
        "-p", str(preset), "-o", str(tmp_path / "o.png"), "--device", "cpu",
    ]  # fmt: skip


def test_the_cli_in_an_80_column_terminal_shows_bar_count_and_eta(command):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, env=env | {"TERM": "xterm"}
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    frames = [ANSI.sub("", f) for f in re.split(r"[\r\n]", b"".join(chunks).decode())]
    bars = [f for f in frames if f.startswith("stage 2/2 128×96 ")]
    assert bars
    assert all(len(f) <= 80 for f in frames if f.startswith("stage "))
    assert any(re.search(r"━.* \d+/30 \d:\d\d:\d\d eta \S+", f) for f in bars), bars[-3:]


def test_the_cli_logs_timestamped_lines_while_it_runs(command):
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    before = [proc.stderr.readline()]
    while "stage 1/2" not in before[-1]:
        before.append(proc.stderr.readline())
        assert before[-1], "no stage line before the end of the output"
    first = before[-1]
    assert not any("photo" in line for line in before)  # one photo is not a batch
    running = proc.poll() is None
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert running  # the line came while the render was still going
    assert re.match(rf"{STAMP} stage 1/2 64×48 lbfgs: started, cap 10$", first)
    assert re.search(rf"^{STAMP} stage 2/2 128×96: 30 evaluations, \d+ s · cap · ", rest, re.M)


def test_the_api_shows_progress_by_default_in_a_notebook_or_on_a_terminal(monkeypatch):
    import types

    progress_by_default = progress.progress_by_default
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a script's stderr into a file or pipe
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert progress_by_default() is False
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's word for a terminal
    assert progress_by_default() is True
    monkeypatch.delenv("TTY_COMPATIBLE")
    kernel = types.SimpleNamespace(config={"IPKernelApp": {"connection_file": "kernel-1.json"}})
    console = types.SimpleNamespace(config={"TerminalIPythonApp": {}})  # IPython in a terminal
    for shell, shown in ((kernel, True), (console, False), (None, False)):
        ipython = types.SimpleNamespace(get_ipython=lambda shell=shell: shell)
        monkeypatch.setitem(sys.modules, "IPython", ipython)
        assert progress_by_default() is shown, shell


def test_progress_advances_tile_by_tile_inside_an_evaluation(monkeypatch):
    """Issue 28.1: a tiled 5000 px stage showed nothing for 10 minutes (0 evaluations done)."""
    out = io.StringIO()
    clock = iter([100.0, 100.0 + progress.LOG_EVERY_SECONDS + 5])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    log = LogProgress(Console(file=out, width=200))
    log.stage_started(0, 3, STAGE)
    log.tile(8, 32)  # a quarter of the first evaluation, 35 s in
    line = out.getvalue().splitlines()[-1]
    assert re.fullmatch(
        rf"{STAMP} stage 1/3 1024×768: evaluation 1/140, tiles 8/32, 35 s, ≤ 19565 s left, "
        r"render ~\d+ min left",
        line,
    )
    monkeypatch.undo()
    bars = StageProgress(Console(file=io.StringIO(), width=80, force_terminal=True))
    bars.stage_started(0, 3, STAGE)
    bars.iteration(2, TERMS)
    bars.tile(16, 32)
    whole, stage = bars.progress.tasks  # one photo of 3 stages: the whole render's bar first
    assert stage.completed == 2.5 and whole.description == "whole render" and whole.total == 3
    assert 0 < whole.completed < 0.1  # 2.5 of stage 1's 140 evaluations, the smallest stage


def test_a_batch_bar_has_an_eta_before_its_first_photo_ends():
    clock = [0.0]  # seconds, as rich's progress reads them
    out = io.StringIO()
    console = Console(
        file=out, width=80, force_terminal=True, color_system=None, get_time=lambda: clock[0]
    )
    stages = [Stage(size=(24 << i, 32 << i), iterations=10, style_edge=64) for i in range(3)]
    with StageProgress(console) as bars:
        bars.batch_started(2)
        bars.input_started("a.png")
        for index, stage in enumerate(stages[:2]):  # two of the first photo's three stages
            bars.stage_started(index, 3, stage)
            for done in range(1, 11):
                clock[0] += 1.0
                bars.iteration(done, TERMS)
        batch = bars.progress.tasks[0]
        a, b = (stage_weight(s) for s in stages[:2])  # FLOPs at the cap; the third unseen: 4×
        assert batch.completed == pytest.approx((a + b) / (a + b + 4 * b))
        assert batch.time_remaining is not None and batch.time_remaining > 60
        bars.progress.refresh()
    frames = [ANSI.sub("", f) for f in re.split(r"[\r\n]", out.getvalue())]
    line = next(f for f in reversed(frames) if f.startswith("all inputs"))
    assert re.search(r" 0/2 .* eta \d:\d\d:\d\d", line), line


def test_the_whole_render_is_weighed_from_its_schedule_when_the_cascade_gives_it():
    """The poster's overall ETA said "render ~901 min left" for a 24 min render: unseen stages
    were guessed at 4x the one before. Told the schedule, each stage weighs its FLOPs at its cap
    through its own layers (a detail stage through relu2_1 costs far less per pixel)."""
    from stylecascade.preset_files import load_preset
    from stylecascade.progress import PhotoShare, stage_weight
    from stylecascade.runner import schedule

    stages = schedule(load_preset("print").with_final_size(4724), (3543, 4724))
    share = PhotoShare()
    share.schedule_started(stages)
    weights = [stage_weight(s) for s in stages]
    first = weights[0] / sum(weights)
    assert share.share(0, stages[0].iterations, stages[0].iterations) == pytest.approx(first)
    guessed = PhotoShare()
    guessed.stage_started(0, len(stages), stages[0])
    assert guessed.share(0, 1, 1) < first / 5  # the guess made the rest 5x too long and more
