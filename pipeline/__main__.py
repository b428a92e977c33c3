"""``python -m stylecascade``."""

from .cli import app

app(prog_name="stylecascade")
