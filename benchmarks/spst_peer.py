"""Run the peer SPST (Galerne, Raad, Lezama & Morel, "Scaling Painting Style Transfer", CGF
2024; bgalerne/scaling_painting_style_transfer) offline, from its own source, in a venv of its
own, on our converted Caffe VGG19.

SPST is not on PyPI: its source is a checkout (default ``benchmarks/.peers/
scaling_painting_style_transfer``, git-ignored; written against commit :data:`SPST_COMMIT`),
``git clone`` of :data:`SPST_URL` (only :data:`SPST_FILES` are used; its large example images
are not needed). None of its code is in this repository. Its venv (``benchmarks/.peers/
spst-venv``) holds torch, torchvision and Pillow at our pinned versions
(``crowsonkb.ensure_venv``); ``spst_runner.py`` runs its script ``spst.py`` unchanged.

What SPST does (read from its source): Gatys' ``vgg_gatys.VGG`` (max pooling, zero padding,
every layer through pool5 computed at each call) on ``prep``: RGB → BGR, minus the Caffe mean
(0.40760392, 0.45795686, 0.48501961)·255, 0–255 scale; its loss by spatial blocks
(``VGG_BY_BLOCKS``: 512 px inner blocks, 256 px overlap): Gram matrices of relu1_1 … relu5_1
weighted 1e3/C², plus the layers' means and standard deviations (``--wmeanstd`` 1000), content
relu4_2 weight 1; ×2 scales from the content's size down (while its smaller side exceeds
``--minimal_scale_threshold``), the painting resized by the same factor at every scale (and
first downscaled so that its smaller side is the content's if it is more than 1.1× larger);
L-BFGS (``torch.optim.LBFGS``, no line search, ``max_iter`` 20 per ``step``) with history 100
at the first scale, 10 after; ``spst-fast`` iterations ``max(600 // 3**s, 30)``: 600, 200, 66,
30; it stops a scale once its evaluations exceed the cap (so up to 24 more); the output is
8-bit PNG (``ToPILImage``: truncated, not rounded).

What differs when it is fed our VGG19 (:func:`spst_state`): SPST loads Gatys' *normalized*
``vgg_conv.pth`` (the same Caffe VGG19, each convolution rescaled so that its ReLU's mean
activation over ImageNet images and positions is 1); that file lives on Google Drive, which
our machines cannot reach, and ImageNet is not here either. A per-channel positive rescaling
commutes with ReLU, max pooling and zero padding, so SPST on the normalized network computes
our features divided by those means, channel by channel, exactly. Fed our raw Caffe weights
(``raw``) its features are ours; but its loss weights (1e3/C² per Gram, 1e3·wmeanstd/100 per
mean/std, 1 for content) were tuned on mean-1 activations, and our raw means range from tens
(relu1_1) to below 1 (relu5_1), so the layers' balance would not be SPST's. ``normalized``
(the default) rebuilds Gatys' normalization on the images we have (:data:`PROXY`, each at
:data:`NORMALIZE_EDGE` px): the convolution ``l`` gets ``W·s_{l−1}/s_l`` and ``b/s_l``, ``s``
the ReLU's mean per channel (1 for dead channels). A proxy for ImageNet statistics, so the
scales are close to, not equal to, Gatys' file. Preprocessing is identical (``prep`` is our
Caffe normalization with the channels in BGR order; conv1_1's input channels are reversed
back for it). :func:`check_features` proves it: SPST's activations × ``s`` against ours.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from crowsonkb import ensure_venv, run_runner, runner_env
from PIL import Image
from stylecascade.files import atomic_write
from stylecascade.images import load_image
from stylecascade.stages.resample import resize_long_edge
from stylecascade.stages.vgg import CAFFE, VGGFeatures
from stylecascade.stages.vocabulary import LAYER_NAMES
from stylecascade.weights import load_weights
from torch import Tensor

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
PEERS = HERE / ".peers"
CHECKOUT = PEERS / "scaling_painting_style_transfer"
VENV = PEERS / "spst-venv"
RUNNER = HERE / "spst_runner.py"
SPST_URL = "https://github.com/bgalerne/scaling_painting_style_transfer"
SPST_COMMIT = "d39643c42fbe7503c92e41cf05e55045f41ee2f8"
"""The SPST commit this adapter was written against (2024-07-01, "texture synthesis script")."""
SPST_FILES = ("spst.py", "vgg_by_blocks.py", "vgg_gatys.py", "utils.py")
SPST_REQUIREMENTS = ("torch", "torchvision", "Pillow")
CONVS = tuple(name for name in LAYER_NAMES if name.startswith("conv"))
CHECKED = {"relu1_1": "r11", "relu2_1": "r21", "relu3_1": "r31", "relu4_1": "r41",
           "relu4_2": "r42", "relu5_1": "r51"}  # fmt: skip
"""Our layer names → SPST's keys (``spst_runner.FEATURE_KEYS``)."""
PROXY = ("tubingen.jpg", "starry_night.jpg", "the_scream.jpg", "shipwreck.jpg")
"""Example images whose mean activations stand in for ImageNet's in ``normalized``."""
NORMALIZE_EDGE = 512
DEAD = 1e-6
"""A mean activation at or below this keeps scale 1 (a channel that never fires)."""


