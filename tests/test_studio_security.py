"""The studio's boundary (issue 36, classes 1–4): it reads only inside the folders it was given
and never quotes a file; it answers only its own launch (token, Host, Origin); what a client can
make it hold is bounded (bodies while they stream, the queue, the events, half-sent requests);
odd input is a one-line 4xx, never a 500, and a bad start is refused before serving."""

from __future__ import annotations

import importlib
import io
import json
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the studio extra is not installed")

from PIL import Image  # noqa: E402
from studio_server import (  # noqa: E402
    closing_studio,
    private_home,
    running_studio,
    save_tiny_preset,
    served_client,
    studio_client,
)
from stylecascade.errors import UsageError  # noqa: E402
from stylecascade.studio import jobs  # noqa: E402
from stylecascade.studio.app import Studio  # noqa: E402

SECRET = "s3cr3t-0123456789abcdef0123456789abcdef"  # 40 characters, as in the issue


@pytest.fixture
def home(tmp_path, monkeypatch):
    return save_tiny_preset(private_home(tmp_path, monkeypatch)) and tmp_path / "home"


@pytest.fixture
def studio(tmp_path, photos, home):
    with closing_studio(tmp_path) as made:
        yield made


@pytest.fixture
def client(studio):
    return studio_client(studio)


def _token(studio: Studio) -> str:
    return getattr(studio, "token", "")


def _limits(monkeypatch, **bounds) -> None:
    """Set the studio's bounds (by their names in :mod:`stylecascade.studio.limits`)."""
    try:
        module = importlib.import_module("stylecascade.studio.limits")
    except ImportError:  # before the module: the bound lived in app
        module = importlib.import_module("stylecascade.studio.app")
    for name, value in bounds.items():
        monkeypatch.setattr(module, name, value, raising=False)


def _post(client, path: str, body: dict):
    """POST ``body`` as JSON, lone surrogates escaped (``\\ud800``), as a browser sends it."""
    headers = {"Content-Type": "application/json"}
    return client.post(path, content=json.dumps(body).encode(), headers=headers)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buffer, "PNG")
    return buffer.getvalue()


def _blocked(studio: Studio) -> threading.Event:
    """A job that holds the worker until the returned event is set."""
    release = threading.Event()
    job = studio.worker.submit("try", {}, lambda job: release.wait(30))
    while job.state == "queued":
        time.sleep(0.01)
    return release


# class 1: the studio reads only inside its folders, and no answer quotes a file


