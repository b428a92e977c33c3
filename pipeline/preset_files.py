"""Preset files: finding presets (bundled, saved, a YAML file, a past render's manifest),
reading them through their ``base:`` chain, saving them.

With ``base: NAME`` (a bundled or saved preset, or a YAML file relative to this one) a preset
starts from that preset's fields: ``model``, ``tiling`` and ``defaults`` are merged key by key
(a key given here wins), every other field given here replaces the base's, and the description
is not inherited (without one it reads "based on NAME"). Bases may have bases (up to
:data:`MAX_BASE_DEPTH`); a cycle is an error.

Every field is checked by the reader (``stylecascade.preset_reader``); the JSON Schema of preset
files is ``stylecascade.preset_schema``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import reprlib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ArgumentError, ArgumentTypeError, literal
from .files import atomic_write, make_folder
from .naming import check_name, name_problem
from .paths import user_preset_dir
from .preset import Preset, PresetError
from .preset_reader import Reader, shown
from .reading import MANIFEST, Bound, parsed, read_text
from .write_checks import check_outputs

PRESET_SUFFIXES = (".yaml", ".yml")
MAX_PRESET_BYTES = 1 << 20
"""Largest preset file read (1 MiB; the bundled ones are under 2 KiB)."""
MAX_BASE_DEPTH = 8
"""Most ``base:`` links a preset may chain."""
MAX_PRESET_NAME = 100
"""Longest saved preset name in bytes (its file ``NAME.yaml`` and the temporary file written
beside it fit any file system's 255-byte names)."""
MERGED_BLOCKS = ("model", "tiling", "defaults")
"""Fields a preset merges key by key with its base's; every other field replaces the base's."""


def bundled_presets() -> dict[str, Path]:
    """Names and files of the presets shipped with the package, sorted by name."""
    folder = resources.files("stylecascade.presets")
    files = sorted(p for p in folder.iterdir() if p.name.endswith(PRESET_SUFFIXES))
    return {Path(p.name).stem: Path(str(p)) for p in files}


def user_presets() -> dict[str, Path]:
    """Names and files of the user's saved presets, sorted by name: the files of
    :func:`user_preset_dir` whose names keep the name rule (:func:`saved_name_problem`);
    others, made by hand, are no presets (``presets list`` says why)."""
    return {n: p for n, p in _saved_files().items() if saved_name_problem(n) is None}


def _saved_files() -> dict[str, Path]:
    """Every preset file of :func:`user_preset_dir` by its stem, sorted."""
    folder = user_preset_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in PRESET_SUFFIXES}


def saved_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a saved preset's, else ``None``: the name rule
    (:func:`~stylecascade.naming.check_name`: printable, no spaces around, at most
    :data:`MAX_PRESET_NAME` bytes, no look-alike of a bundled name such as ``DRAFT``), no
    suffix (``look.v2`` would read as a file), not a bundled name."""
    problem = name_problem(name, MAX_PRESET_NAME) or ("has a suffix" if Path(name).suffix else None)
    if problem is not None:
        return f"preset name {reprlib.repr(name)}: {problem}; use a plain name like 'my-look'"
    bundled = bundled_presets()
    if name in bundled:
        return f"preset name {name!r} is a bundled preset's; choose another name"
    try:
        check_name(name, "preset name", taken=bundled, limit=MAX_PRESET_NAME, error=PresetError)
    except PresetError as exc:
        return str(exc)
    return None


def ignored_presets() -> dict[Path, str]:
    """The files of :func:`user_preset_dir` that are no saved presets, with why."""
    return {
        p: problem
        for n, p in _saved_files().items()
        if (problem := saved_name_problem(n)) is not None
    }


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
    return Reader(source, base).preset(name, data)


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
    spec = _base_spec(data["base"], source, folder, chain)
    try:
        text, _name, base_source, base_folder = read_preset(spec)
    except PresetError as exc:
        raise PresetError(f"{source}: base: {exc}") from None
    parent = _with_base(_yaml(text, base_source), base_source, base_folder, [*chain, spec])
    parent = dict(Reader(base_source).mapping(parent, ""))
    parent.pop("description", None)
    if base_folder is not None:  # the base's relative paths start from the base's folder
        _absolute_paths(parent, Reader(base_source, base_folder))
    return _merged(parent, data)


def _base_spec(spec: Any, source: str, folder: Path | None, chain: list[str]) -> str:
    """The ``base:`` of ``source``: a preset name, or a YAML path (relative to ``folder``).

    Raises:
        PresetError: not a name or a path, or ``chain`` (the bases followed so far) loops or
            is longer than :data:`MAX_BASE_DEPTH`.
    """
    if not isinstance(spec, str) or not spec:
        raise PresetError(f"{source}: base: must be a preset name or YAML file; got {shown(spec)}")
    if spec.endswith(PRESET_SUFFIXES) and folder is not None and not Path(spec).is_absolute():
        spec = str(folder / spec)
    if spec in chain or len(chain) >= MAX_BASE_DEPTH:
        raise PresetError(
            f"{source}: base: {' → '.join([*chain, spec])} loops or is longer than "
            f"{MAX_BASE_DEPTH} links"
        )
    return spec


def _absolute_paths(parent: dict[str, Any], reader: Reader) -> None:
    """Make a base's relative file paths (styles, ``init_image``, the stages' styles) absolute
    from the base's folder (``reader.base``), in place."""
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


def _merged(parent: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """A preset's fields over its base's: ``MERGED_BLOCKS`` merged key by key, every other
    field replaced; without a description, "based on NAME"."""
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


def save_user_preset(
    name: str, preset: Preset, overwrite: bool = False, inputs: Sequence[Path] = ()
) -> Path:
    """Write ``preset`` as ``NAME.yaml`` into :func:`user_preset_dir` (through the one writer,
    :mod:`stylecascade.files`: never over one of ``inputs``, the file it was read from).

    Raises:
        PresetError: a name that breaks the name rule (:func:`saved_name_problem`: also a
            look-alike of a saved preset's name, ``Look`` beside ``look``).
        ArgumentError: (argument ``overwrite``) an existing saved preset without
            ``overwrite``.
        OSError: the folder cannot be written.
    """
    problem = saved_name_problem(name)
    if problem is not None:
        raise PresetError(problem)
    saved = _saved_files()
    check_name(name, "preset name", taken=saved, limit=MAX_PRESET_NAME, error=PresetError)
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
    check_outputs([path], inputs, argument=None)  # the write rule: never over its source
    make_folder(path.parent, None)
    atomic_write(
        path,
        lambda tmp: tmp.write_text(text, encoding="utf-8"),
        replace=overwrite,
        argument=None,
    )
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
