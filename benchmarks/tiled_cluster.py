"""One print's tiled stage on Ray actors against the local tiled evaluation
(``benchmarks/cluster.py --tiled PX``; issue 35): seconds per evaluation, where the cluster's
time goes, and a time model for N machines.

Time model (per evaluation, from the measured terms): ``T(N) = C·⌈n/N⌉/n + B/b + R + D``
with ``C`` the actors' compute summed over the ``n`` tiles (the serial compute at one thread
per actor), ``B`` the bytes through the driver's link (crops and slopes out, representations
and gradients in), ``b`` the link's bandwidth (1 GbE: 0.125 GB/s, 10 GbE: 1.25 GB/s), ``R``
the reduction and ``D`` the driver's own work. It stops paying at the first ``N`` where one
more machine saves less than 5 %.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch
from common import report
from stylecascade.cluster import connect
from stylecascade.device import set_threads
from stylecascade.preset import TilingConfig
from stylecascade.preset_files import load_preset
from stylecascade.stages.blend import painting_regions
from stylecascade.stages.cascade import Stage
from stylecascade.stages.losses import Objective
from stylecascade.stages.terms import TermContext, build_objective, weighted_terms
from stylecascade.stages.tiling import TiledEvaluator
from stylecascade.stages.vgg import CAFFE, VGGFeatures, build_vgg19_features
from stylecascade.tile_cluster import TiledCluster, start_tile_actors

LINKS = {"1 GbE": 0.125e9, "10 GbE": 1.25e9}
"""Link bandwidths in bytes/s."""
MACHINES = (1, 2, 4, 8, 16, 32)


def tiled_problem(size: int, width: float, weights: dict[str, float]) -> tuple[Objective, Any]:
    """A tiled stage's objective on a random VGG19 (``width`` of its channels) with random
    content and painting, and a ``(1, 3, 3·size/4, size)`` starting image in 0–1."""
    torch.manual_seed(0)
    model = load_preset("standard").model
    extractor = VGGFeatures(build_vgg19_features(width=width), model.layers, model.pooling, CAFFE)
    content = torch.rand(1, 3, size * 3 // 4, size)
    style = torch.rand(1, 3, 512 * 5 // 8, 512)
    regions = painting_regions(extractor, style, model.style_layers)
    context = TermContext(extractor, content, model.content_layers, regions, tiled=True)
    objective = build_objective(weighted_terms(**weights), context)
    return objective, torch.rand(content.shape, generator=torch.Generator().manual_seed(1))


def timed(make, start: torch.Tensor, evaluations: int) -> tuple[float, torch.Tensor, Any]:
    """Seconds per evaluation (after one warm-up) of ``make(image)``'s evaluator, the last
    gradient and the evaluator."""
    image = start.clone().requires_grad_(True)
    evaluator = make(image)
    evaluator.evaluate()
    began = time.perf_counter()
    for _ in range(evaluations):
        image.grad = None
        evaluator.evaluate()
    return (time.perf_counter() - began) / evaluations, image.grad.clone(), evaluator


def local_run(objective: Objective, start, args: argparse.Namespace, threads: int):
    """The local tiled evaluation with ``threads`` torch threads."""
    set_threads(threads)
    return timed(
        lambda image: TiledEvaluator(
            objective, image, args.tile, args.overlap, torch.Generator().manual_seed(0)
        ),
        start,
        args.evaluations,
    )


def cluster_run(objective: Objective, start, args: argparse.Namespace):
    """The same evaluations on 2 tile actors × 1 thread; also their per-evaluation times."""
    h, w = start.shape[-2:]
    stage = Stage((h, w), 1, 512, optimizer="adam", tile_edge=args.tile, tile_overlap=args.overlap)
    with connect("local"):
        workers = start_tile_actors(objective.extractor, 2, device=torch.device("cpu"), threads=1)
        cluster = TiledCluster(workers, TilingConfig(args.tile, args.overlap))
        try:
            seconds, grad, evaluator = timed(
                lambda image: cluster.evaluator(
                    objective, stage, image, torch.Generator().manual_seed(0)
                ),
                start,
                args.evaluations,
            )
        finally:
            cluster.close()
    records = evaluator.runner.records[1:]  # without the warm-up
    means = {k: sum(r.as_dict()[k] for r in records) / len(records) for k in records[0].as_dict()}
    return seconds, grad, means


def model(times: dict[str, float], machines: int, bandwidth: float) -> float:
    """Seconds per evaluation on ``machines`` one-actor machines over a link of ``bandwidth``
    bytes/s (module description)."""
    tiles = max(1, round(times["tiles"]))
    compute = times["compute"] * math.ceil(tiles / machines) / tiles
    moved = (times["bytes_out"] + times["bytes_in"]) / bandwidth
    return compute + moved + times["reduction"] + times["driver"]


def pays_until(times: dict[str, float], bandwidth: float) -> int:
    """The first N where one more machine saves less than 5 % (:func:`model`)."""
    n = 1
    while n < 1024 and model(times, n + 1, bandwidth) < 0.95 * model(times, n, bandwidth):
        n += 1
    return n


def tiled_benchmark(args: argparse.Namespace, weights: dict[str, float]) -> Path:
    """Run the three ways and report (module description)."""
    objective, start = tiled_problem(args.tiled, args.width, weights)
    one, grad_one, _ = local_run(objective, start, args, 1)
    two, _, _ = local_run(objective, start, args, 2)
    remote, grad, times = cluster_run(objective, start, args)
    difference = ((grad - grad_one).abs().max() / grad_one.abs().max()).item()
    rows = [
        ["local, 1 thread", f"{one:.3f}", "1.00"],
        ["local, 2 threads", f"{two:.3f}", f"{one / two:.2f}"],
        ["--cluster local, 2 actors × 1 thread", f"{remote:.3f}", f"{one / remote:.2f}"],
    ]
    parts = ["compute", "transfer", "reduction", "driver", "waiting", "put", "get", "fetch"]
    breakdown = {k: times[k] for k in parts}
    forecast = {
        link: {n: model(times, n, b) for n in MACHINES} | {"pays_until": pays_until(times, b)}
        for link, b in LINKS.items()
    }
    result = {
        "size": [start.shape[-1], start.shape[-2]], "tile": args.tile, "overlap": args.overlap,
        "width": args.width, "evaluations": args.evaluations,
        "seconds_per_evaluation": {"local_1_thread": one, "local_2_threads": two,
                                   "cluster_2x1": remote},
        "speedup_vs_local_1_thread": one / remote, "speedup_local_2_threads": one / two,
        "gradient_max_relative_difference": difference,
        "cluster_per_evaluation": times, "transfer_over_compute": times["transfer"]
        / max(times["compute"], 1e-12), "model_seconds": forecast,
    }  # fmt: skip
    path = report("cluster-tiled", ["evaluation", "s/eval", "speed-up"], rows, result, args.out,
                  torch.device("cpu"))  # fmt: skip
    print("cluster per evaluation (s): " + ", ".join(f"{k} {v:.4f}" for k, v in breakdown.items()))
    print(f"tiles {times['tiles']:.0f}, bytes out {times['bytes_out'] / 2**20:.2f} MiB, "
          f"in {times['bytes_in'] / 2**20:.2f} MiB; gradient vs local: {difference:.2e} (max rel)")
    for link, row in forecast.items():
        cells = ", ".join(f"N={n}: {row[n]:.3f} s" for n in MACHINES)
        print(f"model {link}: {cells}; stops paying after N={row['pays_until']}")
    return path
