"""One print's tiled stage on Ray tile actors against the local tiled render
(``benchmarks/cluster.py --tiled PX``; issue 35), through the cascade's own evaluator
(``stages.cascade.evaluator`` with the cluster's runner, as ``render PHOTO --cluster`` runs it):

(a) a tiled stage of ``--tiled`` px (long edge, 4:3) in ``--tile`` px tiles: ``--warmup`` then
    ``--evaluations`` Adam evaluations each way — locally with 1 thread, on ``--cluster local``
    with 2 tile actors × 1 thread, locally with 2 threads — seconds per evaluation, the speed-up
    and parallel efficiency over the local 1-thread render, and the image after them against
    the local 1-thread one (max difference in 1/255);
(b) at ``--transfer`` px on the same actors (``--transfer-evaluations``): where an evaluation's
    time goes — the actors' compute (summed), transfer (the driver's puts and gets, the actors'
    fetches), the reduction and the driver's own work — on this machine's loopback;
(c) a time model from (b)'s terms (else (a)'s), module :func:`model`, for N machines at 1 and
    10 GbE, and the N at which one more machine stops paying.

The network is VGG19 with random weights (``--width`` of its channels; the cost does not depend
on the values), the ``standard`` preset's final-stage weights with a Gram style term, random
content and painting, the CPU's own precision (``auto``), one stage lr 0.02 as a tiled stage.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch
from common import report
from rich.console import Console
from rich.table import Table
from stylecascade.cluster import connect
from stylecascade.device import precision, set_threads
from stylecascade.preset import TilingConfig
from stylecascade.preset_files import load_preset
from stylecascade.stages.blend import painting_regions
from stylecascade.stages.cascade import Stage, evaluator
from stylecascade.stages.losses import Objective
from stylecascade.stages.optim import optimize
from stylecascade.stages.terms import TermContext, build_objective, weighted_terms
from stylecascade.stages.vgg import CAFFE, VGGFeatures, build_vgg19_features
from stylecascade.tile_cluster import TiledCluster, start_tile_actors
from stylecascade.tile_dispatch import summary

LINKS = {"1 GbE": 0.125e9, "10 GbE": 1.25e9}
"""Link bandwidths in bytes/s."""
MACHINES = (1, 2, 4, 8, 16, 32, 64)
WORKERS = 2
"""Actors (and threads) compared with one thread on this 2-core machine."""
LR = 0.02


def tiled_problem(
    extractor: VGGFeatures, size: int, weights: dict[str, float]
) -> tuple[Objective, torch.Tensor]:
    """A tiled stage's objective with random content and painting, and a
    ``(1, 3, 3·size/4, size)`` starting image in 0–1."""
    torch.manual_seed(0)
    model = load_preset("standard").model
    content = torch.rand(1, 3, size * 3 // 4, size)
    style = torch.rand(1, 3, 512 * 5 // 8, 512)
    regions = painting_regions(extractor, style, model.style_layers)
    context = TermContext(extractor, content, model.content_layers, regions, tiled=True)
    objective = build_objective(weighted_terms(**weights), context)
    return objective, torch.rand(content.shape, generator=torch.Generator().manual_seed(1))


def network(width: float) -> VGGFeatures:
    """The ``standard`` preset's VGG19 layers with seeded random weights."""
    torch.manual_seed(0)
    model = load_preset("standard").model
    return VGGFeatures(build_vgg19_features(width=width), model.layers, model.pooling, CAFFE)


def run(
    objective: Objective, start: torch.Tensor, args: argparse.Namespace, count: int, runner=None
) -> tuple[float, torch.Tensor, Any]:
    """``--warmup`` + ``count`` Adam evaluations of the stage from ``start`` (here, or on
    ``runner``'s actors): seconds per timed evaluation, the image after them, the evaluator."""
    h, w = start.shape[-2:]
    stage = Stage(
        (h, w), count, 512, optimizer="adam", lr=LR, tile_edge=args.tile, tile_overlap=args.overlap
    )
    image = start.clone().requires_grad_(True)
    autocast = precision("auto", torch.device("cpu"))[1]
    generator = torch.Generator().manual_seed(0)
    evaluate = evaluator(objective, stage, image, generator, autocast, None, runner)
    stamps = [time.perf_counter()]
    optimize(
        image,
        "adam",
        LR,
        args.warmup + count,
        evaluate,
        lambda _: stamps.append(time.perf_counter()),
    )
    seconds = (stamps[-1] - stamps[args.warmup]) / count
    return seconds, image.detach().clone(), evaluate


