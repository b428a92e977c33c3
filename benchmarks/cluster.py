"""Throughput of a batch on Ray (``--cluster local``) against a local batch on this machine,
and what Ray costs: start-up, a bare actor call, and the overhead per photo.

Both batches render the same photos (the example photos, rotated and resized in turn) with the
``draft`` preset at ``--size`` px, seed 0, writing outputs and manifests as the command line
does. The local batch uses every core in one process (torch's threads); the cluster batch one
actor per ``--threads-per-actor`` cores (on a GPU: one actor per GPU). Measured:

- photos per minute of each batch, from the start of the batch (network loading included;
  for the cluster, the actors' start too, but not Ray's own start-up);
- Ray's start-up: ``ray.init`` of a local instance and its shutdown, median of 3;
- a bare actor call's round trip (``ray.get`` of a method returning a small value), median of
  200;
- the overhead per photo: per photo, its wall time on the driver minus its stages' time (from
  its manifest), median over the photos, cluster minus local (the bytes, the calls per stage,
  the results' transfer).

    python benchmarks/cluster.py [--photos N] [--size PX] [--threads-per-actor N]
                                 [--device cpu|cuda] [--out PATH]

``--tiled PX`` measures one print's tiled stage instead (issue 35, ``benchmarks/tiled_cluster.py``,
as ``render PHOTO --cluster`` runs it): (a) a stage of ``PX`` px long edge in ``--tile`` px tiles,
``--warmup`` + ``--evaluations`` Adam evaluations each way — locally with 1 thread, on
``--cluster local`` with 2 tile actors × 1 thread, locally with 2 threads — seconds per
evaluation, speed-up, parallel efficiency and the image against the 1-thread one; (b) where an
evaluation's time goes (compute, transfer, reduction, driver) at ``--transfer`` px on this
machine's loopback (``--transfer-evaluations``; 0 px skips it); (c) a time model for N machines
at 1 and 10 GbE from (b)'s terms (``--compute-scale``: machines that compute that many times
faster, e.g. GPUs), and where it stops paying. A table each, and one JSON::

    python benchmarks/cluster.py --tiled 2048 --tile 512 --evaluations 2 --transfer 4096
    python benchmarks/cluster.py --tiled 256 --tile 128 --width 0.0625 --evaluations 1 \
        --transfer 384 --out /tmp/check.json                                  # a check
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import ray
import torch
from common import final_stage_weights, report
from PIL import Image
from stylecascade.batch import batch_jobs, run_batch
from stylecascade.choices import DEFAULT_NAME
from stylecascade.cluster import connect
from stylecascade.cluster_batch import run_cluster_batch
from stylecascade.device import select_device, set_threads
from stylecascade.job import RenderJob
from stylecascade.preset_files import load_preset
from stylecascade.records import Outcome
from stylecascade.renderer import Renderer
from tiled_cluster import tiled_benchmark

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ["tubingen.jpg", "the_scream.jpg"]
STYLE = ROOT / "examples" / "starry_night.jpg"


def make_photos(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` photos of ``size`` px long edge: the examples, rotated in turn."""
    paths = []
    for i in range(count):
        with Image.open(ROOT / "examples" / PHOTOS[i % len(PHOTOS)]) as img:
            img.thumbnail((size, size))
            path = folder / f"photo{i:03d}.png"
            img.rotate(90 * (i // len(PHOTOS) % 4), expand=True).save(path)
        paths.append(path)
    return paths


def stage_totals(outcomes: list[Outcome]) -> list[tuple[float, int]]:
    """Per rendered photo: its stages' seconds and evaluations (from its manifest)."""
    found = []
    for outcome in outcomes:
        stages = json.loads(outcome.output.with_suffix(".json").read_text())["stages"]
        found.append((sum(s["seconds"] for s in stages), sum(s["iterations"] for s in stages)))
    return found


def summary(outcomes: list[Outcome], seconds: float) -> dict[str, float]:
    """A batch's photos per minute, median seconds per photo, median overhead per photo (its
    wall time minus its stages' time) and milliseconds per evaluation (all stages' time over all
    evaluations: the compute speed, whatever the convergence)."""
    totals = stage_totals(outcomes)
    return {
        "seconds": seconds,
        "photos_per_minute": 60 * len(outcomes) / seconds,
        "median_photo_seconds": statistics.median(o.seconds for o in outcomes),
        "median_overhead_seconds": statistics.median(
            o.seconds - t for o, (t, _) in zip(outcomes, totals, strict=True)
        ),
        "ms_per_evaluation": 1e3 * sum(t for t, _ in totals) / sum(n for _, n in totals),
        "evaluations": sum(n for _, n in totals),
    }


class _Started:
    """A quiet cluster observer that keeps the actors' start-up time."""

    seconds = 0.0

    def __getattr__(self, _name: str):
        return lambda *args: None

    def actors_started(self, actors, seconds: float) -> None:
        self.seconds, self.actors = seconds, actors


def batch(photos: list[Path], out: Path, device: torch.device, size: int):
    """The jobs and renderer of the benchmark's batch into ``out``."""
    look = load_preset("draft").resolved(styles=[STYLE], size=size)
    out.mkdir()
    jobs = batch_jobs(photos, RenderJob(content=photos[0], output=out), out, DEFAULT_NAME, look)
    return jobs, Renderer(look, device=device)


def ray_start_seconds(repeat: int = 3) -> float:
    """Median seconds of starting a local Ray instance and shutting it down."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        with connect("local"):
            pass
        times.append(time.perf_counter() - began)
    return statistics.median(times)


@ray.remote(num_cpus=0)
class _Echo:
    def ping(self) -> int:
        return 0


def call_seconds(repeat: int = 200) -> float:
    """Median round trip of a bare actor call (the Ray instance is running)."""
    echo = _Echo.remote()
    ray.get(echo.ping.remote())
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        ray.get(echo.ping.remote())
        times.append(time.perf_counter() - began)
    ray.kill(echo)
    return statistics.median(times)


def arguments() -> argparse.Namespace:
    """The command line (module description)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=6, help="photos per batch")
    parser.add_argument("--size", type=int, default=128, help="final long edge in px")
    parser.add_argument("--threads-per-actor", type=int, default=1, help="CPU actors' threads")
    parser.add_argument("--device", default="auto", help="auto | cuda | cpu")
    parser.add_argument("--out", type=Path, default=None, help="JSON result path")
    tiled = parser.add_argument_group("one print's tiled stage (--tiled)")
    tiled.add_argument("--tiled", type=int, default=0, help="(a): a tiled stage of PX instead")
    tiled.add_argument("--tile", type=int, default=512, help="tile edge, px")
    tiled.add_argument("--overlap", type=int, default=64, help="tile overlap, px")
    tiled.add_argument("--width", type=float, default=1.0, help="share of VGG19's channels")
    tiled.add_argument("--evaluations", type=int, default=2, help="(a): timed, each way")
    tiled.add_argument("--warmup", type=int, default=0, help="untimed, before each timing")
    tiled.add_argument("--transfer", type=int, default=4096, help="(b): size in px, 0: none")
    tiled.add_argument("--transfer-evaluations", type=int, default=1, help="(b): timed")
    tiled.add_argument("--compute-scale", type=float, default=1.0, help="(c): faster machines")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.tiled:
        tiled_benchmark(args, final_stage_weights())
    else:
        batch_benchmark(args)


def batch_runs(args: argparse.Namespace, device: torch.device) -> dict:
    """The local batch and the cluster batch of the same photos, and Ray's costs."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        photos = make_photos(root / "photos", args.photos, args.size)
        jobs, renderer = batch(photos, root / "local", device, args.size)
        began = time.perf_counter()
        local = run_batch(jobs, renderer, None)
        local_seconds = time.perf_counter() - began
        start = ray_start_seconds()
        with connect("local") as cluster:
            call = call_seconds()
            jobs, renderer = batch(photos, root / "cluster", cluster.device(args.device), args.size)
            observer = _Started()
            began = time.perf_counter()
            remote = run_cluster_batch(
                jobs, renderer, cluster, observer, cpus_per_actor=args.threads_per_actor
            )
            cluster_seconds = time.perf_counter() - began
        assert all(o.status == "done" for o in local + remote)
        mine, theirs = summary(local, local_seconds), summary(remote, cluster_seconds)
    return {"photos": len(photos), "mine": mine, "theirs": theirs, "start": start,
            "call": call, "observer": observer}  # fmt: skip


def batch_benchmark(args: argparse.Namespace) -> None:
    """Local batch against ``--cluster local`` (module description)."""
    device = select_device(args.device)
    cores = set_threads(None)
    found = batch_runs(args, device)
    mine, theirs, observer = found["mine"], found["theirs"], found["observer"]
    start, call = found["start"], found["call"]
    actors = observer.actors
    overhead = theirs["median_overhead_seconds"] - mine["median_overhead_seconds"]
    setup = f"{len(actors)} actors × {actors[0].threads} thread(s)"
    rows = [
        [name, workers, f"{r['seconds']:.1f}", f"{r['median_photo_seconds']:.1f}",
         f"{r['ms_per_evaluation']:.0f}", f"{r['photos_per_minute']:.2f}"]
        for name, workers, r in (
            ("local batch", f"1 process × {cores} threads", mine),
            ("--cluster local", setup, theirs),
        )
    ]  # fmt: skip
    report(
        "cluster",
        ["batch", "workers", "batch s", "s/photo", "ms/eval", "photos/min"],
        rows,
        {
            "photos": found["photos"], "size": args.size, "preset": "draft",
            "local": {"threads": cores, **mine},
            "cluster": {"actors": len(actors), "threads_per_actor": actors[0].threads,
                        "device": actors[0].device, "actors_start_seconds": observer.seconds,
                        **theirs},
            "ray_start_seconds": start,
            "actor_call_seconds": call,
            "ray_overhead_per_photo_seconds": overhead,
        },
        args.out,
        device,
    )  # fmt: skip
    print(
        f"Ray start-up {start:.2f} s (median of 3), actors' start {observer.seconds:.2f} s, "
        f"bare actor call {call * 1e3:.2f} ms, overhead per photo {overhead:+.3f} s "
        f"(median per photo, wall minus stages: cluster "
        f"{theirs['median_overhead_seconds']:.3f} s, local {mine['median_overhead_seconds']:.3f} s)"
    )


if __name__ == "__main__":
    main()
