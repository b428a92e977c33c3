"""Batches on a Ray cluster (``--cluster``), on a local Ray instance with 2 CPU actors of one
thread each: the same images as a local batch, failures reported, a dying actor's photo
retried on another, Ctrl-C and --resume; without --cluster Ray is never imported. Real weights,
the tiny two-stage preset, photos of 64–96 px."""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, TINY_PRESET
from PIL import Image
from stylecascade.cli import app
from typer.testing import CliRunner

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
SEED = ["--seed", "3", "--threads", "1", "--device", "cpu"]
ON_RAY = ["--cluster", "local", "--actors", "2", "--cpus-per-actor", "1"]


pytestmark = pytest.mark.usefixtures("no_ray_address")


@pytest.fixture(scope="module")
def shoot(tmp_path_factory):
    """Four photos (``d.png`` broken), the tiny preset, a painting, and a local batch of them
    with the same seed and one thread: ``(folder, preset, painting, local outputs)``."""
    root = tmp_path_factory.mktemp("shoot")
    folder = root / "photos"
    folder.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        with Image.open(EXAMPLES / ("the_scream.jpg" if name == "b" else "tubingen.jpg")) as img:
            img.thumbnail((96 - 16 * i, 96 - 16 * i))
            img.rotate(90 * i, expand=True).save(folder / f"{name}.png")
    (folder / "d.png").write_bytes(b"\x89PNG broken")
    preset = root / "tiny.yaml"
    preset.write_text(TINY_PRESET)
    painting = root / "starry_night.png"
    with Image.open(EXAMPLES / "starry_night.jpg") as img:
        img.thumbnail((96, 96))
        img.save(painting)
    local = root / "local"
    result = _invoke("render", folder, "-s", painting, "-p", preset, "--out-dir", local, *SEED)
    assert result.exit_code == 2 and "3 done, 0 skipped, 1 failed" in result.output
    return folder, preset, painting, local


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (Linux /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit():
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def test_without_cluster_ray_is_never_imported(tmp_path, shoot):
    folder, preset, painting, _ = shoot
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from stylecascade.cli import app\n"
        f"args = ['render', {str(folder / 'a.png')!r}, '-s', {str(painting)!r}, '-p', "
        f"{str(preset)!r}, '--out-dir', 'out', '--device', 'cpu', '-q']\n"
        "for command in (['--help'], ['render', '--help'], args):\n"
        "    print(CliRunner().invoke(app, command).exit_code, 'ray' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert done.stdout.split("\n")[:3] == ["0 False", "0 False", "0 False"]
    assert (tmp_path / "out" / "a-starry_night.png").exists()


def test_cluster_without_ray_installed_is_one_line(tmp_path, shoot):
    folder, preset, painting, _ = shoot
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if the extra were not installed\n"
        "from stylecascade.cli import run\n"
        f"sys.exit(run(['render', {str(folder)!r}, '-s', {str(painting)!r}, '-p', "
        f"{str(preset)!r}, '--out-dir', 'out', '--cluster', 'local']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr == (
        "error: --cluster needs Ray; install it with: pip install -e '.[cluster]'\n"
    )


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--cluster", "head:6379"], 2, "--cluster head:6379: expected local, auto or ray://"),
        (["--cluster", "auto"], 1, "--cluster auto: cannot connect (Could not find any running"),
        (["--actors", "2"], 2, "--actors goes with --cluster ADDRESS"),
        (["--cluster", "local", "--cpus-per-actor", "0"], 2, "--cpus-per-actor must be 1 … 1024"),
    ],
)
def test_cluster_usage_errors_are_one_line(shoot, tmp_path, extra, code, message):
    pytest.importorskip("ray")
    folder, preset, painting, _ = shoot
    out = tmp_path / "out"
    result = _invoke("render", folder, "-s", painting, "-p", preset, "--out-dir", out, *extra)
    assert result.exit_code == code
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.output


