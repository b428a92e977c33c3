"""Errors the command line reports as one line, with the exit code it uses."""


class StyleCascadeError(Exception):
    """A failure the user can act on; its message is the whole report (exit code 1)."""

    exit_code = 1


class UsageError(StyleCascadeError):
    """Bad input from the user: a missing file, a bad preset or option (exit code 2)."""

    exit_code = 2
