"""The studio's time gate (issue 37, friction 1): a try or print estimated over 30 minutes on a
CPU, above its preset's own size, is answered 409 with its estimate until the page sends it
again with ``"yes": true``; at the preset's own size it is never asked about; each job carries
its estimate. FastAPI's test client and the tiny saved preset; the weights are never read (a
job the gate lets through fails when it reaches them). The page's dialog:
tests/test_studio_browser.py."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the studio extra is not installed")

from studio_server import private_home, save_tiny_preset, studio_client, wait_for  # noqa: E402
from stylecascade import estimate  # noqa: E402
from stylecascade.studio.app import Studio  # noqa: E402
from stylecascade.studio.folder import StudioFolder  # noqa: E402

NEVER_QUICK = 1e-4
"""GFLOP/s of a probe so slow that every size takes longer than the limit."""


@pytest.fixture
def client(tmp_path, photos, monkeypatch):
    """The studio's test client; the probe never quick, and the weights refused: a job the gate
    lets through fails when it reaches them (the gate never reads them)."""
    private = private_home(tmp_path, monkeypatch)
    save_tiny_preset(private)
    monkeypatch.setattr(estimate, "probe_rate", lambda *args: (NEVER_QUICK, False))

    def refuse(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr("stylecascade.renderer.load_network", refuse)
    studio = Studio(StudioFolder(tmp_path, tmp_path / "studio"), "cpu")
    yield studio_client(studio)
    studio.worker.close()


def _try(client, **settings):
    body = {"photo": "tubingen.png", "paintings": ["starry_night.png"], "preset": "tiny"}
    return client.post("/api/tries", json={**body, **settings})


def _jobs(client) -> list[dict]:
    return client.get("/api/state").json()["jobs"]


def _started(client, answer) -> dict:
    """The summary of the job ``answer`` queued, once ended: it got past every gate to the
    weights."""
    assert answer.status_code == 200, answer.json()
    summary = wait_for(client, answer.json()["id"])
    assert "the weights were loaded" in summary["message"], summary
    assert summary["estimate"].startswith("at most "), summary
    return summary


def test_a_long_try_is_asked_about_and_starts_when_confirmed(client):
    refused = _try(client, size=96)
    assert refused.status_code == 409, refused.json()
    answer = refused.json()
    assert answer["error"].startswith("this render would take up to ")
    assert 'pass "yes": true to start it' in answer["error"] and "--" not in answer["error"]
    confirm = answer["confirm"]
    assert confirm["seconds"] > 1800 and confirm["estimate"] in answer["error"]
    assert confirm["h100"] and confirm["limit"] == "30 min" and confirm["suggestion"] is None
    assert _jobs(client) == []  # nothing queued
    _started(client, _try(client, size=96, yes=True))
    _started(client, _try(client, size=None))  # the preset's own size (64 px): never asked


def test_a_long_print_is_asked_about_even_when_its_try_was_confirmed(client):
    tried = _started(client, _try(client, size=96, yes=True))["id"]
    order = {"print_size": "1x0.75in", "dpi": 128}  # 128 px, over the preset's 64
    refused = client.post(f"/api/jobs/{tried}/print", json=order)
    assert refused.status_code == 409 and "would take up to" in refused.json()["error"]
    assert not [j for j in _jobs(client) if j["kind"] == "print"]
    _started(client, client.post(f"/api/jobs/{tried}/print", json={**order, "dpi": 64}))
    _started(client, client.post(f"/api/jobs/{tried}/print", json={**order, "yes": True}))
