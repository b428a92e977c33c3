"""The terms of a stage's objective as data, the one registry of losses, and the one builder
of objectives.

A stage lists its terms as :class:`TermSpec` values: a name (the key in loss reports, and the
stem of the preset field that weighs it: ``style`` ↔ ``style_weight``), a loss and a weight.
:data:`LOSSES` maps each loss to the function that builds its term for a stage:

- ``content``: the content loss, feature maps against the content image's (Gatys, Ecker &
  Bethge 2016, Eq. 1);
- a style kind (``gram``, ``w2``, ``swd``: ``vocabulary.STYLE_KINDS``): the style loss in that
  kind's representation against the paintings' (Gram matrices: Eq. 4), over the regions of
  spatial control (Gatys et al. 2017, Sec. 4.1; ``stages.losses.StyleTerm``);
- ``tv``: total variation of the pixels (Mahendran & Vedaldi 2015).

:func:`build_objective` turns a stage's specs into its :class:`~.losses.Objective` (Eq. 7:
``α·content + β·style + γ·tv``). A new style loss is a :class:`~.losses.StyleKind` in its own
module plus one line of ``vocabulary.STYLE_KINDS`` (its name → ``module:attribute``), which
:func:`style_kind` resolves: the style term, the blends, the masks and the tiles take it as
they take the Gram kind, and presets accept its name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from .guides import Region
from .losses import ContentTerm, FeatureTerm, Objective, StyleKind, StyleTerm, TVTerm
from .vgg import VGGFeatures
from .vocabulary import GUIDE_MODE, STYLE_KINDS


@dataclass(frozen=True)
class TermSpec:
    """One term of a stage's objective, as data (frozen and hashable, like the stage).

    Attributes:
        name: its key in loss reports and loss dicts (``content``, ``style``, ``tv``); unique
            within a stage.
        loss: which loss it is, a key of :data:`LOSSES` (``content``, a style kind, ``tv``).
        weight: its weight in the objective, finite and ≥ 0.
    """

    name: str
    loss: str
    weight: float

    @property
    def weight_field(self) -> str:
        """The preset field that sets :attr:`weight` (``style_weight``), for messages."""
        return f"{self.name}_weight"


def weighted_terms(
    content_weight: float, style_weight: float, tv_weight: float, style_loss: str = "gram"
) -> tuple[TermSpec, ...]:
    """A stage's terms from a preset's weights α, β, γ (each ≥ 0) and its style loss (a style
    kind, a key of ``vocabulary.STYLE_KINDS``), in the objective's order: ``content`` (loss
    ``content``), ``style`` (loss ``style_loss``), ``tv`` (loss ``tv``)."""
    return (
        TermSpec("content", "content", content_weight),
        TermSpec("style", style_loss, style_weight),
        TermSpec("tv", "tv", tv_weight),
    )


@dataclass(frozen=True)
class TermContext:
    """What the losses' builders read to build a stage's terms.

    Attributes:
        extractor: the network; returns every layer the terms read.
        content: ``(1, 3, H, W)`` the content image in 0–1 at the stage's size.
        content_layers: ``{layer: weight ≥ 0}`` of the content term.
        style_regions: a style kind → the stage's style regions with targets in that kind's
            representation (``stages.blend.StyleTargets`` for the stage's paintings and style
            size; ``stages.blend.painting_regions``).
        guide_mode: how masks reach each style layer (``stages.guides.layer_guide``).
        tiled: whether the stage is evaluated in tiles (``stages.tiling``): the content term
            then makes its targets from crops, and the whole image never runs through the
            network.
    """

    extractor: VGGFeatures
    content: Tensor
    content_layers: Mapping[str, float]
    style_regions: Callable[[StyleKind], Sequence[Region]]
    guide_mode: str = GUIDE_MODE
    tiled: bool = False

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(H, W)`` of the stage's image in px."""
        return (self.content.shape[-2], self.content.shape[-1])


Term = FeatureTerm | TVTerm
"""A built term: read from the network's activations, or from the pixels."""
Build = Callable[[TermSpec, TermContext], Term]
"""How a loss builds its term for a stage."""


def _content(spec: TermSpec, context: TermContext) -> ContentTerm:
    """The content term (Gatys et al. 2016, Eq. 1); tiled: no whole-image targets (the tiles
    make theirs from crops of the content image)."""
    if context.tiled:
        return ContentTerm(spec.name, spec.weight, context.content_layers, None)
    with torch.no_grad():
        features = context.extractor(context.content)
    return ContentTerm.of(spec.name, spec.weight, context.content_layers, features)


@cache
def style_kind(name: str) -> StyleKind:
    """The style kind registered as ``name`` in ``vocabulary.STYLE_KINDS`` (``gram``: the Gram
    kind, ``stages.gram.GRAM``), its module imported on first use.

    Raises:
        KeyError: ``name`` is not a registered style kind.
    """
    module, attribute = STYLE_KINDS[name].split(":")
    return getattr(importlib.import_module(module, __package__), attribute)


def _style(spec: TermSpec, context: TermContext) -> StyleTerm:
    """The style term in the representation of the style kind ``spec.loss``, over the stage's
    regions (``stages.losses.StyleTerm``)."""
    kind = style_kind(spec.loss)
    regions, size = context.style_regions(kind), context.image_hw
    return StyleTerm(spec.name, spec.weight, kind, regions, size, context.guide_mode)


def _tv(spec: TermSpec, context: TermContext) -> TVTerm:
    """The TV term (Mahendran & Vedaldi 2015)."""
    return TVTerm(spec.name, spec.weight)


LOSSES: Mapping[str, Build] = {
    "content": _content,
    **dict.fromkeys(STYLE_KINDS, _style),
    "tv": _tv,
}
"""The one registry of losses: loss → the builder of its term (the style kinds come from
``vocabulary.STYLE_KINDS``)."""


def untileable(specs: Sequence[TermSpec]) -> list[str]:
    """The losses among ``specs`` whose representation a tiled stage cannot pool (a style kind
    with ``pooled = False``: ``swd``)."""
    return [s.loss for s in specs if s.loss in STYLE_KINDS and not style_kind(s.loss).pooled]


def build_objective(specs: Sequence[TermSpec], context: TermContext) -> Objective:
    """A stage's objective from its terms' specs (Gatys et al. 2016, Eq. 7, plus TV).

    Args:
        specs: the terms, each built by its loss (:data:`LOSSES`); feature terms are evaluated
            in their order, then the image terms (TV) in theirs, and the loss dicts keep that
            order.
        context: what the builders read (:class:`TermContext`).

    Returns:
        The :class:`~.losses.Objective`, its reference the content image at the stage's size.

    Raises:
        ValueError: an unknown loss, two terms of one name, or invalid layer weights or
            regions (raised by the terms).
    """
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"each term needs its own name; got {names}")
    unknown = [spec.loss for spec in specs if spec.loss not in LOSSES]
    if unknown:
        raise ValueError(f"unknown loss {unknown[0]!r}; known: {', '.join(LOSSES)}")
    terms = [LOSSES[spec.loss](spec, context) for spec in specs]
    return Objective(
        context.extractor,
        [t for t in terms if isinstance(t, FeatureTerm)],
        [t for t in terms if not isinstance(t, FeatureTerm)],
        context.content,
    )