def test_presets_are_read_by_name_only_and_never_quoted(client, tmp_path, home, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_text(f"{SECRET}\n")
    (tmp_path / "secret.yaml").write_text(f"{SECRET}\n")
    (home / "presets" / "broken.yaml").write_text(f"model: {SECRET}\n")
    body = {"photo": "tubingen.png", "paintings": ["starry_night.png"]}
    answers = [
        client.get("/api/presets/secret.txt"),
        client.get("/api/presets/secret.yaml"),
        client.get("/api/presets/broken"),
        client.post("/api/tries", json={**body, "preset": str(tmp_path / "secret.txt")}),
        client.post("/api/tries", json={**body, "preset": "secret.yaml"}),
        client.post("/api/tries", json={**body, "preset": "broken"}),
        client.post("/api/tries", json={**body, "preset": "/etc/passwd"}),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        assert SECRET not in answer.text and "root:" not in answer.text, answer.text
    assert "presets validate broken" in answers[2].json()["error"]
    assert client.get("/api/presets/tiny").status_code == 200


# class 2: token, Host and Origin


def test_requests_without_the_launch_token_are_refused(studio):
    stranger = studio_client(studio, signed=False)
    asked = (stranger.get("/api/state"), stranger.get("/"), stranger.post("/api/jobs/1/stop"))
    for answer in asked:
        assert answer.status_code == 403 and "token" in answer.json()["error"]
    assert stranger.get("/static/studio.js").status_code == 200  # the page's own files
    visit = stranger.get("/", params={"token": _token(studio)})
    assert visit.status_code == 200
    cookie = visit.headers["set-cookie"]
    assert _token(studio) in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert stranger.get("/api/state").status_code == 200  # the cookie from now on
    script = studio_client(studio, signed=False, headers={"X-Studio-Token": _token(studio)})
    assert script.get("/api/state").status_code == 200
    wrong = studio_client(studio, signed=False, headers={"X-Studio-Token": "x" + _token(studio)})
    assert wrong.get("/api/state").status_code == 403


def test_another_site_cannot_change_anything(client, studio):
    release = _blocked(studio)
    try:
        forged = client.post(
            "/api/jobs/1/stop", content=b"a=1",
            headers={
                "Origin": "http://evil.example",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )  # fmt: skip
        assert forged.status_code == 403 and "evil.example" in forged.json()["error"]
        assert client.post("/api/jobs/1/stop", headers={"Origin": "null"}).status_code == 403
        assert studio.worker.jobs[1].state == "running"
        own = client.post("/api/jobs/1/stop", headers={"Origin": "http://127.0.0.1"})
        assert own.status_code == 200
    finally:
        release.set()


@pytest.mark.parametrize(
    "bind", ["127.0.0.1", "127.0.0.2", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1", "localhost"]
)
def test_loopback_binds_answer_loopback_host_names_only(studio, bind):
    token = {"X-Studio-Token": _token(studio)}
    rebound = studio_client(studio, bind, False, base_url="http://evil.example", headers=token)
    assert rebound.get("/api/state").status_code == 403
    assert rebound.get("/api/images/tubingen.png").status_code == 403
    for name in ("http://localhost:8765", "http://127.0.0.1", "http://[::1]:9"):
        own = studio_client(studio, bind, False, base_url=name, headers=token)
        assert own.get("/api/state").status_code == 200


def test_other_binds_need_the_token_and_warn(studio):
    from stylecascade.studio.server import exposure_warning

    wide = studio_client(studio, "0.0.0.0", base_url="http://studio.lan", signed=False)
    assert wide.get("/api/state").status_code == 403
    assert wide.get("/api/state", headers={"X-Studio-Token": _token(studio)}).status_code == 200
    warning = exposure_warning("0.0.0.0")
    assert warning is not None and "0.0.0.0" in warning and "\n" not in warning
    assert exposure_warning("127.0.0.2") is None and exposure_warning("::1") is None


def test_an_allowed_origin_may_change_things(studio):
    from starlette.testclient import TestClient
    from stylecascade.studio.app import create_app

    app = create_app(studio, "127.0.0.1", allow_origins=("https://proxy.example",))
    signed = {"X-Studio-Token": _token(studio)}
    proxied = TestClient(app, base_url="https://proxy.example", headers=signed)
    answer = proxied.post("/api/jobs/9/stop", headers={"Origin": "https://proxy.example"})
    assert answer.status_code == 404  # past the guard: no job 9
    other = proxied.post("/api/jobs/9/stop", headers={"Origin": "https://other.example"})
    assert other.status_code == 403


# class 3: bounds


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def test_an_upload_over_the_bound_is_refused_while_it_streams(tmp_path, photos, home, monkeypatch):
    _limits(monkeypatch, MAX_UPLOAD=1 << 20)
    with running_studio(tmp_path) as (url, studio), _raw(url) as raw:
        raw.sendall(
            f"PUT /api/uploads/big.png HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Studio-Token: {_token(studio)}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"%x\r\n%s\r\n" % (64 << 10, b"x" * (64 << 10))
        for _ in range(40):  # 2.5 MiB of an endless body
            raw.sendall(chunk)
        raw.settimeout(5)  # the body never ends: only a refusal while it streams answers
        assert raw.recv(100).startswith(b"HTTP/1.1 413")
    assert not (tmp_path / "studio" / "uploads").exists()


def test_the_queue_the_jobs_and_the_events_kept_are_bounded(client, studio):
    release = _blocked(studio)
    try:
        for _ in range(getattr(jobs, "MAX_QUEUED", 8)):
            studio.worker.submit("try", {}, lambda job: None)
        with pytest.raises(UsageError, match="jobs are waiting"):
            studio.worker.submit("try", {}, lambda job: None)
        body = {"photo": "tubingen.png", "paintings": ["starry_night.png"], "preset": "tiny"}
        answer = client.post("/api/tries", json=body)
        assert answer.status_code == 429 and "waiting" in answer.json()["error"]
    finally:
        release.set()
    while any(job.state in ("queued", "running") for job in list(studio.worker.jobs.values())):
        time.sleep(0.01)
    kept, events = getattr(jobs, "MAX_KEPT", 50), getattr(jobs, "MAX_EVENTS", 2000)
    for _ in range(kept + 10):
        job = studio.worker.submit("try", {}, lambda job: None)
        while job.state != "done":
            time.sleep(0.001)
    assert len(studio.worker.jobs) <= kept + 1
    log = jobs.EventLog()
    for n in range(3 * events):
        log.post("note", text=str(n))
    assert len(log.since(0)) == events and log.since(0)[-1]["id"] == 3 * events
    assert [e["id"] for e in log.since(3 * events - 2)] == [3 * events - 1, 3 * events]
    assert client.get("/api/state").json()["events"] == studio.events.since(0)[-1]["id"]


def test_a_half_sent_request_is_closed(tmp_path, photos, home, monkeypatch):
    _limits(monkeypatch, REQUEST_SECONDS=0.5)
    with running_studio(tmp_path) as (url, studio):
        with _raw(url) as raw:
            raw.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Stud")
            raw.settimeout(5)
            began = time.monotonic()
            assert raw.recv(100) == b""  # closed, not held
            assert time.monotonic() - began < 4
        with served_client(url, studio) as client:
            assert client.get("/api/state").status_code == 200


# class 4: odd input is a 4xx line, and a bad start is refused before serving


def test_odd_names_and_headers_are_answered_not_crashed(client):
    picture = _png()
    body = {"photo": "tubingen.png", "paintings": ["starry_night.png"]}
    answers = {
        "70 emoji": client.put("/api/uploads/" + "\U0001f600" * 70 + ".png", content=picture),
        "NUL": client.put("/api/uploads/a%00b.png", content=picture),
        "Last-Event-ID": client.get("/api/events", headers={"Last-Event-ID": "abc"}),
        "preset NUL": _post(client, "/api/tries", {**body, "preset": "dr\x00aft"}),
        "preset surrogate": _post(client, "/api/tries", {**body, "preset": "\ud800"}),
        "key surrogate": _post(client, "/api/tries", {**body, "\ud800": 1}),
        "photo surrogate": _post(client, "/api/tries", {**body, "photo": "\udcff.png"}),
        "preset name NUL": _post(client, "/api/jobs/1/preset", {"name": "a\x00b"}),
        "preset page NUL": client.get("/api/presets/a%00b"),
    }
    for what, answer in answers.items():
        assert 400 <= answer.status_code < 500, (what, answer.text)
        assert "error" in answer.json() and "Traceback" not in answer.text, what


def test_a_bad_start_is_refused_naming_its_option(tmp_path):
    from stylecascade.options import flag_of
    from stylecascade.studio.server import check_start

    (tmp_path / "file").write_text("x")
    good = {
        "host": "127.0.0.1", "port": 0, "out_dir": tmp_path / "out", "device": "cpu",
        "weights": "caffe",
    }  # fmt: skip
    check_start(**good)
    for wrong, flag in (
        ({"port": -1}, "--port"),
        ({"port": 70000}, "--port"),
        ({"host": "no such host"}, "--host"),
        ({"out_dir": tmp_path / "file"}, "--out-dir"),
        ({"out_dir": tmp_path / "file" / "sub"}, "--out-dir"),
        ({"device": "tpu"}, "--device"),
        ({"weights": str(tmp_path / "missing.pt")}, "--weights"),
    ):
        with pytest.raises(UsageError) as refused:
            check_start(**{**good, **wrong})
        said = refused.value.named(flag_of)  # as the command line words it
        assert said.startswith(flag), (wrong, said)
