"""The names the configuration speaks, without torch: VGG19 layer names and poolings,
optimizers, color modes, style kinds, guide modes, the convergence default and the rule for a
set of weights.

``stylecascade.preset`` and the command line import them from here, so that validating a preset
or printing ``--help`` never loads torch; the modules that implement them re-export them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# Output channels of each convolution, one tuple per block; every block ends in a 2×2 pool.
VGG19_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)

POOLINGS = ("max", "avg")


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in enumerate(VGG19_BLOCKS, start=1):
        for i in range(1, len(convs) + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_names()
"""All 37 layer names; position ``i`` is module ``i`` of ``torchvision.models.vgg19().features``."""

CONV_LAYERS: tuple[str, ...] = tuple(n for n in LAYER_NAMES if n.startswith("conv"))


OPTIMIZERS = ("lbfgs", "adam")
"""``torch.optim.LBFGS`` (Gatys et al. 2016) or ``torch.optim.Adam`` (``stages.optim``)."""

COLOR_MODES = ("none", "luminance", "histogram", "luminance-only")
"""Color preservation modes (``stages.color``)."""

LBFGS_HISTORY = 20
"""L-BFGS's history of updates a stage keeps unless it says (``history``): pairs of image-sized
vectors (Galerne et al. 2024 keep 100 at their first scale and 10 above)."""
STYLE_BASES = ("stage", "painting")
"""What a stage's ``style_scale`` multiplies: the stage's long edge (the painting follows the
image: strokes relative to the render) or the painting's own long edge (its real pixels:
texture at 1:1, Galerne et al. 2024)."""
CONTENT_SOURCES = ("photo", "previous")
"""What a stage's content term compares with: the photo, or the previous stage's result
upsampled (a detail stage that keeps the layout and colours found below it)."""
DEFAULT_TOLERANCE = 0.01
"""Relative improvement of the best loss over ``stages.cascade.CONVERGENCE_WINDOW`` evaluations
below which a stage counts as converged (1 %)."""


INITS = ("content", "noise", "style", "style-stats", "style-mean+detail")
"""How the first stage starts (``stages.initial.initial_image``)."""

STYLE_KINDS: Mapping[str, str] = {
    "gram": ".gram:GRAM",
    "w2": ".w2:W2",
    "swd": ".swd:SWD",
}
"""**The one registry of style kinds** (``stages.losses.StyleKind``): a preset's ``style_loss``
name → ``module:attribute`` of the kind's value within ``stylecascade.stages``, written as text
so that this module needs no torch (``stages.terms.style_kind`` imports it on first use).
``gram``: Gram matrices (Gatys et al. 2016, ``stages.gram``); ``w2``: Wasserstein-2 between
Gaussian fits (Li et al. 2017, ``stages.w2``); ``swd``: sliced Wasserstein (Heitz et al. 2021,
``stages.swd``). A new style kind is its module and one line here."""
STYLE_LOSSES: tuple[str, ...] = tuple(STYLE_KINDS)
"""The names of :data:`STYLE_KINDS`, the choices of a preset's ``style_loss``."""

GUIDE_MODES = ("resize", "inside")
"""How a mask (guidance channel) reaches each style layer (``stages.guides.layer_guide``)."""
GUIDE_MODE = "resize"
"""The default; ``benchmarks/guides.py`` measured both."""

MAX_WEIGHT = 1e20
"""The largest weight of anything (a loss term, a layer, a painting): far beyond any useful
ratio, and small enough that weight × loss × pixels stays inside float32 (3.4e38)."""


def weight_problem(weights: Mapping[K, float]) -> tuple[K | None, str] | None:
    """The one rule for a set of weights (layer weights, blend weights): each finite, ≥ 0 and
    ≤ :data:`MAX_WEIGHT`, not all 0.

    Args:
        weights: ``{key: weight}``.

    Returns:
        ``None`` when the weights are usable, else ``(key, problem)`` for the first bad weight,
        or ``(None, problem)`` when they are all 0 (or there are none). ``problem`` reads after
        the name of what is weighted: ``"weight must be ≥ 0; got -1.0"``.
    """
    for key, weight in weights.items():
        if not math.isfinite(weight):
            return key, f"weight must be finite; got {weight}"
        if weight < 0:
            return key, f"weight must be ≥ 0; got {weight}"
        if weight > MAX_WEIGHT:
            return key, f"weight must be ≤ {MAX_WEIGHT:g}; got {weight:g}"
    if not sum(weights.values()) > 0:
        return None, "weights must not all be 0 (they must sum to a positive number)"
    return None
