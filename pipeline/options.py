"""The command line's options, generated from the record (:mod:`stylecascade.record`): a
command declares which fields it takes (:func:`takes`) and typer reads their flags, help,
panels and defaults from the record's specs; :func:`flag_of` says which flag an API argument
is (a message naming an argument, :class:`~stylecascade.errors.ArgumentError`, shows the flag
the user typed).

Knob names follow jcjohnson/neural-style where the knob is the same: ``--style-weight``,
``--content-weight`` and ``--tv-weight`` scale the style, content and TV weights;
``--blend-weight`` is a painting's share of the blend (neural-style's
``-style_blend_weights``). Free of torch.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from .record import INSPECT_SHARED, PARTS, Inspection, spec_of

Command = TypeVar("Command", bound=Callable[..., None])

CLI_TYPES: dict[str, Any] = {
    "styles": list[Path] | None,
    "masks": list[str] | None,  # a path, or 'none': everywhere
    "style_weight": list[float] | None,  # once; twice is the old share spelling, refused
    "preset": str | None,
    "device": str,
    "weights": str,  # caffe | torchvision | a file
}
"""The command line's type of a field whose Python type typer cannot take as it is."""


def record_fields() -> dict[str, dataclasses.Field]:
    """Every field of the record (the request's parts, then ``inspect``'s own) by name; a
    name in both is the request's."""
    found: dict[str, dataclasses.Field] = {}
    for part in (*PARTS.values(), Inspection):
        for f in dataclasses.fields(part):
            found.setdefault(f.name, f)
    return found


def flag_of(argument: str) -> str:
    """The command line's flag for an API argument or preset field (``out_dir`` →
    ``--out-dir``, ``blend_weights`` → ``--blend-weight``, ``photos`` → ``CONTENT``)."""
    f = record_fields().get(argument)
    if f is None:
        return "--" + argument.replace("_", "-")
    spec = spec_of(f)
    return spec.flags[0] if spec.flags else spec.metavar


def _cli_type(name: str, hint: Any) -> Any:
    """The command line's type of a field: a path (``str | os.PathLike``) is a ``Path``, a
    ``Sequence[X]`` a ``list[X]``, optional stays optional (:data:`CLI_TYPES` for the rest)."""
    if name in CLI_TYPES:
        return CLI_TYPES[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        inner = Path if set(rest) >= {str, os.PathLike} else _cli_type(name, rest[0])
        return inner | None if optional else inner
    if typing.get_origin(hint) is Sequence:
        return list[_cli_type(name, args[0])]  # type: ignore[misc]
    return hint


def _parameter(f: dataclasses.Field, hint: Any, name: str | None = None) -> inspect.Parameter:
    """The typer parameter of a record field (an argument when its spec has no flags)."""
    spec = spec_of(f)
    if spec.flags:
        info: Any = typer.Option(
            *spec.flags, metavar=spec.metavar, rich_help_panel=spec.panel, help=spec.help,
            show_default=spec.show_default,
        )  # fmt: skip
    else:
        info = typer.Argument(metavar=spec.metavar, help=spec.help, show_default=False)
    required = not spec.flags and f.default == ()
    default = inspect.Parameter.empty if required else f.default
    if isinstance(default, str) and not spec.flags:
        default = Path(default)
    kind = Annotated[_cli_type(f.name, hint), info]
    return inspect.Parameter(name or f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=kind)  # fmt: skip


def _old(f: dataclasses.Field, hint: Any) -> inspect.Parameter:
    """A hidden parameter for a field's earlier spellings (``Spec.old``)."""
    info = typer.Option(*spec_of(f).old, hidden=True)
    kind = Annotated[_cli_type(f.name, hint) | None, info]
    return inspect.Parameter(f"{f.name}__old", inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=kind)  # fmt: skip


Field = tuple[dataclasses.Field, Any]
"""A record field with its annotation (``typing.get_type_hints`` of its part)."""


def fields_of(part: type, names: Sequence[str] | None = None) -> list[Field]:
    """The fields of a record part (those named, in that order; ``None``: all) with their
    annotations."""
    hints, found = typing.get_type_hints(part), {f.name: f for f in dataclasses.fields(part)}
    return [(found[n], hints[n]) for n in (names or list(found))]


def takes(
    fields: Sequence[Field], *extra: inspect.Parameter, said: Callable[[str], None] | None = None
) -> Callable[[Command], Command]:
    """Give a command the typer parameters of these record fields (and ``extra`` ones of its
    own); the command is called with one keyword per parameter. An earlier spelling of a
    field (``Spec.old``) still works; ``said`` receives the note naming the new one."""
    params = [_parameter(f, hint) for f, hint in fields] + list(extra)
    olds = {f.name: (f, _old(f, hint)) for f, hint in fields if spec_of(f).old}

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def wrapper(**given: Any) -> None:
            for name, (f, old) in olds.items():
                value = given.pop(old.name)
                if value is not None:
                    if said is not None:
                        said(f"note: {'/'.join(spec_of(f).old)} is now {spec_of(f).flags[0]}")
                    given[name] = value
            command(**given)

        signature = [*params, *(old for _, old in olds.values())]
        wrapper.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {}
        return wrapper  # type: ignore[return-value]

    return decorate


def one(part: type, name: str) -> Any:
    """The ``Annotated`` type of one record field, for a command that declares its own
    signature (``studio --device``)."""
    [(f, hint)] = fields_of(part, [name])
    return _parameter(f, hint).annotation


def extra(name: str, kind: Any, default: Any, *flags: str, **info: Any) -> inspect.Parameter:
    """A command's own parameter, not a record field (``--original-colors``, the studio's)."""
    info.setdefault("show_default", False)
    option = typer.Option(*flags, **info)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option])  # fmt: skip


RENDER: list[Field] = [pair for part in PARTS.values() for pair in fields_of(part)]
"""``render`` takes every field of the request's parts."""
INSPECT: list[Field] = fields_of(Inspection) + [
    pair for part in PARTS.values() for pair in fields_of(part) if pair[0].name in INSPECT_SHARED
]
"""``inspect`` takes its own fields and a few of the request's."""

StudioFolder = Annotated[
    Path,
    typer.Argument(
        metavar="FOLDER",
        help="The photos and paintings to offer (default: this folder); the page's uploads, "
        "masks and prints go into FOLDER/studio.",
        show_default=False,
    ),
]
StudioOut = Annotated[
    Path | None,
    typer.Option(
        "--out-dir", metavar="DIR", help="Where the page writes (default: FOLDER/studio).",
        show_default=False),
]  # fmt: skip
Port = Annotated[
    int,
    typer.Option("--port", metavar="N", help="Port to listen on (0: any free one)."),
]
Host = Annotated[
    str,
    typer.Option(
        "--host", metavar="ADDRESS",
        help="Address to listen on; another than 127.0.0.1 lets other machines use the studio.",
    ),
]  # fmt: skip
StudioToken = Annotated[
    str | None,
    typer.Option(
        "--token", metavar="TEXT", show_default=False,
        help="The studio's access token (default: a new random one per launch, printed in "
        "its address).",
    ),
]  # fmt: skip
AllowOrigin = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-origin", metavar="URL", show_default=False,
        help="Another origin (scheme://host[:port], e.g. a reverse proxy) allowed to use the "
        "studio; repeatable.",
    ),
]  # fmt: skip
