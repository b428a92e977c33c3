"""How the command line's help names its parameters: a typer group class (:class:`PlainGroup`)
that shows arguments by their metavar alone (``CONTENT...``, not ``{CONTENT}...`` with a
``<list[Path]>`` type beside it) and flags without a ``<bool>`` type."""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class PlainArgument(TyperArgument):
    """A positional argument shown as its metavar: ``NAME`` when required, ``[NAME]`` when
    optional, ``NAME...`` when it takes several; no type beside it in the help."""

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.metavar or (self.name or "").upper()
        name = name if self.required else f"[{name}]"
        return [f"{name}..." if self.nargs != 1 else name]

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class PlainCommand(TyperCommand):
    """A command whose help shows its parameters plainly (:class:`PlainGroup` makes them)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


class PlainGroup(TyperGroup):
    """A typer group (``typer.Typer(cls=PlainGroup)``) whose own parameters and whose commands'
    parameters are shown plainly (:class:`PlainArgument`, flags without a type)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if type(command) is TyperCommand:
                command.__class__ = PlainCommand  # adds a method only: no state to convert

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


def _plain(params: list[Any]) -> list[Any]:
    """``params`` (a command's, its ``-h`` included) with its arguments made
    :class:`PlainArgument` and its flags shown without a ``<bool>`` type."""
    for param in params:
        if type(param) is TyperArgument:
            param.__class__ = PlainArgument  # adds methods only: no state to convert
        elif isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params
