"""VGG19 feature extractor with named layers (Simonyan & Zisserman 2015, "Very Deep
Convolutional Networks for Large-Scale Image Recognition").

The network is built from a small configuration, in the same module order as
``torchvision.models.vgg19().features``, so state dicts of either load into it. Layers are
named as in Gatys et al. (2016): ``conv1_1, relu1_1, …, pool1, …, relu5_4, pool5``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .vocabulary import LAYER_NAMES, POOLINGS, VGG19_BLOCKS


def build_vgg19_features(width: float = 1.0) -> nn.Sequential:
    """Build the VGG19 convolutional trunk with random weights.

    Args:
        width: channel multiplier; 1.0 is the real VGG19. Tests use e.g. 1/16 for a tiny network
            with the same layers, names and state-dict keys.

    Returns:
        ``nn.Sequential`` of 37 modules, indexed like ``torchvision.models.vgg19().features``
        (state-dict keys ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, …).
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for convs in VGG19_BLOCKS:
        for channels in convs:
            out_channels = max(1, round(channels * width))
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU()]
            in_channels = out_channels
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def evaluation_flops(deepest: str, height: int, width: int) -> float:
    """FLOPs of one objective evaluation through VGG19 up to ``deepest``: each 3×3
    convolution's forward ``2·C_in·C_out·9·H·W`` on a ``height × width`` px input, twice (the
    backward pass computes the input gradient only; the weights are frozen). Pools, ReLUs and
    the losses are left out (1–19 % of an evaluation, ``benchmarks/step_overhead.py``).

    Example: 284 GFLOP at 512 × 384 px through relu5_1.
    """
    last, flops, scale, channels = LAYER_NAMES.index(deepest), 0.0, 1, 3
    for block, convs in enumerate(VGG19_BLOCKS, start=1):
        for i, out in enumerate(convs, start=1):
            if LAYER_NAMES.index(f"conv{block}_{i}") > last:
                return 2 * flops
            flops += 2 * channels * out * 9 * (height // scale) * (width // scale)
            channels = out
        scale *= 2
    return 2 * flops


@dataclass(frozen=True)
class Normalization:
    """How an RGB image in 0–1 is turned into the network's input: ``(x·scale − mean) / std``.

    The original Caffe VGG19 weights expect RGB in 0–255 minus the ImageNet mean and no std
    (``CAFFE``); torchvision's weights expect 0–1 RGB normalized by ImageNet mean and std
    (``IMAGENET``).
    """

    name: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CAFFE = Normalization("caffe", 255.0, (123.68, 116.779, 103.939), (1.0, 1.0, 1.0))
IMAGENET = Normalization("imagenet", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALIZATIONS = {n.name: n for n in (CAFFE, IMAGENET)}


def deepest_layer(layers: Iterable[str]) -> str:
    """The layer of ``layers`` that comes last in the network (names from :data:`LAYER_NAMES`)."""
    return max(layers, key=LAYER_NAMES.index)


def min_input_size(layers: Iterable[str]) -> int:
    """Smallest height and width (px) for which every one of ``layers`` has at least one position.

    Each 2×2 pool up to and including the deepest layer halves the size: ``relu5_1`` (after
    four pools) needs 16 px, ``pool5`` 32 px.
    """
    index = LAYER_NAMES.index(deepest_layer(layers))
    pools = sum(1 for name in LAYER_NAMES[: index + 1] if name.startswith("pool"))
    return 2**pools


class VGGFeatures(nn.Module):
    """Frozen VGG19 trunk that returns the activations of the requested layers.

    The trunk is truncated after the deepest requested layer, its max pools are replaced by
    average pools when ``pooling="avg"`` (Gatys et al. 2016, Sec. 2: average pooling "improves
    the gradient flow and one obtains slightly more appealing results"), and its ReLUs are made
    out-of-place so that a captured ``conv*`` activation is not overwritten by the next ReLU.

    Args:
        trunk: the 37-module VGG19 ``features`` (see :func:`build_vgg19_features`), weights loaded.
        layers: names from :data:`LAYER_NAMES` to return.
        pooling: ``"max"`` or ``"avg"``.
        normalization: input preprocessing that matches the weights' source.
        channels_last: run the convolutions in NHWC memory layout (faster on CUDA tensor cores
            and, by ~5 %, on CPU); the caller's image keeps its own layout.

    Raises:
        ValueError: unknown layer name or pooling, or no layers.
    """

    def __init__(
        self,
        trunk: nn.Sequential,
        layers: Iterable[str],
        pooling: str = "max",
        normalization: Normalization = CAFFE,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.layers = frozenset(layers)
        unknown = sorted(self.layers - set(LAYER_NAMES))
        if unknown:
            raise ValueError(f"unknown VGG19 layer(s) {unknown}; known: {', '.join(LAYER_NAMES)}")
        if not self.layers:
            raise ValueError("VGGFeatures needs at least one layer")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.deepest = deepest_layer(self.layers)
        self.pooling = pooling
        self.normalization = normalization
        modules: list[nn.Module] = []
        kept = LAYER_NAMES[: LAYER_NAMES.index(self.deepest) + 1]
        for name, module in zip(kept, trunk, strict=False):
            if name.startswith("relu"):
                module = nn.ReLU(inplace=False)
            elif name.startswith("pool"):
                module = nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2)
            else:
                module = copy.deepcopy(module)  # the caller's trunk stays as it was
            modules.append(module)
        self.net = nn.Sequential(*modules).eval().requires_grad_(False)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        self.register_buffer("_mean", torch.tensor(normalization.mean).view(1, 3, 1, 1))
        self.register_buffer("_std", torch.tensor(normalization.std).view(1, 3, 1, 1))

    def through(self, layers: Iterable[str]) -> VGGFeatures:
        """This network returning only ``layers`` and run only as deep as they go (a stage of
        its own, shallower layers pays for those alone: through ``relu3_1`` is 31 % of the
        FLOPs through ``relu5_1``, :func:`evaluation_flops`). The modules and weights are
        shared, not copied; the views are kept per layer set.

        Raises:
            ValueError: a layer deeper than this network's.
        """
        wanted = frozenset(layers)
        if wanted == self.layers:
            return self
        views = self.__dict__.setdefault("_views", {})
        if wanted not in views:
            deeper = sorted(wanted - set(LAYER_NAMES[: len(self.net)]))
            if deeper or not wanted:
                raise ValueError(f"layers {deeper or '(none)'} are beyond this network")
            view = copy.copy(self)
            view._modules = dict(self._modules)  # its own module table, the same modules
            view.__dict__.pop("_views")
            view.layers, view.deepest = wanted, deepest_layer(wanted)
            view.net = self.net[: LAYER_NAMES.index(view.deepest) + 1]
            views[wanted] = view
        return views[wanted]

    @property
    def min_size(self) -> int:
        """Smallest input height/width (px) the deepest layer accepts."""
        return min_input_size(self.layers)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Compute the requested activations.

        Args:
            image: ``(B, 3, H, W)`` RGB in 0–1, ``H, W ≥ min_size``.

        Returns:
            ``{layer name: (B, C, H', W') activation}`` for every requested layer.

        Raises:
            ValueError: the image is smaller than :attr:`min_size`.
        """
        h, w = image.shape[-2:]
        if min(h, w) < self.min_size:
            raise ValueError(
                f"image is {w}×{h} px but layer {self.deepest} needs at least "
                f"{self.min_size}×{self.min_size} px"
            )
        x = (image * self.normalization.scale - self._mean) / self._std
        x = x.contiguous(memory_format=self.memory_format)
        out: dict[str, Tensor] = {}
        for name, module in zip(LAYER_NAMES, self.net, strict=False):
            x = module(x)
            if name in self.layers:
                out[name] = x
        return out
