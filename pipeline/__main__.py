"""The ``stylecascade`` command and ``python -m stylecascade``.

Importing the command line takes a moment; a Ctrl-C during it is one ``error:`` line, like
every other expected failure (:func:`stylecascade.cli.run` handles the rest).
"""

import sys


def main() -> None:
    """Run the command line on ``sys.argv`` and exit with its code."""
    try:
        from .cli import run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted while starting; nothing was done\n")
        sys.exit(130)
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
