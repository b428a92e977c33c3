"""What only a CUDA GPU can show: the precision paths (fp32, TF32, bf16 autocast), channels_last,
the memory plan against PyTorch's measured peak, and a render on the GPU through the Python API.

Skipped without CUDA (CI has no GPU). Each test should take at most a few seconds on an H100.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch
from stylecascade import render
from stylecascade.device import precision
from stylecascade.memory import BACKWARD_MARGIN, activation_bytes_per_pixel, stage_bytes
from stylecascade.preset_files import load_preset
from stylecascade.stages.blend import painting_regions
from stylecascade.stages.evaluator import UntiledEvaluator
from stylecascade.stages.gram import gram_matrix
from stylecascade.stages.optim import optimize
from stylecascade.stages.terms import TermContext, build_objective, weighted_terms
from stylecascade.stages.tiling import TiledEvaluator
from stylecascade.stages.vgg import CAFFE, IMAGENET, VGGFeatures, build_vgg19_features
from stylecascade.stages.vocabulary import LBFGS_HISTORY
from stylecascade.weights import cached_path

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (PyTorch sees none)"
)

CUDA = torch.device("cuda")
MODEL = load_preset("standard").model  # relu4_2 content, relu1_1 … relu5_1 style, max pooling
_LAST = load_preset("standard").stages[-1]  # the weights of the presets' final stages
WEIGHTS = {k: getattr(_LAST, k) for k in ("content_weight", "style_weight", "tv_weight")}

# Agreement with strict fp32 of each weighted term and of the total (relative), and of the
# gradient (relative L2 norm of the difference). TF32 rounds the products' inputs to 10 mantissa
# bits, bf16 autocast the network's activations to 7; losses and Gram matrices stay float32. On
# this tiny network a CPU emulation of bf16 (with float32 Gram matrices) measured ≤ 5e-3 on the
# terms and ≤ 1.3e-2 on the gradient.
TOLERANCES = {"tf32": (1e-2, 2e-2), "bf16": (5e-2, 1e-1)}
CHANNELS_LAST_TOLERANCE = 1e-4  # strict fp32 in both layouts: only the summation order differs
PLAN_FACTOR = 2.5
"""The plan may exceed the measured peak by at most this factor: it is 1.6 × the activations
(``BACKWARD_MARGIN``) plus L-BFGS's full history, which weighs most next to bf16's halved
activations (1.6 + 528 / 766 B/px ≈ 2.3 when the peak holds the activations alone)."""


@pytest.fixture(autouse=True)
def _restore_tf32_switches():
    """``stylecascade.device.precision`` sets the process-wide TF32 switches; put them back."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _relative(value: float, reference: float) -> float:
    return abs(value - reference) / max(abs(reference), 1e-30)


def _objective(extractor, content, style):
    """The objective of the presets' final stage for these images."""
    regions = painting_regions(extractor, style, MODEL.style_layers)
    context = TermContext(extractor, content, MODEL.content_layers, regions)
    return build_objective(weighted_terms(**WEIGHTS), context)


def _evaluate(extractor, content, style, start, autocast):
    """The ``standard`` objective evaluated once through the stage's own evaluator: the
    weighted terms (floats, with ``total``) and the gradient on the image."""
    objective = _objective(extractor, content, style)
    image = start.clone().requires_grad_(True)
    _value, terms = UntiledEvaluator(objective, image, autocast).evaluate()
    assert all(t.dtype == torch.float32 for t in terms.values()), terms
    values = {name: t.item() for name, t in terms.items()}
    values["total"] = sum(values.values())
    return values, image.grad.detach().clone()


@pytest.fixture
def tiny_cuda(tiny_trunk, content_image, style_image):
    """The tiny random VGG19 (channels_last, as renders run it), the 64 px example images and a
    seeded random starting image, all on the GPU."""
    extractor = VGGFeatures(tiny_trunk, MODEL.layers, MODEL.pooling, CAFFE, channels_last=True)
    start = torch.rand(content_image.shape, generator=torch.Generator().manual_seed(0))
    return extractor.to(CUDA), content_image.to(CUDA), style_image.to(CUDA), start.to(CUDA)


