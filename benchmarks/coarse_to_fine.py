"""Coarse-to-fine (the ``standard`` schedule) against single-scale optimization at the final size.

Single scale is the seeds' recipe: start from the content image, Adam (lr 0.02, 0–1 pixel
units), 1000 evaluations at the final size. Both are scored by one fixed evaluator: the final
stage's objective (content + style + TV with the ``standard`` weights) at the final size; the
last stage of the cascade optimizes exactly that objective, so its loss trace is the evaluator's
value. Reported: the single-scale final loss L*, and the wall time each method needs to reach
L*; the cascade's final stage may run up to 1000 evaluations too and stops once it reaches L*
(its loss after the schedule's own budget is reported as well). Goal: the cascade reaches L*
≥ 5× faster. Real (Caffe) VGG19 weights, the example images.

    python benchmarks/coarse_to_fine.py [--quick] [--final PX] [--device cpu|cuda]
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from common import arguments, device_from, report, sync
from stylecascade.config import load_preset
from stylecascade.images import load_image
from stylecascade.runner import run_stages, schedule
from stylecascade.stages.blend import StyleTargets, WeightedStyle
from stylecascade.stages.cascade import Problem
from stylecascade.stages.evaluator import UntiledEvaluator
from stylecascade.stages.losses import total
from stylecascade.stages.optim import optimize
from stylecascade.stages.resample import resize_long_edge
from stylecascade.stages.vgg import VGGFeatures
from stylecascade.weights import load_weights

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SINGLE_SCALE_EVALUATIONS = 1000
ADAM_LR = 0.02


def single_scale(extractor, preset, content, style) -> tuple[list[float], list[float]]:
    """Adam at the final size: (seconds since start, evaluator loss) per evaluation."""
    model = preset.model
    stage = schedule(preset, tuple(content.shape[-2:]))[-1]  # untiled
    targets = StyleTargets(extractor, [WeightedStyle(style)], model.style_layers)
    problem = Problem(extractor, content, targets, model.content_layers, model.style_layers)
    image = content.clone().requires_grad_(True)
    evaluate = UntiledEvaluator(problem.objective(stage, content), image)
    stamps: list[float] = []
    began = time.perf_counter()
    optimize(image, "adam", ADAM_LR, SINGLE_SCALE_EVALUATIONS, evaluate,
             lambda _n: stamps.append(time.perf_counter() - began))  # fmt: skip
    sync(content.device)
    return stamps, torch.stack(evaluate.trace).tolist()


class _Reached(Exception):
    """The cascade's final stage reached the target loss."""


class _Clock:
    """Observer: stamps every evaluation of the final stage; stops the run at the target."""

    def __init__(self, final_index: int, target: float) -> None:
        self.began = time.perf_counter()
        self.final_index, self.target = final_index, target
        self.index = -1
        self.stamps: list[float] = []
        self.losses: list[float] = []
        self.stages: list[dict] = []

    def stage_started(self, index, count, stage) -> None:
        self.index = index

    def iteration(self, done, terms) -> None:
        if self.index != self.final_index:
            return
        self.stamps.append(time.perf_counter() - self.began)
        self.losses.append(total(terms).item())
        if self.losses[-1] <= self.target:
            raise _Reached

    def stage_finished(self, result) -> None:
        self.stages.append(
            {"size": list(reversed(result.size)), "iterations": result.iterations,
             "seconds": result.seconds, "loss_end": result.loss_end["total"]}
        )  # fmt: skip


def cascade(extractor, preset, content, style, target: float) -> _Clock:
    """The stages, the final one allowed up to 1000 evaluations and stopped once its loss (the
    evaluator's) reaches ``target``."""
    clock = _Clock(len(preset.stages) - 1, target)
    try:
        for _ in run_stages(extractor, preset, content, [WeightedStyle(style)], observer=clock):
            pass
    except _Reached:
        pass
    sync(content.device)
    return clock


def time_to_reach(stamps: list[float], losses: list[float], target: float) -> float | None:
    for stamp, value in zip(stamps, losses, strict=True):
        if value <= target:
            return stamp
    return None


def main() -> None:
    args = arguments(__doc__.splitlines()[0], final=True)
    device = device_from(args)
    final = args.final or (128 if args.quick else 1024)
    preset = load_preset("standard").with_final_size(final)
    weights = load_weights("caffe", lambda _m: nullcontext())
    model = preset.model
    extractor = VGGFeatures(weights.trunk, model.layers, model.pooling, weights.normalization, True)
    extractor = extractor.to(device)
    content = resize_long_edge(load_image(EXAMPLES / "tubingen.jpg", "content"), final).to(device)
    style = load_image(EXAMPLES / "starry_night.jpg", "style").to(device)

    s_stamps, s_losses = single_scale(extractor, preset, content, style)
    target = s_losses[-1]
    schedule = " → ".join(f"{s.long_edge}×{s.iterations}" for s in preset.stages)
    last = dataclasses.replace(preset.stages[-1], iterations=SINGLE_SCALE_EVALUATIONS)
    open_ended = dataclasses.replace(preset, stages=(*preset.stages[:-1], last))
    clock = cascade(extractor, open_ended, content, style, target)
    c_stamps, c_losses, stages = clock.stamps, clock.losses, clock.stages
    t_single = time_to_reach(s_stamps, s_losses, target)
    t_cascade = time_to_reach(c_stamps, c_losses, target)
    n_standard = preset.stages[-1].iterations
    at_schedule_end = c_losses[min(n_standard, len(c_losses)) - 1]
    speedup = None if t_cascade is None else t_single / t_cascade
    rows = [
        ["single scale (Adam, 1000 evals)", f"{s_stamps[-1]:.1f}", f"{target:.4g}",
         f"{t_single:.1f}"],
        [f"cascade ({schedule}, last stage open-ended)",
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
            "cascade": {
                "schedule": schedule,
                "stages": stages,
                "seconds": c_stamps[-1],
                "loss": c_losses[-1],
                "final_stage_evaluations": len(c_losses),
                "loss_after_standard_budget": at_schedule_end,
            },
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
