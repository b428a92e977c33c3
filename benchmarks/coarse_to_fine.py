"""Coarse-to-fine (the ``standard`` schedule) against single-scale optimization at the final size.

Single scale is the seeds' recipe: start from the content image, Adam (lr 0.02, 0–1 pixel
units), 1000 evaluations at the final size. Both are scored by one fixed evaluator: the final
stage's objective (content + style + TV with the ``standard`` weights) at the final size; the
last stage of the cascade optimizes exactly that objective, so its loss trace is the evaluator's
value. Reported: the single-scale final loss L*, and the wall time each method needs to reach
L*. Goal: the cascade reaches it ≥ 5× faster. Real (Caffe) VGG19 weights, the example images.

    python benchmarks/coarse_to_fine.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import torch
from common import arguments, device_from, report, sync
from stylecascade.config import load_preset
from stylecascade.images import load_image
from stylecascade.runner import run_stages
from stylecascade.stages.blend import WeightedStyle
from stylecascade.stages.losses import StyleTransferLoss, content_targets, style_targets
from stylecascade.stages.optim import optimize
from stylecascade.stages.resample import resize_long_edge
from stylecascade.stages.vgg import VGGFeatures
from stylecascade.weights import load_weights

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SINGLE_SCALE_EVALUATIONS = 1000
ADAM_LR = 0.02


def single_scale(extractor, preset, content, style) -> tuple[list[float], list[float]]:
    """Adam at the final size: (seconds since start, evaluator loss) per evaluation."""
    stage, model = preset.stages[-1], preset.model
    loss = StyleTransferLoss(
        extractor,
        content_targets(extractor, content, model.content_layers),
        style_targets(extractor, resize_long_edge(style, stage.size), model.style_layers),
        model.content_layers,
        model.style_layers,
        stage.content_weight,
        stage.style_weight,
        stage.tv_weight,
    )
    image = content.clone().requires_grad_(True)
    pixels = content.shape[-2] * content.shape[-1]
    totals: list[torch.Tensor] = []

    def evaluate() -> torch.Tensor:
        terms = loss(image)
        (terms.total * pixels).backward()
        totals.append(terms.total.detach())
        return terms.total * pixels

    stamps: list[float] = []
    began = time.perf_counter()
    optimize(image, "adam", ADAM_LR, SINGLE_SCALE_EVALUATIONS, evaluate,
             lambda _n: stamps.append(time.perf_counter() - began))  # fmt: skip
    sync(content.device)
    return stamps, torch.stack(totals).tolist()


def cascade(extractor, preset, content, style) -> tuple[list[dict], list[float], list[float]]:
    """The stages: per-stage summaries, and (seconds since start, loss) of the last stage."""
    began = time.perf_counter()
    summaries, results = [], []
    for result in run_stages(extractor, preset, content, [WeightedStyle(style)]):
        results.append(result)
        summaries.append(
            {
                "size": list(result.size),
                "iterations": result.iterations,
                "seconds": result.seconds,
                "loss_end": result.loss_end["total"],
            }
        )
    sync(content.device)
    total = time.perf_counter() - began
    last = results[-1]
    last_start = total - last.seconds
    per_eval = last.seconds / len(last.loss_trace)
    stamps = [last_start + per_eval * (i + 1) for i in range(len(last.loss_trace))]
    return summaries, stamps, last.loss_trace


def time_to_reach(stamps: list[float], losses: list[float], target: float) -> float | None:
    for stamp, value in zip(stamps, losses, strict=True):
        if value <= target:
            return stamp
    return None


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    device = device_from(args)
    final = 128 if args.quick else 1024
    preset = load_preset("standard").with_final_size(final)
    weights = load_weights("caffe", lambda _m: nullcontext())
    model = preset.model
    layers = set(model.content_layers) | set(model.style_layers)
    extractor = VGGFeatures(weights.trunk, layers, model.pooling, weights.normalization, True)
    extractor = extractor.to(device)
    content = resize_long_edge(load_image(EXAMPLES / "tubingen.jpg", "content"), final).to(device)
    style = load_image(EXAMPLES / "starry_night.jpg", "style").to(device)

    stages, c_stamps, c_losses = cascade(extractor, preset, content, style)
    s_stamps, s_losses = single_scale(extractor, preset, content, style)
    target = s_losses[-1]
    t_single = time_to_reach(s_stamps, s_losses, target)
    t_cascade = time_to_reach(c_stamps, c_losses, target)
    speedup = None if t_cascade is None else t_single / t_cascade
    rows = [
        ["single scale (Adam, 1000 evals)", f"{s_stamps[-1]:.1f}", f"{target:.4g}",
         f"{t_single:.1f}"],
        ["cascade (standard, " + " → ".join(str(s.size) for s in preset.stages) + ")",
         f"{c_stamps[-1]:.1f}", f"{c_losses[-1]:.4g}",
         "not reached" if t_cascade is None else f"{t_cascade:.1f}"],
    ]  # fmt: skip
    report(
        "coarse_to_fine",
        ["method", "total s", "final loss", "s to reach L*"],
        rows,
        {
            "quick": args.quick,
            "final_size": final,
            "single_scale": {"evaluations": len(s_losses), "seconds": s_stamps[-1], "loss": target},
            "cascade": {"stages": stages, "seconds": c_stamps[-1], "loss": c_losses[-1]},
            "seconds_to_reach_single_scale_loss": {"single": t_single, "cascade": t_cascade},
            "speedup": speedup,
            "goal_speedup": 5.0,
        },
        args.out,
        device,
    )
    if speedup is not None:
        print(f"speed-up to reach L*: {speedup:.1f}× (goal ≥ 5×)")


if __name__ == "__main__":
    main()
