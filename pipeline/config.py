"""Presets: typed, validated configuration of a coarse-to-fine render, loaded from YAML.

A preset file looks like::

    base: draft                         # optional: start from another preset (below)
    description: Three stages for a GPU, 256 → 512 → 1024 px.
    model:
      pooling: avg                      # max | avg
      content_layers: {relu4_2: 1}      # layer: weight (normalized to sum 1)
      style_layers: {relu1_1: 1, relu2_1: 1, relu3_1: 1, relu4_1: 1, relu5_1: 1}
    init: content                       # content | noise | style (first stage only)
    color: none                         # none | luminance | histogram | luminance-only
    styles:                             # optional default paintings; --style replaces them
      - {image: starry_night.jpg, weight: 3}   # path relative to this file; weight ≥ 0
      - {image: the_scream.jpg, weight: 1, scale: 0.8}   # scale × the stage's style size
    defaults:                           # any stage field; each stage overrides these
      optimizer: lbfgs                  # lbfgs | adam
      lr: 1.0
      content_weight: 1.0
      style_weight: 20.0
      tv_weight: 10.0
      style_scale: 1.0
      tolerance: 0.01                   # stop once 20 evaluations improve the loss < 1 %
    stages:
      - {size: 256, iterations: 300}    # size: long edge in px (long_edge in the code)
      - {size: 512, iterations: 150}    # iterations: the cap on evaluations

With ``base: NAME`` (a bundled or saved preset, or a YAML file relative to this one) a preset
starts from that preset's fields: ``model``, ``tiling`` and ``defaults`` are merged key by key
(a key given here wins), every other field given here replaces the base's, and the description
is not inherited (without one it reads "based on NAME"). Bases may have bases (up to
:data:`MAX_BASE_DEPTH`); a cycle is an error.

Every field is checked here, in one place: a bad value raises :class:`PresetError` naming the
file, the field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from .errors import UsageError
from .files import atomic_write
from .paths import user_preset_dir
from .printsize import MAX_LONG_EDGE
from .stages.vocabulary import (
    COLOR_MODES,
    DEFAULT_TOLERANCE,
    GUIDE_MODE,
    GUIDE_MODES,
    LAYER_NAMES,
    MAX_WEIGHT,
    OPTIMIZERS,
    POOLINGS,
    weight_problem,
)

INITS = ("content", "noise", "style")
PRESET_SUFFIXES = (".yaml", ".yml")
MAX_PRESET_BYTES = 1 << 20
"""Largest preset file read (1 MiB; the bundled ones are under 2 KiB)."""
MAX_LIST = 64
"""Most stages and most styles a preset may list."""
MAX_BASE_DEPTH = 8
"""Most ``base:`` links a preset may chain."""
MERGED_BLOCKS = ("model", "tiling", "defaults")
"""Fields a preset merges key by key with its base's; every other field replaces the base's."""


MAX_ITERATIONS = 100_000
"""Largest evaluation cap of a stage (a 4096 px stage on a large GPU does about 2 per second)."""


class PresetError(UsageError):
    """A preset that cannot be used; the message names the file and the field."""


def _check(meta: dict[str, Any], value: Any) -> str | None:
    """Return why ``value`` breaks the field's constraints, or ``None``."""
    if "choices" in meta and value not in meta["choices"]:
        return f"must be one of {', '.join(meta['choices'])}; got {_ECHO.repr(value)}"
    if meta.get("positive") and not value > 0:
        return f"must be > 0; got {value!r}"
    if meta.get("non_negative") and not value >= 0:
        return f"must be ≥ 0; got {value!r}"
    if "at_most" in meta and not value <= meta["at_most"]:
        return f"must be ≤ {meta['at_most']:g}; got {value!r}"
    return None


def yaml_key(f: dataclasses.Field) -> str:
    """The key of a dataclass field in preset YAML and in the manifest (``size`` for the
    ``long_edge`` of a stage and the ``tile_edge`` of tiling; else the field's name)."""
    return f.metadata.get("yaml", f.name)


