"""Ours side by side with the peers on one photo–painting pair, one run, one machine.

The pair is ``--pair`` (:data:`PAIRS`; default the bundled tubingen.jpg × starry_night.jpg):

- our ``draft``, ``standard`` and ``print`` presets at ``--final`` px, and ``draft swd`` /
  ``draft w2`` (the draft with another ``style_loss``, its style weight × :data:`BETA_FACTOR`);
- ``neural-style-pt multires``: the peer tool (PyPI ``neural-style==0.5.7``, installed into
  ``benchmarks/.peers`` on demand, fed our converted Caffe VGG19; see ``neural_style_pt.py``),
  chained runs at our draft's stage sizes with ``-init image -init_image PREVIOUS``, each with
  as many evaluations as our draft used at that size; its own weights (content 5, style 100,
  TV 1e-3, L-BFGS without line search);
- ``ck``: crowsonkb/style-transfer-pytorch from its own checkout and venv (``crowsonkb.py``),
  on our Caffe VGG19 with its normalization folded into conv1_1, its own weights and Adam, its
  √2 scales from our first size to ``--final`` with as many evaluations as our draft in all;
- ``spst``: SPST (bgalerne/scaling_painting_style_transfer, ``spst_peer.py``) from its own
  checkout and venv, on our Caffe VGG19 normalized as Gatys' (proxy statistics), its own
  weights, L-BFGS and ``spst-fast`` schedule (600, 200, 66, 30 evaluations) over four ×2 scales
  ending at ``--final``, the painting at its own pixels at the last scale (SPST's design: not
  our schedule);
- ``single-scale`` (on request): jcjohnson's recipe with our objective, 1000 evaluations at the
  final size from the content image.

Every output is scored by ``yardsticks.py`` (content, Gram error, sliced Wasserstein distances
of VGG features and of colours to the painting relative to the photo's, speckle density, the
1:1 texture distance ``texture_1to1``) and by its wall time. Goals (issues 24, 34): each of ours
at least as good as each peer on :data:`GOAL_KEYS`. Writes ``benchmarks/results/
peers-FINAL[-PAIR]-cpu.json``, a table, and the side-by-side picture (``--picture``).
``--merge A.json B.json …`` prints one table (and the goals) from earlier runs of the same size
and pair instead, so that each row can be its own run.

    python benchmarks/peers.py [--final PX] [--pair P] [--methods M …] [--picture PATH] [--out PATH]
    python benchmarks/peers.py --merge A.json B.json … [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
EXAMPLES = ROOT / "examples"


@dataclasses.dataclass(frozen=True)
class Pair:
    """A photo and a painting (image files)."""

    content: Path
    style: Path


PAIRS = {
    "starry": Pair(EXAMPLES / "tubingen.jpg", EXAMPLES / "starry_night.jpg"),
    "scream": Pair(EXAMPLES / "tubingen.jpg", EXAMPLES / "the_scream.jpg"),
}
"""``--pair`` choices: the bundled pair and a second painting of a higher resolution
(1200×1528)."""
PICTURE = ROOT / "docs" / "peers.png"
SINGLE_SCALE_EVALUATIONS = 1000
GOAL_KEYS = ("swd_features", "swd_colour", "content", "speckle", "texture_1to1", "seconds")
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


def ours(
    preset: str | Preset, final: int, device: torch.device, pair: Pair
) -> tuple[Image.Image, dict]:
    """Render with our API; returns the image and ``{seconds, stages: [(px, evaluations,
    stop)]}``."""
    began = time.perf_counter()
    result = render(pair.content, pair.style, preset=preset, size=final, device=device, seed=0)
    seconds = time.perf_counter() - began
    stages = [(max(s["size"]), s["iterations"], s["stop"]) for s in result.manifest["stages"]]
    return result.image, {"seconds": seconds, "stages": stages}


def peer(
    sizes: list[int], evaluations: list[int], work: Path, pair: Pair
) -> tuple[Image.Image, dict]:
    """The peer's multires recipe at ``sizes`` with ``evaluations`` per size."""
    began = time.perf_counter()
    out, per_run = run_multires(
        pair.content, pair.style, sizes, evaluations, work, threads=torch.get_num_threads()
    )
    seconds = time.perf_counter() - began
    with Image.open(out) as img:
        image = img.convert("RGB")
    stages = list(zip(sizes, evaluations, ["cap"] * len(sizes), strict=True))
    return image, {"seconds": seconds, "stages": stages, "seconds_per_run": per_run}


