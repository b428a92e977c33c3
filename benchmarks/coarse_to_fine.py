"""Coarse-to-fine (the ``standard`` schedule) against single-scale optimization at the final size.

Two single-scale baselines, each from the content image with 1000 evaluations at the final
size: L-BFGS (jcjohnson's recipe, the strongest single-scale one) and Adam (lr 0.02, 0–1 pixel
units; the seeds' recipe). All are scored by one fixed evaluator: the final stage's objective
(content + style + TV with the ``standard`` weights) at the final size; the last stage of the
cascade optimizes exactly that objective, so its loss trace is the evaluator's value. Reported:
each baseline's final loss L*, and the wall time each method needs to reach it; the cascade's
final stage may run up to 1000 evaluations too (no early stop) and stops once it is below every
L* (where the preset's own tolerance would have stopped it is reported as well). Goal: the
cascade reaches L-BFGS's L* ≥ 5× faster. Real (Caffe) VGG19 weights, the example images.

    python benchmarks/coarse_to_fine.py [--quick] [--final PX] [--device cpu|cuda]
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

import torch
from common import arguments, device_from, report, sync
from stylecascade.images import load_image
from stylecascade.preset import Preset, StageConfig
from stylecascade.preset_files import load_preset
from stylecascade.runner import run_stages, schedule
from stylecascade.stages.blend import StyleTargets, WeightedStyle
from stylecascade.stages.cascade import Problem, Stage, StageResult, stop_point
from stylecascade.stages.evaluator import UntiledEvaluator
from stylecascade.stages.losses import total
from stylecascade.stages.optim import optimize
from stylecascade.stages.resample import resize_long_edge
from stylecascade.stages.vgg import VGGFeatures
from stylecascade.weights import load_weights
from torch import Tensor

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SINGLE_SCALE_EVALUATIONS = 1000
ADAM_LR = 0.02


def single_scale(
    extractor: VGGFeatures, preset: Preset, content: Tensor, style: Tensor, optimizer: str
) -> tuple[list[float], list[float]]:
    """``optimizer`` (L-BFGS, or Adam at lr 0.02) at the final size: (seconds since start,
    evaluator loss) per evaluation."""
    model = preset.model
    stage = schedule(preset, tuple(content.shape[-2:]))[-1]  # untiled
    targets = StyleTargets(extractor, [WeightedStyle(style)], model.style_layers)
    problem = Problem(extractor, content, targets, model.content_layers)
    image = content.clone().requires_grad_(True)
    evaluate = UntiledEvaluator(problem.objective(stage, content), image)
    stamps: list[float] = []
    began = time.perf_counter()
    lr = ADAM_LR if optimizer == "adam" else 1.0
    optimize(image, optimizer, lr, SINGLE_SCALE_EVALUATIONS, evaluate,
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

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        self.index = index

    def iteration(self, done: int, terms: Mapping[str, Tensor]) -> None:
        if self.index != self.final_index:
            return
        self.stamps.append(time.perf_counter() - self.began)
        self.losses.append(total(terms).item())
        if self.losses[-1] <= self.target:
            raise _Reached

    def stage_finished(self, result: StageResult) -> None:
        self.stages.append(
            {"size": list(reversed(result.size)), "iterations": result.evaluations,
             "stop": result.stop, "seconds": result.seconds,
             "loss_end": result.loss_end["total"]}
        )  # fmt: skip


def cascade(
    extractor: VGGFeatures, preset: Preset, content: Tensor, style: Tensor, target: float
) -> _Clock:
    """The stages, the final one with no early stop, allowed up to 1000 evaluations and stopped
    once its loss (the evaluator's) reaches ``target``."""
    clock = _Clock(len(preset.stages) - 1, target)
    try:
        for _ in run_stages(extractor, preset, content, [WeightedStyle(style)], observer=clock):
            pass
    except _Reached:
        pass
    sync(content.device)
    return clock


def own_stop(losses: list[float], config: StageConfig) -> int | None:
    """Evaluations after which the preset's own rule (its tolerance, else its cap) would have
    stopped the final stage; ``None`` when the trace ended (at the target) before either."""
    converged_at = stop_point(losses[: config.iterations], config.tolerance)
    if converged_at is not None:
        return converged_at
    return config.iterations if len(losses) >= config.iterations else None


def time_to_reach(stamps: list[float], losses: list[float], target: float) -> float | None:
    for stamp, value in zip(stamps, losses, strict=True):
        if value <= target:
            return stamp
    return None


def main() -> None:
    args = arguments(__doc__.splitlines()[0], final=True)
    device = device_from(args)
    final = args.final or (256 if args.quick else 1024)
    preset = load_preset("standard").with_final_size(final)
    weights = load_weights("caffe", lambda _m: nullcontext())
    model = preset.model
    extractor = VGGFeatures(weights.trunk, model.layers, model.pooling, weights.normalization, True)
    extractor = extractor.to(device)
    content = resize_long_edge(load_image(EXAMPLES / "tubingen.jpg", "content"), final).to(device)
    style = load_image(EXAMPLES / "starry_night.jpg", "style").to(device)

    baselines = {o: single_scale(extractor, preset, content, style, o) for o in ("lbfgs", "adam")}
    targets = {o: losses[-1] for o, (_, losses) in baselines.items()}
    schedule = " → ".join(f"{s.long_edge}×{s.iterations}" for s in preset.stages)
    last = dataclasses.replace(
        preset.stages[-1], iterations=SINGLE_SCALE_EVALUATIONS, tolerance=0.0
    )
    open_ended = dataclasses.replace(preset, stages=(*preset.stages[:-1], last))
    clock = cascade(extractor, open_ended, content, style, min(targets.values()))
    c_stamps, c_losses = clock.stamps, clock.losses
    stop = own_stop(c_losses, preset.stages[-1])
    rows, reached = [], {}
    for optimizer, (stamps, losses) in baselines.items():
        target = targets[optimizer]
        mine = time_to_reach(c_stamps, c_losses, target)
        theirs = time_to_reach(stamps, losses, target)
        reached[optimizer] = {
            "loss": target, "seconds": stamps[-1], "seconds_to_reach": theirs,
            "cascade_seconds_to_reach": mine,
            "speedup": None if mine is None else theirs / mine,
        }  # fmt: skip
        rows.append([f"single scale ({optimizer}, 1000 evals)", f"{stamps[-1]:.1f}",
                     f"{target:.4g}", f"{theirs:.1f}",
                     "not reached" if mine is None else f"{mine:.1f}"])  # fmt: skip
    own = {"evaluations": stop, "seconds": None, "loss": None}
    if stop is not None:
        own.update(seconds=c_stamps[stop - 1], loss=c_losses[stop - 1])
        rows.append([f"cascade ({schedule}), own stop after {stop} final evals",
                     f"{own['seconds']:.1f}", f"{own['loss']:.4g}", "", ""])  # fmt: skip
    report(
        "coarse_to_fine",
        ["method", "total s", "final loss", "s to reach L*", "cascade s to reach L*"],
        rows,
        {
            "quick": args.quick,
            "final_size": final,
            "baselines": reached,
            "cascade": {
                "schedule": schedule,
                "stages": clock.stages,
                "own_stop": own,
                "final_stage_evaluations": len(c_losses),
            },  # fmt: skip
            "goal_speedup_vs_lbfgs": 5.0,
        },
        args.out,
        device,
    )
    for optimizer, value in reached.items():
        if value["speedup"] is not None:
            print(f"speed-up to reach {optimizer}'s L*: {value['speedup']:.1f}× (goal ≥ 5×)")


if __name__ == "__main__":
    main()