@pytest.mark.parametrize("name", ["tf32", "bf16"])
def test_tf32_and_bf16_objectives_agree_with_fp32(tiny_cuda, name):
    extractor, content, style, start = tiny_cuda
    effective, strict = precision("fp32", CUDA)
    assert effective == "fp32" and not torch.backends.cudnn.allow_tf32
    reference, reference_grad = _evaluate(extractor, content, style, start, strict)

    effective, autocast = precision(name, CUDA)
    assert effective == name
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    values, grad = _evaluate(extractor, content, style, start, autocast)

    term_tolerance, grad_tolerance = TOLERANCES[name]
    for term, expected in reference.items():
        assert _relative(values[term], expected) <= term_tolerance, (term, values, reference)
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()
    error = ((grad - reference_grad).norm() / reference_grad.norm()).item()
    assert error <= grad_tolerance, f"{name} gradient differs from fp32 by {error:.3g} (relative)"


def test_bf16_runs_the_network_in_bf16_and_keeps_the_gram_matrices_float32(tiny_cuda):
    extractor, _content, _style, start = tiny_cuda
    _effective, autocast = precision("bf16", CUDA)
    image = start.clone().requires_grad_(True)
    with autocast:
        features = extractor(image)
        grams = {layer: gram_matrix(features[layer]) for layer in MODEL.style_layers}
    assert all(f.dtype == torch.bfloat16 for f in features.values())  # autocast is in effect
    assert {layer: g.dtype for layer, g in grams.items()} == dict.fromkeys(grams, torch.float32)
    sum(g.square().mean() for g in grams.values()).backward()  # the Gram's own backward
    assert image.grad.dtype == torch.float32 and torch.isfinite(image.grad).all()


def test_channels_last_gives_the_loss_and_gradient_of_the_contiguous_layout(tiny_trunk, tiny_cuda):
    channels_last, content, style, start = tiny_cuda
    contiguous = VGGFeatures(tiny_trunk, MODEL.layers, MODEL.pooling, CAFFE).to(CUDA)
    _effective, strict = precision("fp32", CUDA)
    assert channels_last(start)["relu1_1"].is_contiguous(memory_format=torch.channels_last)
    assert contiguous(start)["relu1_1"].is_contiguous()

    expected, expected_grad = _evaluate(contiguous, content, style, start, strict)
    values, grad = _evaluate(channels_last, content, style, start, strict)
    for term, value in expected.items():
        assert _relative(values[term], value) <= CHANNELS_LAST_TOLERANCE, (term, values, expected)
    error = ((grad - expected_grad).norm() / expected_grad.norm()).item()
    assert error <= CHANNELS_LAST_TOLERANCE, f"gradients differ by {error:.3g} (relative)"


def _random_vgg19() -> torch.nn.Sequential:
    """The full-width VGG19 trunk, seeded, with He-initialized convolutions and zero biases, so
    that activations stay O(1) through its 16 layers as with trained weights."""
    torch.manual_seed(0)
    trunk = build_vgg19_features()
    for module in trunk:
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)
    return trunk


@pytest.fixture(scope="module")
def full_vgg19() -> VGGFeatures:
    """The full-width random VGG19 to relu5_1, channels_last, on the GPU (memory does not
    depend on the weights' values)."""
    trunk = _random_vgg19()
    return VGGFeatures(trunk, MODEL.layers, MODEL.pooling, IMAGENET, True).to(CUDA)


@pytest.mark.parametrize("name", ["tf32", "bf16"])
def test_the_memory_plan_bounds_the_measured_peak_of_an_lbfgs_stage(full_vgg19, name):
    """At 1024×768 px the plan (``stylecascade.memory.stage_bytes``, what decides tiling) is at
    least PyTorch's peak allocation during L-BFGS evaluations of the full objective, and at most
    ``PLAN_FACTOR`` times it. The plan models what grows with the pixels; at this size the fixed
    costs it leaves to the 10 % headroom (weights, autocast's bf16 weight copies) are a few %."""
    height, width = 768, 1024
    _effective, autocast = precision(name, CUDA)
    with autocast:
        per_pixel = activation_bytes_per_pixel(
            lambda x: sum(f.float().mean() for f in full_vgg19(x).values()), CUDA
        )
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, height, width, generator=generator).to(CUDA)
    style = torch.rand(1, 3, 640, 1024, generator=generator).to(CUDA)
    objective = _objective(full_vgg19, content, style)
    image = content.clone().requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(CUDA)
    base = torch.cuda.memory_allocated(CUDA)
    # enough evaluations for L-BFGS to hold (nearly) its whole history, as a stage does
    optimize(image, "lbfgs", 1.0, 2 * LBFGS_HISTORY, UntiledEvaluator(objective, image, autocast))
    torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated(CUDA) - base
    planned = stage_bytes(per_pixel, height * width, "lbfgs")

    mib = 2**20
    numbers = (
        f"{name}: measured {measured / mib:.0f} MiB, planned {planned / mib:.0f} MiB "
        f"({per_pixel:.0f} B/px saved × {BACKWARD_MARGIN} + L-BFGS state)"
    )
    assert measured <= planned, "the plan underestimates the peak: " + numbers
    assert planned <= PLAN_FACTOR * measured, "the plan is far above the peak: " + numbers