def peer_start_seconds(work: Path, pair: Pair) -> float:
    """Wall time of one peer process that makes 2 evaluations at 64 px: its start-up cost."""
    _, seconds = run_multires(
        pair.content, pair.style, [64], [2], work, threads=torch.get_num_threads()
    )
    return seconds[0]


PEERS = ("neural-style-pt multires", "ck", "spst", "single-scale L-BFGS")


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
    sizes: list[int], evaluations: list[int], final: int, work: Path, pair: Pair
) -> tuple[Image.Image, dict]:
    """crowsonkb/style-transfer-pytorch (``crowsonkb.py``) with as many evaluations as ours
    made in all: our first stage's at its first scale (128 px), the rest spread evenly over
    its later √2 scales (its own schedule cannot take our 2× sizes)."""
    from crowsonkb import run_ck

    later_scales = max(1, round(2 * math.log2(final / sizes[0])))
    per_scale = max(1, round(sum(evaluations[1:]) / later_scales))
    image, seconds, made = run_ck(
        pair.content, pair.style, final, per_scale, evaluations[0], work, min_px=sizes[0],
        threads=torch.get_num_threads(),
    )  # fmt: skip
    stages = [(sizes[0], evaluations[0], "cap"), (final, made - evaluations[0], "cap")]
    return image, {"seconds": seconds, "stages": stages, "evaluations": made}


def spst(final: int, work: Path, pair: Pair) -> tuple[Image.Image, dict]:
    """SPST (``spst_peer.py``) at ``final`` px: its ``spst-fast`` schedule over four ×2
    scales, our normalized Caffe VGG19."""
    from spst_peer import run_spst

    image, seconds, made, record = run_spst(
        pair.content, pair.style, final, work, threads=torch.get_num_threads()
    )
    stages = [(max(w, h), n, "cap") for w, h, n in record["scales"]]
    return image, {"seconds": seconds, "stages": stages, "evaluations": made,
                   "process_seconds": record["process_seconds"]}  # fmt: skip


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
    "print",
    "neural-style-pt multires",
    "ck",
    "spst",
    "single-scale",
)
"""What ``--methods`` chooses from (default: the draft variants, standard and the
neural-style-pt and CK peers, as before issue 34; ``print``, ``spst`` and ``single-scale`` on
request)."""
DEFAULT_METHODS = ("draft", "draft swd", "draft w2", "standard", "neural-style-pt multires", "ck")


def _run_methods(
    methods: list[str],
    final: int,
    device: torch.device,
    work: Path,
    schedule: list | None,
    pair: Pair,
) -> tuple:
    """Render each chosen method; the neural-style-pt and CK peers take ``schedule``
    (``[(px, evaluations)]``) or the sizes and evaluations of the first of ours among
    ``methods`` (the draft's if none)."""
    images: dict[str, Image.Image] = {}
    runs: dict[str, dict] = {}
    for name in [m for m in methods if m.startswith(("draft", "standard", "print"))]:
        base, _, kind = name.partition(" ")
        preset = _with_style_loss(base, kind) if kind else base
        images[name], runs[name] = ours(preset, final, device, pair)
        print(f"{name}: {runs[name]['seconds']:.1f} s, stages {runs[name]['stages']}")
    if {"neural-style-pt multires", "ck"} & set(methods):
        if schedule:
            sizes, evaluations = (list(x) for x in zip(*schedule, strict=True))
        else:
            mine = [runs[m] for m in methods if m in runs]
            reference = mine[0] if mine else ours("draft", final, device, pair)[1]
            sizes = [px for px, _, _ in reference["stages"]]
            evaluations = [n for _, n, _ in reference["stages"]]
        _run_scheduled(methods, sizes, evaluations, final, work, pair, images, runs)
    if "spst" in methods:
        images["spst"], runs["spst"] = spst(final, work / "spst", pair)
        print(f"spst: {runs['spst']['seconds']:.1f} s, stages {runs['spst']['stages']}")
    if "single-scale" in methods:
        single = "single-scale L-BFGS"
        images[single], runs[single] = ours(single_scale(final), final, device, pair)
        print(f"{single}: {runs[single]['seconds']:.1f} s")
    return images, runs


