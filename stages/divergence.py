"""A stage whose losses stay NaN or infinite: the error, and its cause in words.

The cascade (``stages.cascade``) restarts a stage from its best iterate with half the step size
after NaN/inf losses, :data:`MAX_RECOVERIES` times; then, or when its best iterate's losses are
not finite, it raises :class:`Divergence` built by :func:`diverged`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .evaluator import Evaluator
from .losses import as_floats
from .terms import TermSpec

MAX_RECOVERIES = 3
"""Times a stage restarts from its best iterate with half the step size before giving up."""


class Divergence(ArithmeticError):
    """A stage kept producing NaN or infinite losses."""


def diverged(index: int, terms: Sequence[TermSpec], evaluate: Evaluator) -> Divergence:
    """The error for stage ``index`` (0-based) whose losses stayed NaN/inf, naming the cause
    when it is known: a starting image that is not finite; a term already NaN/inf at the
    starting image, before any step (its weight × its loss overflows float32: the message
    names the term's weight field, ``TermSpec.weight_field``); else the steps (the step size).

    Args:
        index: the stage's 0-based number.
        terms: the stage's terms (``Stage.terms``).
        evaluate: the stage's evaluator (its first terms and best iterate are read).
    """
    where = f"stage {index + 1} diverged"
    start = as_floats(evaluate.first) if evaluate.first is not None else {}
    broken = [name for name, value in start.items() if name != "total" and not math.isfinite(value)]
    if broken and not torch.isfinite(evaluate.best.image).all():  # best: the start, still
        return Divergence(f"{where}: its starting image holds NaN or infinity")
    if broken:
        spec = next(t for t in terms if t.name == broken[0])
        name, field = spec.name, spec.weight_field
        return Divergence(
            f"{where}: its {name} loss is {start[name]} at the starting image, before any step: "
            f"{field} {spec.weight:g} × the {name} loss overflows float32; lower {field}"
        )
    return Divergence(
        f"{where}: NaN/inf losses even after halving the step size {MAX_RECOVERIES} times; "
        f"lower its lr or use optimizer: adam in the preset"
    )
