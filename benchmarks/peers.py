"""Side by side on the bundled pair (tubingen.jpg × starry_night.jpg), one run, one machine:

- our ``draft`` and ``standard`` presets at ``--final`` px, and ``draft swd`` / ``draft w2``
  (the draft with another ``style_loss``, its style weight × :data:`BETA_FACTOR`);
- ``neural-style-pt multires``: the peer tool (PyPI ``neural-style==0.5.7``, installed into
  ``benchmarks/.peers`` on demand, fed our converted Caffe VGG19; see ``neural_style_pt.py``),
  chained runs at our draft's stage sizes with ``-init image -init_image PREVIOUS``, each with
  as many evaluations as our draft used at that size; its own weights (content 5, style 100,
  TV 1e-3, L-BFGS without line search);
- ``ck``: crowsonkb/style-transfer-pytorch from its own checkout and venv (``crowsonkb.py``),
  on our Caffe VGG19 with its normalization folded into conv1_1, its own weights and Adam, its
  √2 scales from our first size to ``--final`` with as many evaluations as our draft in all;
- ``single-scale`` (on request): jcjohnson's recipe with our objective, 1000 evaluations at the
  final size from the content image.

Every output is scored by ``yardsticks.py`` (content, Gram error, sliced Wasserstein distances
of VGG features and of colours to the painting relative to the photo's, speckle density) and by
its wall time. Goals (issue 24): each of ours at least as good as each peer on feature SWD,
colour SWD, content error, speckle and wall time. Writes ``benchmarks/results/
peers-FINAL-cpu.json``, a table, and the side-by-side picture (``--picture``).

    python benchmarks/peers.py [--final PX] [--methods M …] [--picture PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import torch
from common import arguments, device_from, report
from neural_style_pt import MODEL, check_features, ensure_installed, run_multires, write_model
from PIL import Image, ImageDraw
from stylecascade import render
from stylecascade.images import as_tensor, load_image
from stylecascade.preset import Preset
from stylecascade.preset_files import load_preset
from stylecascade.stages.resample import resize_long_edge
from yardsticks import NAMES, Yardsticks

ROOT = Path(__file__).resolve().parent.parent
CONTENT, STYLE = ROOT / "examples" / "tubingen.jpg", ROOT / "examples" / "starry_night.jpg"
PICTURE = ROOT / "docs" / "peers.png"
SINGLE_SCALE_EVALUATIONS = 1000
GOAL_KEYS = ("swd_features", "swd_colour", "content", "speckle", "seconds")
"""What a goal compares, each lower is better (the Gram error is reported, not compared: it is
close to our own Gram objective)."""
BETA_FACTOR = {"gram": 1.0, "w2": 1.6, "swd": 3.0}
"""A style loss's β relative to the Gram kind's, for the same balance of style and content
(``style_losses.py``)."""


def single_scale(final: int) -> Preset:
    """One stage at ``final`` px: 1000 L-BFGS evaluations from the content image, the standard
    preset's weights, no early stop."""
    standard = load_preset("standard")
    stage = dataclasses.replace(
        standard.stages[-1], long_edge=final, iterations=SINGLE_SCALE_EVALUATIONS, tolerance=0.0
    )
    return dataclasses.replace(standard, name="single-scale", stages=(stage,))


def ours(preset: str | Preset, final: int, device: torch.device) -> tuple[Image.Image, dict]:
    """Render with our API; returns the image and ``{seconds, stages: [(px, evaluations,
    stop)]}``."""
    began = time.perf_counter()
    result = render(CONTENT, STYLE, preset=preset, size=final, device=device, seed=0)
    seconds = time.perf_counter() - began
    stages = [(max(s["size"]), s["iterations"], s["stop"]) for s in result.manifest["stages"]]
    return result.image, {"seconds": seconds, "stages": stages}


def peer(sizes: list[int], evaluations: list[int], work: Path) -> tuple[Image.Image, dict]:
    """The peer's multires recipe at ``sizes`` with ``evaluations`` per size."""
    began = time.perf_counter()
    out, per_run = run_multires(
        CONTENT, STYLE, sizes, evaluations, work, threads=torch.get_num_threads()
    )
    seconds = time.perf_counter() - began
    with Image.open(out) as img:
        image = img.convert("RGB")
    stages = list(zip(sizes, evaluations, ["cap"] * len(sizes), strict=True))
    return image, {"seconds": seconds, "stages": stages, "seconds_per_run": per_run}


