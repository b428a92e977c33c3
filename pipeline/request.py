"""The one typed request of a render: photos, paintings with their masks and blend weights,
the preset and the knobs over it, output rules, device and cluster.

The command line, :func:`stylecascade.render`, :func:`stylecascade.render_batch` and the
cluster all describe a render with a :class:`RenderRequest` and hand it to
:mod:`stylecascade.launch`. Free of torch, so the command line builds and checks it before
torch is imported. Field names are the Python API's argument names; error messages name them
(:class:`~stylecascade.errors.ArgumentError`) and the command line shows its flags instead.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import reprlib
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArgumentError, ArgumentTypeError, literal
from .naming import check_name
from .record import PARTS, Batch, Compute, Inputs, Look, Outputs, check_bounds


def _checked(kind: Any) -> bool:
    """Whether a field of this annotation is type-checked by :meth:`RenderRequest.check`
    (``Any`` anywhere in it: checked where the value is read, e.g. ``styles``, ``preset``)."""
    return kind is not Any and all(_checked(a) for a in typing.get_args(kind))


def field_types() -> dict[str, Any]:
    """The type of each request field a caller gives as a plain value, from the record's
    annotations (:mod:`stylecascade.record`), checked strictly by pydantic (no ``"128"`` for
    128, no ``1.5`` or ``True`` for an integer)."""
    hints = {}
    for part in PARTS.values():
        hints.update(typing.get_type_hints(part))
    return {name: kind for name, kind in hints.items() if _checked(kind)}


class _Duck:
    """Annotation metadata for a kind pydantic cannot test by itself: a ``typing.Protocol``
    (an object with each of its methods) or a PIL image (at least 1 × 1 px), as its test.
    Built without pydantic, which is imported only once a check runs."""

    def __init__(self, kind: Any) -> None:
        self.kind = kind

    def test(self, value: Any) -> bool:
        """Whether ``value`` is of the kind."""
        if getattr(self.kind, "_is_protocol", False):
            methods = [n for n in vars(self.kind) if not n.startswith("_")]
            return all(callable(getattr(value, n, None)) for n in methods)
        return isinstance(value, self.kind) and min(value.size) >= 1

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def validate(value: Any) -> Any:
            if not self.test(value):
                raise ValueError(f"not {_describe(self.kind)}")
            return value

        return core_schema.no_info_plain_validator_function(validate)


def _image_class() -> type | None:
    """PIL's image class when PIL is imported (a PIL image can only exist then)."""
    module = sys.modules.get("PIL.Image")
    return None if module is None else module.Image


def _testable(kind: Any) -> Any:
    """``kind`` with each part pydantic cannot test by itself (:class:`_Duck`) annotated."""
    if getattr(kind, "_is_protocol", False) or (kind is _image_class() and kind is not None):
        return typing.Annotated[Any, _Duck(kind)]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_testable(a) for a in args)]  # noqa: UP007
    if origin is Sequence and args:
        return Sequence[_testable(args[0])]  # type: ignore[misc]
    return kind


@functools.cache
def _adapter(kind: Any) -> Any:
    """pydantic's strict validator of ``kind``: no ``"128"`` for 128, no ``1.5`` or ``True``
    for an integer, no text or mapping for a list, no empty text (imported here: 0.2 s kept
    off the CLI's start-up)."""
    from pydantic import ConfigDict, TypeAdapter

    config = ConfigDict(strict=True, arbitrary_types_allowed=True, str_min_length=1)
    return TypeAdapter(_testable(kind), config=config)


_NAMES = {int: "an int", float: "a number", str: "a str", bool: "True or False"}


def _describe(kind: Any) -> str:
    """``int | None`` → ``an int or None``; ``Sequence[float]`` → ``a list, each a number``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = typing.get_args(kind)
        path = str in args and (os.PathLike in args or Path in args)
        rest = [_describe(a) for a in args if not (path and a in (str, os.PathLike, Path))]
        return " or ".join(["a path (str or Path)"] * path + rest)
    if typing.get_origin(kind) is Sequence:
        return f"a list (each {_describe(typing.get_args(kind)[0])})"
    if getattr(kind, "_is_protocol", False):
        return f"an {kind.__name__.lower()}"
    if kind is _image_class() and kind is not None:
        return "a PIL image"
    if kind is type(None):
        return "None"
    name = getattr(kind, "__name__", "?")
    return _NAMES.get(kind, f"a {'tensor' if name == 'Tensor' else name}")


def _check_type(argument: str, value: Any, kind: Any) -> None:
    """Raise :class:`ArgumentTypeError` unless ``value`` is of ``kind`` (strictly: see
    :func:`_adapter`; a PIL image of 0 px is none)."""
    from pydantic import ValidationError

    try:
        _adapter(kind).validate_python(value)
    except ValidationError as exc:
        shown = literal(reprlib.repr(value))
        image, empty = _image_class(), None
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if image is not None and isinstance(v, image) and min(v.size) < 1:
                empty = f"a {v.width}×{v.height} px PIL image"
        if any(e["type"] == "string_too_short" for e in exc.errors()):
            problem = f"{{}} takes no empty text; got {shown}"
        elif empty is not None:
            problem = f"{{}} takes no empty image; got {empty}"
        else:
            problem = f"{{}} must be {_describe(kind)}; got {shown} ({type(value).__name__})"
        raise ArgumentTypeError(argument, problem) from None


@functools.cache
def _hints(function: Any) -> dict[str, Any]:
    """The annotations of ``function``'s parameters, resolved."""
    hints = typing.get_type_hints(function)
    return {name: hints[name] for name in inspect.signature(function).parameters}


