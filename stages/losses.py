"""Loss terms of neural style transfer, each with one small interface, and the objective that
adds them up.

Gatys, Ecker & Bethge (2016), "Image Style Transfer Using Convolutional Neural Networks", CVPR:
the content loss compares feature maps, the style loss compares Gram matrices of feature maps,
and the image is optimized to minimize their weighted sum (Eq. 7); a total-variation (TV) term
regularizes the pixels (Mahendran & Vedaldi 2015).

Every term has a name, a weight and a score. A *feature term* (content, style) reads the network's
activations: it turns the features of one layer into a *representation* (the feature map itself,
or what the style term's :class:`StyleKind` makes of it: the Gram matrix, ``stages.gram``), and
scores the representations of its layers against *targets* in the same representation. The
style term (:class:`StyleTerm`) does so for any style kind, over the regions of spatial control
(``stages.guides``). An *image term* (TV) reads the pixels. :class:`Objective` evaluates the
terms of one stage and returns them by name, weighted; :func:`total` is the one place where
they are added. The terms of a stage are built from data by ``stages.terms.build_objective``.
The tiled evaluation (``stages/tiling.py``) uses the same terms: it sums the tiles' pooled
representations (Gram matrices) into the whole image's and scores them once.

Normalization (ours, so that one set of weights gives the same look at 256 px and at 4096 px,
and every layer of a term has a say): every loss is a *mean* over positions, never a sum, so
its value does not grow with the number of pixels, and each layer's squared error is divided by
the mean square of that layer's target — a *relative* error. Gatys et al. sum the squared
errors and divide the style term by ``4·N²·M²``; with equal layer weights their style loss, and
an unnormalized mean alike, is all relu4_1: measured on the bundled pair, the Gram error of
relu4_1 is ~10⁴ × relu1_1's, so the shallow layers, which carry the painting's colours and fine
strokes, are not matched (pale colours, the photo's palette). Here:

- content: ``mean((F − P)²) / mean(P²)`` over ``C·H·W`` — the relative squared error of the
  feature maps;
- style: ``mean((G(F) − G(S))²) / mean(G(S)²)`` over ``C·C`` with ``G(F) = F·Fᵀ / (C·H·W)``,
  the Gram matrix normalized by ``C·H·W`` (Johnson et al. 2016 normalize the same way);
- TV: ``mean(Δx²) + mean(Δy²)`` of neighbouring pixels in 0–1 units, the squared (β = 2)
  total variation of Mahendran & Vedaldi (2015), per pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from .guides import Region, guide_at_size, guide_energy, layer_guide
from .vgg import VGGFeatures
from .vocabulary import GUIDE_MODE, K, weight_problem


def normalized(weights: Mapping[K, float], what: str = "") -> dict[K, float]:
    """Weights divided by their sum (so that they sum to 1).

    Args:
        weights: ``{key: weight}``, each finite and ≥ 0, not all 0 (:func:`weight_problem`).
        what: names the weights in the error message (``"layer"``, ``"style"``).

    Raises:
        ValueError: weights that break :func:`weight_problem`'s rule.
    """
    problem = weight_problem(weights)
    if problem is not None:
        key, text = problem
        where = f"{what} " if key is None else f"{what} {key!r}: "
        raise ValueError(f"{where.lstrip()}{text}")
    total_weight = sum(weights.values())
    return {key: w / total_weight for key, w in weights.items()}


def tv_loss(image: Tensor) -> Tensor:
    """Squared total variation per pixel (Mahendran & Vedaldi 2015, β = 2).

    Args:
        image: ``(B, 3, H, W)`` in 0–1, ``H, W ≥ 2``.

    Returns:
        0-d tensor ``mean(Δx²) + mean(Δy²)`` with ``Δx = x[..., :, 1:] − x[..., :, :-1]`` and
        ``Δy = x[..., 1:, :] − x[..., :-1, :]``.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def energy(target: Tensor) -> Tensor:
    """``mean(T²)`` of a target, detached: the denominator of :func:`relative_error`."""
    return target.detach().pow(2).mean()


def relative_error(
    representation: Tensor, target: Tensor, target_energy: Tensor | None = None
) -> Tensor:
    """``mean((R − T)²) / (E + ε)`` with ``E = mean(T²)``: the squared error relative to the
    target's energy, so that layers whose activations differ by orders of magnitude weigh alike
    (ε = 1e-8). The energy is a constant (no gradient flows through it).

    Args:
        representation, target: tensors of one shape (feature maps or Gram matrices).
        target_energy: ``E`` to use instead of the target's own (a tile's crop of a content
            target is scored against the whole target's energy).

    Returns:
        0-d float32 tensor ≥ 0.
    """
    e = energy(target) if target_energy is None else target_energy
    return F.mse_loss(representation, target) / (e + 1e-8)


