"""The rules by which a render's knobs change a preset's fields (:mod:`stylecascade.record`:
each knob names its rule and target), and the paintings' blend weights and masks: pure
functions over a preset's stages and styles, each error naming the knob's field.

Rules: ``override`` (the value replaces the field's), ``multiply`` (every stage's value times
the knob, jcjohnson/neural-style's weights), ``last`` (the last stage takes the value, the
earlier ones scale alike, neural-style's ``-num_iterations``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from pathlib import Path
from typing import Any

from .errors import ArgumentError
from .stages.vocabulary import weight_problem


def check_choice(f: dataclasses.Field, name: str, value: Any) -> None:
    """Refuse a value outside the preset field's ``choices``.

    Raises:
        ArgumentError: ``{name} must be one of …; got …``.
    """
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ArgumentError(name, f"{{}} must be one of {', '.join(choices)}; got {value!r}")


def override_stages(
    stages: tuple[Any, ...], f: dataclasses.Field, name: str, value: Any
) -> tuple[Any, ...]:
    """Every stage's field ``f`` set to ``value`` (rule ``override``)."""
    check_choice(f, name, value)
    return tuple(dataclasses.replace(s, **{f.name: value}) for s in stages)


def last(stages: tuple[Any, ...], f: dataclasses.Field, name: str, value: Any) -> tuple[Any, ...]:
    """The last stage's field ``f`` set to ``value``, the earlier stages' scaled by the same
    factor, rounded, ≥ 1 (rule ``last``: ``iterations``, jcjohnson's ``-num_iterations``).

    Raises:
        ArgumentError: ``value`` not 1 … the field's ``at_most``.
    """
    at_most = f.metadata["at_most"]
    if isinstance(value, bool) or not 1 <= value <= at_most:
        raise ArgumentError(name, f"{{}} must be 1 … {at_most}; got {value!r}")
    factor = value / getattr(stages[-1], f.name)
    return tuple(
        dataclasses.replace(s, **{f.name: max(1, round(getattr(s, f.name) * factor))})
        for s in stages
    )


def multiply(
    stages: tuple[Any, ...], f: dataclasses.Field, name: str, factor: Any
) -> tuple[Any, ...]:
    """Every stage's field ``f`` multiplied by ``factor`` (rule ``multiply``: the weights,
    ``style_scale``).

    Raises:
        ArgumentError: ``factor`` not a finite number ≥ 0, or a product above the field's
            ``at_most`` (or 0 where the field must be positive).
    """
    if (
        isinstance(factor, bool)
        or not isinstance(factor, numbers.Real)
        or not math.isfinite(factor)
        or factor < 0
    ):
        raise ArgumentError(
            name,
            f"{{}} multiplies each stage's {f.name}; it must be a finite number ≥ 0; got "
            f"{factor!r}",
        )
    stages = tuple(
        dataclasses.replace(s, **{f.name: getattr(s, f.name) * float(factor)}) for s in stages
    )
    products = [getattr(s, f.name) for s in stages]
    at_most, positive = f.metadata.get("at_most", math.inf), f.metadata.get("positive", False)
    if max(products) > at_most or (positive and min(products) <= 0):
        bound = f"in (0, {at_most:g}]" if positive else f"≤ {at_most:g}"
        raise ArgumentError(
            name,
            f"{{}} multiplies each stage's {f.name}: × {float(factor):g} makes a stage's "
            f"{f.name} {max(products):g}; it must stay {bound}",
        )
    return stages


def _one_each(argument: str, given: list, chosen: tuple, wanted: str, *more: str) -> None:
    """Refuse ``given`` values that are not one per painting of ``chosen``.

    Raises:
        ArgumentError: ``{argument} given N times for M style image(s); give {wanted}``.
    """
    if len(given) != len(chosen):
        raise ArgumentError(
            argument,
            f"{{}} given {len(given)} times for {len(chosen)} style image(s); give {wanted}",
            *more,
        )


def blend(
    chosen: tuple[Any, ...],
    blend_weights: list[float] | None,
    masks: list[str | Path | None] | None,
) -> tuple[Any, ...]:
    """The paintings with the caller's masks and blend weights (:meth:`Preset.resolved`)."""
    if masks:
        _one_each("masks", masks, chosen, "one per {} (none / None: everywhere)", "styles")
        chosen = tuple(
            dataclasses.replace(s, mask=None if m is None else str(m))
            for s, m in zip(chosen, masks, strict=True)
        )
    if blend_weights:
        _one_each("blend_weights", blend_weights, chosen, "one weight per style image")
        if weight_problem(dict(enumerate(blend_weights))) is not None:
            raise ArgumentError(
                "blend_weights",
                f"{{}} must be finite, ≥ 0 and not all 0; got {blend_weights!r}",
            )
        chosen = tuple(
            dataclasses.replace(s, weight=w) for s, w in zip(chosen, blend_weights, strict=True)
        )
    return chosen
