"""The JSON Schema of preset files (``stylecascade presets schema``), generated from the one
definition: the preset dataclasses and their field metadata (``stylecascade.preset``), with
the YAML reader's bounds (``stylecascade.preset_reader``). Editors that read JSON Schema
complete and check preset YAML with it; what a schema cannot say (increasing stage sizes,
weights not all 0, a tile size above the overlap) only the reader checks.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any

from .preset import Preset, StageConfig
from .preset_reader import MAX_LIST, PRESET_KEYS, scalar_type, yaml_fields
from .stages.vocabulary import LAYER_NAMES, MAX_WEIGHT


def _given(key: str) -> dict[str, Any]:
    """A stage's field ``key`` comes from the stage, from ``defaults``, or from a base."""
    return {
        "anyOf": [
            {"required": ["base"]},
            {"required": ["defaults"], "properties": {"defaults": {"required": [key]}}},
            {"properties": {"stages": {"items": {"required": [key]}}}},
        ]
    }


def preset_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a preset file, generated from the dataclasses of
    :mod:`stylecascade.preset` and their field metadata, so it states what the reader checks.

    Beyond it the reader also checks what a schema cannot say: stage sizes that increase,
    ``tiling.size`` 0 or more than ``tiling.overlap``, layer and painting weights not all 0,
    the ``base:`` chain, and it reads YAML 1.1 number strings (``1e4``) as numbers. A preset
    with a ``base:`` may leave out what its base gives (``model``, ``stages``, and a stage's
    ``size`` and ``iterations``, which ``defaults`` may give too).

    Returns:
        The schema as plain JSON data (``json.dumps`` writes it).
    """
    properties = _properties(Preset)
    properties["base"] = {
        "type": "string",
        "minLength": 1,
        "description": "start from this preset: a bundled or saved preset's name, or a YAML "
        "file relative to this one; model, tiling and defaults merge key by key",
    }
    defaults = _record_schema(StageConfig)
    del defaults["required"], defaults["properties"]["styles"]
    defaults["description"] = "any stage field but styles; each stage overrides these"
    properties["defaults"] = defaults
    properties["stages"]["minItems"] = 1
    model_required = properties["model"].pop("required")
    stage_required = properties["stages"]["items"].pop("required")
    without_base = {"not": {"required": ["base"]}}
    given = [_given(key) for key in stage_required]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "stylecascade preset",
        "type": "object",
        "properties": {key: properties[key] for key in PRESET_KEYS},
        "additionalProperties": False,
        "$defs": {"layer": {"enum": list(LAYER_NAMES)}, "layers": _layers_schema()},
        "allOf": [
            {
                "if": without_base,
                "then": {
                    "required": ["model", "stages"],
                    "properties": {"model": {"required": model_required}},
                },
            },
            *given,
        ],
    }


def _record_schema(cls: type) -> dict[str, Any]:
    """The schema of dataclass ``cls`` as a mapping: its fields by YAML key, those without a
    default required, no other key."""
    summary = inspect.cleandoc(cls.__doc__ or "").split("\n\n", 1)[0]
    return {
        "description": _plain_text(summary),
        "type": "object",
        "properties": _properties(cls),
        "required": [k for k, f in yaml_fields(cls).items() if f.default is dataclasses.MISSING],
        "additionalProperties": False,
    }


def _properties(cls: type) -> dict[str, Any]:
    """The schemas of dataclass ``cls``'s fields by YAML key, each described by the text its
    docstring gives the field under ``Attributes:``."""
    hints, texts = typing.get_type_hints(cls), _attributes(cls)
    properties = {}
    for key, f in yaml_fields(cls).items():
        schema = _field_schema(f, hints[f.name])
        properties[key] = {**schema, "description": texts[f.name]} if f.name in texts else schema
    return properties


def _attributes(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of ``cls``'s docstring: ``{field name: its text}``, the
    text on one line (an entry may name several fields: ``a, b: text``)."""
    section = inspect.cleandoc(cls.__doc__ or "").partition("Attributes:\n")[2]
    texts: dict[str, str] = {}
    names: list[str] = []
    for line in section.splitlines():
        entry = re.fullmatch(r" {4}(\w+(?:, \w+)*): (.*)", line)
        if entry:
            names = entry[1].split(", ")
            texts |= dict.fromkeys(names, entry[2])
        elif line.startswith(" " * 8):
            texts |= {name: f"{texts[name]} {line.strip()}" for name in names}
        else:
            break
    return {name: _plain_text(text) for name, text in texts.items()}


def _field_schema(f: dataclasses.Field, annotation: Any) -> dict[str, Any]:
    """The schema of one field's value: its type (a number, text, a record, a list of records
    or ``{layer: weight}``), its metadata as bounds and choices, and its default."""
    kind, optional = scalar_type(annotation)
    meta = f.metadata
    if meta.get("layers"):
        schema = {"$ref": "#/$defs/layers"}
    elif dataclasses.is_dataclass(kind):
        schema = _record_schema(kind)
    elif typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        schema = {"type": "array", "items": _record_schema(item), "maxItems": MAX_LIST}
        if meta.get("styles"):  # a stage's own paintings: at least one
            schema["minItems"] = 1
    else:
        schema = {"type": {int: "integer", float: "number", str: "string"}[kind]}
    if "choices" in meta:
        schema["enum"] = list(meta["choices"])
    if meta.get("positive"):
        schema["exclusiveMinimum"] = 0
    if meta.get("non_negative"):
        schema["minimum"] = 0
    if "at_most" in meta:
        schema["maximum"] = meta["at_most"]
    if optional:
        schema = {"anyOf": [schema, {"type": "null"}]}
    if f.default is None or isinstance(f.default, (str, int, float)):
        schema["default"] = f.default
    return schema


def _layers_schema() -> dict[str, Any]:
    """``{VGG19 layer: weight ≥ 0}``, or a list of layer names (equal weights)."""
    weight = {"type": "number", "minimum": 0, "maximum": MAX_WEIGHT}
    name = {"$ref": "#/$defs/layer"}
    return {
        "anyOf": [
            {
                "type": "object",
                "minProperties": 1,
                "propertyNames": name,
                "additionalProperties": weight,
            },
            {"type": "array", "minItems": 1, "items": name},
        ]
    }


def _plain_text(text: str) -> str:
    """Docstring text on one line, without reST roles (``:class:`X``` reads ``X``)."""
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", " ".join(text.split()))
    return text.replace("``", "`")
