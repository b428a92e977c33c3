"""Errors the command line reports as one line, with the exit code it uses."""

from collections.abc import Callable


class StyleCascadeError(Exception):
    """A failure the user can act on; its message is the whole report (exit code 1).

    A message may name fields of the record (``resume``, ``size``): then ``template`` has
    ``{}`` where each name goes and ``arguments`` are the names, and each edge words them
    (:meth:`named`: the command line shows flags, the API the argument names).

    Args:
        template: the message (with ``{}`` per argument when there are arguments).
        arguments: the fields the message names, in order.
    """

    exit_code = 1

    def __init__(self, template: str = "", *arguments: str) -> None:
        self.arguments, self.template = arguments, template
        super().__init__(self.named(str) if arguments else template)

    def named(self, name_of: Callable[[str], str]) -> str:
        """The message with ``name_of(argument)`` (e.g. the command line's flag) for each
        argument: the first ``{}`` takes the first argument, and so on (no other braces are
        read, so a message may quote user text that holds braces). It is one line: line
        breaks in quoted user text are shown as ``\\n``."""
        if not self.arguments:
            return str(self)
        parts = self.template.split("{}", len(self.arguments))
        names = [name_of(a) for a in self.arguments][: len(parts) - 1]
        message = "".join(p + n for p, n in zip(parts, [*names, ""], strict=True))
        return message.replace("\r", "\\r").replace("\n", "\\n")


class UsageError(StyleCascadeError, ValueError):
    """Bad input from the user: a missing file, a bad preset or option (exit code 2); a
    ``ValueError`` to Python callers."""

    exit_code = 2


def literal(text: object) -> str:
    """``text`` for an :class:`ArgumentError` message, any ``{}`` in it (a file named by a
    ``--name`` pattern) kept from being read as a placeholder (a word joiner, U+2060, goes
    between the braces; it is invisible)."""
    return str(text).replace("{}", "{\u2060}")


class DivergedError(StyleCascadeError):
    """The optimization kept producing NaN or infinite losses (the maths' own signal,
    ``stages.cascade.Divergence``, an ``ArithmeticError``, turned into a report that names the
    preset fields to change)."""


class ArgumentError(UsageError):
    """A bad value of a named argument (a preset field or an API argument such as
    ``blend_weights``): the message has ``{}`` where each argument's name goes, so the API
    shows the arguments as the caller wrote them and the command line its flags
    (``--blend-weight``, :meth:`named`).

    Args:
        argument: the argument's name in the Python API or preset (``blend_weights``).
        template: the message, with ``{}`` for each name, e.g. ``"{} must be ≥ 0; got -1"``.
        more: the names of further arguments the message names, in order.
    """

    def __init__(self, argument: str, template: str, *more: str) -> None:
        super().__init__(template, argument, *more)

    @property
    def argument(self) -> str:
        """The (first) argument the message names."""
        return self.arguments[0]


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (``size="128"``, ``seed=1.5``): an :class:`ArgumentError`
    that Python callers may also catch as ``TypeError``."""
