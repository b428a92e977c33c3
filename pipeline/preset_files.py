"""Reading presets: a preset's YAML file, checked field by field against the dataclasses of
:mod:`stylecascade.preset`, where to find presets, saving them, and their JSON Schema.

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

With ``base: NAME`` (a bundled or saved preset, or a YAML file relative to this one) a preset
starts from that preset's fields: ``model``, ``tiling`` and ``defaults`` are merged key by key
(a key given here wins), every other field given here replaces the base's, and the description
is not inherited (without one it reads "based on NAME"). Bases may have bases (up to
:data:`MAX_BASE_DEPTH`); a cycle is an error.

Every field is checked here, in one place: a bad value raises :class:`PresetError` naming the
file, the field and what is allowed, on one line (``SOURCE: field.path: problem``).
:func:`preset_schema` states the same fields and constraints as a JSON Schema.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import reprlib
import types
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ArgumentError, ArgumentTypeError, literal
from .files import atomic_write
from .paths import user_preset_dir
from .preset import (
    ModelConfig,
    Preset,
    PresetError,
    StageConfig,
    StyleConfig,
    TilingConfig,
    yaml_key,
)
from .reading import MANIFEST, Bound, parsed, read_text
from .stages.vocabulary import LAYER_NAMES, weight_problem

PRESET_SUFFIXES = (".yaml", ".yml")
MAX_PRESET_BYTES = 1 << 20
"""Largest preset file read (1 MiB; the bundled ones are under 2 KiB)."""
MAX_LIST = 64
"""Most stages and most styles a preset may list."""
MAX_BASE_DEPTH = 8
"""Most ``base:`` links a preset may chain."""
MAX_PRESET_NAME = 100
"""Longest saved preset name in bytes (its file ``NAME.yaml`` and the temporary file written
beside it fit any file system's 255-byte names)."""
MERGED_BLOCKS = ("model", "tiling", "defaults")
"""Fields a preset merges key by key with its base's; every other field replaces the base's."""
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


class _Reader:
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
            raise self.fail(where, f"must be a mapping of key: value; got {_kind(data)}")
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
            raise self.fail(at, f"must be text; got {_kind(value)}")
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

    def init_image(self, value: Any) -> str | None:
        """The ``init_image`` path relative to :attr:`base` (``~`` expanded), or ``None``."""
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail("init_image", f"must be an image file path; got {_kind(value)}")
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
            raise self.fail("description", f"must be text; got {_kind(description)}")
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
                "stages", f"must be a list of 1 to {MAX_LIST} stages; got {_kind(data)}"
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
        return parsed(yaml.safe_load, text, source, PresetError)
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
        if parent.get("init_image") is not None:
            parent["init_image"] = reader.init_image(parent["init_image"])
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


PRESET = Bound(MAX_PRESET_BYTES, "preset file", PresetError)
MANIFEST_PRESET = Bound(MANIFEST.limit, "JSON file", PresetError)


def _read_text(path: Path, source: str, bound: Bound = PRESET) -> str:
    return read_text(path, bound, source)


def _manifest_preset(path: Path) -> tuple[str, str, str, Path | None]:
    """The resolved preset of a past render, from its manifest, as YAML."""
    text = _read_text(path, str(path), MANIFEST_PRESET)
    try:
        manifest = parsed(json.loads, text, str(path), PresetError)
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path}: not valid JSON ({exc})") from None
    data = None if not isinstance(manifest, dict) else manifest.get("look", manifest.get("preset"))
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
        PresetError: a name that is not a plain file name, is over :data:`MAX_PRESET_NAME`
            bytes, or is a bundled preset's.
        ArgumentError: (argument ``overwrite``) an existing saved preset without
            ``overwrite``.
        OSError: the folder cannot be written.
    """
    if not name or Path(name).name != name or name.startswith(".") or Path(name).suffix:
        raise PresetError(
            f"preset name {name!r}: use a plain name like 'my-look' (no path, no suffix)"
        )
    if len(os.fsencode(name)) > MAX_PRESET_NAME:
        raise PresetError(
            f"preset name {reprlib.repr(name)} is {len(os.fsencode(name))} bytes long; at most "
            f"{MAX_PRESET_NAME}"
        )
    if name in bundled_presets():
        raise PresetError(f"preset name {name!r} is a bundled preset's; choose another name")
    # a saved look.yml is the one load_preset("look") finds: replace that file, never shadow it
    path = user_presets().get(name, user_preset_dir() / f"{name}.yaml")
    text = preset_yaml(dataclasses.replace(preset, name=name))
    if path.exists() and not overwrite:
        if path.is_file() and _same_text(path, text):
            return path  # saved before, the same look: saving again changes nothing
        raise ArgumentError(
            "overwrite",
            f"saved preset {literal(path)} already exists, with another look; pass {{}} to "
            f"replace it",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _same_text(path: Path, text: str) -> bool:
    """Whether the preset file ``path`` holds exactly ``text`` (an unreadable one does not)."""
    try:
        return _read_text(path, str(path)) == text
    except PresetError:
        return False


def load_preset(spec: str) -> Preset:
    """Load and validate a bundled preset by name, or a preset file by path.

    Raises:
        ArgumentTypeError: ``spec`` is not a str or path.
        PresetError: unknown name, unreadable file, or an invalid preset.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise ArgumentTypeError(
            "preset", f"{{}} must be a name or a path; got {type(spec).__name__}"
        )
    return parse_preset(*read_preset(str(spec)))