def local_way(
    objective: Objective, start, args: argparse.Namespace, threads: int, primer: tuple
) -> dict:
    """(a) locally with ``threads`` torch threads, after one evaluation of ``primer`` (a
    one-tile problem: the first evaluation's one-time costs are not timed)."""
    set_threads(threads)
    run(*primer, args, 1)
    seconds, image, _ = run(objective, start, args, args.evaluations)
    return {"seconds": seconds, "image": image}


def cluster_ways(extractor: VGGFeatures, problems: dict[str, Any], args) -> dict[str, dict]:
    """(a) and (b) on one pool of :data:`WORKERS` tile actors × 1 thread of a local Ray (the
    driver on 1 thread, as ``--threads 1 --cluster local``): per way its seconds per
    evaluation, image and per-evaluation means (``tile_dispatch.summary``, warm-ups left out).
    A way named ``primer`` runs first and is left out (the actors' one-time costs)."""
    set_threads(1)
    found = {}
    with connect("local"):
        workers = start_tile_actors(
            extractor, WORKERS, device=torch.device("cpu"), threads=1, precision_name="auto"
        )
        cluster = TiledCluster(workers, TilingConfig(args.tile, args.overlap))
        try:
            for way, (objective, start, count) in problems.items():
                h, w = start.shape[-2:]
                stage = Stage((h, w), count, 512, tile_edge=args.tile, tile_overlap=args.overlap)
                runner = cluster.runner(objective, stage)
                seconds, image, _ = run(objective, start, args, count, runner)
                times = summary(runner.records[args.warmup :])
                found[way] = {"seconds": seconds, "image": image, "times": times}
            found.pop("primer", None)
        finally:
            cluster.close()
    return found


def model(times: dict[str, float], machines: int, bandwidth: float, scale: float = 1.0) -> float:
    """Seconds per evaluation of the measured tiled stage on ``machines`` machines of one
    measured actor each, over a link of ``bandwidth`` bytes/s, compute ``scale`` times faster:

    ``T(N) = C/s · ⌈n/N⌉/n + (B + N·S)/b + P + R + D``

    with ``C`` the actors' compute over the ``n`` tiles (summed), ``B`` the bytes each
    evaluation moves through the driver's link once (crops out; representations and crop
    gradients in), ``S`` the slopes every machine fetches, ``P`` the driver's puts and gets
    (serialization), ``R`` the reduction and ``D`` the driver's own work (grid, scoring,
    stitching, TV). Compute and transfer are summed, not overlapped: an upper bound. ``N = 1``
    is one remote actor; a local render is ``C/s + R + D``."""
    tiles = max(1, round(times["tiles"]))
    compute = times["compute"] / scale * math.ceil(tiles / machines) / tiles
    once = times["bytes_out"] - times["bytes_shared"] + times["bytes_in"]
    moved = (once + machines * times["bytes_shared"]) / bandwidth
    return compute + moved + times["put"] + times["get"] + times["reduction"] + times["driver"]


def pays_until(times: dict[str, float], bandwidth: float, scale: float = 1.0) -> int:
    """The first N where one more machine saves less than 5 % (:func:`model`)."""
    n, most = 1, max(1, round(times["tiles"]))
    while n < most and model(times, n + 1, bandwidth, scale) < 0.95 * model(
        times, n, bandwidth, scale
    ):
        n += 1
    return n


def forecast(times: dict[str, float], scale: float) -> dict[str, Any]:
    """:func:`model` for :data:`MACHINES` at each link, with the speed-up over a local render
    (``C/s + R + D``) and :func:`pays_until`."""
    local = times["compute"] / scale + times["reduction"] + times["driver"]
    return {
        link: {
            "seconds": {n: model(times, n, b, scale) for n in MACHINES},
            "speedup": {n: local / model(times, n, b, scale) for n in MACHINES},
            "pays_until": pays_until(times, b, scale),
        }
        for link, b in LINKS.items()
    } | {"local_seconds": local, "compute_scale": scale}


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*map(str, row))
    Console().print(table)


