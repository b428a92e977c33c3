"""Run the peer tool crowsonkb/style-transfer-pytorch ("CK") offline, from its own source
checkout, in a venv of its own, with our converted Caffe VGG19 weights.

CK is not on PyPI: its source is a git checkout (default ``benchmarks/.peers/
style-transfer-pytorch``, git-ignored; written against commit :data:`CK_COMMIT`), made with
``git clone https://github.com/crowsonkb/style-transfer-pytorch PATH``. None of its code is in
this repository. Its own venv (default ``benchmarks/.peers/ck-venv``) holds the packages its
``setup.py`` asks for, installed by :func:`ensure_ck` with ``pip install -c constraints.txt``;
CK itself is not installed: ``ck_runner.py`` puts the checkout on ``sys.path``.

- :func:`ensure_ck` checks the checkout and creates the venv if it is missing.
- :func:`write_ck_weights` writes our Caffe VGG19 as the torchvision ``features`` state dict CK
  expects, with CK's input normalization folded into conv1_1 (:func:`fold_normalization`).
- :func:`check_features` compares CK's relu4_2 (its ``VGGFeatures``, its input) with ours.
- :func:`run_ck` runs CK's ``StyleTransfer.stylize`` (Adam, its multi-scale schedule) through
  ``ck_runner.py`` in CK's venv and returns the image, the seconds and the evaluations.

What CK does (read from its source at :data:`CK_COMMIT`): torchvision's VGG19 (``models.vgg19(
weights=VGG19_Weights.IMAGENET1K_V1)``) on 0–1 RGB normalized by the ImageNet mean and std,
conv1_1 rebuilt with ``padding_mode="replicate"``, max pooling by default (``average`` and
``l2`` on request, rescaled); content layer relu4_2 (index 22), MSE; style layers relu1_1,
relu2_1, relu3_1, relu4_1, relu5_1 (indices 1, 6, 11, 20, 29) weighted 256:64:16:4:1 (summed to
1), a Wasserstein-2 loss on each layer's mean and covariance; a 9-point L2 TV loss; Adam (lr
``step_size`` 0.02, betas 0.9/0.99), one ``opt.step(closure)`` per iteration, the image clamped
to 0–1 after each, an EMA of the iterates (decay 0.99) as the output; scales from ``min_scale``
(128) to ``end_scale`` in steps of √2 (``round(end / 2**(i/2))``), ``initial_iterations`` (1000)
at the first, ``iterations`` (500) at each later one, Adam's moments resized to warm-start it.
Its defaults: content weight 0.015, TV weight 2. Each iteration is one forward + backward
(one evaluation); each scale also makes two forward passes without a gradient (content and
style targets), not counted.

Weights: our network reads ``255·x − μ_caffe`` (RGB, zero padding); CK feeds conv1_1
``(x − m)/s``. With ``W' = W·255·s`` and ``b' = b + Σ W·(255·m − μ_caffe)`` CK's conv1_1
computes ours exactly wherever its 3×3 window lies inside the image. At the border CK pads its
input by replication, which (being per-pixel affine) equals replicating ``255·x − μ_caffe``,
while ours pads that with zeros (the Caffe mean colour): an edge difference that is CK's own
design (it does the same with its own weights), confined to :data:`BORDER` = 5 px at relu4_2
(1/8 scale). Measured by :func:`check_features` on tubingen.jpg at 128 px (max |CK − ours| /
max |ours| at relu4_2): 2.7e-1 over the whole map, 1.0e-7 more than 5 px from the edge, 2.5e-7
over the whole map against ours with a replicate-padded conv1_1: the fold is exact.

Cost on a CPU: CK's Wasserstein-2 style loss takes a matrix square root (12 Newton–Schulz
iterations, forward and backward) of a 512×512 matrix for relu4_1 and for relu5_1 at every
evaluation, about 2 s each on our busy 2-core CPU whatever the image size; one CK step at
128–181 px took 4.7 s (median), against about 0.2 s for one of ours at 128 px. Its default
schedule (1000 + 500 per later scale, 3000 evaluations to 512 px) is hours on this CPU.

Setting up: ``ensure_ck`` makes a 5.5 GB venv (torch's CUDA build and its libraries) in about
2 minutes from pip's local index on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from stylecascade.files import atomic_write
from stylecascade.images import load_image
from stylecascade.stages.resample import resize_long_edge
from stylecascade.stages.vgg import CAFFE, Normalization, VGGFeatures
from stylecascade.weights import load_weights
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / ".peers"
CHECKOUT = PEERS / "style-transfer-pytorch"
VENV = PEERS / "ck-venv"
WEIGHTS = PEERS / "ck-vgg19-caffe-folded.pth"
RUNNER = HERE / "ck_runner.py"
EXAMPLES = ROOT / "examples"
CK_COMMIT = "e7e2c7134e3937be05ff9f5fcc0873fe5ceb6060"
"""The CK commit this adapter was written against (2023-05-21, "Add L-BFGS optimizer")."""
CK_URL = "https://github.com/crowsonkb/style-transfer-pytorch"
CK_REQUIREMENTS = ("aiohttp", "numpy", "Pillow", "tifffile", "torch", "torchvision", "tqdm")
"""CK's ``setup.py`` ``install_requires`` (its package imports aiohttp for the web interface)."""
CK_MEAN = (0.485, 0.456, 0.406)
CK_STD = (0.229, 0.224, 0.225)
CHECK_LAYER = "relu4_2"
BORDER = 5
"""Width (px at relu4_2) that conv1_1's padding reaches: 1 → 2 (conv1_2) → 1 (pool) → 3 (conv2_x)
→ 2 (pool) → 6 (conv3_x) → 3 (pool) → 5 (conv4_1, conv4_2)."""
READY = ".stylecascade-ready"