def _run_scheduled(
    methods: list[str],
    sizes: list[int],
    evaluations: list[int],
    final: int,
    work: Path,
    pair: Pair,
    images: dict[str, Image.Image],
    runs: dict[str, dict],
) -> None:
    """neural-style-pt and CK (those among ``methods``) at ``sizes`` with ``evaluations``, into
    ``images`` and ``runs``."""
    nspt = "neural-style-pt multires"
    if nspt in methods:
        start = peer_start_seconds(work / "start", pair)
        images[nspt], runs[nspt] = peer(sizes, evaluations, work / "multires", pair)
        runs[nspt]["start_seconds_per_run"] = start
        print(f"{nspt}: {runs[nspt]['seconds']:.1f} s (start-up ≈ {start:.1f} s per run)")
    if "ck" in methods:
        images["ck"], runs["ck"] = ck(sizes, evaluations, final, work / "ck", pair)
        print(f"ck: {runs['ck']['seconds']:.1f} s, {runs['ck']['evaluations']} evaluations")


def _stage(text: str) -> tuple[int, int]:
    """``256x140`` → ``(256, 140)``."""
    px, _, evaluations = text.partition("x")
    return int(px), int(evaluations)


def schedule_from(path: Path) -> list[tuple[int, int]]:
    """The stages ``[(px, evaluations)]`` of the first of our methods in an earlier result of
    this benchmark (so that the peers, run apart, make what ours made).

    Raises:
        SystemExit: none of our methods is in it.
    """
    rows = json.loads(path.read_text())["methods"]
    mine = [row for name, row in rows.items() if name not in PEERS]
    if not mine:
        raise SystemExit(f"--schedule-from {path}: none of our methods in it")
    return [(px, n) for px, n, _ in mine[0]["stages"]]


def _feature_checks(methods: list[str], photo: torch.Tensor) -> dict[str, object]:
    """Each chosen peer's features against ours before anything is timed (its module's
    ``check_features`` on the photo at 128 px)."""
    small = resize_long_edge(photo, 128)
    checks: dict[str, object] = {}
    if "neural-style-pt multires" in methods:
        ensure_installed()
        write_model(MODEL)
        checks["neural-style-pt"] = check_features(MODEL, small)
    if "ck" in methods:
        from crowsonkb import check_features as ck_features

        checks["ck"] = ck_features(small)
    if "spst" in methods:
        from spst_peer import check_features as spst_features

        checks["spst"] = spst_features(small)
    for name, value in checks.items():
        print(f"{name} features vs ours (max relative difference): {value}")
    return checks


def _report(rows: dict[str, dict], photo_row: dict, result: dict, out: Path | None) -> None:
    """The table (one row per method and the photo's), the JSON and the goals."""
    met = goals(rows)
    table = [
        [name, " → ".join(f"{px}×{n}" for px, n, _ in r["stages"]), f"{r['seconds']:.1f}"]
        + [f"{r[k]:.3g}" if k in r else "—" for k in NAMES]
        for name, r in rows.items()
    ]
    table.append(["the photo itself", "", ""] + [f"{photo_row.get(k, 0):.3g}" for k in NAMES])
    name = f"peers-{result['final_size']}" + (
        "" if result["pair"] == "starry" else f"-{result['pair']}"
    )
    report(
        name, ["method", "stages (px × evaluations)", "wall s", *NAMES], table,
        {**result, "methods": rows, "photo": photo_row, "goals": met}, out, torch.device("cpu"),
    )  # fmt: skip
    for goal, value in met.items():
        print(f"{'met   ' if value['met'] else 'MISSED'} {goal}: {value}")


