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


def wait_for(client: httpx2.Client | Any, job: int, states=ENDED, seconds: float = 120) -> dict:
    """Poll ``/api/state`` until job ``job`` is in one of ``states``; its summary."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        jobs = {j["id"]: j for j in client.get("/api/state").json()["jobs"]}
        if jobs.get(job, {}).get("state") in states:
            return jobs[job]
        time.sleep(0.1)
    raise AssertionError(f"job {job} not in {states} after {seconds} s: {jobs.get(job)}")
