"""Soak (issue 25): a batch of many small photos with faults injected, run as a user would,
until every photo is rendered, skipped or reported; no file outside the outputs may change.

Faults, in order: unreadable photos (garbage bytes, an empty file) among the good ones;
Ctrl-C (SIGINT) midway; a killed render (SIGKILL) midway; a full disk midway (the outputs on
a small tmpfs, needs root; skipped otherwise); then ``--resume`` until the batch ends. After
each run the photos, paintings and preset are checked against their SHA-256 from before.

    python benchmarks/soak.py [--photos 200] [--out PATH]
    python benchmarks/soak.py --studio [--rounds 30] [--seconds 60]

Writes ``benchmarks/results/soak-cpu.json`` with the counts of every run.

``--studio`` (issue 36) soaks the studio instead: ``stylecascade studio`` on 127.0.0.1 (a free
port), then a loop bounded in rounds and seconds of uploads, tries (the tiny preset at 32 → 48
px), stops, prints and hostile requests (no token, another origin, a body over the bound, a
queue over its bound, odd names); the server's memory (RSS) before and after, the job and event
counts against their bounds. Writes ``benchmarks/results/soak-studio.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PRESET = """
model:
  pooling: avg
  content_layers: {relu4_2: 1}
  style_layers: {relu1_1: 1, relu2_1: 1, relu3_1: 1, relu4_1: 1, relu5_1: 1}
defaults: {optimizer: lbfgs, lr: 1.0, style_weight: 20.0, tv_weight: 10.0}
stages:
  - {size: 32, iterations: 6}
  - {size: 48, iterations: 4}
"""
BROKEN = {"garbage.png": b"not an image at all", "empty.jpg": b""}


def _photos(folder: Path, count: int) -> None:
    """``count`` small crops of the bundled photo (64–96 px), plus :data:`BROKEN` files."""
    folder.mkdir()
    with Image.open(ROOT / "examples" / "tubingen.jpg") as source:
        photo = source.convert("RGB")
    for i in range(count - len(BROKEN)):
        x, y, edge = (i * 37) % 600, (i * 53) % 400, 64 + (i % 4) * 8
        photo.crop((x, y, x + 4 * edge, y + 3 * edge)).resize((edge, edge * 3 // 4)).save(
            folder / f"p{i:03d}.png"
        )
    for name, data in BROKEN.items():
        (folder / name).write_bytes(data)


def _digests(paths: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _run(args: list[str], stop: tuple[int, float] | None = None) -> tuple[int, str]:
    """The CLI in its own process; ``stop``: ``(signal, seconds)`` sent after that long."""
    command = [sys.executable, "-m", "stylecascade", "render", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if stop is not None:
        time.sleep(stop[1])
        process.send_signal(stop[0])
    output, _ = process.communicate()
    return process.returncode, output


def _tally(out: Path, photos: Path) -> dict[str, int]:
    """Outputs written (each with its manifest) and leftovers (checkpoints, temporaries)."""
    names = [p.name for p in out.iterdir()] if out.exists() else []
    return {
        "images": sum(n.endswith(".png") for n in names),
        "manifests": sum(n.endswith(".json") for n in names),
        "checkpoints": sum(n.endswith(".checkpoint") for n in names),
        "temporaries": sum(n.endswith(".tmp") for n in names),
        "photos": len(list(photos.iterdir())),
    }


def _full_disk(tmp: Path, args: list[str]) -> dict | None:
    """A batch into a 256 KiB tmpfs: fills up midway (``None`` without root)."""
    disk = tmp / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        return None
    try:
        code, output = _run([*args, "--out-dir", str(disk)])
        return {"exit": code, "failed lines": output.count("failed"), **_tally(disk, disk)}
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def soak(count: int) -> dict:
    """Run the soak in a temporary folder; returns every run's exit code and counts."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        photos, out = tmp / "photos", tmp / "out"
        _photos(photos, count)
        (tmp / "soak.yaml").write_text(PRESET)
        painting = ROOT / "examples" / "starry_night.jpg"
        watched = [*photos.iterdir(), painting, tmp / "soak.yaml"]
        before = _digests(watched)
        args = [str(photos), "-s", str(painting), "-p", str(tmp / "soak.yaml"), "--threads", "2"]
        runs = {}
        runs["full disk"] = _full_disk(tmp, args)
        batch = [*args, "--out-dir", str(out)]
        for label, stop in (("ctrl-c", (signal.SIGINT, 8)), ("killed", (signal.SIGKILL, 8))):
            code, output = _run([*batch, "--resume"] if out.exists() else batch, stop)
            runs[label] = {"exit": code, **_tally(out, photos)}
        for attempt in range(3):  # resume until the batch ends
            code, output = _run([*batch, "--resume"])
            runs[f"resume {attempt + 1}"] = {"exit": code, **_tally(out, photos)}
            if code != 130:
                break
        reported = [line for line in output.splitlines() if "failed" in line]
        changed = [p for p, d in _digests(watched).items() if before[p] != d]
        return {"photos": count, "runs": runs, "reported": reported, "inputs changed": changed}


