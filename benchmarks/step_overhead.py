"""Time per evaluation of the full stage step against the bare VGG19 forward + backward.

The full step is what a stage repeats, timed through the cascade's own evaluator
(``stylecascade.stages.evaluator.UntiledEvaluator``, as ``stages.cascade`` runs it): the
network's features, the content, style (Gram) and TV terms, the backward pass, the loss trace and
best-iterate bookkeeping, and the optimizer's work (L-BFGS with its line search). The bare
step is the network alone: forward to the same layers and backward w.r.t. the input. Both run
in the same process at each size, on the full-size VGG19 (random weights: the cost does not
depend on the values). Goal: full / bare ≤ 1.15.

    python benchmarks/step_overhead.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

from common import (
    arguments,
    device_from,
    random_network,
    random_objective,
    report,
    seconds_per_call,
)
from stylecascade.stages.evaluator import UntiledEvaluator
from stylecascade.stages.optim import optimize
from stylecascade.stages.vgg import VGGFeatures


def measure(extractor: VGGFeatures, model, size: int, evaluations: int) -> dict:
    """Bare and full seconds per evaluation at ``size`` px long edge (4:3)."""
    device = next(extractor.parameters()).device
    objective, content = random_objective(extractor, model, size)
    image = content.clone().requires_grad_(True)

    def bare() -> None:
        feats = extractor(image)
        sum(f.mean() for f in feats.values()).backward()
        image.grad = None

    counts: list[int] = []

    def full() -> None:
        image.data.copy_(content)
        evaluate = UntiledEvaluator(objective, image)
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
    args = arguments(__doc__.splitlines()[0])
    device = device_from(args)
    model, extractor = random_network(device)
    sizes = [64, 128, 256] if args.quick else [256, 512, 1024, 2048]
    evaluations = 6 if args.quick else 20
    results = [measure(extractor, model, size, evaluations) for size in sizes]
    rows = [
        [f"{r['size'][0]}×{r['size'][1]}", f"{r['bare_s'] * 1e3:.1f}", f"{r['full_s'] * 1e3:.1f}",
         f"{r['ratio']:.3f}"]
        for r in results
    ]  # fmt: skip
    report(
        "step_overhead",
        ["size (px)", "bare fwd+bwd (ms)", "full step (ms)", "ratio (goal ≤ 1.15)"],
        rows,
        {"quick": args.quick, "evaluations": evaluations, "results": results},
        args.out,
        device,
    )


if __name__ == "__main__":
    main()