def peer_start_seconds(work: Path) -> float:
    """Wall time of one peer process that makes 2 evaluations at 64 px: its start-up cost."""
    _, seconds = run_multires(CONTENT, STYLE, [64], [2], work, threads=torch.get_num_threads())
    return seconds[0]


PEERS = ("neural-style-pt multires", "ck", "single-scale L-BFGS")


def goals(rows: dict[str, dict]) -> dict[str, dict]:
    """Each of our methods against each peer in ``rows``: every yardstick of
    :data:`GOAL_KEYS` and the wall time at least as good as the peer's (issue 24's goal, at
    the same evaluations)."""
    found = {}
    for name, mine in rows.items():
        if name in PEERS:
            continue
        for peer_name in (p for p in PEERS if p in rows):
            theirs = rows[peer_name]
            for key in GOAL_KEYS:
                found[f"{name}: {key} ≤ {peer_name}'s"] = {
                    "ours": mine[key],
                    "theirs": theirs[key],
                    "met": mine[key] <= theirs[key],
                }
    return found


def picture(images: dict[str, Image.Image], path: Path, edge: int = 384) -> None:
    """A labelled row of the images, each resized to ``edge`` px long edge."""
    tiles = []
    for label, image in images.items():
        tile = image.copy()
        tile.thumbnail((edge, edge), Image.LANCZOS)
        canvas = Image.new("RGB", (tile.width, tile.height + 22), "white")
        canvas.paste(tile, (0, 22))
        ImageDraw.Draw(canvas).text((4, 4), label, fill="black")
        tiles.append(canvas)
    width = sum(t.width for t in tiles) + 4 * (len(tiles) - 1)
    sheet = Image.new("RGB", (width, max(t.height for t in tiles)), "white")
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + 4
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def ck(
    sizes: list[int], evaluations: list[int], final: int, work: Path
) -> tuple[Image.Image, dict]:
    """crowsonkb/style-transfer-pytorch (``crowsonkb.py``) with as many evaluations as ours
    made in all: our first stage's at its first scale (128 px), the rest spread evenly over
    its later √2 scales (its own schedule cannot take our 2× sizes)."""
    from crowsonkb import run_ck

    later_scales = max(1, round(2 * math.log2(final / sizes[0])))
    per_scale = max(1, round(sum(evaluations[1:]) / later_scales))
    image, seconds, made = run_ck(
        CONTENT, STYLE, final, per_scale, evaluations[0], work, min_px=sizes[0],
        threads=torch.get_num_threads(),
    )  # fmt: skip
    stages = [(sizes[0], evaluations[0], "cap"), (final, made - evaluations[0], "cap")]
    return image, {"seconds": seconds, "stages": stages, "evaluations": made}


def _with_style_loss(name: str, kind: str) -> Preset:
    """A bundled preset with another ``style_loss`` (and its β × :data:`BETA_FACTOR`)."""
    preset = load_preset(name)
    stages = tuple(
        dataclasses.replace(s, style_weight=s.style_weight * BETA_FACTOR[kind])
        for s in preset.stages
    )
    model = dataclasses.replace(preset.model, style_loss=kind)
    return dataclasses.replace(preset, name=f"{name} {kind}", model=model, stages=stages)


METHODS = (
    "draft",
    "draft swd",
    "draft w2",
    "standard",
    "neural-style-pt multires",
    "ck",
    "single-scale",
)
"""What ``--methods`` chooses from (default: all but single-scale, 1000 evaluations)."""


