"""fp32 against bf16 on this CPU, a whole render each (issue 26: "measured alone, kept only if
it pays at equal quality: the peers' yardsticks within 2 % of fp32 on the example pair").

Renders the bundled pair with a preset (default ``draft``) at ``--final`` px twice, one run
right after the other with the same seed and threads: ``precision: fp32`` and
``precision: bf16`` (CPU bf16 autocast, ``stylecascade.device.precision``); scores both with
``yardsticks.py`` and prints each yardstick's ratio bf16 / fp32 and the wall-time ratio.

    python benchmarks/cpu_bf16.py [--preset draft] [--final 512] [--picture PATH] [--out PATH]
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from common import arguments, device_from, report
from peers import CONTENT, STYLE, picture
from stylecascade import render
from stylecascade.device import cpu_bf16
from stylecascade.images import as_tensor, load_image
from stylecascade.preset_files import load_preset
from yardsticks import NAMES, Yardsticks

TOLERANCE = 0.02
"""A yardstick within 2 % of fp32's (or better) counts as equal quality."""


def main() -> None:
    def more(parser):
        parser.add_argument("--preset", default="draft")
        parser.add_argument("--picture", type=Path, default=None, help="side-by-side PNG")

    args = arguments(__doc__.splitlines()[0], final=True, more=more)
    device = device_from(args)
    if device.type != "cpu" or not cpu_bf16():
        raise SystemExit("cpu_bf16.py needs a CPU that computes bf16 (AVX-512 BF16 or AMX)")
    final = args.final or 512
    base = load_preset(args.preset)
    sticks = Yardsticks(load_image(CONTENT, "content"), load_image(STYLE, "style"), device)
    rows, images = {}, {}
    for name in ("fp32", "bf16"):
        preset = dataclasses.replace(base, precision=name)
        began = time.perf_counter()
        result = render(CONTENT, STYLE, preset=preset, size=final, device=device, seed=0)
        seconds = time.perf_counter() - began
        images[name] = result.image
        stages = [(max(s["size"]), s["iterations"]) for s in result.manifest["stages"]]
        rows[name] = {
            "seconds": seconds,
            "stages": stages,
            **sticks.score(as_tensor(result.image, name)),
        }
        print(f"{name}: {seconds:.1f} s, stages {stages}")
    ratios = {k: rows["bf16"][k] / rows["fp32"][k] for k in ("seconds", *NAMES) if rows["fp32"][k]}
    equal = {k: r <= 1 + TOLERANCE for k, r in ratios.items() if k not in ("seconds", "gram")}
    table = [[n, f"{r['seconds']:.1f}", *(f"{r[k]:.3g}" for k in NAMES)] for n, r in rows.items()]
    table.append(
        ["bf16 / fp32", f"{ratios['seconds']:.2f}", *(f"{ratios.get(k, 0):.3f}" for k in NAMES)]
    )
    if args.picture is not None:
        picture(images, args.picture)
    report(
        f"cpu_bf16-{args.preset}-{final}",
        ["precision", "wall s", *NAMES],
        table,
        {"threads": torch.get_num_threads(), "final": final, "preset": args.preset,
         "runs": rows, "ratios": ratios, "within_2_percent": equal},
        args.out,
        device,
    )  # fmt: skip
    print("equal quality" if all(equal.values()) else f"NOT equal: {equal}")


if __name__ == "__main__":
    main()
