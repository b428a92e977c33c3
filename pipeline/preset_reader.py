"""Reading a preset's YAML data: each field checked against the dataclasses of
:mod:`stylecascade.preset` and their metadata, in one place; a bad value raises
:class:`~stylecascade.preset.PresetError` naming the file, the field and what is allowed, on
one line (``SOURCE: field.path: problem``). ``stylecascade.preset_files`` finds the files and
applies ``base:`` chains; ``stylecascade.preset_schema`` states the same fields and
constraints as a JSON Schema.

A preset file looks like::

    base: draft                         # optional: start from another preset (below)
    description: Three stages for a GPU, 256 → 512 → 1024 px.
    model:
      pooling: avg                      # max | avg
      content_layers: {relu4_2: 1}      # layer: weight (normalized to sum 1)
      style_layers: {relu1_1: 1, relu2_1: 1, relu3_1: 1, relu4_1: 1, relu5_1: 1}
    init: content                       # content | noise | style (first stage only)
    color: none                         # none | luminance | histogram | luminance-only
    styles:                             # optional; a render's own styles replace them
      - {image: starry_night.jpg, weight: 3}   # path relative to this file; weight ≥ 0
      - {image: the_scream.jpg, weight: 1, scale: 0.8}   # scale × the stage's style size
    defaults:                           # any stage field; each stage overrides these
      optimizer: lbfgs                  # lbfgs | adam
      lr: 1.0
      content_weight: 1.0               # the objective's weights α, β, γ
      style_weight: 20.0
      tv_weight: 10.0
      style_scale: 1.0
      tolerance: 0.01                   # stop once 20 evaluations improve the loss < 1 %
    stages:
      - {size: 256, iterations: 300}    # size: long edge in px (long_edge in the code)
      - {size: 512, iterations: 150}    # iterations: the cap on evaluations
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .preset import (
    ModelConfig,
    Preset,
    PresetError,
    StageConfig,
    StyleConfig,
    TilingConfig,
    yaml_key,
)
from .stages.vocabulary import LAYER_NAMES, weight_problem

MAX_LIST = 64
"""Most stages and most styles a preset may list."""
PRESET_KEYS = (
    "base",
    "description",
    "model",
    "init",
    "init_image",
    "color",
    "styles",
    "precision",
    "tiling",
    "defaults",
    "stages",
)
"""The keys of a preset file, in the order a message lists them."""


def _check(meta: Mapping[str, Any], value: Any) -> str | None:
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


def yaml_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of dataclass ``cls`` by YAML key (:func:`yaml_key`), in their order."""
    return {yaml_key(f): f for f in dataclasses.fields(cls)}