class StyleKind(Protocol):
    """How a style loss represents and compares feature statistics: the one thing a style kind
    supplies (the Gram kind: ``stages.gram``); the style term (:class:`StyleTerm`)
    brings the regions, guides and layers, the blend (``stages.blend``) the paintings.

    A kind is a frozen, hashable value: style targets are cached per kind
    (``stages.blend.StyleTargets``). It is registered by name in ``vocabulary.STYLE_KINDS``.
    """

    pooled: ClassVar[bool]
    """Whether its representation is a mean over positions, so that a tiled stage pools its
    tiles' representations exactly (Gram, W2); ``False``: tiled stages refuse it (SWD)."""

    def represent(self, features: Tensor, guide: Tensor | None, energy: float | Tensor) -> Tensor:
        """The representation of ``(1, C, h, w)`` activations under ``guide`` (``(1, 1, h, w)``
        in 0–1 at the layer, ``None``: everywhere) whose ``mean(g²)`` over the whole image is
        ``energy`` (1 without a guide): a painting's target and the image's representation
        alike. It must be a mean over positions, float32: a tiled stage pools the tiles'
        representations by their pixel-weighted mean (``stages.tiling``)."""
        ...

    def blend(self, weighted: Sequence[tuple[float, Tensor]]) -> Tensor:
        """The target of several paintings from ``(weight, target)`` pairs, weights > 0
        (their share of the blend); raises ``ValueError`` for no pair."""
        ...

    def score(self, representation: Tensor, target: Tensor, target_energy: Tensor) -> Tensor:
        """The unweighted 0-d float32 loss ≥ 0 of one layer's representation against its
        target, whose ``mean(T²)`` is ``target_energy`` (:func:`energy`)."""
        ...


