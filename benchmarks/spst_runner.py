"""Drive SPST (bgalerne/scaling_painting_style_transfer, "Scaling Painting Style Transfer")
from its own venv, offline, on given weights, without editing its source.

Run with SPST's venv python and SPST's checkout on ``sys.path`` (``PYTHONPATH``); started by
``spst_peer.py``, which documents the setup and what differs from SPST's own VGG. It imports
nothing from stylecascade (SPST's venv does not have it), only ``ck_runner.py``'s command line
and download guard (torch, torchvision and Pillow, which SPST's venv has).

    python spst_runner.py features --weights W.pth --image IMG.png --out FEATS.pt
    python spst_runner.py stylize --weights W.pth --content C --style S --out OUT.png \
        --result RESULT.json --work DIR [--scales N --iterations-mode MODE --threads N]

``stylize`` runs SPST's own script ``spst.py`` (``runpy``, as ``__main__``) with its command
line set to ``-c C -s S --results_root_dir DIR/results --iterations_mode MODE
--minimal_scale_threshold T`` (``T`` chosen so that the content gives exactly ``--scales``
×2 scales: the fast mode's 600, 200, 66, 30 iterations over four scales ending at the content's
own size), from the folder ``DIR`` where ``model/vgg_conv.pth`` is a link to ``W.pth`` (SPST
reads its weights from ``./model/vgg_conv.pth``). Three things are patched around it, none in
its files: ``torch.cuda.synchronize`` is a no-op (SPST calls it unconditionally, which raises
without CUDA), hub downloads raise, and ``VGG_BY_BLOCKS.global_content_plus_Gram_means_stds_
loss_with_gradient`` (its loss and gradient, one evaluation) is wrapped to count evaluations
and time them per scale.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from ck_runner import refuse_download, runner_parser
from PIL import Image

FEATURE_KEYS = ("r11", "r21", "r31", "r41", "r42", "r51")
"""SPST's names of relu1_1, relu2_1, relu3_1, relu4_1, relu4_2, relu5_1."""


def _offline() -> None:
    """Make hub downloads raise and ``torch.cuda.synchronize`` a no-op on a CPU."""
    torch.hub.load_state_dict_from_url = refuse_download
    torch.hub.download_url_to_file = refuse_download
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None


def features(args: argparse.Namespace) -> None:
    """Save SPST's activations (its ``vgg_gatys.VGG``, its ``prep``, max pooling) of an image
    at :data:`FEATURE_KEYS` as ``{key: (1, C, h, w)}``."""
    from vgg_gatys import VGG, prep

    vgg = VGG()
    vgg.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    with Image.open(args.image) as img:
        image = prep(img.convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        out = vgg(image, list(FEATURE_KEYS))
    torch.save({k: v.clone() for k, v in zip(FEATURE_KEYS, out, strict=True)}, args.out)


def threshold(content: Path, scales: int) -> int:
    """``--minimal_scale_threshold`` that gives ``scales`` scales: SPST halves the content's
    smaller side (``//2``) while the first size exceeds the threshold."""
    with Image.open(content) as img:
        side = min(img.size)
    return side >> (scales - 1)


class Counter:
    """Counts SPST's evaluations per image size (the optimized image's ``(h, w)``) and the time
    between consecutive ones."""

    def __init__(self) -> None:
        self.times: dict[tuple[int, int], list[float]] = {}

    def wrap(self, method: Any) -> Any:
        """``method`` that records one evaluation per call."""

        def counted(network: Any, *args: Any, **kwargs: Any) -> Any:
            loss = method(network, *args, **kwargs)
            size = tuple(network.img_torch.shape[-2:])
            self.times.setdefault(size, []).append(time.perf_counter())
            return loss

        return counted

    def record(self) -> dict[str, Any]:
        """``{evaluations, scales: [[w, h, evaluations], …], step_seconds}``."""
        gaps = [b - a for t in self.times.values() for a, b in zip(t[:-1], t[1:], strict=True)]
        return {
            "evaluations": sum(len(t) for t in self.times.values()),
            "scales": [[w, h, len(t)] for (h, w), t in self.times.items()],
            "step_seconds": statistics.median(gaps) if gaps else None,
        }


def _prepare_work(work: Path, weights: Path) -> None:
    """``work/model/vgg_conv.pth`` → ``weights`` (a symbolic link), the folder SPST reads."""
    model = work / "model"
    model.mkdir(parents=True, exist_ok=True)
    link = model / "vgg_conv.pth"
    link.unlink(missing_ok=True)
    link.symlink_to(weights.resolve())


def stylize(args: argparse.Namespace) -> None:
    """Run SPST's ``spst.py`` (module docstring); copy its final image to ``--out`` and write
    ``{seconds, cpu_seconds, evaluations, scales, step_seconds, threshold, iterations_mode}``
    to ``--result`` (``cpu_seconds``: the process's CPU time over the same span, all threads).
    ``seconds`` runs from starting its script (weights load included) to its end; the process
    start and imports are outside it."""
    import vgg_by_blocks

    torch.set_num_threads(args.threads)
    _offline()
    blocks = vgg_by_blocks.VGG_BY_BLOCKS
    name = "global_content_plus_Gram_means_stds_loss_with_gradient"
    counter = Counter()
    setattr(blocks, name, counter.wrap(getattr(blocks, name)))
    work = args.work.resolve()
    _prepare_work(work, args.weights)
    limit = threshold(args.content, args.scales)
    results = work / "results"
    script = Path(vgg_by_blocks.__file__).with_name("spst.py")
    sys.argv = [str(script), "-c", str(args.content.resolve()), "-s", str(args.style.resolve()),
                "--results_root_dir", str(results), "--iterations_mode", args.iterations_mode,
                "--minimal_scale_threshold", str(limit)]  # fmt: skip
    os.chdir(work)
    began, cpu = time.perf_counter(), time.process_time()
    runpy.run_path(str(script), run_name="__main__")
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    record = counter.record()
    final = sorted(results.glob(f"*/result_sc_{len(record['scales'])}_of_*.png"))[-1]
    with Image.open(final) as img:
        img.convert("RGB").save(args.out)
    record.update(seconds=seconds, cpu_seconds=cpu, threshold=limit,
                  iterations_mode=args.iterations_mode)  # fmt: skip
    Path(args.result).write_text(json.dumps(record, indent=1) + "\n")


def main() -> None:
    """Parse the command line and run the subcommand."""
    parser, run = runner_parser(__doc__.splitlines()[0])
    run.add_argument("--work", type=Path, required=True, help="SPST's working folder")
    run.add_argument("--scales", type=int, default=4, help="×2 scales ending at the content")
    run.add_argument("--iterations-mode", default="spst-fast",
                     choices=("spst-fast", "spst-baseline", "debug"))  # fmt: skip
    run.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    {"features": features, "stylize": stylize}[args.command](args)


if __name__ == "__main__":
    main()
