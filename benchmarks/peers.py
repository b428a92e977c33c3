"""Side by side on the bundled pair (tubingen.jpg × starry_night.jpg), final 512 px, one run:

- ``single-scale L-BFGS``: jcjohnson's recipe with our objective (the presets' weights) — the
  content image as the start, 1000 evaluations at the final size, no early stop;
- ``neural-style-pt multires``: the peer tool (PyPI ``neural-style==0.5.7``, installed into
  ``benchmarks/.peers`` on demand, fed our converted Caffe VGG19; see ``neural_style_pt.py``),
  chained runs at our draft's stage sizes with ``-init image -init_image PREVIOUS``, each with
  as many evaluations as our draft used at that size; its own weights (content 5, style 100,
  TV 1e-3, L-BFGS without line search);
- our ``draft`` and ``standard`` presets at ``--size 512``.

Every output is scored by ``yardsticks.py`` (content, Gram error, sliced Wasserstein distances
of VGG features and of colours to the painting relative to the photo's, speckle density) and by
its wall time (the peer's includes one process start per size; measured separately and shown).
Goals (issue 13): ours in ≤ 1/5 of single-scale's wall time at equal or better yardsticks;
better than the peer's multires at the same evaluations in less time; colour distance and
speckle no worse than single-scale's. Writes ``benchmarks/results/peers-cpu.json``, a table,
and ``docs/peers.png`` (the side-by-side picture).

    python benchmarks/peers.py [--final PX] [--device cpu|cuda] [--out PATH]
"""

from __future__ import annotations

import dataclasses
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
LOWER_IS_BETTER = ("swd_features", "swd_colour", "speckle")
"""The yardsticks a goal compares (content and Gram error are reported: a style transfer trades
one against the other, and the Gram error is close to our own objective)."""


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


def goals(rows: dict[str, dict]) -> dict[str, dict]:
    """Each goal of issue 13, met or not, with the numbers it compares."""
    single, nspt = rows["single-scale L-BFGS"], rows["neural-style-pt multires"]
    found = {}
    for name in ("draft", "standard"):
        mine = rows[name]
        found[f"{name}: ≤ 1/5 of single-scale's time"] = {
            "ratio": mine["seconds"] / single["seconds"],
            "met": mine["seconds"] <= single["seconds"] / 5,
        }
        for key in LOWER_IS_BETTER:
            found[f"{name}: {key} ≤ single-scale's"] = {
                "ours": mine[key],
                "theirs": single[key],
                "met": mine[key] <= single[key],
            }
    draft = rows["draft"]
    for key in (*LOWER_IS_BETTER, "seconds"):
        found[f"draft: {key} < neural-style-pt multires'"] = {
            "ours": draft[key],
            "theirs": nspt[key],
            "met": draft[key] < nspt[key],
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


def main() -> None:
    args = arguments(__doc__.splitlines()[0], final=True)
    device = device_from(args)
    if device.type != "cpu":
        raise SystemExit(
            "peers.py compares on the CPU (the peer runs with -gpu c); use --device cpu"
        )
    final = args.final or 512
    torch.manual_seed(0)
    ensure_installed()
    write_model(MODEL)
    photo = load_image(CONTENT, "content")
    difference = check_features(MODEL, resize_long_edge(photo, 128))
    print(f"neural-style-pt relu4_2 vs ours: max relative difference {difference:.1e}")

    images: dict[str, Image.Image] = {}
    runs: dict[str, dict] = {}
    for name in ("draft", "standard"):
        images[name], runs[name] = ours(name, final, device)
        print(f"{name}: {runs[name]['seconds']:.1f} s, stages {runs[name]['stages']}")
    sizes = [px for px, _, _ in runs["draft"]["stages"]]
    evaluations = [n for _, n, _ in runs["draft"]["stages"]]
    with tempfile.TemporaryDirectory() as tmp:
        start = peer_start_seconds(Path(tmp) / "start")
        nspt = "neural-style-pt multires"
        images[nspt], runs[nspt] = peer(sizes, evaluations, Path(tmp) / "multires")
    runs[nspt]["start_seconds_per_run"] = start
    print(f"{nspt}: {runs[nspt]['seconds']:.1f} s (start-up ≈ {start:.1f} s per run)")
    single = "single-scale L-BFGS"
    images[single], runs[single] = ours(single_scale(final), final, device)
    print(f"{single}: {runs[single]['seconds']:.1f} s")

    sticks = Yardsticks(photo, load_image(STYLE, "style"), device)
    rows = {
        name: {**runs[name], **sticks.score(as_tensor(img, name))} for name, img in images.items()
    }
    photo_row = sticks.score(resize_long_edge(photo, final))
    met = goals(rows)
    picture(
        {"photo": Image.open(CONTENT), "painting": Image.open(STYLE), **images},
        PICTURE,
    )
    table = [
        [name, " → ".join(f"{px}×{n}" for px, n, _ in r["stages"]), f"{r['seconds']:.1f}"]
        + [f"{r[k]:.3g}" for k in NAMES]
        for name, r in rows.items()
    ]
    table.append(["the photo itself", "", ""] + [f"{photo_row[k]:.3g}" for k in NAMES])
    report(
        "peers",
        ["method", "stages (px × evaluations)", "wall s", *NAMES],
        table,
        {"final_size": final, "feature_check": difference, "methods": rows,
         "photo": photo_row, "goals": met, "picture": str(PICTURE.relative_to(ROOT))},
        args.out,
        device,
    )  # fmt: skip
    for goal, value in met.items():
        print(f"{'met   ' if value['met'] else 'MISSED'} {goal}: {value}")


if __name__ == "__main__":
    main()
