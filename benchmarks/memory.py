"""Peak memory of a stage step per image size and precision, measured against the plan.

Each size runs a few L-BFGS evaluations of the full objective (``standard`` preset layers,
full-size VGG19 with random weights: memory does not depend on the values). Measured: on CUDA
PyTorch's peak allocation (``max_memory_allocated``) for fp32, tf32 and bf16; on a CPU the rise
of the process's peak resident memory (sizes run in increasing order, so the peak so far is
that size's), fp32 only (a CPU always computes in fp32). Planned: what ``stylecascade.memory``
estimates before a stage (measured bytes per pixel × pixels × 1.6 + L-BFGS state).

    python benchmarks/memory.py [--quick] [--device cpu|cuda] [--precision fp32,tf32,bf16]

A precision that fails (out of memory, an error in its backward) is reported in the JSON's
``failures`` and the exit code is 1; the other precisions' results are kept.
"""

from __future__ import annotations

import resource
import sys

import torch
from common import (
    arguments,
    device_from,
    precisions_from,
    random_network,
    random_objective,
    report,
)
from stylecascade.device import precision
from stylecascade.memory import activation_bytes_per_pixel, stage_bytes
from stylecascade.stages.evaluator import UntiledEvaluator
from stylecascade.stages.optim import optimize
from stylecascade.stages.vgg import VGGFeatures

MIB = 2**20


def peak_rss_bytes() -> int:
    """The process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def step(extractor: VGGFeatures, model, size: int, autocast) -> None:
    """A few L-BFGS evaluations of the full objective at ``size`` px long edge (4:3)."""
    objective, content = random_objective(extractor, model, size)
    image = content.clone().requires_grad_(True)
    optimize(image, "lbfgs", 1.0, 3, UntiledEvaluator(objective, image, autocast))


def measure(
    extractor: VGGFeatures, model, device, name: str, sizes: list[int], results: list[dict]
) -> None:
    """Append the measured and planned peak of each size (increasing) in precision ``name`` to
    ``results`` as it is measured (a failure at a large size keeps the smaller ones)."""
    effective, autocast = precision(name, device)
    with autocast:
        per_pixel = activation_bytes_per_pixel(
            lambda x: sum(f.float().mean() for f in extractor(x).values()), device
        )
    baseline = peak_rss_bytes()
    previous: tuple[int, int] | None = None  # (pixels, measured) of the last size
    for size in sizes:
        pixels = size * (size * 3 // 4)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        step(extractor, model, size, autocast)
        if device.type == "cuda":
            measured = torch.cuda.max_memory_allocated(device) - base
        else:
            measured = peak_rss_bytes() - baseline
        planned = stage_bytes(per_pixel, pixels, "lbfgs")
        # The marginal cost per pixel between sizes drops the fixed overheads (weights,
        # allocator, interpreter) that dominate small sizes.
        marginal = None
        if previous is not None and pixels > previous[0]:
            marginal = (measured - previous[1]) / (pixels - previous[0])
        previous = (pixels, measured)
        results.append(
            {"size": [size, size * 3 // 4], "precision": effective,
             "measured_bytes": measured, "planned_bytes": planned,
             "measured_marginal_bytes_per_pixel": marginal,
             "planned_bytes_per_pixel": planned / pixels,
             "activation_bytes_per_pixel": per_pixel}
        )  # fmt: skip


def main() -> None:
    args = arguments(__doc__.splitlines()[0], precisions="fp32,tf32,bf16")
    device = device_from(args)
    model, extractor = random_network(device)
    sizes = [128, 256, 512] if args.quick else [512, 1024, 2048, 4096]
    results, failures = [], []
    for name in precisions_from(args, device):
        try:
            measure(extractor, model, device, name, sizes, results)
        except RuntimeError as exc:  # e.g. out of memory, or one precision's backward failing
            failures.append({"precision": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    rows = [
        [f"{r['size'][0]}×{r['size'][1]}", r["precision"], f"{r['activation_bytes_per_pixel']:.0f}",
         f"{r['measured_bytes'] / MIB:.0f}", f"{r['planned_bytes'] / MIB:.0f}",
         "—" if r["measured_marginal_bytes_per_pixel"] is None
         else f"{r['measured_marginal_bytes_per_pixel']:.0f}",
         f"{r['planned_bytes_per_pixel']:.0f}"]
        for r in results
    ]  # fmt: skip
    rows += [["—", f["precision"], "failed", f["error"][:60], "", "", ""] for f in failures]
    report(
        "memory",
        [
            "size (px)",
            "precision",
            "saved B/px",
            "measured MiB",
            "planned MiB",
            "measured marginal B/px",
            "planned B/px",
        ],
        rows,
        {"quick": args.quick, "results": results, "failures": failures},
        args.out,
        device,
    )
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
