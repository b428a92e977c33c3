"""Errors the command line reports as one line, with the exit code it uses."""


class StyleCascadeError(Exception):
    """A failure the user can act on; its message is the whole report (exit code 1)."""

    exit_code = 1


class UsageError(StyleCascadeError):
    """Bad input from the user: a missing file, a bad preset or option (exit code 2)."""

    exit_code = 2


class ArgumentError(UsageError):
    """A bad value of one named argument (a preset field or an API argument such as
    ``blend_weights``): the message says ``{}`` where the argument's name goes, so the API
    shows the argument as the caller wrote it and the command line its flag
    (``--blend-weight``).

    Args:
        argument: the argument's name in the Python API / preset (``blend_weights``, ``size``).
        template: the message with ``{}`` for the name, e.g. ``"{} must be ≥ 0; got -1"``.
    """

    def __init__(self, argument: str, template: str) -> None:
        self.argument, self.template = argument, template
        super().__init__(template.format(argument))

    def named(self, name: str) -> str:
        """The message with ``name`` (e.g. the command line's flag) for the argument."""
        return self.template.format(name)


def literal(text: str) -> str:
    """``text`` for an :class:`ArgumentError` template, shown as it is (its braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")
