"""The time gate: before a render starts, how long it takes at most (:mod:`stylecascade.estimate`,
learned from the stages rendered here), said where the render reports, and on a CPU a render
over :data:`~stylecascade.estimate.CONFIRM_SECONDS` refused without ``yes`` — never one at or
below its preset's own size — naming a size (a DPI for a print size) the gate accepts.

Every path that starts a render passes it: a single photo and a batch from the launcher
(:func:`check_plan`), :func:`stylecascade.render` and the studio's tries and prints
(:func:`check_one`). It never loads the weights: the work is counted from the preset and the
photos' sizes (a batch's read from their file headers, :func:`photo_shapes`), at the rates
learned here or probed on a network of the same shape with random weights
(:func:`pricing_network`).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from .errors import ArgumentError, StyleCascadeError
from .printsize import DEFAULT_DPI, MIN_LONG_EDGE, final_long_edge
from .request import RenderRequest

if TYPE_CHECKING:
    import torch

    from .job import CheckedJob, RenderJob
    from .preset import Preset, TilingConfig
    from .renderer import Renderer
    from .stages.vgg import VGGFeatures

MAX_PRICED = 64
"""A batch's photos whose headers the gate reads, evenly spread over the batch; the others are
priced at their mean (a folder of thousands is priced in well under a second)."""


class TooLong(ArgumentError):
    """A render the gate refuses: over the limit on a CPU, without ``yes``. Its message names
    ``yes`` and the suggested field as each edge words it (the command line ``--yes`` and
    ``--size 1400``; ``str()``, the Python API's, ``yes=True`` and ``size=1400``).

    Args:
        seconds: the render's estimate, s.
        h100: the same work on an H100, s.
        suggestion: ``(field, value)`` the gate accepts when taken (``size`` px, or ``dpi``
            with a print size), ``None`` when even the smallest would take longer.

    Attributes:
        seconds, h100, suggestion: as given; said, h100_said, limit_said: the estimate, the
            H100's time and the limit in words (``3 h 11 min``).
    """

    def __init__(self, seconds: float, h100: float, suggestion: tuple[str, int] | None) -> None:
        from .estimate import CONFIRM_SECONDS, duration

        self.seconds, self.h100, self.suggestion = seconds, h100, suggestion
        self.said, self.h100_said = duration(seconds), duration(h100)
        self.limit_said = f"{CONFIRM_SECONDS // 60} min"
        smaller = "" if suggestion is None else (
            f", or render at {{}} {suggestion[1]} (at most {self.limit_said})"
        )  # fmt: skip
        super().__init__(
            "yes",
            f"this render would take up to {self.said} on this CPU; pass {{}} to start it"
            f"{smaller}, or on a GPU (an H100: about {self.h100_said})",
            *([suggestion[0]] if suggestion else []),
        )

    def __str__(self) -> str:
        """The message as the Python API words it: ``yes=True``, ``size=1400``."""
        return self.named(lambda field: "yes=True" if field == "yes" else f"{field}=").replace(
            "= ", "="
        )


@dataclass(frozen=True)
class Work:
    """What the gate prices.

    Attributes:
        preset: the resolved preset at its final size.
        device: where it will run.
        shapes: ``(H, W)`` px of the photos priced (at least one).
        photos: how many photos the render has (the shapes' mean prices those not read).
        done: stages finished before (a resumed photo starts after them).
    """

    preset: Preset
    device: torch.device
    shapes: tuple[tuple[int, int], ...]
    photos: int = 1
    done: int = 0


def check_time(
    console: Console | None, request: RenderRequest, work: Work, default_edge: int
) -> str:
    """Say how long ``work`` takes at most and, on a CPU, refuse it over
    :data:`~stylecascade.estimate.CONFIRM_SECONDS` without ``request``'s ``yes`` — unless its
    final long edge is at or below ``default_edge`` (px: the preset's own size, never gated).

    Args:
        console: where the estimate is said (``None``: nowhere).
        request: the render's request (``yes``; ``print_size``, ``dpi``, ``bleed`` for the
            suggestion).
        work: the preset, device and photos priced.
        default_edge: the final long edge in px of the preset as it was made.

    Returns:
        The estimate as said after ``estimate:`` (``at most 3 min 5 s (…)``).

    Raises:
        TooLong: too long on a CPU, naming a size or DPI the gate accepts.
    """
    from .estimate import CONFIRM_SECONDS, duration

    seconds_at = _seconds_at(work)
    final = work.preset.stages[-1].long_edge
    total, found = seconds_at(final)
    if work.device.type != "cpu":  # never gated there; its memory is the render's own plan's
        del seconds_at
        _release_pricing()
    said = (
        f"at most {duration(total)} ({found.flops / 1e12:.1f} TFLOP at {found.rate:.0f} "
        f"GFLOP/s on {work.device}, {_source(found)}; stages that converge stop earlier)"
    )
    if console is not None:
        console.print(f"estimate: {said}", soft_wrap=True)
    long = work.device.type == "cpu" and total > CONFIRM_SECONDS and final > default_edge
    if long and not request.outputs.yes:
        suggestion = _suggestion(request, lambda edge: seconds_at(edge)[0], final)
        raise TooLong(total, found.h100_seconds, suggestion)
    return said


def check_plan(
    console: Console | None,
    request: RenderRequest,
    renderer: Renderer,
    jobs: Sequence[RenderJob],
    checked: CheckedJob | None,
    default: int,
) -> str | None:
    """The gate of a local render the launcher planned (``launch.Plan``: its ``renderer``,
    ``jobs`` and a single photo's ``checked`` job; ``default``: the preset's own final long
    edge): a single photo priced from its checked content, from the stage it resumes at; a
    batch from the headers of the photos it will render (:func:`photo_shapes`; those whose
    output exists are skipped), never their pixels. Nothing to price (a render done before,
    no readable photo): ``None``.

    Raises:
        TooLong: see :func:`check_time`.
    """
    if checked is not None:
        if checked.done_before:
            return None
        done = checked.checkpoint.finished() if request.outputs.resume else 0
        shape = (int(checked.content.shape[-2]), int(checked.content.shape[-1]))
        work = Work(renderer.preset, renderer.device, (shape,), 1, done)
        return check_time(console, request, work, default)
    from .batch import skip_existing

    todo = [job.content for job in jobs if skip_existing(job) is None]
    shapes = photo_shapes(todo, request.compute.max_input_pixels or None)
    if not shapes:
        return None
    work = Work(renderer.preset, renderer.device, tuple(shapes), len(todo))
    return check_time(console, request, work, default)


def check_one(
    console: Console | None,
    request: RenderRequest,
    preset: Preset,
    device: torch.device,
    default_edge: int,
    content: Any,
) -> str | None:
    """The gate of one photo rendered in memory (:func:`stylecascade.render`) or by the
    studio: ``content`` (a path: its header; a PIL image or a ``(…, H, W)`` tensor: its size)
    rendered with ``preset`` (resolved, at its final size) on ``device``. ``None``: a
    ``content`` whose size cannot be read (its render reports why).

    Raises:
        TooLong: see :func:`check_time`.
    """
    shape = content_shape(content)
    if shape is None:
        return None
    return check_time(console, request, Work(preset, device, (shape,)), default_edge)


def content_shape(content: Any) -> tuple[int, int] | None:
    """``(H, W)`` px of a photo given as a path (:func:`photo_shape`), a PIL image or a
    tensor ``(…, H, W)``; ``None`` when it cannot be read or has no pixels."""
    from PIL import Image

    if isinstance(content, (str, Path)):
        return photo_shape(Path(content), None)
    if isinstance(content, Image.Image):
        return content.height, content.width
    shape = getattr(content, "shape", ())
    if len(shape) < 2 or min(shape[-2:]) < 1:
        return None  # the render's own checks say what is wrong with it
    return int(shape[-2]), int(shape[-1])


def photo_shapes(paths: Sequence[Path], max_pixels: int | None) -> list[tuple[int, int]]:
    """``(H, W)`` px of at most :data:`MAX_PRICED` of ``paths``, evenly spread
    (:func:`photo_shape`), those that cannot be read left out."""
    step = max(1, math.ceil(len(paths) / MAX_PRICED))
    return [shape for path in paths[::step] if (shape := photo_shape(path, max_pixels))]


def photo_shape(path: Path, max_pixels: int | None) -> tuple[int, int] | None:
    """``(H, W)`` px of the photo at ``path`` upright (its EXIF orientation), from its header
    alone (Pillow's lazy open: no pixel is decoded); ``None`` when it is no readable image
    file, or over ``max_pixels`` (its own checks say why when it is rendered)."""
    from PIL import Image

    from .reading import image_bound, open_regular

    try:
        with open_regular(path, image_bound(max_pixels), "photo") as handle:
            with warnings.catch_warnings(), Image.open(handle) as image:
                warnings.simplefilter("ignore")
                width, height = image.size
                turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF Orientation
    except (StyleCascadeError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    if max_pixels is not None and width * height > max_pixels:
        return None
    return (width, height) if turned else (height, width)


def _seconds_at(work: Work) -> Callable[[int], tuple[float, Any]]:
    """``long edge → (seconds, Estimate)`` of ``work`` with its preset at that final size:
    every photo shape's stages from ``work.done`` on, planned for memory as they will run
    (``runner.stage_planner``), summed over the photos (the shapes' mean for those unread)."""
    from .device import precision
    from .estimate import Estimate, pricer, stage_work
    from .runner import schedule

    preset, device = work.preset, work.device
    name, autocast = precision(preset.precision, device)
    network = pricing_network(frozenset(preset.layers), preset.model.pooling, str(device))
    prepare = _planner(network, preset.tiling, preset.precision, str(device))
    price = pricer(network, device, name, autocast)
    counts, scale = Counter(work.shapes), work.photos / len(work.shapes)

    def seconds_at(edge: int) -> tuple[float, Estimate]:
        sized = preset.with_final_size(edge)
        found = []
        for shape, count in counts.items():
            stages = [prepare(i, s) for i, s in enumerate(schedule(sized, shape))]
            works = [stage_work(s, None, network.layers) for s in stages][work.done :]
            found.append((count * scale, price(works)))
        seconds = sum(n * e.seconds for n, e in found)
        flops = sum(n * e.flops for n, e in found)
        first = found[0][1]
        rate = flops / 1e9 / seconds if seconds > 0 else 0.0
        return seconds, Estimate((seconds,), flops, rate, first.source, first.observations)

    return seconds_at


def _release_pricing() -> None:
    """Free the pricing network and its planners kept on a GPU, so that the render's memory
    plan (``memory.free_bytes``) sees that memory free again."""
    import torch

    _planner.cache_clear()
    pricing_network.cache_clear()
    torch.cuda.empty_cache()


@functools.lru_cache(maxsize=2)
def pricing_network(layers: frozenset[str], pooling: str, device: str) -> VGGFeatures:
    """VGG19 at its full width returning ``layers``, with random weights (seeded, the global
    random state kept), on ``device``: what the gate probes and plans memory with. Its speed
    and memory are the real network's; no weights are read or fetched. Kept for the process
    (about 80 MB)."""
    import torch

    from .stages.vgg import VGGFeatures, build_vgg19_features

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        trunk = build_vgg19_features()
    return VGGFeatures(trunk, layers, pooling, channels_last=True).to(device)


@functools.lru_cache(maxsize=4)
def _planner(
    network: VGGFeatures, tiling: TilingConfig, precision_name: str, device: str
) -> Callable[[int, Any], Any]:
    """``runner.stage_planner`` of the pricing network, kept for the process (its activation
    bytes per pixel are measured once per layer set)."""
    import torch

    from .device import precision
    from .runner import stage_planner

    where = torch.device(device)
    return stage_planner(network, tiling, precision(precision_name, where)[1], where)


def _source(estimate: Any) -> str:
    """Where the estimate's speed came from, in words."""
    if estimate.source == "learned":
        return f"learned from {estimate.observations} stages rendered here"
    return "probed while the CPU was busy" if estimate.source == "busy probe" else "probed"


def _suggestion(
    request: RenderRequest, seconds: Callable[[int], float], final: int
) -> tuple[str, int] | None:
    """What to render instead within the limit: ``("size", px)`` or, for a print size,
    ``("dpi", DPI)`` (the print size kept; ``--size`` would be refused beside it); ``None``
    when even the smallest would take longer."""
    look = request.look
    if look.print_size is None:
        size = suggested_size(seconds, final)
        return None if size is None else ("size", size)
    bleed = request.outputs.bleed

    def edge(dpi: int) -> int:
        found = final_long_edge(None, look.print_size, dpi, bleed)
        assert found is not None
        return found

    high = math.ceil(look.dpi or DEFAULT_DPI)
    lowest = _lowest_dpi(edge, high)
    if lowest is None:
        return None
    dpi = suggested_size(lambda d: seconds(edge(d)), high, minimum=lowest, step=1)
    return None if dpi is None else ("dpi", dpi)


def _lowest_dpi(edge: Callable[[int], int], high: int) -> int | None:
    """The smallest whole DPI under ``high`` at which ``edge(dpi)`` is accepted (the print
    at least :data:`~stylecascade.printsize.MIN_LONG_EDGE` px), or ``None``."""

    def accepted(dpi: int) -> bool:
        try:
            return edge(dpi) >= MIN_LONG_EDGE
        except ArgumentError:
            return False

    low, top = 1, high - 1
    if top < low or not accepted(top):
        return None
    while low < top:  # accepted(top) throughout
        middle = (low + top) // 2
        if accepted(middle):
            top = middle
        else:
            low = middle + 1
    return top


def suggested_size(
    seconds_at: Callable[[int], float],
    long_edge: int,
    limit: float | None = None,
    minimum: int = MIN_LONG_EDGE,
    step: int = 8,
) -> int | None:
    """The largest value (a ``--size`` in px, a multiple of ``step``, at least ``minimum``,
    under ``long_edge``; with ``step=1`` any whole number, e.g. a DPI) whose estimate
    ``seconds_at(value)`` (s; growing with it) is within ``limit`` (default
    :data:`~stylecascade.estimate.CONFIRM_SECONDS`): a suggestion the gate accepts when taken.
    ``None`` when even ``minimum`` would take longer (then only ``yes`` or a GPU helps), or
    ``long_edge`` is at the minimum already."""
    if limit is None:
        from .estimate import CONFIRM_SECONDS

        limit = CONFIRM_SECONDS
    low, high = math.ceil(minimum / step), (long_edge - 1) // step
    if high < low or seconds_at(low * step) > limit:
        return None
    while low < high:  # seconds_at(low * step) ≤ limit throughout
        middle = (low + high + 1) // 2
        if seconds_at(middle * step) <= limit:
            low = middle
        else:
            high = middle - 1
    return low * step