def weights_path(normalized: bool) -> Path:
    """Where :func:`write_spst_weights` writes each variant."""
    return PEERS / f"spst-vgg19-caffe-{'normalized' if normalized else 'raw'}.pth"


def ensure_spst(checkout: Path = CHECKOUT, venv: Path = VENV) -> Path:
    """Check SPST's checkout (:data:`SPST_FILES`) and make its venv unless it is ready.

    Returns:
        The venv's ``python``.

    Raises:
        FileNotFoundError: a file of the checkout is missing (the message says how to make it).
        RuntimeError: the venv could not be made.
    """
    missing = [name for name in SPST_FILES if not (checkout / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"no SPST checkout at {checkout} (missing {', '.join(missing)}); make one with: "
            f"git clone {SPST_URL} {checkout} && git -C {checkout} checkout {SPST_COMMIT[:12]}"
        )
    return ensure_venv(venv, SPST_REQUIREMENTS)


def channel_means(images: list[Tensor]) -> dict[str, Tensor]:
    """Mean activation of every ReLU of our Caffe VGG19 per channel, ``{conv name: (C,)}``,
    averaged over ``images`` (``(1, 3, H, W)`` in 0–1), each weighing the same (Gatys et al.
    2016, Sec. 2: "the mean activation of each convolutional filter over images and positions")."""
    relus = [name.replace("conv", "relu") for name in CONVS]
    net = VGGFeatures(load_weights("caffe").trunk, relus, "max", CAFFE)
    sums = {conv: torch.zeros(1) for conv in CONVS}
    with torch.no_grad():
        for image in images:
            found = net(image)
            for conv, relu in zip(CONVS, relus, strict=True):
                sums[conv] = sums[conv] + found[relu].mean(dim=(0, 2, 3))
    return {conv: total / len(images) for conv, total in sums.items()}


def spst_state(scales: dict[str, Tensor] | None) -> dict[str, Tensor]:
    """Our Caffe VGG19 as ``vgg_gatys.VGG``'s state dict (``conv1_1.weight`` … ``conv5_4.bias``),
    conv1_1 reading BGR; with ``scales`` (``{conv: (C,)}``, :func:`channel_means`) normalized:
    convolution ``l`` gets ``W·s_{l−1}/s_l`` and ``b/s_l`` (module docstring)."""
    trunk = load_weights("caffe").trunk
    indices = [i for i, name in enumerate(LAYER_NAMES) if name.startswith("conv")]
    state: dict[str, Tensor] = {}
    previous = torch.ones(3, dtype=torch.float64)
    for conv, index in zip(CONVS, indices, strict=True):
        weight = trunk[index].weight.detach().double()
        bias = trunk[index].bias.detach().double()
        if scales is not None:
            scale = scales[conv].double()
            scale = torch.where(scale > DEAD, scale, torch.ones_like(scale))
            weight = weight * previous.view(1, -1, 1, 1) / scale.view(-1, 1, 1, 1)
            bias, previous = bias / scale, scale
        if conv == "conv1_1":
            weight = weight.flip(1)  # RGB → BGR, as SPST's prep feeds it
        state[f"{conv}.weight"] = weight.float().contiguous()
        state[f"{conv}.bias"] = bias.float().contiguous()
    return state


def proxy_scales() -> dict[str, Tensor]:
    """:func:`channel_means` of the :data:`PROXY` images at :data:`NORMALIZE_EDGE` px."""
    images = [
        resize_long_edge(load_image(EXAMPLES / name, "proxy"), NORMALIZE_EDGE) for name in PROXY
    ]
    return channel_means(images)


def write_spst_weights(normalized: bool = True) -> Path:
    """Write :func:`spst_state` (normalized by :func:`proxy_scales`, or raw) to
    :func:`weights_path`, and the scales beside it (``.scales.pt``; ones when raw).

    Returns:
        The weights file.
    """
    scales = proxy_scales() if normalized else None
    path = weights_path(normalized)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(spst_state(scales), tmp))
    kept = scales or {conv: torch.ones(1) for conv in CONVS}
    atomic_write(path.with_suffix(".scales.pt"), lambda tmp: torch.save(kept, tmp))
    return path