def _rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _studio_home(tmp: Path) -> dict[str, str]:
    """A private STYLECASCADE_HOME with the soak's preset saved as ``soak`` and the real
    cached weights; the environment that uses it."""
    from stylecascade.paths import home

    private = tmp / "home"
    (private / "presets").mkdir(parents=True)
    (private / "presets" / "soak.yaml").write_text(PRESET)
    (private / "weights").symlink_to(home() / "weights", target_is_directory=True)
    return {**os.environ, "STYLECASCADE_HOME": str(private)}


def _start_studio(tmp: Path) -> tuple[subprocess.Popen, str]:
    """``stylecascade studio`` on a free loopback port; the process and its printed address."""
    folder = tmp / "inputs"
    _photos(folder, 6)
    for name in BROKEN:
        (folder / name).unlink()
    (folder / "painting.png").write_bytes((ROOT / "examples" / "starry_night.jpg").read_bytes())
    command = [sys.executable, "-m", "stylecascade", "studio", str(folder), "--port", "0",
               "--host", "127.0.0.1", "--device", "cpu"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=_studio_home(tmp))
    line = process.stdout.readline()
    return process, line.split()[1]


def _declared_gib(base: str, token: str) -> int:
    """An upload that declares 1 GiB and sends 64 KiB: the status it is answered with."""
    import socket

    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        head = (f"PUT /api/uploads/big.png HTTP/1.1\r\nHost: {host}\r\nX-Studio-Token: {token}"
                f"\r\nContent-Length: {1 << 30}\r\n\r\n")  # fmt: skip
        raw.sendall(head.encode() + b"x" * (64 << 10))
        return int(raw.recv(100).split()[1])


def _hostile(client, base: str, png: bytes) -> dict[str, int]:
    """One round of requests the studio must refuse; their status codes."""
    import httpx2

    stranger = httpx2.get(base + "/api/state")
    forged = client.post("/api/jobs/1/stop", headers={"Origin": "http://evil.example"})
    over = _declared_gib(base, client.headers["X-Studio-Token"])
    odd = client.put("/api/uploads/" + "\U0001f600" * 70 + ".png", content=png)
    event = client.get("/api/events", headers={"Last-Event-ID": "abc"})
    return {"no token": stranger.status_code, "other origin": forged.status_code,
            "over the bound": over, "70 emoji": odd.status_code,
            "Last-Event-ID abc": event.status_code}  # fmt: skip


def _studio_round(client, n: int, png: bytes) -> dict[str, int]:
    """Upload, try, stop every other try, print every fifth; the status codes."""
    codes = {"upload": client.put(f"/api/uploads/u{n}.png", content=png).status_code}
    body = {"photo": "p000.png", "paintings": ["painting.png"], "preset": "soak", "size": None}
    answer = client.post("/api/tries", json=body)
    codes["try"] = answer.status_code
    if answer.status_code == 200 and n % 2:
        codes["stop"] = client.post(f"/api/jobs/{answer.json()['id']}/stop").status_code
    if answer.status_code == 200 and n % 5 == 0:
        order = {"print_size": "1x0.75in", "dpi": 64}
        printed = client.post(f"/api/jobs/{answer.json()['id']}/print", json=order)
        codes["print"] = printed.status_code
        if printed.status_code != 200:
            print("print refused:", printed.json()["error"], file=sys.stderr)
    return codes


