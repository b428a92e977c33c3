"""``stylecascade inspect``: the layer-reconstructions grid of Gatys et al.'s Figure 1."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from .errors import UsageError
from .images import load_image
from .output import to_pil
from .pictures import labelled_grid
from .progress import Step
from .stages.reconstruct import reconstruct
from .stages.resample import resize_long_edge
from .stages.vgg import VGGFeatures, min_input_size
from .weights import load_weights

CONTENT_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
"""Layers whose content reconstructions Gatys et al. (2016), Fig. 1, show."""
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
"""Style reconstructions use growing sets of these: relu1_1, then relu1_1 + relu2_1, …"""


def _style_label(count: int) -> str:
    """``relu1_1``, ``relu1_1 + relu2_1``, ``relu1_1 ... relu3_1``, ... (ASCII for the font)"""
    layers = STYLE_LAYERS[:count]
    return " + ".join(layers) if count <= 2 else f"{layers[0]} ... {layers[-1]}"


def _check_short_edge(image: torch.Tensor, role: str, long_edge: int) -> None:
    """Refuse a reconstruction too small for the deepest layer shown (``relu5_2``: 16 px).

    Raises:
        UsageError: the short edge of ``image`` ``(1, 3, H, W)`` is under the minimum.
    """
    need = min_input_size(CONTENT_LAYERS + STYLE_LAYERS)
    h, w = image.shape[-2:]
    if min(h, w) < need:
        wanted = math.ceil(need * max(h, w) / min(h, w))
        raise UsageError(
            f"--size {long_edge} makes the {role} {w}×{h} px; the network needs {need} px on "
            f"the short edge: use --size {wanted} or more"
        )


def layer_reconstructions(
    content_path: Path,
    style_path: Path,
    *,
    weights: str,
    device: torch.device,
    long_edge: int,
    iterations: int,
    seed: int,
    step: Step,
    done: Callable[[str], None] | None = None,
) -> Image.Image:
    """A labelled grid: the content reconstructed from each of :data:`CONTENT_LAYERS` (top row)
    and the style reconstructed from growing sets of :data:`STYLE_LAYERS` (bottom row), each
    from white noise by L-BFGS (:func:`stylecascade.stages.reconstruct.reconstruct`).

    Args:
        content_path, style_path: the photo and the painting.
        weights: VGG19 weights spec (``caffe``, ``torchvision`` or a path).
        device: where to compute.
        long_edge: long edge of the reconstructions in px.
        iterations: L-BFGS evaluations per reconstruction.
        seed: seeds the noise.
        step: reports the weights download.
        done: called with each picture's label when it is finished (progress).

    Raises:
        UsageError: unreadable images, or ``long_edge`` leaves a short edge under 16 px;
        WeightsError: weights cannot be loaded.
    """
    content = resize_long_edge(load_image(content_path, "content"), long_edge).to(device)
    style = resize_long_edge(load_image(style_path, "style"), long_edge).to(device)
    for image, role in ((content, "photo"), (style, "painting")):
        _check_short_edge(image, role, long_edge)
    net = load_weights(weights, step)
    rows: list[list[tuple[Image.Image, str]]] = [[], []]
    jobs = [(content, (layer,), "content", layer) for layer in CONTENT_LAYERS]
    jobs += [(style, STYLE_LAYERS[:n], "style", _style_label(n)) for n in range(1, 6)]
    for target, layers, kind, label in jobs:
        extractor = VGGFeatures(net.trunk, layers, "max", net.normalization, channels_last=True).to(
            device
        )
        generator = torch.Generator().manual_seed(seed)
        image = reconstruct(extractor, target, layers, kind, iterations, generator)
        rows[0 if kind == "content" else 1].append((to_pil(image), label))
        if done is not None:
            done(label)
    return labelled_grid(
        rows,
        [
            "content reconstructions from one layer (Gatys et al. 2016, Fig. 1)",
            "style reconstructions from growing sets of layers",
        ],
    )