@pytest.fixture(scope="module")
def weights_spec(tmp_path_factory) -> str:
    """``$STYLECASCADE_TEST_WEIGHTS`` when set (the GPU suite's compact weights), the cached
    Caffe weights when present (nothing is downloaded: a GPU machine may have no network), else
    :func:`_random_vgg19` as a torchvision-layout state dict file."""
    if os.environ.get("STYLECASCADE_TEST_WEIGHTS"):
        return os.environ["STYLECASCADE_TEST_WEIGHTS"]
    if cached_path("caffe").is_file():
        return "caffe"
    path = Path(tmp_path_factory.mktemp("weights")) / "vgg19-random.pt"
    torch.save(_random_vgg19().state_dict(), path)
    return str(path)


@pytest.mark.parametrize("name", ["fp32", "tf32", "bf16"])
def test_a_render_on_cuda_through_the_python_api(photos, tiny_preset, weights_spec, name):
    preset = dataclasses.replace(tiny_preset, precision=name)  # 32 → 64 px, L-BFGS
    result = render(photos[0], photos[1], preset=preset, device="cuda", weights=weights_spec)

    assert result.image.size == (64, 48) and result.image.mode == "RGB"
    assert [s.size for s in result.stages] == [(32, 24), (64, 48)]
    tensor = result.tensor
    assert tensor.shape == (1, 3, 48, 64) and tensor.dtype == torch.float32
    assert torch.isfinite(tensor).all() and tensor.min() >= 0 and tensor.max() <= 1
    manifest = result.manifest
    assert manifest["status"] == "done"
    assert manifest["device"] == "cuda" and manifest["precision"] == name
    for stage in manifest["stages"]:
        assert stage["tile"] is None
        assert stage["peak_memory_mib"] > 0 and stage["estimated_memory_mib"] > 0


@pytest.mark.parametrize("tile", [64, 40], ids=["one tile", "four tiles"])
def test_a_tiled_evaluation_on_cuda_matches_the_cpu(tiny_trunk, content_image, style_image, tile):
    """Tiled = untiled on the GPU: one tile over the whole image gives the untiled value and
    gradient; several tiles give, on the GPU, what they give on the CPU (same seed)."""
    results = {}
    for device in ("cpu", CUDA):
        extractor = VGGFeatures(tiny_trunk, MODEL.layers, MODEL.pooling, CAFFE, True).to(device)
        objective = _objective(extractor, content_image.to(device), style_image.to(device))
        image = content_image.to(device).clone().requires_grad_(True)
        image.grad = torch.zeros_like(image)
        with precision("fp32", torch.device(device))[1]:
            tiled = TiledEvaluator(objective, image, tile, 16, torch.Generator().manual_seed(0))
            value, _terms = tiled.evaluate()
        results[device] = (value.item(), image.grad.cpu())
        if tile == 64 and device == CUDA:
            image.grad = torch.zeros_like(image)
            untiled, _ = UntiledEvaluator(objective, image).evaluate()
            assert value.item() == pytest.approx(untiled.item(), rel=1e-5)
    (cpu_value, cpu_grad), (gpu_value, gpu_grad) = results["cpu"], results[CUDA]
    assert gpu_value == pytest.approx(cpu_value, rel=1e-4)
    scale = cpu_grad.abs().max().item()
    torch.testing.assert_close(gpu_grad, cpu_grad, rtol=1e-3, atol=1e-4 * scale)