def check_arguments(function: Any, arguments: dict[str, Any]) -> None:
    """The one type check of a public function's arguments, from its signature (its
    annotations are the types it takes): strictly (no text for a list, no mapping for a list,
    no ``"no"`` for ``False``, no empty text, no PIL image of 0 px; a ``typing.Protocol`` is
    any object with its methods).

    Args:
        function: the function (:func:`stylecascade.render`, :func:`stylecascade.render_batch`).
        arguments: ``{parameter: value}`` of a call (its ``locals()`` on entry).

    Raises:
        ArgumentTypeError: the first argument of another type, naming it.
    """
    for name, kind in _hints(function).items():
        _check_type(name, arguments[name], kind)


@dataclass(frozen=True, kw_only=True)
class RenderRequest:
    """Everything one render (or one batch) is asked to do, in the record's parts
    (:mod:`stylecascade.record`: each field's meaning, type, bounds and rule is declared there).

    Attributes:
        inputs: photos, paintings, blend weights, masks and preset (:class:`Inputs`).
        look: the knobs over the preset, size and seed (:class:`Look`).
        outputs: output file, stage images, overwrite/resume, file options, quiet, yes
            (:class:`Outputs`).
        compute: device, threads, tiles, weights, input limit (:class:`Compute`).
        batch: a batch's folder and names, the Ray cluster (:class:`Batch`).
    """

    inputs: Inputs = Inputs()
    look: Look = Look()
    outputs: Outputs = Outputs()
    compute: Compute = Compute()
    batch: Batch = Batch()

    @classmethod
    def of(cls, **fields: Any) -> RenderRequest:
        """The request of these fields, each named as in the record (the Python API's
        argument names: ``style_weight=2``, ``out_dir=...``); the others take their defaults.

        Raises:
            TypeError: a name that is no field of the record.
        """
        parts = {}
        for attribute, part in PARTS.items():
            names = {f.name for f in dataclasses.fields(part)}
            parts[attribute] = part(**{k: v for k, v in fields.items() if k in names})
        unknown = set(fields) - {name for name, _ in cls.field_items(parts)}
        if unknown:
            raise TypeError(f"RenderRequest has no field {', '.join(sorted(unknown))}")
        return cls(**parts)

    @staticmethod
    def field_items(parts: dict[str, Any]) -> list[tuple[str, Any]]:
        """``(field name, value)`` of every field of ``parts`` (``{attribute: part}``)."""
        return [(f.name, getattr(p, f.name)) for p in parts.values() for f in dataclasses.fields(p)]

    def fields(self) -> dict[str, Any]:
        """Every field by its record name, flat (``{"style_weight": 2.0, ...}``)."""
        return dict(self.field_items({a: getattr(self, a) for a in PARTS}))

    def replace(self, **fields: Any) -> RenderRequest:
        """The same request with these fields (record names) changed."""
        return RenderRequest.of(**{**self.fields(), **fields})

    @functools.cached_property
    def is_batch(self) -> bool:
        """Whether this is a batch: several photos, a folder, or an ``out_dir`` (the photos
        are looked at once; several places ask)."""
        photos = [Path(p) for p in self.inputs.photos]
        return len(photos) > 1 or self.batch.out_dir is not None or any(p.is_dir() for p in photos)

    def check(self) -> None:
        """The checks that need no file and no torch, in one place.

        Raises:
            ArgumentTypeError: an argument of another type than its field's
                (:func:`field_types`; ``True`` is no number here).
            ArgumentError: a value outside its field's bounds (``Spec.at_least``/``at_most``);
                a seed out of range; an ``output`` whose file name breaks the name rule
                (``naming.check_name``); ``output`` with a batch; masks that are not paths;
                ``save_every`` without ``save_stages``; ``actors``/``cpus_per_actor`` without
                ``cluster``.
        """
        fields = self.fields()
        masks = fields["masks"] if isinstance(fields["masks"], (list, tuple)) else ()
        if not all(m is None or isinstance(m, (str, os.PathLike)) for m in masks):
            raise ArgumentError(
                "masks", "{}= takes mask file paths (or None for everywhere), one per style"
            )
        for argument, kind in field_types().items():
            _check_type(argument, fields[argument], kind)
        from .preset import Preset  # torch-free, like this module

        _check_type("preset", self.inputs.preset, str | os.PathLike | Preset | None)
        check_bounds(PARTS.values(), fields)  # the seed's range too (record: Look.seed)
        if self.outputs.output is not None:  # the file name it makes keeps the name rule
            check_name(Path(self.outputs.output).name, "output", field="output")
        self._check_combinations()

    def _check_combinations(self) -> None:
        """The rules between fields (see :meth:`check`)."""
        batch = self.batch
        if self.is_batch and self.outputs.output is not None:
            raise ArgumentError(
                "output", "{} names one output; for several photos use {} and {}", "out_dir", "name"
            )
        if self.outputs.save_every is not None and self.outputs.save_stages is None:
            raise ArgumentError(
                "save_every", "{} writes into the {} folder: give it", "save_stages"
            )
        for argument in ("actors", "cpus_per_actor"):
            if getattr(batch, argument) is not None and batch.cluster is None:
                raise ArgumentError(argument, "{} goes with {} ADDRESS", "cluster")