def merge(paths: list[Path], out: Path | None) -> None:
    """One table and the goals from earlier results of the same size and pair (each method
    taken from the last file that has it).

    Raises:
        SystemExit: the files differ in size or pair.
    """
    results = [json.loads(path.read_text()) for path in paths]
    keys = {(r["final_size"], r.get("pair", "starry")) for r in results}
    if len(keys) != 1:
        raise SystemExit(f"--merge: results of different sizes or pairs: {sorted(keys)}")
    ((final, pair),) = keys
    rows = {name: row for r in results for name, row in r["methods"].items()}
    checks = {k: v for r in results for k, v in (r.get("feature_checks") or {}).items()}
    result = {"final_size": final, "pair": pair, "merged": [str(p) for p in paths],
              "feature_checks": checks}  # fmt: skip
    _report(rows, results[-1]["photo"], result, out)


def _more(parser: argparse.ArgumentParser) -> None:
    """peers.py's own options."""
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="default: " + ", ".join(
        DEFAULT_METHODS))  # fmt: skip
    parser.add_argument("--pair", choices=sorted(PAIRS), default="starry", help="photo–painting")
    parser.add_argument("--picture", type=Path, default=PICTURE, help="side-by-side PNG")
    parser.add_argument("--images", type=Path, help="folder for each method's image (PNG)")
    parser.add_argument(
        "--schedule", type=_stage, nargs="+", help="neural-style-pt's and CK's PXxEVALUATIONS "
        "per stage (default: what our draft made at --final, rendering it if not among --methods)",
    )  # fmt: skip
    parser.add_argument("--schedule-from", type=Path, help="a result JSON: its first of ours' "
                        "stages as --schedule")  # fmt: skip
    parser.add_argument("--merge", type=Path, nargs="+", help="JSON results to show as one table")


def main() -> None:
    args = arguments(__doc__.splitlines()[0], final=True, more=_more)
    if args.merge:
        return merge(args.merge, args.out)
    device = device_from(args)
    if device.type != "cpu":
        raise SystemExit("peers.py compares on the CPU (the peers run on it); use --device cpu")
    final, pair = args.final or 512, PAIRS[args.pair]
    methods = list(args.methods or DEFAULT_METHODS)
    torch.manual_seed(0)
    print(f"threads {torch.get_num_threads()}, final {final} px, pair {args.pair}, {methods}")
    photo = load_image(pair.content, "content")
    checks = _feature_checks(methods, photo)
    with tempfile.TemporaryDirectory() as tmp:
        schedule = schedule_from(args.schedule_from) if args.schedule_from else args.schedule
        images, runs = _run_methods(methods, final, device, Path(tmp), schedule, pair)
    if args.images is not None:
        args.images.mkdir(parents=True, exist_ok=True)
        for name, image in images.items():
            image.save(args.images / f"{final}-{args.pair}-{name.replace(' ', '_')}.png")
    sticks = Yardsticks(photo, load_image(pair.style, "style"), device)
    rows = {n: {**runs[n], **sticks.score(as_tensor(img, n))} for n, img in images.items()}
    picture({"photo": Image.open(pair.content), "painting": Image.open(pair.style), **images},
            args.picture)  # fmt: skip
    result = {
        "final_size": final,
        "pair": args.pair,
        "feature_checks": checks,
        "feature_check": checks.get("neural-style-pt"),
        "picture": str(args.picture),
    }
    _report(rows, sticks.score(resize_long_edge(photo, final)), result, args.out)


if __name__ == "__main__":
    main()
