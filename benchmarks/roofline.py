"""The ceiling of this machine and how close one evaluation comes to it (issue 26, item 1).

- **Ceiling**: the rate of a large ``torch.mm`` (4096², median of 5) in fp32 and in bf16.
- **FLOPs per evaluation**: counted from VGG19's convolutions up to relu5_1 at each stage
  size: a forward ``2·C_in·C_out·9·H·W`` per conv, and as much again for the input gradient
  (the weights are frozen: no weight gradient), so one L-BFGS evaluation ≈ 2 × the forward.
- **Achieved**: the median wall time of one forward + backward of the trunk to relu5_1
  (the network part of an evaluation: the losses add 1–19 %, ``step_overhead.py``), in fp32
  and under CPU bf16 autocast, and its GFLOP/s as a fraction of the matching ceiling.

    python benchmarks/roofline.py [--sizes 256 512 1024] [--out PATH]
"""

from __future__ import annotations

import statistics
import time

import torch
from common import arguments, device_from, report
from stylecascade.stages.vgg import VGGFeatures
from stylecascade.stages.vocabulary import LAYER_NAMES
from stylecascade.weights import load_weights

DEEPEST = "relu5_1"
REPEATS = 5


def matmul_rate(dtype: torch.dtype, n: int = 4096) -> float:
    """GFLOP/s of ``torch.mm`` of two ``n × n`` matrices in ``dtype`` (median of 5)."""
    a, b = torch.rand(n, n).to(dtype), torch.rand(n, n).to(dtype)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - began)
    return 2 * n**3 / statistics.median(times) / 1e9


def conv_flops(trunk: torch.nn.Sequential, height: int, width: int) -> float:
    """Forward FLOPs of the trunk's convolutions up to :data:`DEEPEST` on ``height × width``."""
    flops, h, w = 0.0, height, width
    for name, layer in zip(LAYER_NAMES, trunk, strict=False):
        if isinstance(layer, torch.nn.Conv2d):
            flops += 2 * layer.in_channels * layer.out_channels * 9 * h * w
        elif isinstance(layer, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            h, w = h // 2, w // 2
        if name == DEEPEST:
            break
    return flops


def evaluation_seconds(net: VGGFeatures, height: int, width: int, bf16: bool) -> float:
    """Median wall time of one forward + backward (input gradient) to :data:`DEEPEST`."""
    image = torch.rand(1, 3, height, width).contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(REPEATS + 1):
        x = image.clone().requires_grad_(True)
        began = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(x)[DEEPEST].float().square().mean()
        loss.backward()
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])  # the first is a warm-up


def main() -> None:
    def more(parser):
        parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])

    args = arguments(__doc__.splitlines()[0], more=more)
    device = device_from(args)
    if device.type != "cpu":
        raise SystemExit("roofline.py measures the CPU; use --device cpu")
    ceiling = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    print(f"threads {torch.get_num_threads()}; torch.mm 4096²: " +
          ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in ceiling.items()))  # fmt: skip
    weights = load_weights("caffe")
    net = VGGFeatures(weights.trunk, (DEEPEST,), "max", weights.normalization, True).eval()
    net = net.to(memory_format=torch.channels_last)
    rows, data = [], []
    for edge in sizes_of(args):
        h, w = edge * 3 // 4, edge
        flops = 2 * conv_flops(weights.trunk, h, w)
        row = {"size": [w, h], "gflop": flops / 1e9}
        for kind in ("fp32", "bf16"):
            seconds = evaluation_seconds(net, h, w, kind == "bf16")
            rate = flops / seconds / 1e9
            row[kind] = {"seconds": seconds, "gflops": rate, "of_ceiling": rate / ceiling[kind]}
        data.append(row)
        rows.append([f"{w}×{h}", f"{row['gflop']:.0f}"] + [
            f"{row[k]['seconds']:.2f} s, {row[k]['gflops']:.0f} GFLOP/s "
            f"({100 * row[k]['of_ceiling']:.0f} %)" for k in ("fp32", "bf16")
        ])  # fmt: skip
        print(rows[-1])
    report(
        "roofline",
        ["size", "GFLOP / evaluation", "fp32", "bf16 autocast"],
        rows,
        {"ceiling_gflops": ceiling, "threads": torch.get_num_threads(), "stages": data},
        args.out,
        device,
    )


def sizes_of(args) -> list[int]:
    """``--sizes``, or 128 and 256 px with ``--quick``."""
    return [128, 256] if args.quick else args.sizes


if __name__ == "__main__":
    main()
