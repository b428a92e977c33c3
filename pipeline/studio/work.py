"""What the page asks for, as render requests: a try (in memory, through
:func:`~stylecascade.launch.request_renderer` and :meth:`Renderer.render`, its stage images shown
as they finish) and a print (into files, through :func:`~stylecascade.launch.launch`: the
writer's lock, checkpoints, resume and manifest).

The page's settings are checked by pydantic (types) and then by the request's own checks, so
a bad value is the command line's one-line message.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ArgumentError
from ..launch import resolve_look
from ..preset import Preset
from ..preset_files import load_preset
from ..printsize import final_long_edge
from ..request import RenderRequest
from ..stages.vocabulary import STYLE_LOSSES
from .folder import StudioFolder
from .jobs import EventLog, Job, PageObserver, png_bytes

if TYPE_CHECKING:
    import torch

PRINT_FORMATS = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}
"""The print formats the page offers, by name → the output's suffix."""
KNOBS = {"blend_weights", "color", "content_weight", "style_weight", "tv_weight", "size", "seed"}
"""The try's settings that are :class:`RenderRequest` fields of the same name."""


class TrySettings(BaseModel):
    """A try as the page sends it: which photo and paintings, the preset and the knobs over it
    (``None``: the preset's value)."""

    model_config = ConfigDict(extra="forbid")

    photo: str
    paintings: list[str] = Field(min_length=1, max_length=16)
    blend_weights: list[float] | None = None
    masks: list[str | None] | None = None
    preset: str = "draft"
    color: str | None = None
    style_loss: str | None = None
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    size: int | None = 256
    seed: int = 0


class PrintSettings(BaseModel):
    """A print of a try: its size on paper, DPI, bits per channel and file format."""

    model_config = ConfigDict(extra="forbid")

    print_size: str
    dpi: float = 300.0
    bit_depth: int = 8
    format: str = "png"


def with_style_loss(preset: Preset, style_loss: str | None) -> Preset:
    """``preset`` comparing styles by ``style_loss`` in every stage (``None``: unchanged).

    Raises:
        ArgumentError: an unknown style loss.
    """
    if style_loss is None:
        return preset
    if style_loss not in STYLE_LOSSES:
        raise ArgumentError(
            "style_loss", f"{{}} must be one of {', '.join(STYLE_LOSSES)}; got {style_loss!r}"
        )
    stages = tuple(dataclasses.replace(s, style_loss=None) for s in preset.stages)
    model = dataclasses.replace(preset.model, style_loss=style_loss)
    return dataclasses.replace(preset, model=model, stages=stages)


def try_request(settings: TrySettings, folder: StudioFolder, **more: Any) -> RenderRequest:
    """The render request of a try (``more``: further fields, e.g. a print's), checked.

    Raises:
        UsageError, ArgumentError, PresetError: an unknown file or preset, or a value the
            command line would refuse (its message).
    """
    masks = None
    if settings.masks is not None:
        masks = [None if m is None else folder.mask(m) for m in settings.masks]
    preset = with_style_loss(load_preset(settings.preset), settings.style_loss)
    knobs = settings.model_dump(include=KNOBS)  # named as the request's fields
    request = RenderRequest(
        photos=[folder.image(settings.photo)],
        styles=[folder.image(p) for p in settings.paintings],
        masks=masks,
        preset=preset,
        quiet=True,
        **{**knobs, **more},
    )
    request.check()
    return request


def check_look(request: RenderRequest, device: torch.device) -> None:
    """Resolve the request's look now, so that a knob the preset refuses is answered at once.

    Raises:
        ArgumentError, PresetError: see :func:`~stylecascade.launch.resolve_look`.
    """
    resolve_look(request, device)


def run_try(job: Job, request: RenderRequest, device: torch.device, events: EventLog) -> None:
    """Render a try in memory, posting its stages for the page; a stop keeps the stopped
    stage's best image as the try's last.

    Raises:
        StyleCascadeError: whatever the render raises (its one-line message).
    """
    from ..images import as_tensor
    from ..launch import request_renderer

    renderer = request_renderer(request, device)
    job.look = renderer.look
    content = as_tensor(request.photos[0], "content")
    observer = PageObserver(job, events, lambda image: renderer.shown(image, content))
    result = renderer.render(content, seed=request.seed, observer=observer, stop=job.stop)
    stopped = result.manifest.get("stopped")
    if stopped is not None:
        job.stages.append(png_bytes(result.tensor))
        job.state = "stopped"
        job.message = (
            f"stopped in stage {stopped['stage']} after {stopped['evaluations']} evaluations; "
            f"its best image so far is kept"
        )
        events.post(
            "stage", job=job.id, index=stopped["stage"] - 1, size=list(result.image.size),
            stop="stopped", evaluations=stopped["evaluations"], seconds=None, loss=[], image=True,
        )  # fmt: skip


def print_request(
    settings: PrintSettings, tried: TrySettings, folder: StudioFolder, job: int, **more: Any
) -> RenderRequest:
    """The request of a print of try ``job``: its look at the print size, into
    ``out/prints`` (resumed when a stopped print of it left a checkpoint); ``more``: further
    fields (the weights).

    Raises:
        UsageError, ArgumentError: a bad print size, DPI, bit depth or format (the command
            line's messages), or a try whose files are gone.
    """
    suffix = PRINT_FORMATS.get(settings.format)
    if suffix is None:
        raise ArgumentError(
            "output", f"format {settings.format!r}: use one of {', '.join(PRINT_FORMATS)}"
        )
    from ..checkpoint import checkpoint_folder
    from ..output import OutputOptions, check_output

    edge = final_long_edge(None, settings.print_size, settings.dpi)
    assert edge is not None
    output = folder.print_path(tried.photo, job, edge, suffix)
    check_output(output, OutputOptions(settings.bit_depth, dpi=settings.dpi))
    return try_request(
        tried,
        folder,
        size=None,
        print_size=settings.print_size,
        dpi=settings.dpi,
        bit_depth=settings.bit_depth,
        output=output,
        resume=checkpoint_folder(output).exists(),
        **more,
    )


def run_print(job: Job, request: RenderRequest, device: torch.device, events: EventLog) -> None:
    """Render a print into its file through the launcher, posting its progress.

    Raises:
        StyleCascadeError: the launcher's checks, or the render's failure (its message).
    """
    from ..launch import launch

    output = Path(str(request.output))
    job.output = str(output)
    request = dataclasses.replace(request, device=device)
    outcome = launch(request, observer=PageObserver(job, events, None), stop=job.stop)[0]
    if outcome.error is not None:
        if outcome.status == "interrupted":
            job.state, job.message = "stopped", outcome.message
            return
        raise outcome.error
    job.message = f"written: {output} and {output.with_suffix('.json')}"
