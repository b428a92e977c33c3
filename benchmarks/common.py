"""Shared helpers of the benchmarks: arguments, device, timing, tables and JSON results."""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from stylecascade.device import effective_precision, select_device
from stylecascade.manifest import versions
from stylecascade.preset import PRECISIONS, ModelConfig
from stylecascade.preset_files import load_preset
from stylecascade.stages.blend import painting_regions
from stylecascade.stages.losses import Objective
from stylecascade.stages.terms import TermContext, build_objective, weighted_terms
from stylecascade.stages.vgg import CAFFE, VGGFeatures, build_vgg19_features

RESULTS = Path(__file__).resolve().parent / "results"


def arguments(
    description: str,
    final: bool = False,
    precisions: str | None = None,
    more: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """``--quick`` (small sizes, CPU-friendly), ``--device``, ``--out`` (JSON path), with
    ``final`` a ``--final PX`` size override, with ``precisions`` (its default, e.g.
    ``"fp32,tf32,bf16"``) a ``--precision`` list (:func:`precisions_from`), and whatever
    ``more`` adds to the parser."""
    parser = argparse.ArgumentParser(description=description)
    if more is not None:
        more(parser)
    if final:
        parser.add_argument("--final", type=int, default=None, help="final long edge in px")
    parser.add_argument("--quick", action="store_true", help="small sizes; minutes on a CPU")
    parser.add_argument("--device", default="auto", help="auto | cuda | mps | cpu")
    parser.add_argument("--out", type=Path, default=None, help="JSON result path")
    if precisions is not None:
        parser.add_argument(
            "--precision",
            default=precisions,
            help=f"comma-separated {', '.join(PRECISIONS)} (CUDA; a CPU always computes in fp32; "
            f"default {precisions})",
        )
    args = parser.parse_args()
    if precisions is not None:
        unknown = [n for n in _names(args.precision) if n not in PRECISIONS]
        if unknown or not _names(args.precision):
            choices = ", ".join(PRECISIONS)
            parser.error(f"--precision: choose from {choices}; got {args.precision!r}")
    return args


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def device_from(args: argparse.Namespace) -> torch.device:
    return select_device(args.device)


def precisions_from(args: argparse.Namespace, device: torch.device) -> list[str]:
    """The ``--precision`` names as they apply on ``device``, each once, in the order given:
    on a CPU every name means ``fp32`` (``stylecascade.device.effective_precision``)."""
    return list(dict.fromkeys(effective_precision(n, device) for n in _names(args.precision)))


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(
    call: Callable[[], object], device: torch.device, repeat: int, warmup: int = 1
) -> float:
    """Median wall time of ``call`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        call()
    sync(device)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        sync(device)
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def report(
    name: str,
    columns: list[str],
    rows: list[list[Any]],
    result: dict[str, Any],
    out: Path | None,
    device: torch.device,
) -> Path:
    """Print a rich table and write ``result`` (with the machine) as JSON."""
    table = Table(*columns, title=name)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console().print(table)
    path = out or RESULTS / f"{name}-{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"benchmark": name, "machine": machine(device), **result}, indent=2) + "\n"
    )
    Console().print(f"wrote {path}")
    return path


def random_objective(
    extractor: VGGFeatures, model: Any, size: int
) -> tuple[Objective, torch.Tensor]:
    """The objective of the ``standard`` preset's final stage (its weights) with random content
    and style images; returns it and the ``(1, 3, 3·size/4, size)`` content image."""
    device = next(extractor.parameters()).device
    content = torch.rand(1, 3, size * 3 // 4, size, device=device)
    style = torch.rand(1, 3, size * 5 // 8, size, device=device)
    regions = painting_regions(extractor, style, model.style_layers)
    context = TermContext(extractor, content, model.content_layers, regions)
    objective = build_objective(weighted_terms(**final_stage_weights()), context)
    return objective, content


def final_stage_weights() -> dict[str, float]:
    """``content_weight``, ``style_weight`` and ``tv_weight`` of the ``standard`` preset's last
    stage."""
    last = load_preset("standard").stages[-1]
    return {
        "content_weight": last.content_weight,
        "style_weight": last.style_weight,
        "tv_weight": last.tv_weight,
    }


def random_network(device: torch.device) -> tuple[ModelConfig, VGGFeatures]:
    """The ``standard`` preset's model and the full-size VGG19 with seeded random weights
    (cost and memory do not depend on the weights' values), truncated to its layers."""
    torch.manual_seed(0)
    model = load_preset("standard").model
    trunk = build_vgg19_features()
    return model, VGGFeatures(trunk, model.layers, model.pooling, CAFFE, True).to(device)