def _prepared(normalized: bool) -> tuple[Path, Path]:
    """SPST's python and the weights file (written if missing)."""
    python = ensure_spst()
    path = weights_path(normalized)
    if not path.is_file() or not path.with_suffix(".scales.pt").is_file():
        write_spst_weights(normalized)
    return python, path


def check_features(image: Tensor, normalized: bool = True) -> dict[str, float]:
    """Compare SPST's activations (its ``VGG``, its ``prep``, our weights file) × the scales
    with ours (Caffe trunk and normalization) on the same 8-bit pixels.

    Args:
        image: ``(1, 3, H, W)`` RGB in 0–1, ``H, W ≥ 16`` px.
        normalized: which weights file.

    Returns:
        ``{layer: max |SPST·s − ours| / max |ours|}`` for the layers of :data:`CHECKED`.
    """
    python, path = _prepared(normalized)
    scales = torch.load(path.with_suffix(".scales.pt"), weights_only=True)
    pixels = image.clamp(0, 1).mul(255).round().to(torch.uint8)
    with tempfile.TemporaryDirectory(prefix="spst-check-") as tmp:
        png, out = Path(tmp) / "image.png", Path(tmp) / "features.pt"
        Image.fromarray(pixels[0].permute(1, 2, 0).numpy()).save(png)
        arguments = ["features", "--weights", str(path), "--image", str(png), "--out", str(out)]
        run_runner(python, arguments, runner_env(CHECKOUT, 1), RUNNER)
        theirs = torch.load(out, weights_only=True)
    ours = VGGFeatures(load_weights("caffe").trunk, list(CHECKED), "max", CAFFE)
    with torch.no_grad():
        reference = ours(pixels.float() / 255)
    errors = {}
    for layer, key in CHECKED.items():
        scale = scales[layer.replace("relu", "conv")].view(1, -1, 1, 1)
        scale = torch.where(scale > DEAD, scale, torch.ones_like(scale))
        difference = (theirs[key] * scale - reference[layer]).abs().max()
        errors[layer] = (difference / reference[layer].abs().max()).item()
    return errors