@dataclass(frozen=True)
class LayersConfig:
    """Which VGG19 layers the losses read, and the network's pooling (YAML key ``model``).

    ``content_layers`` / ``style_layers`` map VGG19 layer names (``conv1_1 … relu5_4``,
    ``pool1 … pool5``) to non-negative weights, normalized to sum 1 by the loss. ``guides``:
    how a mask reaches each style layer, ``resize`` or ``inside``
    (``stylecascade.stages.guides.layer_guide``).
    """

    pooling: str = field(metadata={"choices": POOLINGS})
    content_layers: dict[str, float] = field(metadata={"layers": True})
    style_layers: dict[str, float] = field(metadata={"layers": True})
    guides: str = field(default=GUIDE_MODE, metadata={"choices": GUIDE_MODES})

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
        styles: this stage's own paintings instead of the preset's (scale control: large
            strokes from one painting in the coarse stages, fine texture from another in the
            fine ones); ``None``: the preset's ``styles``.
    """

    long_edge: int = field(metadata={"positive": True, "at_most": MAX_LONG_EDGE, "yaml": "size"})
    iterations: int = field(metadata={"positive": True, "at_most": MAX_ITERATIONS})
    optimizer: str = field(default="lbfgs", metadata={"choices": OPTIMIZERS})
    lr: float = field(default=1.0, metadata={"positive": True})
    content_weight: float = field(
        default=1.0, metadata={"non_negative": True, "at_most": MAX_WEIGHT}
    )
    style_weight: float = field(default=1.0, metadata={"non_negative": True, "at_most": MAX_WEIGHT})
    tv_weight: float = field(default=0.0, metadata={"non_negative": True, "at_most": MAX_WEIGHT})
    style_scale: float = field(default=1.0, metadata={"positive": True, "at_most": 8.0})
    tolerance: float = field(
        default=DEFAULT_TOLERANCE, metadata={"non_negative": True, "at_most": 1.0}
    )
    styles: tuple[StyleConfig, ...] | None = field(default=None, metadata={"styles": True})


PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class TilingConfig:
    """Tiled stages (``stylecascade.stages.tiling``).

    Attributes:
        tile_edge: tile edge in px for every stage larger than it (YAML key ``size``); 0: tile
            only a stage that does not fit in memory, with the largest tile that fits.
        overlap: overlap of neighbouring tiles in px (the feathering ramp).
        lr: Adam step size of tiled stages (0–1 pixel units); tiled stages always use Adam.
    """

    tile_edge: int = field(default=0, metadata={"non_negative": True, "yaml": "size"})
    overlap: int = field(default=64, metadata={"non_negative": True})
    lr: float = field(default=0.01, metadata={"positive": True})


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
    scale: float = field(default=1.0, metadata={"positive": True})
    mask: str | None = None
    style_mask: str | None = None
    layers: dict[str, float] | None = field(default=None, metadata={"layers": True})
    color: str | None = field(default=None, metadata={"choices": COLOR_MODES})

    def files(self) -> list[str]:
        """The image files it reads: the painting and its masks."""
        return [f for f in (self.image, self.mask, self.style_mask) if f is not None]


MIN_STAGE_EDGE = 128
"""Floor in px for the long edge of a scaled preset's stages: below it the layout (buildings,
faces) no longer survives the first stage, and each evaluation costs little less."""


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
    starts at the floor.

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
    return Ladder(tuple(kept), tuple(dropped), floor, inserted)


@dataclass(frozen=True)
class Preset:
    """A complete, validated preset for a render.

    ``styles`` is empty for a preset without default paintings (the bundled presets); a render
    then takes its paintings from ``--style``. ``color`` is one of
    ``stylecascade.stages.color.COLOR_MODES``. ``precision`` (CUDA only; the CPU always
    computes in fp32): ``fp32`` strict, ``tf32`` tensor-core matrix products, ``bf16`` autocast
    of the network with losses and Gram matrices in fp32.
    """

    name: str
    description: str
    model: LayersConfig
    init: str
    stages: tuple[StageConfig, ...]
    color: str = "none"
    styles: tuple[StyleConfig, ...] = ()
    precision: str = "tf32"
    tiling: TilingConfig = TilingConfig()

    def with_final_size(self, long_edge: int) -> Preset:
        """The same preset with the last stage's long edge set to ``long_edge`` px and the
        earlier stages scaled by the same factor (:func:`scaled_stages`: stages under the
        floor are dropped).

        Raises:
            PresetError: ``long_edge`` ≤ 0, or the scaled stages are no longer strictly
                increasing.
        """
        if long_edge <= 0:
            raise PresetError(f"--size must be a positive number of pixels; got {long_edge}")
        stages = scaled_stages(self.stages, long_edge).stages
        for prev, cur in zip(stages, stages[1:], strict=False):
            if cur.long_edge <= prev.long_edge:
                raise PresetError(
                    f"--size {long_edge}: preset {self.name!r} scaled to stage sizes "
                    f"{[s.long_edge for s in stages]}, which are not increasing; use a larger "
                    f"--size"
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
        style_weights: list[float] | None = None,
        masks: list[str | Path | None] | None = None,
        color: str | None = None,
        size: int | None = None,
        tile_size: int | None = None,
    ) -> Preset:
        """The preset of one render: the caller's choices over the preset's defaults.

        Args:
            styles: style images; replace the preset's ``styles`` (and the stages' own)
                when given.
            style_weights: one weight ≥ 0 per style (default: the preset's weights for its own
                styles, else equal weights).
            masks: one mask per style (``None``: everywhere), in the order of the styles.
            color: color mode, one of ``COLOR_MODES``.
            size: final long edge in px (:meth:`with_final_size`).
            tile_size: force tiles of this edge in px (``tiling.tile_edge``; 0: only when
                needed).

        Returns:
            The preset with absolute style paths, their weights, the color mode and the size.

        Raises:
            PresetError: a weight or mask count that does not match the styles, a negative or
                all-zero weight, an unknown color mode, a bad size or tile size.
        """
        chosen, stages = list(self.styles), self.stages
        if styles:
            chosen = [StyleConfig(str(path)) for path in styles]
            stages = tuple(dataclasses.replace(stage, styles=None) for stage in stages)
        if masks:
            if len(masks) != len(chosen):
                raise PresetError(
                    f"--mask given {len(masks)} times for {len(chosen)} style image(s); give "
                    f"one per --style (--mask none: everywhere)"
                )
            chosen = [
                dataclasses.replace(s, mask=None if m is None else str(m))
                for s, m in zip(chosen, masks, strict=True)
            ]
        if style_weights:
            if len(style_weights) != len(chosen):
                raise PresetError(
                    f"--style-weight given {len(style_weights)} times for {len(chosen)} style "
                    f"image(s); give one weight per --style"
                )
            if weight_problem(dict(enumerate(style_weights))) is not None:
                raise PresetError(
                    f"--style-weight must be finite, ≥ 0 and not all 0; got {style_weights}"
                )
            chosen = [
                dataclasses.replace(s, weight=w) for s, w in zip(chosen, style_weights, strict=True)
            ]
        chosen = [_absolute(s) for s in chosen]
        stages = tuple(
            stage
            if stage.styles is None
            else dataclasses.replace(stage, styles=tuple(_absolute(s) for s in stage.styles))
            for stage in stages
        )
        if color is not None and color not in COLOR_MODES:
            raise PresetError(f"--color must be one of {', '.join(COLOR_MODES)}; got {color!r}")
        tiling = self.tiling
        if tile_size is not None:
            if tile_size != 0 and tile_size <= tiling.overlap:
                raise PresetError(
                    f"--tile-size must be 0 or more than the overlap ({tiling.overlap} px); "
                    f"got {tile_size}"
                )
            tiling = dataclasses.replace(tiling, tile_edge=tile_size)
        preset = dataclasses.replace(
            self,
            stages=stages,
            styles=tuple(chosen),
            color=self.color if color is None else color,
            tiling=tiling,
        )
        return preset if size is None else preset.with_final_size(size)

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
        return self.model.layers | own

    def files(self) -> list[str]:
        """Every image file the preset reads (paintings and masks, of every stage), once."""
        sets, _ = self.style_sets()
        return list(dict.fromkeys(f for styles in sets for s in styles for f in s.files()))

    def to_dict(self) -> dict[str, Any]:
        """Plain data with the YAML keys (:func:`yaml_key`), as written into the JSON manifest
        and read back by :func:`parse_preset`."""
        return _plain(self)


def _absolute(style: StyleConfig) -> StyleConfig:
    """A style with absolute file paths."""
    keys = [k for k in ("image", "mask", "style_mask") if getattr(style, k) is not None]
    return dataclasses.replace(style, **{k: str(Path(getattr(style, k)).absolute()) for k in keys})


def _plain(value: Any) -> Any:
    """Dataclasses as dicts keyed by :func:`yaml_key`, recursively; tuples stay tuples."""
    if dataclasses.is_dataclass(value):
        return {yaml_key(f): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _scalar_type(annotation: Any) -> tuple[type, bool]:
    """``(int, False)`` for ``int``, ``(int, True)`` for ``int | None`` (likewise ``float``,
    ``str``): the type a field's values have, and whether ``None`` is allowed too."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        kinds = [a for a in args if a is not type(None)]
        return (kinds[0] if len(kinds) == 1 else object), type(None) in args
    return annotation, False