def ensure_ck(checkout: Path = CHECKOUT, venv: Path = VENV) -> Path:
    """Check CK's checkout and create its venv unless it is ready.

    The venv is made with ``python3 -m venv`` (the base interpreter of this one) and filled with
    ``pip install -c constraints.txt`` + :data:`CK_REQUIREMENTS` (torch and torchvision at the
    project's pinned versions; pip's configured index). A marker file records success, so an
    interrupted install is redone.

    Args:
        checkout: CK's source checkout (its ``style_transfer`` package at the top).
        venv: folder for CK's venv.

    Returns:
        The venv's ``python``.

    Raises:
        FileNotFoundError: no checkout (the message says how to make one).
        RuntimeError: venv creation or pip failed (the message holds the last output line).
    """
    if not (checkout / "style_transfer" / "style_transfer.py").is_file():
        raise FileNotFoundError(
            f"no style-transfer-pytorch checkout at {checkout}; make one with: "
            f"git clone {CK_URL} {checkout} && git -C {checkout} checkout {CK_COMMIT[:12]}"
        )
    return ensure_venv(venv, CK_REQUIREMENTS)


def ensure_venv(venv: Path, requirements: Sequence[str]) -> Path:
    """A peer's own venv with ``requirements``, made unless a marker says it is ready.

    ``python3 -m venv --clear`` with the base interpreter of this one, then ``pip install -c
    constraints.txt`` + ``requirements`` (torch and torchvision at the project's pinned
    versions; pip's configured index). The marker file is written last, so an interrupted
    install is redone.

    Returns:
        The venv's ``python``.

    Raises:
        RuntimeError: venv creation or pip failed (the message holds the last output line).
    """
    python = venv / "bin" / "python"
    if (venv / READY).is_file():
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    commands = [
        [base, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-c",
         str(ROOT / "constraints.txt"), *requirements],
    ]  # fmt: skip
    for command in commands:
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            raise RuntimeError(f"{' '.join(command[:4])}… failed: {lines[-1] if lines else '?'}")
    (venv / READY).write_text(" ".join(requirements) + "\n")
    return python


