"""Each CPU knob measured alone on one evaluation (issue 26, item 2).

One evaluation is the network part of an L-BFGS step: the VGG19 trunk's forward to relu5_1
returning the draft preset's layers (relu1_1 … relu5_1 and relu4_2) and the input gradient of
a loss over all of them. Each variant changes one thing against today's path (channels_last,
fp32 or bf16 autocast) and reports the median of 5 after a warm-up, its ratio to today's, and
for ``torch.compile`` the compile time (the first call), which a render would pay once per
image size (stage) unless cached.

    python benchmarks/cpu_knobs.py [--size 512] [--out PATH]
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch
from common import arguments, device_from, report
from stylecascade.stages.vgg import VGGFeatures
from stylecascade.weights import load_weights

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
REPEATS = 5

Forward = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def evaluation(forward: Forward, image: torch.Tensor, bf16: bool) -> float:
    """Seconds of one forward + input gradient through ``forward``."""
    x = image.clone().requires_grad_(True)
    began = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        features = forward(x)
    loss = sum(f.float().square().mean() for f in features.values())
    loss.backward()
    return time.perf_counter() - began


def timed(forward: Forward, image: torch.Tensor, bf16: bool) -> tuple[float, float]:
    """(first call's seconds, median seconds of :data:`REPEATS` later calls)."""
    first = evaluation(forward, image, bf16)
    return first, statistics.median(evaluation(forward, image, bf16) for _ in range(REPEATS))


def variants(weights, size: int) -> list[tuple[str, Forward, bool, int]]:
    """(name, forward, bf16, threads) of every variant; the first is today's fp32 path."""
    threads = torch.get_num_threads()
    nets = {
        layout: VGGFeatures(weights.trunk, LAYERS, "max", weights.normalization, layout).eval()
        for layout in (True, False)
    }
    return [
        ("fp32 channels_last (today)", nets[True], False, threads),
        ("fp32 contiguous", nets[False], False, threads),
        ("fp32 channels_last, 1 thread", nets[True], False, 1),
        ("fp32 channels_last, torch.compile", torch.compile(nets[True]), False, threads),
        ("bf16 channels_last (today's auto)", nets[True], True, threads),
        ("bf16 contiguous", nets[False], True, threads),
        ("bf16 channels_last, torch.compile", torch.compile(nets[True]), True, threads),
        ("bf16 weights, contiguous (no autocast)", in_bf16(nets[False]), False, threads),
    ]


def in_bf16(net: VGGFeatures) -> Forward:
    """``net`` with bf16 weights, fed the image in bf16 (its gradient comes back in fp32)."""
    held = copy.deepcopy(net).to(torch.bfloat16)
    return lambda image: held(image.to(torch.bfloat16))


def main() -> None:
    def more(parser):
        parser.add_argument("--size", type=int, default=512, help="long edge in px (4:3)")

    args = arguments(__doc__.splitlines()[0], more=more)
    device = device_from(args)
    if device.type != "cpu":
        raise SystemExit("cpu_knobs.py measures the CPU; use --device cpu")
    size = 256 if args.quick else args.size
    image = torch.rand(1, 3, size * 3 // 4, size)
    weights = load_weights("caffe")
    rows, data, base = [], [], None
    for name, forward, bf16, threads in variants(weights, size):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        first, median = timed(forward, image, bf16)
        torch.set_num_threads(previous)
        base = base or median
        data.append({"variant": name, "first_s": first, "median_s": median, "ratio": median / base})
        rows.append([name, f"{median:.3f}", f"{median / base:.2f}", f"{first:.1f}"])
        print(rows[-1], flush=True)
    report(
        "cpu_knobs",
        ["variant", "s / evaluation", "× today fp32", "first call s"],
        rows,
        {"size": [size, size * 3 // 4], "layers": LAYERS, "variants": data},
        args.out,
        device,
    )


if __name__ == "__main__":
    main()
