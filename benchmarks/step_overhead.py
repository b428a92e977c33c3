"""Time per evaluation of the full stage step against the bare VGG19 forward + backward.

The full step is what a stage repeats, timed through the cascade's own evaluator
(``stylecascade.stages.evaluator.UntiledEvaluator``, as ``stages.cascade`` runs it): the
network's features, the content, style (Gram) and TV terms, the backward pass, the loss trace and
best-iterate bookkeeping, and the optimizer's work (L-BFGS with its line search). The bare
step is the network alone: forward to the same layers and backward w.r.t. the input. Both run
in the same process at each size, on the full-size VGG19 (random weights: the cost does not
depend on the values). Goal: full / bare ≤ 1.15.

On CUDA both run in each ``--precision`` as a render would (``stylecascade.device.precision``:
TF32 switches, bf16 autocast; default ``tf32``, the presets' default); a CPU computes in fp32. A
precision that fails is reported in the JSON's ``failures`` and the exit code is 1.

    python benchmarks/step_overhead.py [--quick] [--device cpu|cuda] [--precision fp32,tf32,bf16]
                                       [--sizes 256 512 1024 2048]
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager

from common import (
    arguments,
    device_from,
    precisions_from,
    random_network,
    random_objective,
    report,
    seconds_per_call,
)
from stylecascade.device import precision
from stylecascade.stages.evaluator import UntiledEvaluator
from stylecascade.stages.optim import optimize
from stylecascade.stages.vgg import VGGFeatures


def measure(
    extractor: VGGFeatures,
    model,
    size: int,
    evaluations: int,
    autocast: AbstractContextManager,
) -> dict:
    """Bare and full seconds per evaluation at ``size`` px long edge (4:3), each network
    evaluation run in ``autocast`` (:func:`stylecascade.device.precision`)."""
    device = next(extractor.parameters()).device
    objective, content = random_objective(extractor, model, size)
    image = content.clone().requires_grad_(True)

    def bare() -> None:
        with autocast:
            feats = extractor(image)
        sum(f.float().mean() for f in feats.values()).backward()
        image.grad = None

    counts: list[int] = []

    def full() -> None:
        image.data.copy_(content)
        evaluate = UntiledEvaluator(objective, image, autocast)
        counts.append(optimize(image, "lbfgs", 1.0, evaluations, evaluate))

    t_bare = seconds_per_call(bare, device, repeat=evaluations)
    # L-BFGS may overrun its budget by part of a line search: divide by what it evaluated.
    t_full = seconds_per_call(full, device, repeat=3) / counts[-1]
    return {
        "size": [size, size * 3 // 4],
        "bare_s": t_bare,
        "full_s": t_full,
        "ratio": t_full / t_bare,
    }


def main() -> None:
    def more(parser):
        parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])

    args = arguments(__doc__.splitlines()[0], precisions="tf32", more=more)
    device = device_from(args)
    model, extractor = random_network(device)
    sizes = [64, 128, 256] if args.quick else args.sizes
    evaluations = 6 if args.quick else 20
    results, failures = [], []
    for name in precisions_from(args, device):
        effective, autocast = precision(name, device)
        try:
            for size in sizes:
                result = measure(extractor, model, size, evaluations, autocast)
                results.append({**result, "precision": effective})
        except RuntimeError as exc:  # e.g. out of memory, or one precision's backward failing
            failures.append({"precision": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    rows = [
        [f"{r['size'][0]}×{r['size'][1]}", r["precision"], f"{r['bare_s'] * 1e3:.1f}",
         f"{r['full_s'] * 1e3:.1f}", f"{r['ratio']:.3f}"]
        for r in results
    ]  # fmt: skip
    rows += [["—", f["precision"], "failed", f["error"][:60], ""] for f in failures]
    report(
        "step_overhead",
        ["size (px)", "precision", "bare fwd+bwd (ms)", "full step (ms)", "ratio (goal ≤ 1.15)"],
        rows,
        {"quick": args.quick, "evaluations": evaluations, "results": results, "failures": failures},
        args.out,
        device,
    )
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