def _warm_up(client) -> None:
    """One try to its end (torch imported, the weights loaded)."""
    body = {"photo": "p000.png", "paintings": ["painting.png"], "preset": "soak", "size": None}
    job = client.post("/api/tries", json=body).json()["id"]
    while client.get("/api/state").json()["jobs"][-1]["state"] in ("queued", "running"):
        time.sleep(0.2)
    assert job


def _settle(client) -> None:
    """Stop every job and wait until none runs (the memory is then measured at rest)."""
    for job in client.get("/api/state").json()["jobs"]:
        client.post(f"/api/jobs/{job['id']}/stop")
    while any(j["state"] in ("queued", "running") for j in client.get("/api/state").json()["jobs"]):
        time.sleep(0.2)


def _replay_bytes(client) -> int:
    """The bytes a new event stream (``since=0``) replays: read until it waits for news."""
    import httpx2

    size = 0
    try:
        with client.stream("GET", "/api/events", params={"since": 0}, timeout=2) as stream:
            for chunk in stream.iter_raw():
                size += len(chunk)
    except httpx2.ReadTimeout:
        pass
    return size


def studio_soak(rounds: int, seconds: float) -> dict:
    """The studio's soak: at most ``rounds`` rounds and ``seconds`` seconds on 127.0.0.1."""
    import io

    import httpx2

    buffer = io.BytesIO()
    Image.new("RGB", (48, 36), "red").save(buffer, "PNG")
    png = buffer.getvalue()
    with tempfile.TemporaryDirectory() as name:
        process, url = _start_studio(Path(name))
        base, token = url.split("/?token=")
        try:
            signed = {"X-Studio-Token": token}
            with httpx2.Client(base_url=base, headers=signed, timeout=30) as client:
                started = _rss_mib(process.pid)
                _warm_up(client)  # torch and the weights loaded: the baseline
                before, began, done, codes = _rss_mib(process.pid), time.monotonic(), 0, {}
                while done < rounds and time.monotonic() - began < seconds:
                    answers = {**_studio_round(client, done, png), **_hostile(client, base, png)}
                    for key, code in answers.items():
                        codes.setdefault(f"{key} {code}", 0)
                        codes[f"{key} {code}"] += 1
                    done += 1
                _settle(client)
                state = client.get("/api/state").json()
                replay = _replay_bytes(client)
                after = _rss_mib(process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)
    return {"rounds": done, "seconds": round(time.monotonic() - began, 1),
            "rss MiB at start": started, "rss MiB after a first try": before,
            "rss MiB after, jobs stopped": after, "jobs kept": len(state["jobs"]),
            "events posted": state["events"],
            "new stream replays bytes": replay,
            "answers": dict(sorted(codes.items())), "exit": process.returncode}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--studio", action="store_true", help="soak the studio instead")
    parser.add_argument("--rounds", type=int, default=30, help="studio rounds at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="studio seconds at most")
    args = parser.parse_args()
    if args.studio:
        result = studio_soak(args.rounds, args.seconds)
        out = args.out or ROOT / "benchmarks/results/soak-studio.json"
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    args.out = args.out or ROOT / "benchmarks/results/soak-cpu.json"
    began = time.perf_counter()
    result = {**soak(args.photos), "seconds": round(time.perf_counter() - began, 1)}
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    good = args.photos - len(BROKEN)
    final = list(result["runs"].values())[-1]
    ok = final["images"] == good and not result["inputs changed"] and not final["checkpoints"]
    counts = f"{final['images']}/{good} rendered, {len(result['reported'])} reported"
    print(f"{'PASS' if ok else 'FAIL'}: {counts}, {len(result['inputs changed'])} inputs changed")
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