class FeatureTerm:
    """A loss term that compares a representation of the network's features with targets:
    ``Σ_l a_l · error(R(F_l), T_l)`` over its layers ``l`` (weights ``a_l`` normalized to sum
    1, so its weight keeps its meaning when layers are added or removed); the error is
    :func:`relative_error` unless a subclass's :meth:`compare` says otherwise.

    Subclasses define :meth:`representations`. ``pooled`` says whether the representation is a
    mean over positions (a Gram matrix): then the representation of a whole image is the
    pixel-weighted mean of its tiles', and a tiled evaluation scores it once for the whole image;
    otherwise (feature maps) the term is scored tile by tile against the matching crop's targets.

    Args:
        name: the term's name in loss reports (``content``, ``style``).
        weight: its weight in the objective, ≥ 0.
        layers: ``{layer: weight ≥ 0}``, not all 0.
        targets: ``{layer: target representation}`` for every layer of ``layers``; ``None``
            for a term whose targets are given at each :meth:`score` (a tiled stage's content
            term, whose targets are made per crop).

    Raises:
        ValueError: layer weights that break :func:`weight_problem`'s rule.
    """

    pooled: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        weight: float,
        layers: Mapping[str, float],
        targets: Mapping[str, Tensor] | None,
    ) -> None:
        self.name, self.weight = name, weight
        self.layers = normalized(layers, "layer")
        self.targets = (
            None if targets is None else {k: targets[k].detach().float() for k in self.layers}
        )
        self.energies = (
            None if self.targets is None else {k: energy(v) for k, v in self.targets.items()}
        )

    def representations(
        self, features: Mapping[str, Tensor], window: tuple | None = None
    ) -> dict[str, Tensor]:
        """``{layer: representation}`` of this term's layers, from the network's output for
        the whole image or, in a tiled evaluation, for the crop ``image[window]`` (a guided
        term crops its guides the same way: ``stages.guides``)."""
        raise NotImplementedError

    def compare(
        self, representation: Tensor, target: Tensor, target_energy: Tensor | None
    ) -> Tensor:
        """One layer's unweighted error: :func:`relative_error` (0-d float32, ≥ 0)."""
        return relative_error(representation, target, target_energy)

    def score(
        self,
        representations: Mapping[str, Tensor],
        targets: Mapping[str, Tensor] | None = None,
        energies: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """The unweighted term: ``Σ_l a_l ·`` :meth:`compare` ``(R_l, T_l)`` as a 0-d float32
        tensor.

        Args:
            representations: ``{layer: representation}`` (:meth:`representations`).
            targets: targets to score against instead of the term's own (a tile's crop).
            energies: ``{layer: mean(T²)}`` of the whole image's targets, for crop targets
                (default: the term's own, or the given targets').

        Raises:
            ValueError: no targets given and the term has none of its own.
        """
        if targets is None:
            targets, energies = self.targets, self.energies
        if targets is None:
            raise ValueError(f"the {self.name} term has no targets of its own; pass targets")
        return sum(
            w
            * self.compare(
                representations[layer],
                targets[layer],
                None if energies is None else energies[layer],
            )
            for layer, w in self.layers.items()
        )

    def weighted(
        self,
        representations: Mapping[str, Tensor],
        targets: Mapping[str, Tensor] | None = None,
        energies: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """The term as it enters the objective: ``weight ·`` :meth:`score`."""
        return self.weight * self.score(representations, targets, energies)

    def targets_of(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Targets made from a reference image's features (e.g. a tile's content crop)."""
        with torch.no_grad():
            return {k: v.detach() for k, v in self.representations(features).items()}


class ContentTerm(FeatureTerm):
    """Content loss: squared error of feature maps against the content image's (Gatys et al.
    2016, Eq. 1), relative to the targets' energy (:func:`relative_error`). Targets are
    ``(1, C, H, W)`` activations at the stage's size."""

    @classmethod
    def of(
        cls, name: str, weight: float, layers: Mapping[str, float], features: Mapping[str, Tensor]
    ) -> ContentTerm:
        """A term whose targets are a reference image's ``features`` (``{layer: (1, C, H, W)}``,
        e.g. the content image's)."""
        with torch.no_grad():
            return cls(name, weight, layers, {k: features[k].float() for k in layers})

    def representations(
        self, features: Mapping[str, Tensor], window: tuple | None = None
    ) -> dict[str, Tensor]:
        """``{layer: (1, C, h, w) float32 feature maps}`` (a crop's, whatever ``window``)."""
        return {layer: features[layer].float() for layer in self.layers}


class StyleTerm(FeatureTerm):
    """The style loss of a stage in the representation of a style ``kind``
    (:class:`StyleKind`; the Gram kind: Gatys et al. 2016, Eq. 4),
    over regions: ``Σ_r s_r w_r Σ_l a_rl · kind.score(R_rl, T_rl)`` with ``R_rl`` the kind's
    representation of layer ``l`` under region ``r``'s guide (Gatys et al. 2017, Sec. 4.1),
    ``w_r`` its normalized share and ``s_r`` its ``strength`` (a grey mask's level).

    One region without a guide (every painting over the whole image, the same layers: the
    blend of Gatys et al. 2016) keeps its layer weights and names its layers plainly; otherwise
    its layers are keyed ``layer@r`` (region ``r``) and weighted ``w_r · a_rl``, and a layer
    where a region's guide has no energy is left out. A pooled term: a tiled evaluation sums
    the tiles' representations, each computed with the tile's crop of the guides (``window``),
    pixel-weighted, into the whole image's.

    Args:
        name, weight: as for every term.
        kind: the style kind (``stages.terms.style_kind``).
        regions: the stage's regions, their targets in ``kind``'s representation.
        image_hw: ``(H, W)`` of the stage's image in px.
        mode: how guides reach each layer (``stages.guides.layer_guide``).

    Raises:
        ValueError: no region whose guide has any energy at any of its layers.
    """

    pooled = True

    def __init__(
        self,
        name: str,
        weight: float,
        kind: StyleKind,
        regions: Sequence[Region],
        image_hw: tuple[int, int],
        mode: str = GUIDE_MODE,
    ) -> None:
        self.kind, self.mode, self.image_hw = kind, mode, image_hw
        self.layer_of: dict[str, str] = {}
        self.guides: dict[str, Tensor | None] = {}
        self.energy_of: dict[str, Tensor] = {}
        plain = len(regions) == 1 and regions[0].guide is None
        layers, targets = {}, {}
        for r, region in enumerate(regions):
            guide = None if region.guide is None else guide_at_size(region.guide, image_hw)
            shares = region.layers if plain else normalized(region.layers, "layer")
            for layer, a in shares.items():
                key = layer if plain else f"{layer}@{r}"
                energy = self._energy(guide, layer)
                if not plain and (region.weight * a == 0 or energy == 0):
                    continue  # the region vanishes at this layer (or has no say)
                self.layer_of[key], self.guides[key], self.energy_of[key] = layer, guide, energy
                layers[key] = a if plain else region.weight * a
                targets[key] = region.targets[layer]
        if not layers:
            raise ValueError("no style region is left at this stage size: every mask is empty")
        super().__init__(name, weight, layers, targets)
        strength = {f"{layer}@{r}": g.strength for r, g in enumerate(regions) for layer in g.layers}
        self.layers = {k: a * strength.get(k, 1.0) for k, a in self.layers.items()}  # after norm
        self._cached: dict[str, Tensor | None] = {}

    def _energy(self, guide: Tensor | None, layer: str) -> Tensor:
        if guide is None:
            return torch.ones(())
        return guide_energy(guide, self.image_hw, layer, self.mode)

    def _guide(self, key: str, window: tuple | None, size: tuple[int, int]) -> Tensor | None:
        """The guide of ``key`` at its layer for the whole image or a tile's ``window``."""
        guide = self.guides[key]
        if guide is None:
            return None
        if window is not None:
            return layer_guide(guide[window], size, self.layer_of[key], self.mode)
        if key not in self._cached:
            self._cached[key] = layer_guide(guide, size, self.layer_of[key], self.mode)
        return self._cached[key]

    def representations(
        self, features: Mapping[str, Tensor], window: tuple | None = None
    ) -> dict[str, Tensor]:
        """``{key: the kind's representation}`` of the image (``window`` ``None``) or of a
        tile, from ``{layer: (1, C, h, w)}`` features."""
        reps = {}
        for key, layer in self.layer_of.items():
            f = features[layer]
            guide = self._guide(key, window, tuple(f.shape[-2:]))
            reps[key] = self.kind.represent(f, guide, self.energy_of[key].to(f.device))
        return reps

    def compare(self, representation: Tensor, target: Tensor, target_energy: Tensor) -> Tensor:
        """The kind's score of one layer (``kind.score``)."""
        return self.kind.score(representation, target, target_energy)


class TVTerm:
    """Total variation of the pixels (:func:`tv_loss`).

    Args:
        name: its name in loss reports (``tv``).
        weight: its weight in the objective, ≥ 0.
    """

    def __init__(self, name: str, weight: float) -> None:
        self.name, self.weight = name, weight

    def score(self, image: Tensor) -> Tensor:
        """``image``: ``(B, 3, H, W)`` in 0–1. Returns the unweighted 0-d term."""
        return tv_loss(image.float())


def total(terms: Mapping[str, Tensor]) -> Tensor:
    """The objective's value: the sum of its weighted terms (the one place they are added);
    ``terms`` holds at least one 0-d tensor."""
    return sum(terms.values())


def detached(terms: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The same terms cut from the autograd graph (keeps no activations alive)."""
    return {name: value.detach() for name, value in terms.items()}


def as_floats(terms: Mapping[str, Tensor]) -> dict[str, float]:
    """``{name: value, …, "total": sum}`` as Python floats (one device synchronization)."""
    names = [*terms, "total"]
    values = torch.stack([*terms.values(), total(terms)]).tolist()
    return dict(zip(names, values, strict=True))


class Objective:
    """The weighted objective of one stage: Gatys et al. (2016), Eq. 7, plus a TV regularizer,
    ``α·content + β·style + γ·tv``, as terms by name.

    Args:
        extractor: the network; returns every layer the feature terms read.
        feature_terms: terms read from the network's activations.
        image_terms: terms read from the pixels (TV).
        reference: ``(1, 3, H, W)`` the image the non-pooled feature terms' targets were made
            from (the content image at the stage's size); a tiled evaluation crops it.
    """

    def __init__(
        self,
        extractor: VGGFeatures,
        feature_terms: Sequence[FeatureTerm],
        image_terms: Sequence[TVTerm],
        reference: Tensor,
    ) -> None:
        self.extractor = extractor
        self.feature_terms = list(feature_terms)
        self.image_terms = list(image_terms)
        self.reference = reference

    def __call__(self, image: Tensor) -> dict[str, Tensor]:
        """Evaluate every term.

        Args:
            image: ``(1, 3, H, W)`` in 0–1, the size of :attr:`reference`.

        Returns:
            ``{name: weight · score}`` 0-d tensors, feature terms first (in autograd's graph).
        """
        features = self.extractor(image)
        terms = {
            term.name: term.weighted(term.representations(features)) for term in self.feature_terms
        }
        terms.update(self.image_values(image))
        return terms

    def image_values(self, image: Tensor) -> dict[str, Tensor]:
        """``{name: weight · score}`` of the image terms (TV) on ``(1, 3, H, W)`` pixels."""
        return {term.name: term.weight * term.score(image) for term in self.image_terms}