def fold_normalization(
    weight: Tensor,
    bias: Tensor,
    ours: Normalization = CAFFE,
    mean: tuple[float, float, float] = CK_MEAN,
    std: tuple[float, float, float] = CK_STD,
) -> tuple[Tensor, Tensor]:
    """conv1_1's weight and bias for a network fed ``(x − mean)/std`` that computes what the
    original computes from ``(x·scale − ours.mean)/ours.std`` (``x`` RGB in 0–1).

    With ``x = std·z + mean``: ``(x·scale − μ)/σ = z·(scale·std/σ) + (scale·mean − μ)/σ``, so the
    weight is scaled per input channel by ``scale·std/σ`` and the bias gains
    ``Σ W·(scale·mean − μ)/σ`` over input channels and kernel positions. Exact away from the
    border (module docstring).

    Args:
        weight: ``(out, 3, kh, kw)`` conv1_1 weight reading RGB.
        bias: ``(out,)``.
        ours: the normalization ``weight`` expects.
        mean, std: the normalization the new network is fed (CK's: ImageNet's).

    Returns:
        The new ``(weight, bias)``, float32.
    """
    w, b = weight.double(), bias.double()
    f64 = torch.float64
    sigma = torch.tensor(ours.std, dtype=f64)
    gain = ours.scale * torch.tensor(std, dtype=f64) / sigma
    shift = (
        ours.scale * torch.tensor(mean, dtype=f64) - torch.tensor(ours.mean, dtype=f64)
    ) / sigma
    folded = w * gain.view(1, 3, 1, 1)
    moved = b + (w.sum(dim=(2, 3)) * shift.view(1, 3)).sum(dim=1)
    return folded.float(), moved.float()


def write_ck_weights(path: Path = WEIGHTS) -> Path:
    """Write our Caffe VGG19 as a torchvision ``features`` state dict (keys ``0.weight`` …
    ``34.bias``) for CK's ImageNet-normalized input: conv1_1 folded by
    :func:`fold_normalization`, every other layer unchanged.

    Returns:
        ``path``.

    Raises:
        stylecascade.weights.WeightsError: our weights cannot be fetched or loaded.
    """
    weights = load_weights("caffe")
    state = {key: value.clone() for key, value in weights.trunk.state_dict().items()}
    state["0.weight"], state["0.bias"] = fold_normalization(
        state["0.weight"], state["0.bias"], weights.normalization
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def ck_commit(checkout: Path = CHECKOUT) -> str | None:
    """The commit checked out in ``checkout`` (``git rev-parse HEAD``), or None if it is not a
    git work tree; compare with :data:`CK_COMMIT`."""
    proc = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def runner_env(checkout: Path, threads: int) -> dict[str, str]:
    """Environment of a peer's runner process: the peer's checkout as the only ``PYTHONPATH``
    entry, an empty ``TORCH_HOME`` (no cached hub weights), offline flags, ``threads`` CPU
    threads."""
    home = Path(tempfile.gettempdir()) / "ck-torch-home-empty"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PYTHONPATH=str(checkout), PYTHONNOUSERSITE="1", TORCH_HOME=str(home),
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1",
        OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
    )  # fmt: skip
    return env


def run_runner(
    python: Path, arguments: list[str], env: dict[str, str], runner: Path = RUNNER
) -> float:
    """Run ``RUNNER ARGUMENTS`` with a peer venv's ``python``; returns its wall seconds.

    Raises:
        RuntimeError: it failed (the message holds its last output lines).
    """
    began = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(runner), *arguments], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise RuntimeError(f"{runner.name} {arguments[0]} exited with {proc.returncode}:\n{tail}")
    return seconds