def _run_methods(
    methods: list[str], final: int, device: torch.device, work: Path, schedule: list | None
) -> tuple:
    """Render each chosen method; the peers take ``schedule`` (``[(px, evaluations)]``) or
    the draft's sizes and evaluations."""
    images: dict[str, Image.Image] = {}
    runs: dict[str, dict] = {}
    ours_names = [m for m in methods if m.startswith(("draft", "standard"))]
    for name in ours_names:
        base, _, kind = name.partition(" ")
        preset = _with_style_loss(base, kind) if kind else base
        images[name], runs[name] = ours(preset, final, device)
        print(f"{name}: {runs[name]['seconds']:.1f} s, stages {runs[name]['stages']}")
    if schedule:
        sizes, evaluations = (list(x) for x in zip(*schedule, strict=True))
    else:
        reference = runs.get("draft") or ours("draft", final, device)[1]
        sizes = [px for px, _, _ in reference["stages"]]
        evaluations = [n for _, n, _ in reference["stages"]]
    nspt = "neural-style-pt multires"
    if nspt in methods:
        start = peer_start_seconds(work / "start")
        images[nspt], runs[nspt] = peer(sizes, evaluations, work / "multires")
        runs[nspt]["start_seconds_per_run"] = start
        print(f"{nspt}: {runs[nspt]['seconds']:.1f} s (start-up ≈ {start:.1f} s per run)")
    if "ck" in methods:
        images["ck"], runs["ck"] = ck(sizes, evaluations, final, work / "ck")
        print(f"ck: {runs['ck']['seconds']:.1f} s, {runs['ck']['evaluations']} evaluations")
    if "single-scale" in methods:
        single = "single-scale L-BFGS"
        images[single], runs[single] = ours(single_scale(final), final, device)
        print(f"{single}: {runs[single]['seconds']:.1f} s")
    return images, runs


def _stage(text: str) -> tuple[int, int]:
    """``256x140`` → ``(256, 140)``."""
    px, _, evaluations = text.partition("x")
    return int(px), int(evaluations)


def main() -> None:
    def more(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--methods", nargs="+", choices=METHODS, help="default: all but single-scale"
        )
        parser.add_argument("--picture", type=Path, default=PICTURE, help="side-by-side PNG")
        parser.add_argument("--images", type=Path, help="folder for each method's image (PNG)")
        parser.add_argument(
            "--schedule", type=_stage, nargs="+", help="the peers' PXxEVALUATIONS per stage "
            "(default: what our draft made at --final, rendering it if not among --methods)",
        )  # fmt: skip

    args = arguments(__doc__.splitlines()[0], final=True, more=more)
    device = device_from(args)
    if device.type != "cpu":
        raise SystemExit(
            "peers.py compares on the CPU (the peer runs with -gpu c); use --device cpu"
        )
    final = args.final or 512
    methods = [m for m in METHODS if m != "single-scale"] if not args.methods else args.methods
    torch.manual_seed(0)
    print(f"threads {torch.get_num_threads()}, final {final} px, methods {methods}")
    photo = load_image(CONTENT, "content")
    difference = None
    if "neural-style-pt multires" in methods:
        ensure_installed()
        write_model(MODEL)
        difference = check_features(MODEL, resize_long_edge(photo, 128))
        print(f"neural-style-pt relu4_2 vs ours: max relative difference {difference:.1e}")
    with tempfile.TemporaryDirectory() as tmp:
        images, runs = _run_methods(methods, final, device, Path(tmp), args.schedule)
    if args.images is not None:
        args.images.mkdir(parents=True, exist_ok=True)
        for name, image in images.items():
            image.save(args.images / f"{final}-{name.replace(' ', '_')}.png")
    sticks = Yardsticks(photo, load_image(STYLE, "style"), device)
    rows = {
        name: {**runs[name], **sticks.score(as_tensor(img, name))} for name, img in images.items()
    }
    photo_row = sticks.score(resize_long_edge(photo, final))
    met = goals(rows)
    picture({"photo": Image.open(CONTENT), "painting": Image.open(STYLE), **images}, args.picture)
    table = [
        [name, " → ".join(f"{px}×{n}" for px, n, _ in r["stages"]), f"{r['seconds']:.1f}"]
        + [f"{r[k]:.3g}" for k in NAMES]
        for name, r in rows.items()
    ]
    table.append(["the photo itself", "", ""] + [f"{photo_row[k]:.3g}" for k in NAMES])
    report(
        f"peers-{final}",
        ["method", "stages (px × evaluations)", "wall s", *NAMES],
        table,
        {"final_size": final, "feature_check": difference, "methods": rows,
         "photo": photo_row, "goals": met, "picture": str(args.picture)},
        args.out,
        device,
    )  # fmt: skip
    for goal, value in met.items():
        print(f"{'met   ' if value['met'] else 'MISSED'} {goal}: {value}")


if __name__ == "__main__":
    main()