def scalar_type(annotation: Any) -> tuple[Any, bool]:
    """``(int, False)`` for ``int``, ``(int, True)`` for ``int | None`` (likewise ``float``,
    ``str``, a dataclass, a tuple): the type a field's values have, and whether ``None`` is
    allowed too."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        kinds = [a for a in args if a is not type(None)]
        return (kinds[0] if len(kinds) == 1 else object), type(None) in args
    return annotation, False


class Reader:
    """Turns YAML data into the dataclasses of :mod:`stylecascade.preset`, naming ``source``
    and the field on error."""

    def __init__(self, source: str, base: Path | None = None) -> None:
        self.source, self.base = source, base  # base: the folder relative paths start from

    def fail(self, where: str, problem: str) -> PresetError:
        return PresetError(
            f"{self.source}: {where}: {problem}" if where else f"{self.source}: {problem}"
        )

    def mapping(self, data: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(where, f"must be a mapping of key: value; got {shown(data)}")
        return data

    def known(self, data: Mapping[str, Any], allowed: typing.Iterable[str], where: str) -> None:
        """Refuse the first key of ``data`` that is not in ``allowed``."""
        for key in data:
            if key not in allowed:
                raise self.fail(_join(where, key), f"unknown field; allowed: {', '.join(allowed)}")

    def number(self, value: Any, where: str, kind: type) -> int | float:
        # YAML 1.1 reads "1e4" as a string; accept it as the number it plainly is.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number; got {shown(value)}")
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

    def values(self, cls: type, data: Any, where: str, required: bool = False) -> dict[str, Any]:
        """The fields of dataclass ``cls`` that the mapping ``data`` gives, by field name, each
        converted and checked (:meth:`value`); with ``required``, a field without a default
        that ``data`` lacks is an error."""
        data = self.mapping(data, where)
        fields = yaml_fields(cls)
        hints = typing.get_type_hints(cls)
        self.known(data, fields, where)
        values = {}
        for key, f in fields.items():
            at = _join(where, key)
            if key not in data:
                if required and f.default is dataclasses.MISSING:
                    raise self.fail(at, "missing")
                continue
            kind, optional = scalar_type(hints[f.name])
            value = data[key]
            values[f.name] = None if value is None and optional else self.value(f, kind, value, at)
        return values

    def record(self, cls: type, data: Any, where: str) -> Any:
        """Build dataclass ``cls`` from a mapping, field by field."""
        return cls(**self.values(cls, data, where, required=True))

    def stage_fields(self, data: Any, where: str) -> dict[str, Any]:
        """A partial stage (``defaults``): each key given is a stage field with a valid value;
        none is required. Returns the mapping as given (stages merge it with their own)."""
        data = self.mapping(data, where)
        for key, value in data.items():  # key by key: the first bad key in the file's order
            if key == "styles":
                raise self.fail(_join(where, key), "give styles to the stages that take them")
            self.values(StageConfig, {key: value}, where)
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
            raise self.fail(at, f"must be text; got {shown(value)}")
        problem = _check(f.metadata, value)
        if problem:
            raise self.fail(at, problem)
        return value

    def choice(self, data: Mapping[str, Any], key: str) -> str:
        """The preset's field ``key`` (``init``, ``color``, ``precision``): one of the field's
        choices, its default when ``data`` lacks it."""
        f = yaml_fields(Preset)[key]
        value = data.get(key, f.default)
        problem = _check(f.metadata, value)
        if problem:
            raise self.fail(key, problem)
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
                f"got {shown(data)}",
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

    def init_image(self, value: Any) -> str | None:
        """The ``init_image`` path relative to :attr:`base` (``~`` expanded), or ``None``."""
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail("init_image", f"must be an image file path; got {shown(value)}")
        path = Path(value).expanduser()
        return str(path if self.base is None or path.is_absolute() else self.base / path)

    def plain_styles(self, data: Any, where: str) -> list[dict[str, Any]]:
        """:meth:`styles` as YAML data again, with absolute paths (for a ``base:``)."""
        return [dataclasses.asdict(style) for style in self.styles(data, where)]

    def _paths(self, style: StyleConfig) -> dict[str, str]:
        """A style's files (image, masks) with ``~`` expanded, relative to :attr:`base`."""
        paths = {}
        for key, value in style.file_fields().items():
            path = Path(value).expanduser()
            if self.base is not None and not path.is_absolute():
                path = self.base / path
            paths[key] = str(path)
        return paths

    def preset(self, name: str, data: Any) -> Preset:
        """The preset of a file's YAML mapping (its ``base:`` chain applied)."""
        data = self.mapping(data, "")
        self.known(data, PRESET_KEYS, "")
        for key in ("model", "stages"):
            if key not in data:
                raise self.fail(key, "missing")
        model = self.record(ModelConfig, data["model"], "model")
        init, color = self.choice(data, "init"), self.choice(data, "color")
        styles = self.styles(data.get("styles", []))
        precision = self.choice(data, "precision")
        tiling = self.record(TilingConfig, data.get("tiling", {}), "tiling")
        if tiling.tile_edge and tiling.tile_edge <= tiling.overlap:
            raise self.fail(
                "tiling.size", f"must be 0 or more than tiling.overlap ({tiling.overlap})"
            )
        stages = self.stages(
            data["stages"], self.stage_fields(data.get("defaults", {}), "defaults")
        )
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"must be text; got {shown(description)}")
        return Preset(
            name,
            description.strip(),
            model,
            init=init,
            init_image=self.init_image(data.get("init_image")),
            stages=stages,
            color=color,
            styles=styles,
            precision=precision,
            tiling=tiling,
        )

    def stages(self, data: Any, defaults: dict[str, Any]) -> tuple[StageConfig, ...]:
        """The list of stages, each merged over ``defaults``; their sizes must increase."""
        if not isinstance(data, list) or not 0 < len(data) <= MAX_LIST:
            raise self.fail(
                "stages", f"must be a list of 1 to {MAX_LIST} stages; got {shown(data)}"
            )
        stages: list[StageConfig] = []
        for i, raw in enumerate(data):
            where = f"stages[{i}]"
            stage = self.record(StageConfig, {**defaults, **self.mapping(raw, where)}, where)
            if stages and stage.long_edge <= stages[-1].long_edge:
                raise self.fail(
                    f"{where}.size",
                    f"stage sizes must increase; got {stage.long_edge} after "
                    f"{stages[-1].long_edge}",
                )
            stages.append(stage)
        return tuple(stages)


def _named(key: Any, what: str, problem: str) -> str:
    """A :func:`~stylecascade.stages.vocabulary.weight_problem` text after its field's name: one
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


def shown(value: Any) -> str:
    """``int 3``, ``list [1, 2, ...]`` or ``nothing``: a value's type and a bounded repr, for
    messages."""
    return f"{type(value).__name__} {_ECHO.repr(value)}" if value is not None else "nothing"
