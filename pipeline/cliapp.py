"""The command line's apps (typer) and how they report: one ``error:`` line per expected
failure with its exit code (:func:`reports_errors`); a message that names an API argument
shows its flag here (:func:`stylecascade.options.flag_of`). The commands live in
:mod:`stylecascade.cli` (``render``), :mod:`stylecascade.cli_inspect` and
:mod:`stylecascade.cli_more` (``studio``, ``presets``, ``weights``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from . import __version__
from .errors import StyleCascadeError
from .helptext import PlainGroup
from .interrupt import Interrupted, Signalled
from .options import flag_of


def _app(help: str, **settings) -> typer.Typer:
    """A typer app (or sub-app) with the project's settings: ``-h``, rich help with panels,
    no locals in tracebacks, its help when called without arguments."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode="markdown",
        pretty_exceptions_show_locals=False,
        cls=PlainGroup,
        **settings,
    )


app = _app("Coarse-to-fine neural style transfer (Gatys et al.) for print-resolution images.")
presets_app = _app("List, show, validate and save presets; print their JSON Schema.")
weights_app = _app("Download and convert the VGG19 weights.")
app.add_typer(presets_app, name="presets")
app.add_typer(weights_app, name="weights")

console = Console(stderr=True)


Command = TypeVar("Command", bound=Callable[..., None])


def error_line(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")


def reports_errors(command: Command) -> Command:
    """Wrap a command so that every expected failure (a :class:`StyleCascadeError`, or a
    signal outside a stage) is one ``error:`` line on stderr with its exit code; an
    :class:`ArgumentError` names the command line's flags (:func:`~stylecascade.options.flag_of`).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except StyleCascadeError as exc:
            error_line(exc.named(flag_of))
            raise typer.Exit(exc.exit_code) from None
        except Signalled as exc:
            message = (
                "interrupted; no output written (finished stages, if any, are kept for --resume)"
            )
            error_line(message)
            raise typer.Exit(Interrupted(message, exc.signum).exit_code) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stylecascade {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", metavar="", callback=_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Coarse-to-fine neural style transfer (Gatys et al.) for print-resolution images."""
