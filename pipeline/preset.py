"""The typed preset: the dataclasses a render is configured with, their constraints (field
metadata, read by :mod:`stylecascade.preset_reader` to check a YAML file and to write the JSON
Schema of presets), and a preset's adjustment for one render (:meth:`Preset.resolved`).

Field metadata: ``choices`` (allowed values), ``positive`` (> 0), ``non_negative`` (≥ 0),
``at_most`` (≤ a bound), ``layers`` (``{VGG19 layer: weight}``), ``styles`` (a list of
paintings) and ``yaml`` (the field's key in YAML, when it is not the field's name).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .choices import MAX_ITERATIONS, MAX_STYLE_SCALE
from .errors import ArgumentError, UsageError, literal
from .printsize import MAX_LONG_EDGE
from .record import LAST, MULTIPLY, OVERRIDE, Spec, knob_specs
from .rules import blend, check_choice, last, multiply, override_stages
from .stages.vocabulary import (
    COLOR_MODES,
    CONTENT_SOURCES,
    DEFAULT_TOLERANCE,
    GUIDE_MODE,
    GUIDE_MODES,
    INITS,
    LBFGS_HISTORY,
    MAX_WEIGHT,
    OPTIMIZERS,
    POOLINGS,
    STYLE_BASES,
    STYLE_LOSSES,
)

PRECISIONS = ("fp32", "tf32", "bf16", "auto")


MAX_LR = 10.0
"""Largest step size of a stage (``lr``): L-BFGS starts its line search at 1.0, Adam takes
0.01–0.05 in 0–1 pixel units; 10 is far above both, and a larger step only wastes a stage."""

MIN_STAGE_EDGE = 128
"""Floor in px for the long edge of a scaled preset's stages: below it the layout (buildings,
faces) no longer survives the first stage, and each evaluation costs little less."""


class PresetError(UsageError):
    """A preset that cannot be used; the message names the file and the field."""


def yaml_key(f: dataclasses.Field) -> str:
    """The key of a dataclass field in preset YAML and in the manifest (``size`` for the
    ``long_edge`` of a stage and the ``tile_edge`` of tiling; else the field's name)."""
    return f.metadata.get("yaml", f.name)


@dataclass(frozen=True)
class ModelConfig:
    """Which VGG19 layers the losses read, and the network's pooling (YAML key ``model``).

    Attributes:
        pooling: the network's pooling layers, ``max`` or ``avg``.
        content_layers: ``{VGG19 layer: weight}`` of the content loss (``conv1_1 … relu5_4``,
            ``pool1 … pool5``; weights ≥ 0, normalized to sum 1; YAML also takes a list of
            names: equal weights).
        style_layers: ``{VGG19 layer: weight}`` of the style loss, like ``content_layers``.
        guides: how a mask reaches each style layer, ``resize`` or ``inside``
            (``stylecascade.stages.guides.layer_guide``).
        style_loss: how the style is compared: ``gram`` (Gram matrices, Gatys et al. 2016),
            ``w2`` (Wasserstein-2 between Gaussian fits of the features, Li et al. 2017) or
            ``swd`` (sliced Wasserstein, Heitz et al. 2021; not in tiled stages); a stage's
            own ``style_loss`` overrides it.
    """

    pooling: str = field(metadata={"choices": POOLINGS})
    content_layers: dict[str, float] = field(metadata={"layers": True})
    style_layers: dict[str, float] = field(metadata={"layers": True})
    guides: str = field(default=GUIDE_MODE, metadata={"choices": GUIDE_MODES})
    style_loss: str = field(default="gram", metadata={"choices": STYLE_LOSSES})

    @property
    def layers(self) -> set[str]:
        """Every layer a loss reads: what the network must return."""
        return set(self.content_layers) | set(self.style_layers)


@dataclass(frozen=True)
class StageConfig:
    """One stage of the cascade.

    Attributes:
        long_edge: long edge of the stage's image in px (YAML key ``size``).
        iterations: cap on objective evaluations (one VGG forward + backward each), the unit
            of cost for both optimizers.
        tolerance: the stage stops early once 20 evaluations improve its best loss by less
            than this fraction (``stylecascade.stages.cascade.converged``); 0: use the cap.
        optimizer: ``lbfgs`` or ``adam``.
        lr: step size; 1.0 for L-BFGS, ~0.01–0.05 (0–1 pixel units) for Adam.
        content_weight, style_weight, tv_weight: weights α, β, γ of the objective
            (see ``stylecascade.stages.terms.weighted_terms``).
        style_scale: the style image is resized to ``long_edge × style_scale`` px long edge.
        style_loss: this stage's style loss (``gram``, ``w2``, ``swd``); ``None``: the
            model's ``style_loss``.
        styles: this stage's own paintings instead of the preset's (scale control: large
            strokes from one painting in the coarse stages, fine texture from another in the
            fine ones); ``None``: the preset's ``styles``.
        content_layers, style_layers: this stage's own layers ``{layer: weight}`` instead of
            the model's (a detail stage: style through ``relu2_1``/``relu3_1``, the network
            run only as deep as its layers go); ``None``: the model's.
        style_basis: what ``style_scale`` multiplies: ``stage`` (the stage's long edge: the
            painting follows the image) or ``painting`` (the painting's own long edge: its
            real pixels, texture at 1:1; Galerne et al. 2024).
        history: L-BFGS's history size (update pairs kept; memory 2 image-sized vectors each).
        content_from: ``photo`` (the content image) or ``previous`` (the previous stage's
            result upsampled: a detail stage that keeps the layout and colours found below).
    """

    long_edge: int = field(metadata={"positive": True, "at_most": MAX_LONG_EDGE, "yaml": "size"})
    iterations: int = field(metadata={"positive": True, "at_most": MAX_ITERATIONS})
    optimizer: str = field(default="lbfgs", metadata={"choices": OPTIMIZERS})
    lr: float = field(default=1.0, metadata={"positive": True, "at_most": MAX_LR})
    content_weight: float = field(
        default=1.0, metadata={"non_negative": True, "at_most": MAX_WEIGHT}
    )
    style_weight: float = field(default=1.0, metadata={"non_negative": True, "at_most": MAX_WEIGHT})
    tv_weight: float = field(default=0.0, metadata={"non_negative": True, "at_most": MAX_WEIGHT})
    style_scale: float = field(default=1.0, metadata={"positive": True, "at_most": MAX_STYLE_SCALE})
    tolerance: float = field(
        default=DEFAULT_TOLERANCE, metadata={"non_negative": True, "at_most": 1.0}
    )
    style_loss: str | None = field(default=None, metadata={"choices": STYLE_LOSSES})
    styles: tuple[StyleConfig, ...] | None = field(default=None, metadata={"styles": True})
    content_layers: dict[str, float] | None = field(default=None, metadata={"layers": True})
    style_layers: dict[str, float] | None = field(default=None, metadata={"layers": True})
    style_basis: str = field(default="stage", metadata={"choices": STYLE_BASES})
    history: int = field(default=LBFGS_HISTORY, metadata={"positive": True, "at_most": 200})
    content_from: str = field(default="photo", metadata={"choices": CONTENT_SOURCES})


@dataclass(frozen=True)
class TilingConfig:
    """Tiled stages (``stylecascade.stages.tiling``).

    Attributes:
        tile_edge: tile edge in px for every stage larger than it (YAML key ``size``); 0: tile
            only a stage that does not fit in memory, with the largest tile that fits.
        overlap: overlap of neighbouring tiles in px (the feathering ramp).
        lr: Adam step size of tiled stages (0–1 pixel units); tiled stages always use Adam.
    """

    tile_edge: int = field(
        default=0, metadata={"non_negative": True, "at_most": MAX_LONG_EDGE, "yaml": "size"}
    )
    overlap: int = field(default=64, metadata={"non_negative": True, "at_most": MAX_LONG_EDGE})
    lr: float = field(default=0.01, metadata={"positive": True, "at_most": MAX_LR})


FILE_FIELDS = ("image", "mask", "style_mask")
"""The fields of a painting (:class:`StyleConfig`) that name files."""


@dataclass(frozen=True)
class StyleConfig:
    """One painting of a preset's default style blend.

    Attributes:
        image: path of the style image (relative paths are relative to the preset file).
        weight: share of the blend, ≥ 0; weights are normalized to sum 1.
        scale: multiplies the stage's style size for this painting.
        mask: grayscale image on the photo, white where this painting applies (soft edges
            allowed, any size with the photo's aspect ratio); ``None``: everywhere.
        style_mask: grayscale image on the painting, white where its style is taken from;
            ``None``: the whole painting.
        layers: its own style layers, ``{layer: weight}`` (YAML also takes a list of names:
            equal weights); ``None``: the model's ``style_layers``.
        color: its own color mode (``COLOR_MODES``): its painting is prepared that way and,
            under its mask, the output shown that way; ``None``: the preset's ``color``.
    """

    image: str
    weight: float = field(default=1.0, metadata={"non_negative": True, "at_most": MAX_WEIGHT})
    scale: float = field(default=1.0, metadata={"positive": True, "at_most": MAX_STYLE_SCALE})
    mask: str | None = None
    style_mask: str | None = None
    layers: dict[str, float] | None = field(default=None, metadata={"layers": True})
    color: str | None = field(default=None, metadata={"choices": COLOR_MODES})

    def files(self) -> list[str]:
        """The image files it reads: the painting and its masks."""
        return list(self.file_fields().values())

    def file_fields(self) -> dict[str, str]:
        """``{field: path}`` of the files it names, of :data:`FILE_FIELDS`."""
        return {k: getattr(self, k) for k in FILE_FIELDS if getattr(self, k) is not None}


class Ladder(NamedTuple):
    """A preset's stages scaled to a final size (:func:`scaled_stages`).

    Attributes:
        stages: the stages to run.
        dropped: long edges in px of the scaled stages that were dropped.
        floor: the floor in px they fell under.
        inserted: whether a stage at the floor took their place.
    """

    stages: tuple[StageConfig, ...]
    dropped: tuple[int, ...]
    floor: int
    inserted: bool


def scaled_stages(stages: tuple[StageConfig, ...], long_edge: int) -> Ladder:
    """A preset's stages scaled so that the last one has ``long_edge`` px (long edge).

    Every stage's long edge is multiplied by ``long_edge / stages[-1].long_edge`` (rounded).
    An earlier stage is dropped when scaling pushed it under the floor,
    ``min(MIN_STAGE_EDGE, long_edge)`` px (a preset's own small stage is kept), or onto the
    final size. When the first kept stage is more than √2 above the floor, a stage at the floor,
    with the settings of the largest dropped one, takes the dropped stages' place, so the ladder
    starts at the floor. A smaller render that dropped stages (a preview: ``draft --size 128``)
    runs its stages with the settings of the preset's first stages, in order (caps, weights,
    tolerances): what the full render does at those sizes, so a preview looks like a thumbnail
    of the full render rather than its last stage's 50 evaluations alone.

    Args:
        stages: the preset's stages, long edges increasing.
        long_edge: the final long edge in px, > 0.
    """
    factor = long_edge / stages[-1].long_edge
    floor = min(MIN_STAGE_EDGE, long_edge)
    kept, dropped, last_dropped = [], [], None
    for i, stage in enumerate(stages):
        scaled = dataclasses.replace(stage, long_edge=round(stage.long_edge * factor))
        edge, final = scaled.long_edge, i == len(stages) - 1
        if not final and ((edge < floor and edge < stage.long_edge) or edge >= long_edge):
            dropped.append(edge)
            last_dropped = scaled
        else:
            kept.append(scaled)
    inserted = last_dropped is not None and kept[0].long_edge > floor * math.sqrt(2)
    if inserted:
        kept.insert(0, dataclasses.replace(last_dropped, long_edge=floor))
    if dropped and factor < 1:  # a preview: the coarse stages' settings, as the full render
        pairs = zip(stages[: len(kept)], kept, strict=True)
        kept = [dataclasses.replace(s, long_edge=k.long_edge) for s, k in pairs]
    return Ladder(tuple(kept), tuple(dropped), floor, inserted)


@dataclass(frozen=True)
class Preset:
    """A complete, validated preset for a render.

    Attributes:
        name: the preset's name (bundled or saved name, or file stem; not a YAML key).
        description: one line on what the preset is for.
        model: the network's layers and pooling (:class:`ModelConfig`).
        init: the first stage's starting image: ``content`` (the photo), ``noise`` or
            ``style`` (the painting).
        init_image: an image file the first stage starts from instead (resized to the photo;
            jcjohnson's ``-init_image``), or ``None``: ``init`` decides.
        stages: the cascade's stages, long edges increasing.
        color: color mode (``stylecascade.stages.color.COLOR_MODES``).
        styles: default paintings; empty for a preset without them (the bundled presets): a
            render then takes its paintings from the ``styles`` argument of :meth:`resolved`.
        precision: ``fp32`` strict, ``tf32`` tensor-core matrix products (CUDA; fp32 on a
            CPU), ``bf16`` autocast of the network with losses and Gram matrices in fp32 (on a
            CPU only where it computes bf16 natively), ``auto``: ``tf32`` on CUDA, ``bf16`` on
            such a CPU (``stylecascade.device.effective_precision``).
        tiling: tiled stages (:class:`TilingConfig`).
    """

    name: str
    description: str
    model: ModelConfig
    init: str = field(default="content", kw_only=True, metadata={"choices": INITS})
    init_image: str | None = field(default=None, kw_only=True, metadata={"file": True})
    stages: tuple[StageConfig, ...]
    color: str = field(default="none", metadata={"choices": COLOR_MODES})
    styles: tuple[StyleConfig, ...] = ()
    precision: str = field(default="tf32", metadata={"choices": PRECISIONS})
    tiling: TilingConfig = TilingConfig()

    def with_final_size(self, long_edge: int) -> Preset:
        """The same preset with the last stage's long edge set to ``long_edge`` px and the
        earlier stages scaled by the same factor (:func:`scaled_stages`: stages under the
        floor are dropped).

        Raises:
            ArgumentError: (argument ``size``) ``long_edge`` ≤ 0, or the scaled stages are no
                longer strictly increasing.
        """
        if long_edge <= 0:
            raise ArgumentError(
                "size", f"{{}} must be a positive number of pixels; got {long_edge!r}"
            )
        stages = scaled_stages(self.stages, long_edge).stages
        for prev, cur in zip(stages, stages[1:], strict=False):
            if cur.long_edge <= prev.long_edge:
                raise ArgumentError(
                    "size",
                    f"{{}} {long_edge}: preset {literal(repr(self.name))} scaled to stage sizes "
                    f"{[s.long_edge for s in stages]}, which are not increasing; use a larger "
                    f"{{}}",
                    "size",
                )
        if stages == self.stages:
            return self
        sizes = " → ".join(str(s.long_edge) for s in stages)
        description = f"{self.name} scaled to {long_edge} px: {sizes} px"
        return dataclasses.replace(self, stages=stages, description=description)

    def resolved(
        self,
        *,
        styles: list[str | Path] | None = None,
        blend_weights: list[float] | None = None,
        masks: list[str | Path | None] | None = None,
        size: int | None = None,
        **knobs: Any,
    ) -> Preset:
        """The preset of one render: the caller's choices over the preset's defaults.

        Args:
            styles: style images; replace the preset's ``styles`` (and the stages' own)
                when given.
            blend_weights: one weight ≥ 0 per style, its share of the blend (normalized to sum
                1; default: the preset's weights for its own styles, else equal weights).
            masks: one mask per style (``None``: everywhere), in the order of the styles.
            size: final long edge in px (:meth:`with_final_size`).
            knobs: the record's knobs by field name (:mod:`stylecascade.record`: each with
                its rule and the preset field it acts on; ``None``: unchanged), e.g.
                ``style_weight=2`` multiplies every stage's ``style_weight``,
                ``iterations=100`` sets the last stage's cap and scales the others alike.

        Returns:
            The preset with absolute style paths, their weights, the knobs applied and the
            size; with every argument ``None``, an equal preset.

        Raises:
            ArgumentError: naming the argument: a weight or mask count that does not match the
                styles, a negative or all-zero blend weight, a value outside its preset
                field's choices or bounds (once multiplied), a bad size or tile size.
            TypeError: a knob that is no field of the record with a preset target.
        """
        chosen, stages = self.styles, self.stages
        if styles:
            chosen = tuple(StyleConfig(str(path)) for path in styles)
            stages = tuple(dataclasses.replace(stage, styles=None) for stage in stages)
        chosen = blend(chosen, blend_weights, masks)
        stages = tuple(_absolute_stage(stage) for stage in stages)
        preset = dataclasses.replace(self, stages=stages, styles=tuple(map(_absolute, chosen)))
        for name, spec in _knob_specs(knobs).items():
            if knobs[name] is not None:
                preset = _apply(preset, name, knobs[name], spec)
        return preset if size is None else preset.with_final_size(size)

    def _tiling(self, tile_size: int) -> TilingConfig:
        """The tiling with ``tile_edge`` set to ``tile_size``.

        Raises:
            ArgumentError: a tile edge neither 0 nor above ``tiling.overlap``.
        """
        if tile_size != 0 and tile_size <= self.tiling.overlap:
            raise ArgumentError(
                "tile_size",
                f"{{}} must be 0 or more than the preset's tiling.overlap "
                f"({self.tiling.overlap} px); got {tile_size!r}",
            )
        return dataclasses.replace(self.tiling, tile_edge=tile_size)

    def style_sets(self) -> tuple[list[tuple[StyleConfig, ...]], list[int]]:
        """The sets of paintings the stages take and each stage's set: set 0 is ``styles``,
        then each stage's own ``styles`` (equal ones shared), e.g. ``([A, B], [1, 0, 0])``."""
        sets: list[tuple[StyleConfig, ...]] = [self.styles]
        chosen = []
        for stage in self.stages:
            own = self.styles if stage.styles is None else stage.styles
            if own not in sets:
                sets.append(own)
            chosen.append(sets.index(own))
        return sets, chosen

    @property
    def masked(self) -> bool:
        """Whether a painting of any stage has a mask on the photo (spatial control)."""
        sets, _ = self.style_sets()
        return any(s.mask for styles in sets for s in styles)

    @property
    def layers(self) -> set[str]:
        """Every layer the network must return: the model's and the paintings' own."""
        sets, _ = self.style_sets()
        own = {layer for styles in sets for s in styles for layer in s.layers or ()}
        staged = {
            layer for stage in self.stages
            for layer in (*(stage.content_layers or ()), *(stage.style_layers or ()))
        }  # fmt: skip
        return self.model.layers | own | staged

    def files(self) -> list[str]:
        """Every image file the preset reads (paintings and masks, of every stage), once."""
        return list(dict.fromkeys(self.file_fields().values()))

    def file_fields(self) -> dict[str, str]:
        """``{field: path}`` of every file it names, the field as YAML spells it
        (``styles[0].image``, ``stages[2].styles[1].mask``)."""
        found = {}
        owners = [("", self.styles)] + [
            (f"stages[{n}].", stage.styles) for n, stage in enumerate(self.stages) if stage.styles
        ]
        for prefix, styles in owners:
            for i, style in enumerate(styles):
                for key, path in style.file_fields().items():
                    found[f"{prefix}styles[{i}].{key}"] = path
        if self.init_image is not None:
            found["init_image"] = self.init_image
        return found

    def to_dict(self) -> dict[str, Any]:
        """Plain data with the YAML keys (:func:`yaml_key`), as written into the JSON manifest
        and read back by :func:`~stylecascade.preset_files.parse_preset`."""
        return _plain(self)


def _knob_specs(knobs: dict[str, Any]) -> dict[str, Spec]:
    """The record's spec of each knob, in the record's order (:mod:`stylecascade.record`).

    Raises:
        TypeError: a name that is no field of the record with a preset target.
    """
    specs = knob_specs()
    unknown = set(knobs) - set(specs)
    if unknown:
        raise TypeError(f"Preset.resolved() takes no knob {', '.join(sorted(unknown))}")
    return {name: spec for name, spec in specs.items() if name in knobs}


def _apply(preset: Preset, name: str, value: Any, spec: Spec) -> Preset:
    """``preset`` with knob ``name`` = ``value`` applied by its rule to its target field.

    Raises:
        ArgumentError: see :meth:`Preset.resolved`.
    """
    where, _, key = spec.target.rpartition(".")
    if where == "stages":
        f = _field(StageConfig, key)
        apply = {OVERRIDE: override_stages, MULTIPLY: multiply, LAST: last}[spec.rule]
        return dataclasses.replace(preset, stages=apply(preset.stages, f, name, value))
    if where == "tiling":
        return dataclasses.replace(preset, tiling=preset._tiling(value))
    f = _field(Preset, key)
    check_choice(f, name, value)
    if f.metadata.get("file"):
        value = str(Path(value).absolute())
    return dataclasses.replace(preset, **{key: value})


def _field(cls: type, name: str) -> dataclasses.Field:
    """The dataclass field ``name`` of ``cls``."""
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _absolute(style: StyleConfig) -> StyleConfig:
    """A style with absolute file paths."""
    fields = style.file_fields()
    return dataclasses.replace(style, **{k: str(Path(v).absolute()) for k, v in fields.items()})


def _absolute_stage(stage: StageConfig) -> StageConfig:
    """A stage whose own styles (if any) have absolute file paths."""
    if stage.styles is None:
        return stage
    return dataclasses.replace(stage, styles=tuple(_absolute(s) for s in stage.styles))


def _plain(value: Any) -> Any:
    """Dataclasses as dicts keyed by :func:`yaml_key`, recursively; tuples stay tuples."""
    if dataclasses.is_dataclass(value):
        return {yaml_key(f): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