def test_a_cluster_batch_writes_what_a_local_batch_writes(shoot, tmp_path):
    """CI's end-to-end test: four photos, one broken, on 2 CPU actors of a local Ray."""
    pytest.importorskip("ray")
    import ray

    folder, preset, painting, local = shoot
    out = tmp_path / "out"
    result = _invoke(
        "render", folder, "-s", painting, "-p", preset, "--out-dir", out, *SEED, *ON_RAY
    )
    assert result.exit_code == 2, result.output  # as the local batch: the broken photo's code
    assert "3 done, 0 skipped, 1 failed" in result.output
    assert "d.png: not an image file Pillow can read" in result.output.replace("\n", " ")
    assert "node" in result.output and "started 2 actors on 1 node" in result.output
    for name in ("a", "b", "c"):
        output = f"{name}-starry_night.png"
        assert np.array_equal(_pixels(out / output), _pixels(local / output)), name
        manifest = json.loads((out / f"{name}-starry_night.json").read_text())
        assert manifest["node"] == socket.gethostname() and manifest["threads"] == 1
        assert manifest["status"] == "done" and manifest["device"] == "cpu"
    assert not (out / "d-starry_night.png").exists()
    assert not any(p.name.endswith(".checkpoint") for p in out.iterdir())
    assert not ray.is_initialized() and not _descendants(os.getpid())  # Ray is shut down


