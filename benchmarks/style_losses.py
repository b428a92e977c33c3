"""Style losses side by side (issue 24): the same preset rendered with ``style_loss`` ``gram``,
``w2`` and ``swd`` on a photo–painting pair, each scored by ``yardsticks.py`` (content, Gram
error, feature and colour sliced Wasserstein distances relative to the photo's, speckle) with
its wall time and evaluations. One run, one machine; the thread count is printed.

Each kind's style weight is the preset's times a multiplier (``--kinds gram:1 w2:1.6 swd:3``),
and a third field chooses the first stage's start (``swd:3:style-stats``, ``stages.initial``):
the losses are all relative errors, but of different statistics, so one β does not give the
same balance of style and content (measured at the photo itself on the bundled pair, 512 px:
Gram 0.59, W2 0.36, SWD 0.20).

    python benchmarks/style_losses.py [--final PX] [--preset NAME] [--pair tubingen:starry_night]
        [--kinds KIND:FACTOR[:INIT] …] [--picture PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from common import report
from peers import picture
from stylecascade import render
from stylecascade.images import as_tensor, load_image
from stylecascade.preset_files import load_preset
from stylecascade.stages.resample import resize_long_edge
from yardsticks import NAMES, Yardsticks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--final", type=int, default=512, help="final long edge in px")
    parser.add_argument("--preset", default="draft", help="the preset every kind starts from")
    parser.add_argument("--pair", default="tubingen:starry_night", help="PHOTO:PAINTING stems")
    parser.add_argument("--kinds", nargs="+", default=["gram:1", "w2:1.6", "swd:3"])
    parser.add_argument("--picture", type=Path, default=None, help="side-by-side PNG")
    parser.add_argument("--out", type=Path, default=None, help="JSON result path")
    return parser.parse_args()


def _render(preset_name: str, spec: str, pair: tuple[Path, Path], final: int):
    """One render for ``spec`` = ``KIND:FACTOR[:INIT]``: ``style_loss: KIND``, β × ``FACTOR``
    and, if given, ``init: INIT``. Returns the image and its run."""
    kind, factor, *init = spec.split(":")
    preset = load_preset(preset_name)
    model = dataclasses.replace(preset.model, style_loss=kind)
    preset = dataclasses.replace(preset, model=model, init=init[0] if init else preset.init)
    began = time.perf_counter()
    result = render(
        *pair, preset=preset, size=final, style_weight=float(factor), device="cpu", seed=0
    )
    seconds = time.perf_counter() - began
    stages = [(max(s["size"]), s["iterations"], s["stop"]) for s in result.manifest["stages"]]
    run = {"seconds": seconds, "stages": stages, "beta_factor": float(factor), "init": preset.init}
    return result.image, run


def main() -> None:
    args = _arguments()
    photo_stem, painting_stem = args.pair.split(":")
    pair = (EXAMPLES / f"{photo_stem}.jpg", EXAMPLES / f"{painting_stem}.jpg")
    print(f"threads {torch.get_num_threads()}, {args.preset} at {args.final} px, {args.pair}")
    images, runs = {}, {}
    for spec in args.kinds:
        kind, factor, *init = spec.split(":")
        label = f"{kind}, style weight x{factor}" + (f", init {init[0]}" if init else "")
        images[label], runs[label] = _render(args.preset, spec, pair, args.final)
        print(f"{label}: {runs[label]['seconds']:.1f} s, stages {runs[label]['stages']}")
    photo = load_image(pair[0], "content")
    sticks = Yardsticks(photo, load_image(pair[1], "style"), torch.device("cpu"))
    rows = {k: {**runs[k], **sticks.score(as_tensor(img, k))} for k, img in images.items()}
    rows["the photo itself"] = {
        "seconds": 0.0, "stages": [], **sticks.score(resize_long_edge(photo, args.final))
    }  # fmt: skip
    if args.picture is not None:
        picture(images, args.picture)
    table = [
        [name, " → ".join(f"{px}×{n}" for px, n, _ in r["stages"]), f"{r['seconds']:.1f}"]
        + [f"{r[k]:.3g}" for k in NAMES]
        for name, r in rows.items()
    ]
    report(
        f"style_losses-{args.preset}-{args.final}-{photo_stem}",
        ["style loss", "stages (px × evaluations)", "wall s", *NAMES],
        table,
        {"final_size": args.final, "preset": args.preset, "pair": args.pair, "rows": rows},
        args.out,
        torch.device("cpu"),
    )


if __name__ == "__main__":
    main()