def _content_at(content: Path, final_px: int, work_dir: Path) -> Path:
    """The photo resized to ``final_px`` long edge as our renders resize it (bicubic float,
    8-bit PNG in ``work_dir``): SPST styles the content file at its own size."""
    image = resize_long_edge(load_image(content, "content"), final_px)
    pixels = image.clamp(0, 1).mul(255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    path = work_dir / f"content-{final_px}px.png"
    Image.fromarray(pixels).save(path)
    return path


def run_spst(
    content: Path,
    style: Path,
    final_px: int,
    work_dir: Path,
    *,
    scales: int = 4,
    iterations_mode: str = "spst-fast",
    threads: int = 2,
    normalized: bool = True,
) -> tuple[Image.Image, float, int, dict]:
    """Run SPST's ``spst.py`` through ``spst_runner.py stylize`` in its venv on the photo at
    ``final_px`` and the painting file at its own size (SPST's defaults: ``downscale_style``,
    ``--wmeanstd`` 1000).

    Args:
        content, style: image files.
        final_px: the output's long edge in px (the content is resized to it first).
        work_dir: folder for the resized content, SPST's results folder, ``spst-FINALpx.png``
            and ``spst-result.json`` (created).
        scales: ×2 scales ending at ``final_px`` (4: ``spst-fast`` is 600, 200, 66, 30).
        iterations_mode: SPST's ``--iterations_mode`` (``debug``: 10 per scale).
        threads: CPU threads.
        normalized: the normalized weights (module docstring) or our raw ones.

    Returns:
        The output image (8-bit RGB), the seconds of SPST's script (weights load, targets and
        every scale; not the process start and imports: ``process_seconds`` in the JSON), the
        evaluations counted, and the whole JSON record.

    Raises:
        FileNotFoundError: no SPST checkout.
        RuntimeError: the venv could not be made, or the run failed.
    """
    python, path = _prepared(normalized)
    work_dir.mkdir(parents=True, exist_ok=True)
    output, result = work_dir / f"spst-{final_px}px.png", work_dir / "spst-result.json"
    output.unlink(missing_ok=True)
    arguments = [
        "stylize", "--weights", str(path), "--content", str(_content_at(content, final_px,
        work_dir)), "--style", str(style.resolve()), "--out", str(output), "--result",
        str(result), "--work", str(work_dir / "spst"), "--scales", str(scales),
        "--iterations-mode", iterations_mode, "--threads", str(threads),
    ]  # fmt: skip
    process_seconds = run_runner(python, arguments, runner_env(CHECKOUT, threads), RUNNER)
    record = json.loads(result.read_text())
    record.update(process_seconds=process_seconds, normalized=normalized)
    result.write_text(json.dumps(record, indent=1) + "\n")
    with Image.open(output) as img:
        image = img.convert("RGB")
    return image, record["seconds"], record["evaluations"], record


def main() -> None:
    """Set SPST up, check its features against ours (both weight variants), time one run."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--final", type=int, default=128, help="output long edge, px")
    parser.add_argument("--mode", default="debug", help="SPST --iterations_mode (debug: 10)")
    parser.add_argument("--scales", type=int, default=2, help="×2 scales")
    parser.add_argument("--work", type=Path, default=Path("/tmp/spst-smoke"), help="folder")
    args = parser.parse_args()
    print(f"SPST venv python: {ensure_spst()}")
    image = resize_long_edge(load_image(EXAMPLES / "tubingen.jpg", "content"), 128)
    for normalized in (False, True):
        write_spst_weights(normalized)
        errors = check_features(image, normalized)
        print(f"{'normalized' if normalized else 'raw'}: max relative difference, SPST·s vs "
              + "ours: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))  # fmt: skip
    scales = torch.load(weights_path(True).with_suffix(".scales.pt"), weights_only=True)
    print("mean activation per layer (raw Caffe VGG19, proxy images): " + ", ".join(
        f"{conv.replace('conv', 'relu')} {scales[conv].mean():.3g}" for conv in CONVS
        if conv.replace("conv", "relu") in CHECKED
    ))  # fmt: skip
    out, seconds, evaluations, record = run_spst(
        EXAMPLES / "tubingen.jpg", EXAMPLES / "starry_night.jpg", args.final, args.work,
        scales=args.scales, iterations_mode=args.mode,
    )  # fmt: skip
    print(f"SPST at {args.final} px ({out.size[0]}×{out.size[1]}): {evaluations} evaluations, "
          f"scales {record['scales']}, {seconds:.1f} s (process {record['process_seconds']:.1f} "
          f"s, median step {record['step_seconds'] or 0:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
