"""What the page asks for, as render requests: a try (in memory, through
:func:`~stylecascade.launch.request_renderer` and :meth:`Renderer.render`, its stage images shown
as they finish) and a print (into files, through :func:`~stylecascade.launch.launch`: the
writer's lock, checkpoints, resume and manifest).

The page's settings are checked by pydantic (types) and then by the request's own checks, so
a bad value is the command line's one-line message.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..choices import OUTPUT_FORMATS
from ..errors import ArgumentError
from ..gate import check_one
from ..launch import resolve_look
from ..preset_files import load_preset
from ..printsize import final_long_edge
from ..record import PARTS, spec_of
from ..request import RenderRequest
from .folder import StudioFolder
from .jobs import EventLog, Job, PageObserver, png_bytes

if TYPE_CHECKING:
    import torch

PRINT_FORMATS = {OUTPUT_FORMATS[suffix].lower(): suffix for suffix in (".png", ".tif", ".jpg")}
"""The print formats the page offers, by name → the output's suffix (of
:data:`~stylecascade.naming.OUTPUT_FORMATS`)."""
KNOB_DEFAULTS = {"size": 256}
"""The page's own defaults where they differ from the record's (a try is a preview)."""


def _knobs() -> dict[str, Any]:
    """The record's fields the page offers (``Spec.studio``) as pydantic field definitions
    ``{name: (type, default)}``, in the record's order."""
    found = {}
    for part in PARTS.values():
        hints = typing.get_type_hints(part)
        for f in dataclasses.fields(part):
            if spec_of(f).studio:
                found[f.name] = (hints[f.name], KNOB_DEFAULTS.get(f.name, f.default))
    return found


KNOBS = _knobs()
"""The try's knobs: request fields of the same name, generated from the record."""

TrySettings = create_model(
    "TrySettings",
    __config__=ConfigDict(extra="forbid"),
    __doc__="A try as the page sends it: which photo and paintings, the preset and the knobs "
    "over it (``None``: the preset's value); ``yes``: the user confirmed a try over the time "
    "gate's limit (``gate.check_one``).",
    photo=(str, ...),
    paintings=(list[str], Field(min_length=1, max_length=16)),
    masks=(list[str | None] | None, None),
    preset=(str, "draft"),
    yes=(bool, False),
    **KNOBS,
)


class PrintSettings(BaseModel):
    """A print of a try: its size on paper, DPI, bits per channel and file format; ``yes``: the
    user confirmed a print over the time gate's limit (a try's confirmation is not a print's)."""

    model_config = ConfigDict(extra="forbid")

    print_size: str
    dpi: float = 300.0
    bit_depth: int = 8
    format: str = "png"
    yes: bool = False


def try_request(settings: Any, folder: StudioFolder, **more: Any) -> RenderRequest:
    """The render request of a try (``more``: further fields, e.g. a print's), checked.

    Raises:
        UsageError, ArgumentError, PresetError: an unknown file or preset, or a value the
            command line would refuse (its message).
    """
    masks = None
    if settings.masks is not None:
        masks = [None if m is None else folder.mask(m) for m in settings.masks]
    knobs = settings.model_dump(include=set(KNOBS))  # named as the request's fields
    request = RenderRequest.of(
        photos=[folder.image(settings.photo)],
        styles=[folder.image(p) for p in settings.paintings],
        masks=masks,
        preset=load_preset(settings.preset),
        quiet=True,
        **{**knobs, "yes": settings.yes, **more},
    )
    request.check()
    return request


def check_look(request: RenderRequest, device: torch.device) -> str | None:
    """Resolve the request's look now, so that a knob the preset refuses is answered at once,
    and pass the time gate (``gate.check_one``: the photo priced from its header, the weights
    never loaded): a try or print over 30 minutes on a CPU, above its preset's own size, is
    refused unless the request has ``yes`` (the page asks the user first).

    Returns:
        The estimate (``at most 3 min 5 s (…)``), or ``None`` when the photo's size cannot
        be read (its render says why).

    Raises:
        ArgumentError, PresetError: see :func:`~stylecascade.launch.resolve_look`.
        TooLong: over the limit without ``yes`` (the studio answers 409 with the estimate).
    """
    look = resolve_look(request, device)
    default = look.unsized.stages[-1].long_edge
    photo = request.inputs.photos[0]
    return check_one(None, request, look.preset, device, default, photo)


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
    content = as_tensor(request.inputs.photos[0], "content")
    observer = PageObserver(job, events, lambda image: renderer.shown(image, content))
    result = renderer.render(content, seed=request.look.seed, observer=observer, stop=job.stop)
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
    settings: PrintSettings, tried: Any, folder: StudioFolder, job: int, **more: Any
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
    from ..naming import checkpoint_folder
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
        yes=settings.yes,
        **more,
    )


def run_print(job: Job, request: RenderRequest, device: torch.device, events: EventLog) -> None:
    """Render a print into its file through the launcher, posting its progress (its time gate
    was passed when the page asked for it: :func:`check_look`).

    Raises:
        StyleCascadeError: the launcher's checks, or the render's failure (its message).
    """
    from ..launch import launch

    output = Path(str(request.outputs.output))
    job.output = str(output)
    request = request.replace(device=device, yes=True)
    outcome = launch(request, observer=PageObserver(job, events, None), stop=job.stop)[0]
    if outcome.error is not None:
        if outcome.status == "interrupted":
            job.state, job.message = "stopped", outcome.message
            return
        raise outcome.error
    job.message = f"written: {output} and {output.with_suffix('.json')}"
