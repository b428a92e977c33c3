"""The time gate: before a render starts, how long it takes at most
(:mod:`stylecascade.estimate`, learned from the stages rendered here), said on the console,
and on a CPU a render over :data:`~stylecascade.estimate.CONFIRM_SECONDS` refused without
``yes`` — never one at or below its preset's own size — naming a size the gate accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console

from .errors import ArgumentError
from .request import RenderRequest

if TYPE_CHECKING:
    from .job import CheckedJob
    from .renderer import Renderer


def check_time(
    console: Console | None,
    request: RenderRequest,
    renderer: Renderer,
    photos: int,
    checked: CheckedJob | None,
    default_edge: int,
    content_hw: tuple[int, int],
) -> None:
    """Say how long the render will take at most (:mod:`stylecascade.estimate`: learned from
    the stages rendered here, else probed) and, on a CPU, refuse one over
    :data:`~stylecascade.estimate.CONFIRM_SECONDS` without ``yes`` — unless it is at or below
    its preset's own size (the size the preset was made for is never gated).

    Args:
        console: where the estimate is said (``None``: nowhere).
        request: the render's request (``resume``, ``yes``).
        renderer: the resolved preset, network and device.
        photos: how many photos it renders (each priced as ``content_hw``).
        checked: a single photo's checked job (its checkpoint, when resumed).
        default_edge: the final long edge in px of the preset as it was made.
        content_hw: ``(H, W)`` px of the photo priced.

    Raises:
        ArgumentError: (field ``yes``) too long on a CPU, naming a size the gate accepts.
    """
    from .estimate import CONFIRM_SECONDS, duration

    done = checked.checkpoint.finished() if checked and request.outputs.resume else 0
    seconds_at = _seconds_at(renderer, photos, done, content_hw)
    preset, device, count = renderer.preset, renderer.device, photos
    final = preset.stages[-1].long_edge
    total, estimate = seconds_at(final)
    if console is not None:
        console.print(
            f"estimate: at most {duration(total)} ({estimate.flops * count / 1e12:.1f} TFLOP at "
            f"{estimate.rate:.0f} GFLOP/s on {device}, {_source(estimate)}; stages that "
            f"converge stop earlier)",
            soft_wrap=True,
        )
    if device.type != "cpu" or total <= CONFIRM_SECONDS or request.outputs.yes:
        return
    if final <= default_edge:
        return
    _refuse_long(total, seconds_at, final, estimate.h100_seconds * count)


def _seconds_at(
    renderer: Renderer, count: int, done: int, content_hw: tuple[int, int]
) -> Callable[[int], tuple[float, Any]]:
    """``long edge → (seconds for every photo, Estimate)`` of the renderer's preset at that
    final size, the stages from ``done`` on, planned for memory as they will run
    (``runner.stage_planner``)."""
    from .device import precision
    from .estimate import estimate, stage_work
    from .runner import schedule, stage_planner

    name, autocast = precision(renderer.preset.precision, renderer.device)
    extractor = renderer.network.extractor
    prepare = stage_planner(extractor, renderer.preset.tiling, autocast, renderer.device)

    def seconds_at(edge: int) -> tuple[float, Any]:
        preset = renderer.preset.with_final_size(edge)
        stages = [prepare(i, s) for i, s in enumerate(schedule(preset, content_hw))]
        works = [stage_work(s, None, extractor.layers) for s in stages][done:]
        found = estimate(works, extractor, renderer.device, name, autocast)
        return found.seconds * count, found

    return seconds_at


def _source(estimate: Any) -> str:
    """Where the estimate's speed came from, in words."""
    if estimate.source == "learned":
        return f"learned from {estimate.observations} stages rendered here"
    return "probed while the CPU was busy" if estimate.source == "busy probe" else "probed"


def _refuse_long(
    total: float, seconds_at: Callable[[int], tuple[float, Any]], final: int, h100: float
) -> None:
    """Refuse a long CPU render, naming the largest size within the limit (one the gate then
    accepts), if any, and its time on an H100.

    Raises:
        ArgumentError: (field ``yes``, naming ``size``).
    """
    from .estimate import duration, suggested_size

    size = suggested_size(lambda edge: seconds_at(edge)[0], final)
    smaller = "" if size is None else f", or render at {{}} {size} (at most 30 min)"
    raise ArgumentError(
        "yes",
        f"this render would take up to {duration(total)} on this CPU; pass {{}} to start it"
        f"{smaller}, or on a GPU (an H100: about {duration(h100)})",
        *(["size"] if size is not None else []),
    )
