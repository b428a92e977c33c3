"""Helpers of the studio's tests: a studio server in a thread, a tiny saved preset, and waiting
for a job to end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
from conftest import TINY_PRESET
from stylecascade.studio.app import Studio
from stylecascade.studio.folder import StudioFolder
from stylecascade.studio.server import listening_socket, server

ENDED = ("done", "stopped", "failed", "cancelled")


def private_home(folder: Path, monkeypatch: Any) -> Path:
    """``folder/home`` as STYLECASCADE_HOME (saved presets go there), its weights the real
    cached ones."""
    from stylecascade.paths import home as real_home

    private = folder / "home"
    private.mkdir()
    (private / "weights").symlink_to(real_home() / "weights", target_is_directory=True)
    monkeypatch.setenv("STYLECASCADE_HOME", str(private))
    return private


def save_tiny_preset(home: Path) -> str:
    """Save the tests' two-stage tiny preset (32 → 64 px) as the user preset ``tiny``."""
    folder = home / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(TINY_PRESET, encoding="utf-8")
    return "tiny"


@contextmanager
def closing_studio(folder: Path) -> Iterator[Studio]:
    """A studio on ``folder`` (writing into ``folder/studio``, on the CPU); its worker closed
    at the end."""
    made = Studio(StudioFolder(folder, folder / "studio"), "cpu")
    try:
        yield made
    finally:
        made.worker.close()


@contextmanager
def running_studio(folder: Path) -> Iterator[tuple[str, Studio]]:
    """A studio on ``folder`` (writing into ``folder/studio``), served on a free loopback
    port from a thread; yields its base URL and the studio."""
    studio = Studio(StudioFolder(folder, folder / "studio"), "cpu")
    sock = listening_socket("127.0.0.1", 0)
    running = server(studio)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", studio
    finally:
        studio.worker.close()
        running.should_exit = True
        thread.join(10)


def studio_client(studio: Studio, host: str = "127.0.0.1", signed: bool = True, **more: Any):
    """FastAPI's test client of ``studio`` served as if bound to ``host``, at
    ``http://127.0.0.1`` (``base_url`` in ``more``); ``signed``: it has visited the page's
    address with the launch's token (its cookie kept). Server errors come back as answers."""
    from fastapi.testclient import TestClient
    from stylecascade.studio.app import create_app

    client = TestClient(
        create_app(studio, host), raise_server_exceptions=False,
        **{"base_url": "http://127.0.0.1", **more},
    )  # fmt: skip
    token = getattr(studio, "token", None)
    if signed and token:
        assert client.get("/", params={"token": token}).status_code == 200
    return client


def served_client(url: str, studio: Studio) -> httpx2.Client:
    """An HTTP client of a studio on a port (:func:`running_studio`), sending its token."""
    token = getattr(studio, "token", None)
    return httpx2.Client(base_url=url, headers={"X-Studio-Token": token} if token else {})


def wait_for(client: httpx2.Client | Any, job: int, states=ENDED, seconds: float = 120) -> dict:
    """Poll ``/api/state`` until job ``job`` is in one of ``states``; its summary."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        jobs = {j["id"]: j for j in client.get("/api/state").json()["jobs"]}
        if jobs.get(job, {}).get("state") in states:
            return jobs[job]
        time.sleep(0.1)
    raise AssertionError(f"job {job} not in {states} after {seconds} s: {jobs.get(job)}")
