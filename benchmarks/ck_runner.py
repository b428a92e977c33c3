"""Drive crowsonkb/style-transfer-pytorch ("CK") from its own venv, offline, on given weights.

Run with CK's venv python and CK's checkout on ``sys.path`` (``PYTHONPATH``); started by
``crowsonkb.py``, which documents the setup. It imports nothing from stylecascade: CK's venv
does not have it.

    python ck_runner.py features --weights W.pth --image IMG.png --out FEATS.pt
    python ck_runner.py stylize --weights W.pth --content C --style S --out OUT.png \
        --result RESULT.json [--end-scale PX --min-scale PX --iterations N \
        --initial-iterations N --threads N --seed N --options JSON]

Both replace ``torchvision.models.vgg19`` with a builder that loads ``W.pth`` (a torchvision
``features`` state dict, keys ``0.weight`` … ``34.bias``) into an untrained VGG19, and make
every hub download raise, so nothing is fetched: CK's ``models.vgg19(weights=IMAGENET1K_V1)``
gets our weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torchvision
from PIL import Image
from torchvision.transforms import functional as TF

CONTENT_INDEX = 22
"""CK's content layer, relu4_2, as an index into torchvision's ``features``."""


def refuse_download(*args: Any, **kwargs: Any) -> Any:
    """Stand-in for hub downloads: this runner must not touch the network."""
    raise RuntimeError(f"ck_runner: a download was attempted ({args[:1]}); it is offline")


def install_weights(path: Path) -> None:
    """Make ``torchvision.models.vgg19`` build VGG19 with the features in ``path``, whatever
    ``weights`` it is asked for, and make hub downloads raise.

    Raises:
        RuntimeError: the file's keys or shapes do not fit VGG19's ``features``.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    untrained = torchvision.models.vgg19

    def vgg19(*, weights: Any = None, progress: bool = True, **kwargs: Any) -> torch.nn.Module:
        model = untrained(weights=None, **kwargs)
        model.features.load_state_dict(state, strict=True)
        return model

    torchvision.models.vgg19 = vgg19
    torch.hub.load_state_dict_from_url = refuse_download
    torch.hub.download_url_to_file = refuse_download
    api = sys.modules.get("torchvision.models._api")
    if api is not None and hasattr(api, "load_state_dict_from_url"):
        api.load_state_dict_from_url = refuse_download


def features(args: argparse.Namespace) -> None:
    """Save CK's relu4_2 activations of an image (its ``VGGFeatures``, its normalization, max
    pooling) as a tensor file."""
    from style_transfer.style_transfer import VGGFeatures

    model = VGGFeatures([CONTENT_INDEX], pooling="max")
    with Image.open(args.image) as img:
        image = TF.to_tensor(img.convert("RGB"))[None]
    with torch.no_grad():
        relu4_2 = model(image)[CONTENT_INDEX].clone()
    torch.save(relu4_2, args.out)


def stylize(args: argparse.Namespace) -> None:
    """Run ``StyleTransfer.stylize`` and save its image (8-bit PNG) and a JSON record:
    ``{seconds, build_seconds, evaluations, scales: [[w, h, iterations], …], step_seconds,
    options}``. ``seconds`` runs from building CK's model (weights loaded; ``build_seconds`` of
    it) to ``stylize`` returning; ``step_seconds`` is the median time between consecutive
    iterations within a scale (one evaluation and Adam's update)."""
    from style_transfer import StyleTransfer
    from style_transfer.cli import load_image

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    content, style = load_image(args.content), load_image(args.style)
    steps: dict[tuple[int, int], list[float]] = {}

    def record_step(iterate: Any) -> None:
        steps.setdefault((iterate.w, iterate.h), []).append(time.perf_counter())

    options = json.loads(args.options)
    began = time.perf_counter()
    st = StyleTransfer(devices=["cpu"], pooling=options.pop("pooling", "max"))
    built = time.perf_counter()
    image = st.stylize(
        content, [style], min_scale=args.min_scale, end_scale=args.end_scale,
        iterations=args.iterations, initial_iterations=args.initial_iterations,
        callback=record_step, **options,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    image.save(args.out)
    gaps = [b - a for times in steps.values() for a, b in zip(times[:-1], times[1:], strict=True)]
    record = {
        "seconds": seconds,
        "build_seconds": built - began,
        "evaluations": sum(len(times) for times in steps.values()),
        "scales": [[w, h, len(times)] for (w, h), times in steps.items()],
        "step_seconds": statistics.median(gaps) if gaps else None,
        "options": options,
    }
    Path(args.result).write_text(json.dumps(record, indent=1) + "\n")


def runner_parser(description: str) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """A peer runner's command line: ``features --image`` and ``stylize --content --style
    --result``, both with ``--weights`` and ``--out``; returns the parser and the ``stylize``
    subparser, for the runner's own options (also used by ``spst_runner.py``)."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("features")
    check.add_argument("--image", type=Path, required=True)
    run = sub.add_parser("stylize")
    for name in ("--content", "--style", "--result"):
        run.add_argument(name, type=Path, required=True)
    for each in (check, run):
        each.add_argument("--weights", type=Path, required=True)
        each.add_argument("--out", type=Path, required=True)
    return parser, run


def main() -> None:
    """Parse the command line and run the subcommand."""
    parser, run = runner_parser(__doc__.splitlines()[0])
    run.add_argument("--end-scale", type=int, default=512)
    run.add_argument("--min-scale", type=int, default=128)
    run.add_argument("--iterations", type=int, default=500)
    run.add_argument("--initial-iterations", type=int, default=1000)
    run.add_argument("--threads", type=int, default=torch.get_num_threads())
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--options", default="{}", help="further stylize() keywords, as JSON")
    args = parser.parse_args()
    install_weights(args.weights)
    {"features": features, "stylize": stylize}[args.command](args)


if __name__ == "__main__":
    main()
