"""``stylecascade inspect``: the layer-reconstructions grid of Gatys et al.'s Figure 1, and
the masks of a render at each stage."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from .errors import ArgumentError
from .images import load_image, load_mask
from .output import to_pil
from .pictures import labelled_grid
from .preset_files import load_preset
from .reading import read_json
from .records import Step
from .runner import stage_sizes
from .stages.guides import layer_guide, layer_size
from .stages.reconstruct import reconstruct
from .stages.resample import resize, resize_long_edge
from .stages.vgg import min_input_size
from .stages.vocabulary import LAYER_NAMES
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
        ArgumentError: (field ``size``) the short edge of ``image`` ``(1, 3, H, W)`` is under
            the minimum.
    """
    need = min_input_size(CONTENT_LAYERS + STYLE_LAYERS)
    h, w = image.shape[-2:]
    if min(h, w) < need:
        wanted = math.ceil(need * max(h, w) / min(h, w))
        raise ArgumentError(
            "size",
            f"{{}} {long_edge} makes the {role} {w}×{h} px; the network needs {need} px on "
            f"the short edge: use {{}} {wanted} or more",
            "size",
        )


def reconstruction_targets(
    content_path: Path, style_path: Path, long_edge: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo and the painting of :func:`layer_reconstructions`, read and checked (before
    any folder is made or any weight loaded).

    Returns:
        ``(content, style)``, each ``(1, 3, H, W)`` in 0–1 at ``long_edge`` px, on the CPU.

    Raises:
        UsageError: unreadable images; ArgumentError: ``long_edge`` leaves a short edge
            under 16 px.
    """
    content = resize_long_edge(load_image(content_path, "content"), long_edge)
    style = resize_long_edge(load_image(style_path, "style"), long_edge)
    for image, role in ((content, "photo"), (style, "painting")):
        _check_short_edge(image, role, long_edge)
    return content, style


def layer_reconstructions(
    targets: tuple[torch.Tensor, torch.Tensor],
    *,
    weights: str,
    device: torch.device,
    iterations: int,
    seed: int,
    step: Step,
    done: Callable[[str], None] | None = None,
) -> Image.Image:
    """A labelled grid: the content reconstructed from each of :data:`CONTENT_LAYERS` (top row)
    and the style reconstructed from growing sets of :data:`STYLE_LAYERS` (bottom row), each
    from white noise by L-BFGS (:func:`stylecascade.stages.reconstruct.reconstruct`).

    Args:
        targets: the photo and the painting (:func:`reconstruction_targets`).
        weights: VGG19 weights spec (``caffe``, ``torchvision`` or a path).
        device: where to compute.
        iterations: L-BFGS evaluations per reconstruction.
        seed: seeds the noise.
        step: reports the weights download.
        done: called as each picture is finished, with its row and label (``content conv4_2``).

    Raises:
        WeightsError: weights cannot be loaded.
    """
    content, style = (target.to(device) for target in targets)
    net = load_weights(weights, step)
    rows: list[list[tuple[Image.Image, str]]] = [[], []]
    jobs = [(content, (layer,), "content", layer) for layer in CONTENT_LAYERS]
    jobs += [(style, STYLE_LAYERS[:n], "style", _style_label(n)) for n in range(1, 6)]
    for target, layers, term, label in jobs:
        extractor = net.features(layers).to(device)
        generator = torch.Generator().manual_seed(seed)
        image = reconstruct(extractor, target, layers, term, iterations, generator)
        rows[0 if term == "content" else 1].append((to_pil(image), label))
        if done is not None:
            done(f"{term} {label}")
    return labelled_grid(
        rows,
        [
            "content reconstructions from one layer (Gatys et al. 2016, Fig. 1)",
            "style reconstructions from growing sets of layers",
        ],
    )


def mask_sheet(manifest_path: Path) -> Image.Image:
    """What the masks of a render looked like at each stage: per stage (a row) and masked
    painting, the photo at the stage's size under the mask at ``relu1_1`` (dimmed outside it),
    and the mask as its deepest style layer sees it (``stages.guides.layer_guide``, in the
    preset's ``model.guides`` mode, scaled up with nearest neighbours).

    Args:
        manifest_path: a render's ``OUT.json``.

    Returns:
        The labelled sheet (a row per stage; empty rows for stages without masks).

    Raises:
        PresetError: not a manifest; UsageError: its photo or a mask cannot be read.
    """
    preset = load_preset(str(manifest_path))
    sets, chosen = preset.style_sets()
    manifest = read_json(manifest_path, str(manifest_path))
    photo = load_image(Path(manifest["content"]), "content")
    rows = []
    for n, (h, w) in enumerate(stage_sizes(tuple(photo.shape[-2:]), preset)):
        at_stage = resize(photo, (h, w))
        row = []
        for i, style in enumerate(sets[chosen[n]]):
            if style.mask is None:
                continue
            deepest = max(style.layers or preset.model.style_layers, key=LAYER_NAMES.index)
            guide = resize(load_mask(style.mask, "mask"), (h, w)).clamp(0, 1)
            shallow = layer_guide(guide, layer_size((h, w), "relu1_1"), "relu1_1")
            size = layer_size((h, w), deepest)
            deep = layer_guide(guide, size, deepest, preset.model.guides)
            label = f"stage {n + 1} {w}x{h}: style {i + 1}"
            row.append((to_pil(at_stage * (0.25 + 0.75 * resize(shallow, (h, w)))), label))
            shown = F.interpolate(deep, size=(h, w), mode="nearest").expand(1, 3, h, w)
            row.append((to_pil(shown), f"{deepest} {size[1]}x{size[0]} ({preset.model.guides})"))
        rows.append(row)
    return labelled_grid([row for row in rows if row])
