"""Soak (issue 25): a batch of many small photos with faults injected, run as a user would,
until every photo is rendered, skipped or reported; no file outside the outputs may change.

Faults, in order: unreadable photos (garbage bytes, an empty file) among the good ones;
Ctrl-C (SIGINT) midway; a killed render (SIGKILL) midway; a full disk midway (the outputs on
a small tmpfs, needs root; skipped otherwise); then ``--resume`` until the batch ends. After
each run the photos, paintings and preset are checked against their SHA-256 from before.

    python benchmarks/soak.py [--photos 200] [--out PATH]

Writes ``benchmarks/results/soak-cpu.json`` with the counts of every run.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/soak-cpu.json")
    args = parser.parse_args()
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