class _Reader:
    """Turns YAML data into the dataclasses above, naming ``source`` and the field on error."""

    def __init__(self, source: str, base: Path | None = None) -> None:
        self.source, self.base = source, base  # base: the folder relative paths start from

    def fail(self, where: str, problem: str) -> PresetError:
        return PresetError(
            f"{self.source}: {where}: {problem}" if where else f"{self.source}: {problem}"
        )

    def mapping(self, data: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(where, f"must be a mapping of key: value; got {_kind(data)}")
        return data

    def number(self, value: Any, where: str, kind: type) -> int | float:
        # YAML 1.1 reads "1e4" as a string; accept it as the number it plainly is.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number; got {_kind(value)}")
        if not math.isfinite(value):
            raise self.fail(where, f"must be a finite number; got {value}")
        if kind is int:
            if value != int(value):
                raise self.fail(where, f"must be a whole number; got {value}")
            return int(value)
        return float(value)

    def layers(self, data: Any, where: str) -> dict[str, float]:
        if isinstance(data, list) and all(isinstance(name, str) for name in data):
            data = dict.fromkeys(data, 1.0)  # [relu1_1, relu2_1]: equal weights
        layers = self.mapping(data, where)
        if not layers:
            raise self.fail(where, "must name at least one layer")
        out = {}
        for name, weight in layers.items():
            if name not in LAYER_NAMES:
                raise self.fail(
                    f"{where}.{name}", f"unknown layer; allowed: {', '.join(LAYER_NAMES)}"
                )
            out[name] = self.number(weight, f"{where}.{name}", float)
        problem = weight_problem(out)
        if problem is not None:
            layer, text = problem
            raise self.fail(
                where if layer is None else f"{where}.{layer}", _named(layer, "layer", text)
            )
        return out

    def record(self, cls: type, data: Any, where: str) -> Any:
        """Build dataclass ``cls`` from a mapping, field by field."""
        data = self.mapping(data, where)
        fields = {yaml_key(f): f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for key in data:
            if key not in fields:
                raise self.fail(_join(where, key), f"unknown field; allowed: {', '.join(fields)}")
        values = {}
        for key, f in fields.items():
            at = _join(where, key)
            if key not in data:
                if f.default is dataclasses.MISSING:
                    raise self.fail(at, "missing")
                continue
            kind, optional = _scalar_type(hints[f.name])
            value = data[key]
            values[f.name] = None if value is None and optional else self.value(f, kind, value, at)
        return cls(**values)

    def stage_fields(self, data: Any, where: str) -> dict[str, Any]:
        """A partial stage (``defaults``): each key given is a stage field with a valid value;
        none is required. Returns the mapping as given (stages merge it with their own)."""
        data = self.mapping(data, where)
        fields = {yaml_key(f): f for f in dataclasses.fields(StageConfig)}
        hints = typing.get_type_hints(StageConfig)
        for key, value in data.items():
            if key not in fields:
                raise self.fail(_join(where, key), f"unknown field; allowed: {', '.join(fields)}")
            if key == "styles":
                raise self.fail(_join(where, key), "give styles to the stages that take them")
            kind, _optional = _scalar_type(hints[fields[key].name])
            self.value(fields[key], kind, value, _join(where, key))
        return dict(data)

    def value(self, f: dataclasses.Field, kind: type, value: Any, at: str) -> Any:
        """One field's value, converted to ``kind`` and checked against its metadata."""
        if f.metadata.get("styles"):
            return self.styles(value, at, required=True)
        if f.metadata.get("layers"):
            value = self.layers(value, at)
        elif kind in (int, float):
            value = self.number(value, at, kind)
        elif not isinstance(value, str):
            raise self.fail(at, f"must be text; got {_kind(value)}")
        problem = _check(dict(f.metadata), value)
        if problem:
            raise self.fail(at, problem)
        return value

    def styles(
        self, data: Any, where: str = "styles", required: bool = False
    ) -> tuple[StyleConfig, ...]:
        """A list of paintings (the preset's, or a stage's own when ``required``: at least
        one), their files relative to :attr:`base`."""
        least = 1 if required else 0
        if not isinstance(data, list) or not least <= len(data) <= MAX_LIST:
            raise self.fail(
                where,
                f"must be a list of {least} to {MAX_LIST} {{image: PATH, weight: W, mask: PATH}}; "
                f"got {_kind(data)}",
            )
        styles = []
        for i, raw in enumerate(data):
            style = self.record(StyleConfig, raw, f"{where}[{i}]")
            styles.append(dataclasses.replace(style, **self._paths(style)))
        problem = weight_problem({i: s.weight for i, s in enumerate(styles)}) if styles else None
        if problem is not None:
            index, text = problem
            raise self.fail(
                where if index is None else f"{where}[{index}].weight",
                _named(index, "style", text),
            )
        return tuple(styles)

    def plain_styles(self, data: Any, where: str) -> list[dict[str, Any]]:
        """:meth:`styles` as YAML data again, with absolute paths (for a ``base:``)."""
        return [dataclasses.asdict(style) for style in self.styles(data, where)]

    def _paths(self, style: StyleConfig) -> dict[str, str]:
        """A style's files (image, masks) with ``~`` expanded, relative to :attr:`base`."""
        paths = {}
        for key in ("image", "mask", "style_mask"):
            if getattr(style, key) is not None:
                path = Path(getattr(style, key)).expanduser()
                if self.base is not None and not path.is_absolute():
                    path = self.base / path
                paths[key] = str(path)
        return paths

    def preset(self, name: str, data: Any) -> Preset:
        data = self.mapping(data, "")
        allowed = (
            "base",
            "description",
            "model",
            "init",
            "color",
            "styles",
            "precision",
            "tiling",
            "defaults",
            "stages",
        )
        for key in data:
            if key not in allowed:
                raise self.fail(key, f"unknown field; allowed: {', '.join(allowed)}")
        for key in ("model", "stages"):
            if key not in data:
                raise self.fail(key, "missing")
        model = self.record(LayersConfig, data["model"], "model")
        init = self.choice(data.get("init", "content"), "init", INITS)
        color = self.choice(data.get("color", "none"), "color", COLOR_MODES)
        styles = self.styles(data.get("styles", []))
        precision = self.choice(data.get("precision", "tf32"), "precision", PRECISIONS)
        tiling = self.record(TilingConfig, data.get("tiling", {}), "tiling")
        if tiling.tile_edge and tiling.tile_edge <= tiling.overlap:
            raise self.fail(
                "tiling.size", f"must be 0 or more than tiling.overlap ({tiling.overlap})"
            )
        defaults = self.stage_fields(data.get("defaults", {}), "defaults")
        raw_stages = data["stages"]
        if not isinstance(raw_stages, list) or not 0 < len(raw_stages) <= MAX_LIST:
            raise self.fail(
                "stages", f"must be a list of 1 to {MAX_LIST} stages; got {_kind(raw_stages)}"
            )
        stages = []
        for i, raw in enumerate(raw_stages):
            where = f"stages[{i}]"
            merged = {**defaults, **self.mapping(raw, where)}
            stage = self.record(StageConfig, merged, where)
            if stages and stage.long_edge <= stages[-1].long_edge:
                raise self.fail(
                    f"{where}.size",
                    f"stage sizes must increase; got {stage.long_edge} after "
                    f"{stages[-1].long_edge}",
                )
            stages.append(stage)
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"must be text; got {_kind(description)}")
        return Preset(
            name,
            description.strip(),
            model,
            init,
            tuple(stages),
            color,
            styles,
            precision,
            tiling,
        )

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(where, f"must be one of {', '.join(choices)}; got {_ECHO.repr(value)}")
        return value


def _named(key: Any, what: str, problem: str) -> str:
    """A :func:`~stylecascade.stages.losses.weight_problem` text after its field's name: one
    weight's problem reads as it is, the all-zero one names what is weighted."""
    return problem if key is not None else f"{what} {problem}"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _bounded_repr() -> reprlib.Repr:
    """A ``repr`` for messages that stops early: a YAML alias bomb is a small file whose shared
    lists would take hours to print in full."""
    echo = reprlib.Repr()  # keyword arguments only from Python 3.12
    echo.maxlevel, echo.maxdict, echo.maxlist = 2, 4, 4
    echo.maxstring = echo.maxother = 60
    return echo


_ECHO = _bounded_repr()


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {_ECHO.repr(value)}" if value is not None else "nothing"


def bundled_presets() -> dict[str, Path]:
    """Names and files of the presets shipped with the package, sorted by name."""
    folder = resources.files("stylecascade.presets")
    files = sorted(p for p in folder.iterdir() if p.name.endswith(PRESET_SUFFIXES))
    return {Path(p.name).stem: Path(str(p)) for p in files}


def user_presets() -> dict[str, Path]:
    """Names and files of the user's saved presets, sorted by name."""
    folder = user_preset_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in PRESET_SUFFIXES}