def _prepared(checkout: Path, venv: Path, weights: Path) -> Path:
    """:func:`ensure_ck`, and :func:`write_ck_weights` if ``weights`` is missing; CK's python."""
    python = ensure_ck(checkout, venv)
    if not weights.is_file():
        write_ck_weights(weights)
    return python


def check_features(
    image: Tensor, *, checkout: Path = CHECKOUT, venv: Path = VENV, weights: Path = WEIGHTS
) -> dict[str, float]:
    """Compare CK's relu4_2 (its ``VGGFeatures`` from its normalized input, max pooling, our
    folded weights) with ours (:class:`VGGFeatures`, Caffe trunk and normalization) on the same
    8-bit pixels.

    Args:
        image: ``(1, 3, H, W)`` RGB in 0–1, ``H, W ≥ 8·(2·BORDER + 1)`` px.
        checkout, venv, weights: as for :func:`run_ck`.

    Returns:
        ``max |CK − ours| / max |ours|`` over all relu4_2 activations (``all``), over those more
        than :data:`BORDER` px from the edge (``interior``: the fold alone), and over all of them
        with our conv1_1 also replicate-padded (``replicate``: the fold, edges included).
    """
    python = _prepared(checkout, venv, weights)
    pixels = image.clamp(0, 1).mul(255).round().to(torch.uint8)
    with tempfile.TemporaryDirectory(prefix="ck-check-") as tmp:
        png, out = Path(tmp) / "image.png", Path(tmp) / "relu4_2.pt"
        Image.fromarray(pixels[0].permute(1, 2, 0).numpy()).save(png)
        arguments = ["features", "--weights", str(weights), "--image", str(png), "--out", str(out)]
        run_runner(python, arguments, runner_env(checkout, 1))
        theirs = torch.load(out, weights_only=True)
    trunk = load_weights("caffe").trunk
    ours = VGGFeatures(trunk, [CHECK_LAYER], pooling="max", normalization=CAFFE)
    edged = VGGFeatures(trunk, [CHECK_LAYER], pooling="max", normalization=CAFFE)
    first = edged.net[0]
    assert isinstance(first, nn.Conv2d)
    first.padding_mode = "replicate"
    with torch.no_grad():
        x = pixels.float() / 255
        reference, replicated = ours(x)[CHECK_LAYER], edged(x)[CHECK_LAYER]
    scale = reference.abs().max()
    inner = (slice(None), slice(None), slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    return {
        "all": ((theirs - reference).abs().max() / scale).item(),
        "interior": ((theirs - reference)[inner].abs().max() / scale).item(),
        "replicate": ((theirs - replicated).abs().max() / replicated.abs().max()).item(),
    }


def run_ck(
    content: Path,
    style: Path,
    final_px: int,
    steps_per_scale: int,
    initial_steps: int,
    work_dir: Path,
    *,
    min_px: int = 128,
    threads: int = 2,
    options: dict | None = None,
    checkout: Path = CHECKOUT,
    venv: Path = VENV,
    weights: Path = WEIGHTS,
) -> tuple[Image.Image, float, int]:
    """Run CK's ``StyleTransfer(devices=["cpu"]).stylize(content, [style], min_scale=min_px,
    end_scale=final_px, iterations=steps_per_scale, initial_iterations=initial_steps, **options)``
    in its venv (``ck_runner.py stylize``), with our folded Caffe VGG19.

    Everything not given is CK's default (module docstring): Adam lr 0.02, content weight 0.015,
    TV weight 2, max pooling, init from the content image, style at the same long edge as each
    scale. Images are read by CK's own ``load_image`` (ICC profile → sRGB). Its scales run from
    ``min_px`` to ``final_px`` by √2 (e.g. 128, 181, 256, 362, 512).

    Args:
        content, style: image files.
        final_px: CK's ``end_scale``, the output's long edge in px.
        steps_per_scale: Adam steps at each scale after the first (``iterations``).
        initial_steps: Adam steps at the first scale (``initial_iterations``).
        work_dir: folder for the output PNG and ``ck-result.json`` (created).
        min_px: CK's ``min_scale``.
        threads: CPU threads.
        options: further ``stylize`` keywords (e.g. ``{"content_weight": 0.03}``), and
            ``pooling`` for its constructor.
        checkout, venv, weights: CK's source, its venv, our folded weights (made if missing).

    Returns:
        The output image (CK's EMA iterate, 8-bit RGB), the seconds from building CK's model
        (weights loaded) to ``stylize`` returning (the process start, imports and image reading
        excluded: ``process_seconds`` in the JSON is the whole run), and the evaluations:
        Adam steps over all scales, each one forward + backward, counted by CK's callback.

    Raises:
        FileNotFoundError: no CK checkout.
        RuntimeError: the venv could not be made, or the run failed.
    """
    python = _prepared(checkout, venv, weights)
    work_dir.mkdir(parents=True, exist_ok=True)
    output, result = work_dir / f"ck-{final_px}px.png", work_dir / "ck-result.json"
    output.unlink(missing_ok=True)
    arguments = [
        "stylize", "--weights", str(weights), "--content", str(content), "--style", str(style),
        "--out", str(output), "--result", str(result), "--end-scale", str(final_px),
        "--min-scale", str(min_px), "--iterations", str(steps_per_scale),
        "--initial-iterations", str(initial_steps), "--threads", str(threads),
        "--options", json.dumps(options or {}),
    ]  # fmt: skip
    process_seconds = run_runner(python, arguments, runner_env(checkout, threads))
    record = json.loads(result.read_text())
    record.update(process_seconds=process_seconds, ck_commit=ck_commit(checkout))
    result.write_text(json.dumps(record, indent=1) + "\n")
    with Image.open(output) as img:
        image = img.convert("RGB")
    return image, record["seconds"], record["evaluations"]


def main() -> None:
    """Set CK up, check its features against ours, and time one small run."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ck", type=Path, default=CHECKOUT, help="CK's source checkout")
    parser.add_argument("--venv", type=Path, default=VENV, help="CK's venv (made if missing)")
    parser.add_argument("--final", type=int, default=128, help="end_scale, px")
    parser.add_argument("--steps", type=int, default=5, help="Adam steps per later scale")
    parser.add_argument("--initial-steps", type=int, default=5, help="steps at the first scale")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ck-smoke"), help="output folder")
    args = parser.parse_args()
    print(f"CK venv python: {ensure_ck(args.ck, args.venv)}")
    commit = ck_commit(args.ck)
    note = "" if commit == CK_COMMIT else f" (this adapter was written against {CK_COMMIT[:12]})"
    print(f"CK checkout {args.ck} at {commit or 'an unknown commit'}{note}")
    write_ck_weights(WEIGHTS)
    image = resize_long_edge(load_image(EXAMPLES / "tubingen.jpg", "content"), 128)
    errors = check_features(image, checkout=args.ck, venv=args.venv)
    print(f"{CHECK_LAYER} max relative difference, CK vs ours: " + ", ".join(
        f"{name} {value:.2e}" for name, value in errors.items()
    ))  # fmt: skip
    image, seconds, evaluations = run_ck(
        EXAMPLES / "tubingen.jpg", EXAMPLES / "starry_night.jpg", args.final, args.steps,
        args.initial_steps, args.work, checkout=args.ck, venv=args.venv,
    )  # fmt: skip
    record = json.loads((args.work / "ck-result.json").read_text())
    print(
        f"CK at end_scale {args.final}: {image.size[0]}×{image.size[1]} px, {evaluations} "
        f"evaluations, scales {record['scales']}, {seconds:.1f} s (process "
        f"{record['process_seconds']:.1f} s, model {record['build_seconds']:.1f} s, "
        f"median step {record['step_seconds'] or 0:.2f} s)"
    )
    print(f"output: {args.work / f'ck-{args.final}px.png'}")


if __name__ == "__main__":
    main()
