"""Run the peer tool neural-style-pt (PyPI ``neural-style==0.5.7``, the PyTorch port of
jcjohnson/neural-style) offline, with our converted Caffe VGG19 weights.

- :func:`ensure_installed` puts the package into ``benchmarks/.peers/neural-style`` with pip
  (``--no-deps``: torch, torchvision and Pillow come from our environment).
- :func:`write_model` writes our ``caffe`` VGG19 weights as the state dict its loader reads.
- :func:`check_features` compares its network (its loader, its preprocessing) with ours.
- :func:`run_multires` runs its multi-resolution recipe (jcjohnson/neural-style README) through
  its command line, one process per size.

What ``-num_iterations N`` counts: with ``-optimizer lbfgs`` the peer makes one
``torch.optim.LBFGS(max_iter=N, tolerance_grad=-1, tolerance_change=-1)`` step, with no line
search (fixed step: ``min(1, 1/‖g‖₁)`` on the first iteration, 1 afterwards) and ``max_eval`` left
at its default ``N·5//4``, which never binds. That step evaluates the objective (forward +
backward) once at the start and once after each of the first ``N − 1`` updates, so ``N``
evaluations in all; the ``N``-th update is applied after the last evaluation and never saved: the
output file is the iterate of the ``N``-th evaluation (``N − 1`` updates). So ``-num_iterations``
is already the number of objective evaluations: pass the evaluation budget unchanged. Each run
also makes two forward passes without a gradient (content and style targets), not counted. With
``N = 1`` its loop makes a second step (2 evaluations, output = the initial image), so
:func:`run_multires` asks for ``N ≥ 2``.

Peer quirks this adapter works with:

- Its preprocessing is ``ToTensor()·256`` (not 255), RGB → BGR, minus the Caffe mean
  ``(103.939, 116.779, 123.68)``, as the Lua original did; its output is ``(x + mean)/256``
  clamped to 0–1 and truncated to 8 bits. With the original Caffe weights (which expect 0–255)
  its features are therefore those of the image scaled by 256/255; we keep that behaviour (we do
  not fold 255/256 into conv1_1), so the peer runs as it does with its own ``vgg19-d01eb7cb.pth``.
- ``neural_style/neural_style.py`` parses ``sys.argv`` when imported; :func:`check_features`
  imports it with a neutral ``sys.argv``.
- Its loader picks the architecture from substrings of the lower-cased ``-model_file`` string
  (the whole path): ``vgg`` and ``19`` select VGG-19 unless ``pruning``, ``fcn32s`` or ``sod``
  occur anywhere in it. With ``-disable_check`` it loads ``strict=False``, so wrong keys would
  silently leave random weights: :func:`check_features` is what proves the file is right.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch
from PIL import Image
from stylecascade.files import atomic_write
from stylecascade.images import load_image
from stylecascade.stages.resample import resize_long_edge
from stylecascade.stages.vgg import CAFFE, VGGFeatures
from stylecascade.weights import load_weights
from torch import Tensor, nn

VERSION = "0.5.7"
PACKAGE = f"neural-style=={VERSION}"
PEERS = Path(__file__).resolve().parent / ".peers"
MODEL = PEERS / "vgg19-stylecascade.pth"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PEER_SCALE = 256.0
"""The peer multiplies 0–1 pixels by 256 (ours, like Caffe, by :attr:`CAFFE.scale` = 255)."""
CHECK_LAYER = "relu4_2"


def ensure_installed(root: Path = PEERS) -> Path:
    """Install ``neural-style==0.5.7`` into ``root/neural-style`` unless it is already there.

    Runs ``python -m pip install --no-deps --upgrade --target root/neural-style
    neural-style==0.5.7`` with this interpreter (needs PyPI or pip's configured index).

    Args:
        root: folder for peer tools (default ``benchmarks/.peers``, git-ignored).

    Returns:
        The install folder, to put on ``sys.path`` / ``PYTHONPATH``.

    Raises:
        RuntimeError: pip failed (the message holds pip's last line).
    """
    target = root / "neural-style"
    if (target / f"neural_style-{VERSION}.dist-info").is_dir():
        return target
    command = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--upgrade",
        "--disable-pip-version-check", "--target", str(target), PACKAGE,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        raise RuntimeError(f"pip could not install {PACKAGE}: {lines[-1] if lines else '?'}")
    return target


def _check_model_name(model_file: str) -> None:
    """Refuse a ``-model_file`` string from which the peer's loader would not pick VGG-19."""
    name = model_file.lower()
    if (
        "vgg" not in name
        or "19" not in name
        or any(s in name for s in ("pruning", "fcn32s", "sod"))
    ):
        raise ValueError(
            f"{model_file}: neural-style-pt would not load this as VGG-19; the path must contain "
            f"'vgg' and '19' and none of 'pruning', 'fcn32s', 'sod'"
        )


def write_model(path: Path) -> Path:
    """Write our Caffe VGG19 weights in the layout neural-style-pt loads.

    The peer builds ``VGG(features)`` (torchvision's module order) and loads a state dict with
    keys ``features.0.weight``, ``features.0.bias``, ``features.2.weight``, …
    (``features.{0,2,5,7,10,…,34}``; no classifier, hence ``-disable_check``). Our weights are the
    original Caffe ones with conv1_1's input channels reversed to read RGB
    (:func:`stylecascade.weights_fetch.convert_keras_h5`, no other change: no scaling, the mean is
    subtracted outside); they are reversed back here, since the peer feeds BGR. Its 256 scale is
    left alone (see the module docstring).

    Args:
        path: where to write (``.pth``); its resolved path must select VGG-19 in the peer's loader.

    Returns:
        ``path``.

    Raises:
        ValueError: the path would not select VGG-19.
        stylecascade.weights.WeightsError: our weights cannot be fetched or loaded.
    """
    _check_model_name(str(path.resolve()))
    trunk = load_weights("caffe").trunk
    state = {f"features.{key}": value for key, value in trunk.state_dict().items()}
    state["features.0.weight"] = state["features.0.weight"].flip(1).contiguous()  # RGB → BGR
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def _import_peer(install: Path) -> tuple[ModuleType, ModuleType]:
    """Import the peer's script module and its loader from ``install``."""
    if str(install) not in sys.path:
        sys.path.insert(0, str(install))
    argv = sys.argv
    sys.argv = [argv[0]]  # its module-level parse_args() must not see our arguments
    try:
        script = importlib.import_module("neural_style.neural_style")
    finally:
        sys.argv = argv
    return script, importlib.import_module("neural_style.loader.CaffeLoader")


def check_features(model_path: Path, image: Tensor) -> float:
    """Compare the peer's VGG19 (its loader, its preprocessing) with ours at ``relu4_2``.

    The image is written as an 8-bit PNG and read back by the peer's ``preprocess`` at its own
    size (no resampling); its network is built by ``loadCaffemodel`` from ``model_path`` (max
    pooling, CPU). Ours (:class:`stylecascade.stages.vgg.VGGFeatures`, Caffe normalization) gets
    the same 8-bit pixels scaled by 256/255, i.e. exactly the peer's network input, so the number
    measures the weight conversion alone (layout, channel order, scale), not the peer's 256
    preprocessing (which moves relu4_2 by about 0.4 % of its maximum).

    Args:
        model_path: a file from :func:`write_model`.
        image: ``(1, 3, H, W)`` RGB in 0–1, ``H, W ≥ 16`` px.

    Returns:
        ``max |peer − ours| / max |ours|`` over all relu4_2 activations (dimensionless).

    Raises:
        RuntimeError: the peer could not be installed.
    """
    script, loader = _import_peer(ensure_installed())
    pixels = image.clamp(0, 1).mul(255).round().to(torch.uint8)
    height, width = image.shape[-2:]
    with tempfile.TemporaryDirectory(prefix="nspt-check-") as tmp:
        png = Path(tmp) / "image.png"
        Image.fromarray(pixels[0].permute(1, 2, 0).numpy()).save(png)
        with contextlib.redirect_stdout(io.StringIO()):  # the loader reports every layer
            peer_input = script.preprocess(str(png), (height, width))
            trunk, names = loader.loadCaffemodel(str(model_path.resolve()), "max", "c", True)
    relus = [i for i, module in enumerate(trunk) if isinstance(module, nn.ReLU)]
    depth = relus[names["R"].index(CHECK_LAYER)] + 1
    ours = VGGFeatures(
        load_weights("caffe").trunk, [CHECK_LAYER], pooling="max", normalization=CAFFE
    )
    with torch.no_grad():
        theirs = trunk[:depth](peer_input)
        reference = ours(pixels.float() / 255 * (PEER_SCALE / CAFFE.scale))[CHECK_LAYER]
    return ((theirs - reference).abs().max() / reference.abs().max()).item()


def run_multires(
    content: Path,
    style: Path,
    sizes: Sequence[int],
    iterations: Sequence[int],
    out_dir: Path,
    *,
    threads: int = 2,
    extra: Sequence[str] = (),
    model: Path = MODEL,
    root: Path = PEERS,
) -> tuple[Path, list[float]]:
    """Run neural-style-pt's multi-resolution recipe: one CLI run per size, each started from
    the previous output.

    Run ``i`` is ``python -m neural_style.neural_style -content_image CONTENT -style_image STYLE
    -image_size sizes[i] -num_iterations iterations[i] -init image [-init_image PREVIOUS]
    -optimizer lbfgs -gpu c -backend nn -model_file MODEL -disable_check -print_iter 0
    -save_iter 0 -output_image OUT_DIR/stage{i+1}-{size}px.png EXTRA…``; everything else is the
    peer's default: content_weight 5, style_weight 100, tv_weight 1e-3, content layer relu4_2,
    style layers relu1_1,relu2_1,relu3_1,relu4_1,relu5_1, max pooling, lbfgs_num_correction 100,
    style image at the same long edge (style_scale 1). ``-init_image`` is resized (bilinear, from
    the 8-bit PNG) to the content size. ``extra`` comes last, so it overrides any of these.
    ``iterations[i]`` is the number of objective evaluations of run ``i`` (module docstring).

    Installs the peer and writes ``model`` first if either is missing. Each run is a fresh
    process with ``OMP_NUM_THREADS=MKL_NUM_THREADS=threads``.

    Args:
        content, style: image files (no commas in the style path: the peer splits it on them).
        sizes: long edge of each run in px, coarse to fine.
        iterations: ``-num_iterations`` of each run (≥ 2), one per size.
        out_dir: folder for the outputs (created; earlier outputs of the same names replaced).
        threads: CPU threads of each run.
        extra: further peer arguments, e.g. ``("-seed", "0")``.
        model: weights file from :func:`write_model`.
        root: peer install root for :func:`ensure_installed`.

    Returns:
        The last run's output PNG (RGB, 8-bit) and the wall seconds of each run. These include
        a fixed cost per run besides the optimization, about 11 s on our busy 2-core CPU: the
        process start and imports (~8 s; ``import torchvision.transforms`` pulls in
        torchvision's models and ``torch._dynamo``), building the peer's VGG19 (~3 s, mostly the
        random initialisation of its unused 4096-wide classifier), loading the weights, and the
        content and style target passes.

    Raises:
        ValueError: mismatched or empty sizes / iterations, an iteration count below 2, a comma
            in the style path, or a model path the peer would not read as VGG-19.
        RuntimeError: a run failed (the message holds its last output lines).
    """
    if not sizes or len(sizes) != len(iterations):
        raise ValueError(f"need one iteration count per size, got {sizes} and {iterations}")
    if min(iterations) < 2:
        raise ValueError(
            f"-num_iterations below 2 does not give that many evaluations: {iterations}"
        )
    if "," in str(style):
        raise ValueError(f"{style}: neural-style-pt splits style paths on commas")
    model_file = str(model.resolve())
    _check_model_name(model_file)
    install = ensure_installed(root)
    if not model.exists():
        write_model(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [str(install), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    outputs: list[Path] = []
    seconds: list[float] = []
    for stage, (size, count) in enumerate(zip(sizes, iterations, strict=True), start=1):
        output = out_dir / f"stage{stage}-{size}px.png"
        output.unlink(missing_ok=True)
        init = ["-init", "image", *(["-init_image", str(outputs[-1])] if outputs else [])]
        command = [
            sys.executable, "-m", "neural_style.neural_style",
            "-content_image", str(content), "-style_image", str(style),
            "-image_size", str(size), "-num_iterations", str(count), *init,
            "-optimizer", "lbfgs", "-gpu", "c", "-backend", "nn",
            "-model_file", model_file, "-disable_check",
            "-print_iter", "0", "-save_iter", "0", "-output_image", str(output),
            *extra,
        ]  # fmt: skip
        began = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - began)
        if proc.returncode != 0 or not output.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
            raise RuntimeError(
                f"neural-style-pt at {size} px exited with {proc.returncode}:\n{tail}"
            )
        outputs.append(output)
    return outputs[-1], seconds


if __name__ == "__main__":
    print(f"{PACKAGE} in {ensure_installed()}")
    model = write_model(MODEL)
    image = resize_long_edge(load_image(EXAMPLES / "tubingen.jpg", "content"), 128)
    print(
        f"{CHECK_LAYER} max relative difference, peer vs ours: {check_features(model, image):.2e}"
    )
    final, seconds = run_multires(
        EXAMPLES / "tubingen.jpg",
        EXAMPLES / "starry_night.jpg",
        sizes=(64, 128),
        iterations=(5, 5),
        out_dir=Path("/tmp/nspt-smoke"),
    )
    timings = ", ".join(f"{s:.1f} s" for s in seconds)
    print(f"multires 64 → 128 px, 5 + 5 evaluations: {timings} (total {sum(seconds):.1f} s)")
    print(f"final image: {final}")