def preset_yaml(preset: Preset) -> str:
    """A preset as the YAML document that :func:`parse_preset` reads back to the same preset
    (every stage written in full, style paths absolute)."""
    data = preset.to_dict()
    data.pop("name")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def parse_preset(text: str, name: str, source: str, base: Path | None = None) -> Preset:
    """Parse and validate preset YAML text.

    Args:
        text: the YAML document.
        name: the preset's name (bundled name or file stem).
        source: what to call the file in error messages (its path).
        base: folder that relative style image paths are relative to (the file's folder).

    Raises:
        PresetError: malformed YAML or any invalid field.
    """
    data = _with_base(_yaml(text, source), source, base, [])
    return _Reader(source, base).preset(name, data)


def _yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PresetError(f"{source}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None


def _with_base(data: Any, source: str, folder: Path | None, chain: list[str]) -> Any:
    """``data`` (a preset's YAML mapping) with its ``base:`` chain applied (module docstring):
    the base's fields, ``MERGED_BLOCKS`` merged key by key, the rest replaced; the base's
    relative style paths made absolute from the base's folder.

    Raises:
        PresetError: a base that is not a name or a path, cannot be read, or a chain that
            loops or is longer than :data:`MAX_BASE_DEPTH`.
    """
    if not isinstance(data, Mapping) or "base" not in data:
        return data
    spec = data["base"]
    if not isinstance(spec, str) or not spec:
        raise PresetError(f"{source}: base: must be a preset name or YAML file; got {_kind(spec)}")
    if spec.endswith(PRESET_SUFFIXES) and folder is not None and not Path(spec).is_absolute():
        spec = str(folder / spec)
    if spec in chain or len(chain) >= MAX_BASE_DEPTH:
        raise PresetError(
            f"{source}: base: {' → '.join([*chain, spec])} loops or is longer than "
            f"{MAX_BASE_DEPTH} links"
        )
    try:
        text, _name, base_source, base_folder = read_preset(spec)
    except PresetError as exc:
        raise PresetError(f"{source}: base: {exc}") from None
    parent = _with_base(_yaml(text, base_source), base_source, base_folder, [*chain, spec])
    parent = dict(_Reader(base_source).mapping(parent, ""))
    parent.pop("description", None)
    if base_folder is not None:  # the base's relative paths start from the base's folder
        reader = _Reader(base_source, base_folder)
        if isinstance(parent.get("styles"), list):
            parent["styles"] = reader.plain_styles(parent["styles"], "styles")
        if isinstance(parent.get("stages"), list):
            parent["stages"] = [
                {**stage, "styles": reader.plain_styles(stage["styles"], f"stages[{i}].styles")}
                if isinstance(stage, Mapping) and isinstance(stage.get("styles"), list)
                else stage
                for i, stage in enumerate(parent["stages"])
            ]
    merged = parent
    for key, value in data.items():
        if key == "base":
            continue
        if (
            key in MERGED_BLOCKS
            and isinstance(value, Mapping)
            and isinstance(parent.get(key), Mapping)
        ):
            merged[key] = {**parent[key], **value}
        else:
            merged[key] = value
    merged.setdefault("description", f"based on {data['base']}")
    return merged


def read_preset(spec: str) -> tuple[str, str, str, Path | None]:
    """Find a preset and read its YAML, unparsed.

    Args:
        spec: a bundled name (``draft``, ``standard``, ``print``), a saved user preset's name
            (:func:`user_preset_dir`), a path to a ``.yaml`` file, or a past render's manifest
            ``OUT.json`` (its resolved preset, styles and color mode included).

    Returns:
        ``(text, name, source, base)``: the YAML, the preset's name (bundled or saved name,
        file stem, or the manifest's preset name), what to call it in error messages and the
        folder relative style paths start from; the arguments of :func:`parse_preset`.

    Raises:
        PresetError: unknown name, or an unreadable file or manifest.
    """
    bundled, saved = bundled_presets(), user_presets()
    if spec in bundled:
        return _read_text(bundled[spec], f"preset {spec!r}"), spec, f"preset {spec!r}", None
    if spec in saved:
        path = saved[spec]
        return _read_text(path, str(path)), spec, str(path), path.parent
    path = Path(spec)
    if path.suffix.lower() == ".json":
        return _manifest_preset(path)
    if path.suffix not in PRESET_SUFFIXES and not path.exists():
        names = ", ".join([*bundled, *saved])
        raise PresetError(
            f"unknown preset {spec!r}; known presets: {names} "
            f"(or give a path to a .yaml file or a render's .json manifest)"
        )
    return _read_text(path, spec), path.stem, spec, path.resolve().parent


def _read_text(path: Path, source: str) -> str:
    try:
        if path.stat().st_size > MAX_PRESET_BYTES:
            raise PresetError(f"{source}: larger than {MAX_PRESET_BYTES} bytes; not a preset")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{source}: no such preset file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{source}: cannot read preset file ({exc})") from None


def _manifest_preset(path: Path) -> tuple[str, str, str, Path | None]:
    """The resolved preset of a past render, from its manifest, as YAML."""
    try:
        manifest = json.loads(_read_text(path, str(path)))
    except ValueError as exc:
        raise PresetError(f"{path}: not valid JSON ({exc})") from None
    data = manifest.get("preset") if isinstance(manifest, dict) else None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: not a stylecascade manifest (no 'preset' in it)")
    made_by = str(manifest.get("versions", {}).get("stylecascade", ""))
    if made_by.startswith("0.1."):
        raise PresetError(
            f"{path}: made by stylecascade {made_by}, whose content and style losses were "
            f"absolute errors; its weights would mean something else now (0.2 weighs relative "
            f"errors: content 1, style 20, tv 10). Render again with 0.2, or copy its fields into "
            f"a preset with new weights"
        )
    data = dict(data)
    name = str(data.pop("name", path.stem))
    return yaml.safe_dump(data, sort_keys=False), name, str(path), path.resolve().parent


def save_user_preset(name: str, preset: Preset, overwrite: bool = False) -> Path:
    """Write ``preset`` as ``NAME.yaml`` into :func:`user_preset_dir`.

    Raises:
        PresetError: a name that is not a plain file name or is a bundled preset's, or an
            existing saved preset without ``overwrite``.
        OSError: the folder cannot be written.
    """
    if not name or Path(name).name != name or name.startswith(".") or Path(name).suffix:
        raise PresetError(
            f"preset name {name!r}: use a plain name like 'my-look' (no path, no suffix)"
        )
    if name in bundled_presets():
        raise PresetError(f"preset name {name!r} is a bundled preset's; choose another name")
    # a saved look.yml is the one --preset look finds: replace that file, never shadow it
    path = user_presets().get(name, user_preset_dir() / f"{name}.yaml")
    if path.exists() and not overwrite:
        raise PresetError(f"saved preset {path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = preset_yaml(dataclasses.replace(preset, name=name))
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def load_preset(spec: str) -> Preset:
    """Load and validate a bundled preset by name, or a preset file by path.

    Raises:
        PresetError: unknown name, unreadable file, or an invalid preset.
    """
    return parse_preset(*read_preset(spec))