def test_paintings_masks_and_stage_styles_travel_to_the_actors_as_bytes(shoot, tmp_path):
    """A saved look with a painting-side mask and a stage with its own painting and layers:
    every file travels to the actors as bytes (their Renderer decodes `files`), and the images
    equal a local batch's."""
    pytest.importorskip("ray")
    folder, _preset, painting, _local = shoot
    look = tmp_path / "look"
    look.mkdir()
    w, h = Image.open(painting).size
    mask = Image.new("L", (w, h), 0)
    mask.paste(255, (0, 0, w // 2, h))
    mask.save(look / "left.png")
    Image.open(EXAMPLES / "the_scream.jpg").resize((64, 80)).save(look / "scream.png")
    Image.open(painting).save(look / "painting.png")
    text = TINY_PRESET.replace(
        "stages:\n  - {size: 32, iterations: 8}",
        "stages:\n  - {size: "
        "32, iterations: 8, styles: [{image: scream.png, layers: [relu1_1, relu2_1]}]}",
    )
    assert text != TINY_PRESET
    text += "styles: [{image: painting.png, style_mask: left.png}]\n"
    (look / "look.yaml").write_text(text)
    outputs = {}
    for where, extra in (("local", []), ("ray", ON_RAY)):
        out = tmp_path / where
        result = _invoke(
            "render", folder, "-p", look / "look.yaml", "--out-dir", out, *SEED, *extra
        )
        assert result.exit_code == 2 and "3 done" in result.output, result.output
        outputs[where] = out
    for name in ("a", "b", "c"):
        output = f"{name}-painting.png"
        assert np.array_equal(_pixels(outputs["ray"] / output), _pixels(outputs["local"] / output))


class _Killer:
    """A cluster observer that SIGKILLs the actor rendering ``victim``: after its first stage
    (``when="stage"``), or whenever it starts it (``when="start"``)."""

    def __init__(self, victim: str, when: str) -> None:
        self.victim, self.when = victim, when
        self.actors, self.rendering, self.deaths = [], {}, []

    def batch_started(self, count):
        pass

    def actors_started(self, actors, seconds):
        self.actors = actors

    def photo_started(self, actor, name):
        self.rendering[actor] = name
        if name == self.victim and self.when == "start":
            os.kill(self.actors[actor].pid, signal.SIGKILL)

    def stage_finished(self, actor, result):
        if self.rendering[actor] == self.victim and self.when == "stage" and not self.deaths:
            if result.index == 0:
                os.kill(self.actors[actor].pid, signal.SIGKILL)

    def photo_finished(self, actor, outcome):
        pass

    def actor_died(self, actor, name, retried):
        self.deaths.append((actor, name, retried))


def _cluster_batch(folder, preset, painting, out, observer):
    """The three good photos on 2 fresh actors of a local Ray, seed 3, one thread each."""
    pytest.importorskip("ray")
    from stylecascade.batch import batch_jobs
    from stylecascade.cluster import connect
    from stylecascade.cluster_batch import run_cluster_batch
    from stylecascade.job import RenderJob
    from stylecascade.preset_files import load_preset
    from stylecascade.renderer import Renderer

    look = load_preset(str(preset)).resolved(styles=[painting])
    photos = [folder / f"{name}.png" for name in "abc"]
    out.mkdir()
    template = RenderJob(content=photos[0], output=out, seed=3)
    jobs = batch_jobs(photos, template, out, "{content}-{styles}.png", look)
    with connect("local") as cluster:
        renderer = Renderer(look, device=cluster.device("cpu"))
        return run_cluster_batch(jobs, renderer, cluster, observer, actors=2, threads=1)


def test_a_photo_whose_actor_dies_is_retried_on_another_actor(shoot, tmp_path):
    folder, preset, painting, local = shoot
    killer = _Killer("b.png", when="stage")
    outcomes = _cluster_batch(folder, preset, painting, tmp_path / "out", killer)
    assert [o.status for o in outcomes] == ["done"] * 3
    (dead, name, retried), *others = killer.deaths
    assert name == "b.png" and retried and not others
    assert outcomes[1].node == socket.gethostname()
    output = "b-starry_night.png"  # resumed from its first stage on the other actor
    assert np.array_equal(_pixels(tmp_path / "out" / output), _pixels(local / output))
    manifest = json.loads((tmp_path / "out" / "b-starry_night.json").read_text())
    assert len(manifest["stages"]) == 2 and manifest["status"] == "done"


def test_a_photo_whose_actors_die_twice_fails_and_the_batch_ends(shoot, tmp_path):
    folder, preset, painting, _ = shoot
    killer = _Killer("b.png", when="start")
    outcomes = _cluster_batch(folder, preset, painting, tmp_path / "out", killer)
    by_name = {o.content.name: o for o in outcomes}
    assert by_name["a.png"].status == "done"
    failed = by_name["b.png"]
    assert failed.status == "failed" and failed.exit_code == 1
    assert failed.message.startswith("the actors rendering it died (actor ")
    assert failed.message.count(f" on {socket.gethostname()}") == 2
    assert [retried for _, _, retried in killer.deaths] == [True, False]
    c = by_name["c.png"]  # rendered before b's second try, or left without an actor
    assert c.status == "done" or c.message == "no actor left: every actor of the batch died"


def test_ctrl_c_stops_the_cluster_and_resume_finishes_the_batch(shoot, tmp_path):
    pytest.importorskip("ray")
    folder, preset, painting, local = shoot
    out = tmp_path / "out"
    photos = [str(folder / f"{name}.png") for name in "abc"]
    command = [
        sys.executable, "-m", "stylecascade", "render", *photos, "-s", str(painting),
        "-p", str(preset), "--out-dir", str(out), *SEED, "--cluster", "local", "--actors", "1",
        "-q",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    first = out / "a-starry_night.png"
    deadline = time.monotonic() + 180
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ray_processes = _descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted; ")
    assert "run the same command with --resume" in stderr
    assert ray_processes and not _alive(ray_processes)  # Ray is shut down

    resumed = subprocess.run(
        [*command[:-1], "--resume"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "1 skipped" in resumed.stderr or "2 skipped" in resumed.stderr
    for name in "abc":
        output = f"{name}-starry_night.png"
        assert np.array_equal(_pixels(out / output), _pixels(local / output)), name


def _displayed(display_class, width=80, terminal=True):
    """Feed a cluster display a batch of 4 photos on 2 actors (one with a long host name);
    return the console's text, ANSI codes removed."""
    from rich.console import Console
    from stylecascade.records import ActorInfo, Outcome
    from stylecascade.stages.cascade import Stage, StageResult

    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    actors = [ActorInfo("gpu-node-07.render-farm.example.com", 101, "cuda:0", 4)]
    actors.append(ActorInfo("vm", 102, "cpu", 1))
    stage = Stage(size=(48, 64), iterations=8, style_edge=64)
    result = StageResult(0, stage, 8, "cap", 2.0, {}, {}, [], 0, None, None)
    long_name = "IMG_20261124_0001_very_long_file_name_from_a_camera.jpg"
    with display_class(console) as display:
        display.batch_started(4)
        display.photo_finished(None, Outcome(Path("x.png"), Path("o/x.png"), "skipped"))
        display.actors_started(actors, 3.2)
        display.photo_started(0, long_name)
        display.photo_started(1, "b.png")
        display.stage_finished(0, result)
        display.photo_finished(1, Outcome(Path("b.png"), Path("o/b.png"), "done", 5.0, node="vm"))
        display.actor_died(0, long_name, True)
        if terminal:
            display.progress.refresh()
    return ANSI.sub("", out.getvalue())


def test_a_local_cluster_of_the_tests_writes_no_token_into_home(tmp_path):
    pytest.importorskip("ray")
    home = tmp_path / "home"  # stands for the real HOME; the environment is the tests' own
    home.mkdir()
    start = "from stylecascade.cluster import connect\nwith connect('local') as c: print(c)"
    done = subprocess.run(
        [sys.executable, "-c", start],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "cluster local (1 node" in done.stdout, done.stderr
    assert not (home / ".ray" / "auth_token").exists()


def test_a_cluster_batch_whose_outputs_all_exist_never_connects(
    tmp_path, photos, tiny_preset_file, monkeypatch
):
    def refuse(address):
        raise AssertionError(f"connected to {address} for a batch with nothing to render")

    monkeypatch.setattr("stylecascade.cluster.connect", refuse)
    out = tmp_path / "out"
    out.mkdir()
    for photo in (photos[0], photos[2]):
        (out / f"{photo.stem}-{photos[1].stem}.png").write_bytes(b"an earlier render")
    args = [photos[0], photos[2], "-s", photos[1], "-p", tiny_preset_file, "--out-dir", out]
    result = _invoke("render", *args, *ON_RAY)
    assert result.exit_code == 0, result.output
    assert "every output exists: 2 photos skipped, the cluster not started" in result.output
    assert "0 done, 2 skipped, 0 failed" in result.output
    assert {p.read_bytes() for p in out.iterdir()} == {b"an earlier render"}
    (out / f"{photos[2].stem}-{photos[1].stem}.png").unlink()  # one to render: it connects
    result = _invoke("render", *args, *ON_RAY)
    assert "nothing to render" in str(result.exception), result.output


def test_the_cluster_bars_fit_80_columns_with_photos_and_throughput():
    from stylecascade.cluster_display import ClusterBars

    text = _displayed(ClusterBars)
    frames = [f for f in re.split(r"[\r\n]", text) if f.strip()]
    assert all(len(f) <= 80 for f in frames), max(frames, key=len)
    last = {f.split()[0] + f.split()[1]: f for f in frames if f.startswith(("all", "actor"))}
    assert re.search(r"all photos +━.* 2/4 · eta \d\d:\d\d:\d\d", last["allphotos"])
    assert re.search(r"actor 2 vm .* 1 done · [\d.]+/min", last["actor2"])
    assert "actor 1 gpu-node-07.r…" in last["actor1"] and "died; IMG_2026" in last["actor1"]
    assert "started 2 actors on 2 nodes in 3.2 s" in text


def test_the_cluster_log_has_a_timestamped_line_per_event():
    from stylecascade.cluster_display import ClusterLog

    lines = _displayed(ClusterLog, width=200, terminal=False).splitlines()
    assert all(re.match(rf"{STAMP} ", line) for line in lines)
    events = [line[20:] for line in lines]
    assert events[:4] == [
        "1/4 photos finished: x.png skipped",
        "started 2 actors on 2 nodes in 3.2 s",
        "actor 1 gpu-node-07.render-farm.example.com: cuda:0, 4 threads, pid 101",
        "actor 2 vm: cpu, 1 thread, pid 102",
    ]
    assert events[6].endswith(": IMG_20261124_0001_very_long_file_name_from_a_camera.jpg "
                              "stage 1 64×48 in 2 s")  # fmt: skip
    assert re.fullmatch(r"2/4 photos finished: b.png done by actor 2 vm in 5.0 s "
                        r"\(this actor: 1 done · [\d.]+/min\)", events[7])  # fmt: skip
    assert events[8].startswith("actor 1 gpu-node-07.render-farm.example.com died rendering IMG")
    assert events[8].endswith("; retrying it on another actor")


@pytest.mark.parametrize("cluster", [None, "local"])
def test_render_batch_is_the_python_api_of_a_batch(shoot, tmp_path, cluster):
    if cluster is not None:
        pytest.importorskip("ray")
    from stylecascade import render_batch

    folder, preset, painting, local = shoot
    outcomes = render_batch(
        [folder], tmp_path / "out", painting, preset=str(preset), seed=3, threads=1,
        device="cpu", cluster=cluster, actors=2,
    )  # fmt: skip
    assert [(o.content.name, o.status) for o in outcomes] == [
        ("a.png", "done"), ("b.png", "done"), ("c.png", "done"), ("d.png", "failed"),
    ]  # fmt: skip
    assert outcomes[3].exit_code == 2 and "not an image file" in outcomes[3].message
    assert {o.node for o in outcomes[:3]} == {"" if cluster is None else socket.gethostname()}
    for name in "abc":
        output = f"{name}-starry_night.png"
        assert np.array_equal(_pixels(tmp_path / "out" / output), _pixels(local / output))
