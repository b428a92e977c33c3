"""The studio's server without a browser (FastAPI's test client, and one server on a port):
inputs, presets, uploads that stay in the output folder, the command line's error lines, tries
with their stage images, stop, saving a look, prints through the writer, the event stream and
the page answering while a render runs. Real VGG19 weights, the tiny two-stage preset."""

from __future__ import annotations

import io
import json
import time

import pytest

pytest.importorskip("fastapi", reason="the studio extra is not installed")

import yaml  # noqa: E402
from conftest import TINY_PRESET  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from studio_server import (  # noqa: E402
    private_home,
    running_studio,
    save_tiny_preset,
    served_client,
    studio_client,
    wait_for,
)
from stylecascade.cli import app as cli_app  # noqa: E402
from stylecascade.preset_files import load_preset  # noqa: E402
from stylecascade.stages.cascade import STOP_REASONS  # noqa: E402
from stylecascade.stages.vocabulary import COLOR_MODES  # noqa: E402
from stylecascade.studio.app import Studio, create_app  # noqa: E402
from stylecascade.studio.folder import StudioFolder  # noqa: E402
from stylecascade.studio.work import PrintSettings, TrySettings, print_request  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private STYLECASCADE_HOME (saved presets) reading the real cached weights, with the
    tiny preset and a slow one (500 evaluations a stage, no early stop) saved."""
    private = private_home(tmp_path, monkeypatch)
    save_tiny_preset(private)
    slow = yaml.safe_load(TINY_PRESET)
    slow["defaults"]["tolerance"] = 0.0
    slow["stages"] = [{"size": 32, "iterations": 8}, {"size": 64, "iterations": 500}]
    (private / "presets" / "slow.yaml").write_text(yaml.safe_dump(slow), encoding="utf-8")
    return private


@pytest.fixture
def studio(tmp_path, photos, home):
    """A studio on the folder of the three small example images."""
    made = Studio(StudioFolder(tmp_path, tmp_path / "studio"), "cpu")
    yield made
    made.worker.close()


@pytest.fixture
def client(studio):
    return studio_client(studio)


def _try(client, **settings):
    body = {"photo": "tubingen.png", "paintings": ["starry_night.png"], "preset": "tiny"}
    return client.post("/api/tries", json={**body, **settings})


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _events(studio, kind, job):
    return [e for e in studio.events.since(0) if e["type"] == kind and e.get("job") == job]


def test_state_offers_the_images_presets_and_choices(client):
    state = client.get("/api/state").json()
    assert state["inputs"] == ["starry_night.png", "the_scream.png", "tubingen.png"]
    presets = {p["name"]: p["from"] for p in state["presets"]}
    assert presets["draft"] == "bundled" and presets["tiny"] == "saved"
    assert state["choices"]["color"] == list(COLOR_MODES)
    draft = client.get("/api/presets/draft").json()
    assert (draft["style_weight"], draft["tv_weight"], draft["size"]) == (20.0, 40.0, 512)
    assert draft["stages"] == [[128, 200], [256, 100], [512, 50]]
    assert draft["color"] == "none" and draft["style_loss"] == "gram"
    page = client.get("/")
    assert page.status_code == 200 and "stylecascade studio" in page.text
    assert client.get("/static/studio.js").status_code == 200
    assert client.get("/api/images/tubingen.png").content[:4] == b"\x89PNG"


def test_uploads_and_masks_stay_in_the_output_folder(client, tmp_path):
    before = sorted(tmp_path.parent.iterdir())
    picture = _png(Image.new("RGB", (80, 60), "red"))
    assert client.put("/api/uploads/red.png", content=picture).json() == {"name": "red.png"}
    assert (tmp_path / "studio" / "uploads" / "red.png").read_bytes() == picture
    assert "red.png" in client.get("/api/state").json()["inputs"]
    for name in (".hidden.png", "x.exe", "a\\b.png", "..png"):
        answer = client.put(f"/api/uploads/{name}", content=picture)
        assert answer.status_code == 400, name
        assert "use a plain image file name without folders" in answer.json()["error"]
    for name in ("..%2Fescaped.png", "%2E%2E%2F%2E%2E%2Fescaped.png"):
        assert client.put(f"/api/uploads/{name}", content=picture).status_code in (400, 404)
    assert sorted(tmp_path.parent.iterdir()) == before
    assert not list(tmp_path.rglob("escaped.png"))
    answer = client.put("/api/uploads/fake.png", content=b"not an image")
    assert (
        answer.status_code == 400 and "not an image file Pillow can read" in answer.json()["error"]
    )
    answer = client.put("/api/uploads/tubingen.png", content=picture)
    assert answer.status_code == 400 and "already in the studio" in answer.json()["error"]
    mask = _png(Image.new("L", (160, 120), 255))
    assert client.put("/api/masks?painting=starry_night.png", content=mask).json() == {
        "name": "starry_night-mask-1.png"
    }
    assert (tmp_path / "studio" / "masks" / "starry_night-mask-1.png").is_file()


def test_errors_are_the_command_lines_naming_the_pages_fields(client, photos, tmp_path):
    answer = _try(client, style_weight=-1.0)
    cli = runner.invoke(
        cli_app,
        ["render", str(photos[0]), "-s", str(photos[1]), "-p", "tiny", "--style-weight", "-1",
         "-o", str(tmp_path / "o.png"), "--device", "cpu"],
    )  # fmt: skip
    assert answer.status_code == 400
    said = cli.output.strip().replace("--style-weight", "style weight")  # the page's field
    assert "error: " + answer.json()["error"] == said
    answer = _try(client, photo="nope.png")
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("image 'nope.png': no such photo or painting")
    answer = _try(client, preset="no-such-preset")
    assert answer.status_code == 400 and "no-such-preset" in answer.json()["error"]
    answer = _try(client, style_loss="l1")
    assert answer.json()["error"] == "style loss must be one of gram, w2, swd; got 'l1'"
    answer = _try(client, unknown=1)
    assert answer.status_code == 400 and answer.json()["error"].startswith("unknown:")
    assert client.post("/api/jobs/99/stop").status_code == 404


def test_only_loopback_host_names_are_answered(studio):
    foreign = TestClient(create_app(studio), base_url="http://attacker.example")
    assert foreign.get("/api/state", headers={"X-Studio-Token": studio.token}).status_code == 403


def test_a_try_shows_every_stage_then_saves_and_prints(client, studio, tmp_path, home):
    job = _try(client, size=None, masks=None).json()["id"]
    assert wait_for(client, job)["state"] == "done"
    stages = _events(studio, "stage", job)
    assert [e["size"] for e in stages] == [[32, 24], [64, 48]]
    assert all(e["stop"] in STOP_REASONS and e["loss"] for e in stages)
    for index, size in enumerate([(32, 24), (64, 48)]):
        picture = client.get(f"/api/jobs/{job}/stages/{index}")
        assert Image.open(io.BytesIO(picture.content)).size == size
    assert client.get(f"/api/jobs/{job}/stages/2").status_code == 404

    saved = client.post(f"/api/jobs/{job}/preset", json={"name": "studio-look"}).json()
    assert saved["path"] == str(home / "presets" / "studio-look.yaml")
    listed = runner.invoke(cli_app, ["presets", "list"], terminal_width=200)
    assert "studio-look" in listed.output
    assert load_preset("studio-look").styles[0].image == str(tmp_path / "starry_night.png")
    again = client.post(f"/api/jobs/{job}/preset", json={"name": "studio-look"})
    assert again.status_code == 200  # the same look again: nothing changes
    taken = client.post(f"/api/jobs/{job}/preset", json={"name": "tiny"})
    assert taken.status_code == 400 and "pass overwrite" in taken.json()["error"]
    bad = client.post(f"/api/jobs/{job}/preset", json={"name": "../escape"})
    assert bad.status_code == 400 and "plain name" in bad.json()["error"]

    order = {"print_size": "1x0.75in", "dpi": 64, "bit_depth": 16, "format": "png"}
    printed = client.post(f"/api/jobs/{job}/print", json=order).json()["id"]
    summary = wait_for(client, printed)
    assert summary["state"] == "done", summary
    output = tmp_path / "studio" / "prints" / f"tubingen-try{job}-64px.png"
    assert summary["output"] == str(output) and Image.open(output).size == (64, 48)
    manifest = json.loads(output.with_suffix(".json").read_text())
    assert manifest["status"] == "done" and manifest["output"] == str(output)
    assert [s["size"] for s in manifest["stages"]][-1] == [64, 48]
    for wrong, message in (
        ({"format": "gif"}, "format 'gif': use one of png, tiff, jpeg"),
        ({"format": "jpeg"}, "JPEG has 8 bits only"),
        ({"print_size": "huge"}, "print size 'huge': write it as WIDTHxHEIGHT"),
    ):
        answer = client.post(f"/api/jobs/{job}/print", json={**order, **wrong})
        assert answer.status_code == 400 and message in answer.json()["error"], answer.json()


def test_stop_keeps_the_best_image_and_cancels_the_queued(client, studio):
    running = _try(client, preset="slow", size=None).json()["id"]
    queued = _try(client, preset="slow", size=None).json()["id"]
    assert client.post(f"/api/jobs/{queued}/stop").json()["state"] == "cancelled"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the current image comes every 2 s during a stage
        if any(e["index"] == 1 for e in _events(studio, "current", running)):
            break
        time.sleep(0.1)
    current = client.get(f"/api/jobs/{running}/current")
    assert Image.open(io.BytesIO(current.content)).size == (64, 48)
    client.post(f"/api/jobs/{running}/stop")
    summary = wait_for(client, running)
    assert summary["state"] == "stopped" and summary["stages"] == 2
    assert summary["message"].startswith("stopped in stage 2 after ")
    assert _events(studio, "stage", running)[-1]["stop"] == "stopped"
    best = client.get(f"/api/jobs/{running}/stages/1")
    assert Image.open(io.BytesIO(best.content)).size == (64, 48)
    assert wait_for(client, queued)["state"] == "cancelled"


def test_a_stopped_print_keeps_its_checkpoint_for_the_next(client, studio, tmp_path):
    tried = _try(client, preset="slow", size=None).json()["id"]
    client.post(f"/api/jobs/{tried}/stop")
    wait_for(client, tried)
    order = {"print_size": "1x0.75in", "dpi": 64}
    printed = client.post(f"/api/jobs/{tried}/print", json=order).json()["id"]
    deadline = time.monotonic() + 60
    while not _events(studio, "stage", printed) and time.monotonic() < deadline:
        time.sleep(0.1)
    client.post(f"/api/jobs/{printed}/stop")
    summary = wait_for(client, printed)
    assert summary["state"] == "stopped" and "stopped in stage 2/2" in summary["message"]
    folder = tmp_path / "studio" / "prints" / f"tubingen-try{tried}-64px.png.checkpoint"
    assert (folder / "partial.png").is_file(), summary
    settings = TrySettings(**studio.worker.jobs[tried].settings)
    again = print_request(PrintSettings(**order), settings, studio.folder, tried)
    assert again.outputs.resume and str(again.outputs.output) == summary["output"]  # resumes


def test_the_page_answers_while_a_render_runs(tmp_path, photos, home):
    """On a real port: the event stream brings a render's events, and requests answer while
    it runs (their latency is printed)."""
    with running_studio(tmp_path) as (url, studio), served_client(url, studio) as client:
        job = _try(client, preset="slow", size=None).json()["id"]
        wait_for(client, job, ("running",))
        latencies = []
        for _ in range(10):
            began = time.perf_counter()
            assert client.get("/api/state").status_code == 200
            latencies.append(time.perf_counter() - began)
            time.sleep(0.1)
        print(f"latency during a render: max {max(latencies) * 1000:.0f} ms")
        assert max(latencies) < 2.0
        kinds = set()
        with client.stream("GET", "/api/events", timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    kinds.add(json.loads(line[6:])["type"])
                if {"job", "stage_started", "progress"} <= kinds:
                    break
        client.post(f"/api/jobs/{job}/stop")
        assert wait_for(client, job)["state"] == "stopped"