def _difference(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Max absolute pixel difference in 1/255."""
    return 255 * (image - reference).abs().max().item()


def _ways_rows(ways: dict[str, dict]) -> tuple[list[list[Any]], dict[str, Any]]:
    """(a)'s table rows and JSON: per way, s/evaluation, speed-up, efficiency, image."""
    one, reference = ways["local, 1 thread"]["seconds"], ways["local, 1 thread"]["image"]
    rows, result = [], {}
    for way, found in ways.items():
        workers = 1 if way == "local, 1 thread" else WORKERS
        speedup = one / found["seconds"]
        difference = _difference(found["image"], reference)
        rows.append(
            [
                way,
                f"{found['seconds']:.3f}",
                f"{speedup:.2f}",
                f"{100 * speedup / workers:.0f} %",
                f"{difference:.2f}",
            ]
        )
        result[way] = {
            "seconds_per_evaluation": found["seconds"],
            "speedup": speedup,
            "efficiency": speedup / workers,
            "image_max_difference_255": difference,
        }
    return rows, result


def _breakdown(times: dict[str, float]) -> list[list[Any]]:
    """(b)'s rows: each term per evaluation, and its share of the actors' compute."""
    keys = ["wall", "compute", "transfer", "put", "get", "fetch", "reduction", "driver", "waiting"]
    return [
        [k, f"{times[k]:.4f}", f"{100 * times[k] / max(times['compute'], 1e-12):.2f} %"]
        for k in keys
    ]


def _show(terms: dict[str, float], predicted: dict[str, Any], size: int) -> None:
    """Print (b)'s and (c)'s tables."""
    title = f"(b) per evaluation at {size} px on loopback, {terms['tiles']:.0f} tiles"
    _table(f"{title}, {WORKERS} actors", ["term", "s", "of compute"], _breakdown(terms))
    cells = [
        [
            n,
            *(
                f"{predicted[k]['seconds'][n]:.3f} ({predicted[k]['speedup'][n]:.1f}×)"
                for k in LINKS
            ),
        ]
        for n in MACHINES
    ]
    _table("(c) model: s/evaluation (speed-up over a local render)", ["N", *LINKS], cells)
    for link in LINKS:
        print(f"{link}: one more machine saves under 5 % after N={predicted[link]['pays_until']}")


def tiled_benchmark(args: argparse.Namespace, weights: dict[str, float]) -> Path:
    """Run (a), (b) and (c) and report them (module description); returns the JSON's path."""
    extractor = network(args.width)
    objective, start = tiled_problem(extractor, args.tiled, weights)
    primer = tiled_problem(extractor, args.tile, weights)  # one tile
    ways = {"local, 1 thread": local_way(objective, start, args, 1, primer)}
    problems = {"primer": (*primer, 1), "a": (objective, start, args.evaluations)}
    if args.transfer:
        big, big_start = tiled_problem(extractor, args.transfer, weights)
        problems["b"] = (big, big_start, args.transfer_evaluations)
    remote = cluster_ways(extractor, problems, args)
    ways[f"--cluster local, {WORKERS} actors × 1 thread"] = remote["a"]
    ways[f"local, {WORKERS} threads"] = local_way(objective, start, args, WORKERS, primer)
    rows, result = _ways_rows(ways)
    which = "b" if args.transfer else "a"
    terms, size = remote[which]["times"], max(problems[which][1].shape)
    predicted = forecast(terms, args.compute_scale)
    _show(terms, predicted, size)
    share = terms["transfer"] / max(terms["compute"], 1e-12)
    result = {
        "tiled": {"size": [start.shape[-1], start.shape[-2]], "tile": args.tile,
                  "overlap": args.overlap, "width": args.width, "evaluations": args.evaluations,
                  "warmup": args.warmup},
        "ways": result,
        "cluster_times": remote["a"]["times"],
        "transfer": {"size": size, "times": terms, "transfer_over_compute": share},
        "model": predicted,
    }  # fmt: skip
    columns = ["(a) way", "s/evaluation", "speed-up", "efficiency", "image vs 1 thread (/255)"]
    return report("cluster-tiled", columns, rows, result, args.out, torch.device("cpu"))
