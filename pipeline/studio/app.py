"""The studio's web server (FastAPI): one static page, a JSON API, and the jobs' events as
server-sent events.

Every request answers from the server's threads at once; renders run in the one worker
thread (:class:`~stylecascade.studio.jobs.Worker`), so the page answers while a render runs.
Failures are the command line's one-line messages, as ``{"error": "…"}`` (status 400 for
a usage error, 403 refused by :mod:`~stylecascade.studio.guard`, 404 for something unknown, 409
a try or print over the time gate's limit on a CPU (with its estimate: the page asks, then sends
it again with ``"yes": true``), 413 a body over its bound, 429 a full queue, 500 otherwise), in
ASCII JSON (a quoted name with a lone surrogate cannot break the answer). The page names files
by plain name and presets by name only; it writes into the output folder alone
(:mod:`stylecascade.studio.folder`) and, through "Save as preset", where ``presets save``
writes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from ..errors import StyleCascadeError, UsageError
from ..gate import TooLong
from ..preset_files import bundled_presets, save_user_preset, saved_name_problem, user_presets
from ..stages.vocabulary import COLOR_MODES, STYLE_LOSSES
from .folder import StudioFolder, named_preset
from .guard import Guard, GuardMiddleware, allowed_origins, new_token
from .jobs import Busy, EventLog, Job, Worker, one_line
from .limits import bounded_body
from .work import (
    PRINT_FORMATS,
    PrintSettings,
    TrySettings,
    check_look,
    print_request,
    run_print,
    run_try,
    try_request,
)

if TYPE_CHECKING:
    import torch

STATIC = Path(str(resources.files("stylecascade.studio") / "static"))
"""The page: ``index.html``, ``studio.js``, ``studio.css`` (no build step, nothing fetched)."""
POLL_SECONDS = 0.2
VALIDATION_WORDS = {
    "too_short": "give at least {min_length}",
    "too_long": "give at most {max_length}",
    "missing": "missing",
    "extra_forbidden": "not a field of this request",
}
"""pydantic's error types as the page says them (``{msg}``: pydantic's own words otherwise)."""
"""How often an open event stream looks for new events."""


class Studio:
    """What the server's requests share: the folder, the device, the events and the worker.

    Args:
        folder: the studio's folder and output folder.
        device: ``auto``, ``cuda``, ``mps`` or ``cpu``; chosen (torch imported) in the
            background once the page is first served (:meth:`warm_up`), so neither the
            server's start nor the first render waits for it.
        weights: the VGG19 weights spec (``caffe``, ``torchvision`` or a file).
        token: the launch's token (:mod:`~stylecascade.studio.guard`; default: a new one).

    Attributes:
        closing: whether its server is shutting down (set by
            :func:`stylecascade.studio.server.server`): open event streams then end, so the
            server stops at once.
    """

    def __init__(
        self, folder: StudioFolder, device: str = "auto", weights: str = "caffe",
        token: str | None = None,
    ) -> None:  # fmt: skip
        self.folder, self.device_name, self.weights = folder, device, weights
        self.token = token or new_token()
        self.closing: Callable[[], bool] = lambda: False
        self.events = EventLog()
        self.worker = Worker(self.events)
        self._warming = threading.Lock()
        self._warmed = False

    def warm_up(self) -> None:
        """Import torch and choose the device in a background thread, once (an unavailable
        device is reported by the first try that needs it)."""
        with self._warming:
            if self._warmed:
                return
            self._warmed = True

        def choose() -> None:
            try:
                self.device  # noqa: B018 (computed and kept)
            except StyleCascadeError:
                pass

        threading.Thread(target=choose, name="studio-warmup", daemon=True).start()

    @functools.cached_property
    def device(self) -> torch.device:
        """The torch device renders run on.

        Raises:
            UsageError: the device is not available here.
        """
        from ..device import select_device

        return select_device(self.device_name)

    def job(self, number: int, kind: str | None = None) -> Job:
        """Job ``number`` (of ``kind``, if given).

        Raises:
            HTTPException: 404, no such job.
        """
        job = self.worker.jobs.get(number)
        if job is None or kind not in (None, job.kind):
            raise HTTPException(404, f"no {kind or 'job'} {number}")
        return job


def studio_of(request: Request) -> Studio:
    """The request's :class:`Studio` (a FastAPI dependency)."""
    return request.app.state.studio


router = APIRouter(prefix="/api")
Current = Depends(studio_of)


class PresetName(BaseModel):
    """A name to save a try's look under."""

    model_config = ConfigDict(extra="forbid")
    name: str
    overwrite: bool = False


def preset_knobs(name: str) -> dict[str, Any]:
    """A preset's values of the knobs the page shows: its final stage's weights α, β, γ and
    size, color mode, style loss and stages ``[[long edge, cap], …]``.

    Raises:
        UsageError: no bundled or saved preset of that name.
        PresetError: an invalid preset (named, never quoted).
    """
    preset = named_preset(name)
    last = preset.stages[-1]
    return {
        "name": name,
        "description": preset.description,
        "content_weight": last.content_weight,
        "style_weight": last.style_weight,
        "tv_weight": last.tv_weight,
        "size": last.long_edge,
        "color": preset.color,
        "style_loss": last.style_loss or preset.model.style_loss,
        "stages": [[s.long_edge, s.iterations] for s in preset.stages],
    }


@router.get("/state")
def state(studio: Studio = Current) -> dict[str, Any]:
    """Everything the page starts from: inputs, masks, presets, jobs, choices, last event."""
    saved = [{"name": n, "from": "saved"} for n in user_presets()]
    masks = studio.folder.out / "masks"
    return {
        "folder": str(studio.folder.root),
        "out": str(studio.folder.out),
        "inputs": list(studio.folder.inputs()),
        "masks": sorted(p.name for p in masks.glob("*.png")) if masks.is_dir() else [],
        "presets": [{"name": n, "from": "bundled"} for n in bundled_presets()] + saved,
        "jobs": [job.summary() for job in list(studio.worker.jobs.values())],
        "choices": {
            "color": list(COLOR_MODES),
            "style_loss": list(STYLE_LOSSES),
            "format": list(PRINT_FORMATS),
            "bit_depth": [8, 16],
        },
        "events": studio.events.last,
    }


@router.get("/presets/{name}")
def preset(name: str) -> dict[str, Any]:
    """A preset's knob values (:func:`preset_knobs`)."""
    return preset_knobs(name)


@router.get("/images/{name}")
def image(name: str, studio: Studio = Current) -> FileResponse:
    """An input image's file."""
    return FileResponse(studio.folder.image(name))


@router.get("/masks/{name}")
def mask(name: str, studio: Studio = Current) -> FileResponse:
    """A mask's file."""
    return FileResponse(studio.folder.mask(name))


@router.put("/uploads/{name}")
async def upload(name: str, request: Request, studio: Studio = Current) -> dict[str, str]:
    """Add an image (the body: its file's bytes) to the studio's inputs."""
    path = studio.folder.save_upload(name, await bounded_body(request))
    return {"name": path.name}


@router.put("/masks")
async def new_mask(painting: str, request: Request, studio: Studio = Current) -> dict[str, str]:
    """Keep a mask for ``painting`` (the body: a PNG, white where the painting applies)."""
    path = studio.folder.save_mask(painting, await bounded_body(request))
    return {"name": path.name}


@router.post("/tries")
def new_try(settings: TrySettings, studio: Studio = Current) -> dict[str, int]:
    """Check a try and queue it; answers its job number."""
    named_preset(settings.preset)  # by name only, before the request reads it
    request = try_request(settings, studio.folder, weights=studio.weights)
    device = studio.device
    said = check_look(request, device)  # a long one: 409, the page asks (``yes``)
    events = studio.events
    job = studio.worker.submit(
        "try", settings.model_dump(), lambda job: run_try(job, request, device, events), said
    )
    return {"id": job.id}


@router.post("/jobs/{number}/stop")
def stop(number: int, studio: Studio = Current) -> dict[str, Any]:
    """Stop a running job (its best image so far kept) or cancel a queued one."""
    job = studio.job(number)
    studio.worker.stop(job)
    return job.summary()


@router.get("/jobs/{number}/stages/{index}")
def stage_image(number: int, index: int, studio: Studio = Current) -> Response:
    """Stage ``index`` (0-based) of a try, as PNG (a stopped try's last: its best so far)."""
    job = studio.job(number, "try")
    if not 0 <= index < len(job.stages):
        raise HTTPException(404, f"try {number} has no stage image {index}")
    return Response(job.stages[index], media_type="image/png")


@router.get("/jobs/{number}/current")
def current_image(number: int, studio: Studio = Current) -> Response:
    """The running stage's best image so far, as PNG."""
    job = studio.job(number, "try")
    if job.current is None:
        raise HTTPException(404, f"try {number} has no current image yet")
    return Response(job.current, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/jobs/{number}/preset")
def save_preset(number: int, body: PresetName, studio: Studio = Current) -> dict[str, str]:
    """Save a try's look as a preset (the file ``presets save`` writes)."""
    job = studio.job(number, "try")
    problem = saved_name_problem(body.name)  # the name rule of every saved preset
    if problem is not None:
        raise UsageError(problem)
    if job.look is None:
        raise UsageError(f"try {number} has no look yet; wait until it starts")
    from ..files import reporting_write_errors
    from ..paths import user_preset_dir

    with reporting_write_errors(user_preset_dir()):
        path = save_user_preset(body.name, job.look, body.overwrite)
    studio.events.post("preset", job=number, name=body.name, path=str(path))
    return {"name": body.name, "path": str(path)}


@router.post("/jobs/{number}/print")
def new_print(number: int, settings: PrintSettings, studio: Studio = Current) -> dict[str, int]:
    """Queue a print of a try; answers its job number."""
    tried = TrySettings(**studio.job(number, "try").settings)
    request = print_request(settings, tried, studio.folder, number, weights=studio.weights)
    device, events = studio.device, studio.events
    said = check_look(request, device)  # a long one: 409, the page asks (``yes``)
    job = studio.worker.submit(
        "print",
        {**settings.model_dump(), "try": number, "output": str(request.outputs.output)},
        lambda job: run_print(job, request, device, events),
        said,
    )
    return {"id": job.id}


def _event_stream(studio: Studio, request: Request, seen: int) -> AsyncIterator[str]:
    """The events after ``seen`` as server-sent events, then new ones as they come."""

    async def stream() -> AsyncIterator[str]:
        last = seen
        yield "retry: 1000\n\n"
        while not studio.closing() and not await request.is_disconnected():
            for event in studio.events.since(last):
                last = event["id"]
                yield f"id: {last}\ndata: {json.dumps(event)}\n\n"
            await asyncio.sleep(POLL_SECONDS)

    return stream()


@router.get("/events")
def events(
    request: Request,
    since: int = 0,
    last_event_id: Annotated[int | None, Header()] = None,
    studio: Studio = Current,
) -> StreamingResponse:
    """The session's events (``job``, ``stage_started``, ``progress``, ``current``, ``stage``,
    ``preset``, ``note``) from ``since`` or the stream's ``Last-Event-ID`` (a number; only the
    last :data:`~stylecascade.studio.jobs.MAX_EVENTS` are kept)."""
    seen = since if last_event_id is None else last_event_id
    return StreamingResponse(
        _event_stream(studio, request, seen),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


class AsciiJSON(JSONResponse):
    """JSON in ASCII: any text quoted from a request (a lone surrogate too) can be sent."""

    def render(self, content: Any) -> bytes:
        """``content`` as ASCII JSON bytes."""
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _error(status: int, message: str) -> JSONResponse:
    return AsciiJSON({"error": message}, status_code=status)


def too_long_answer(exc: TooLong) -> dict[str, Any]:
    """The 409 answer to a try or print over the time gate's limit: the message with the
    request's own field names (``"yes": true``, ``"dpi": 150``) and, for the page's question,
    the estimate, an H100's time and the suggestion (``{"field", "value"}`` or ``None``)."""
    field, value = exc.suggestion or (None, None)
    return {
        "error": exc.named(lambda field: '"yes": true' if field == "yes" else f'"{field}":'),
        "confirm": {
            "seconds": round(exc.seconds),
            "estimate": exc.said,
            "h100": exc.h100_said,
            "limit": exc.limit_said,
            "suggestion": None if field is None else {"field": field, "value": value},
        },
    }


def _handlers() -> dict[Any, Callable[[Request, Any], Any]]:
    """Every failure as ``{"error": one line}``: ours as the command line says them; a bug as
    its type alone (no traceback in the answer)."""

    def ours(_request: Request, exc: StyleCascadeError) -> JSONResponse:
        status = 429 if isinstance(exc, Busy) else 400 if isinstance(exc, UsageError) else 500
        return _error(status, one_line(exc))

    def too_long(_request: Request, exc: TooLong) -> JSONResponse:
        return AsciiJSON(too_long_answer(exc), status_code=409)

    def bug(_request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}")

    def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        said = VALIDATION_WORDS.get(first.get("type", ""), "{msg}")
        return _error(400, f"{where}: " + said.format(**first.get("ctx", {}), msg=first["msg"]))

    def http(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    return {
        TooLong: too_long,
        StyleCascadeError: ours,
        RequestValidationError: invalid,
        HTTPException: http,
        Exception: bug,
    }


def create_app(
    studio: Studio, host: str = "127.0.0.1", allow_origins: tuple[str, ...] = ()
) -> FastAPI:
    """The web application of ``studio``: the page at ``/``, the API under ``/api``, behind
    :class:`~stylecascade.studio.guard.GuardMiddleware` (token, Host, Origin).

    Args:
        studio: the shared state (its ``token``).
        host: the address it listens on; on a loopback address only requests naming a
            loopback host are answered (another web site cannot reach it by DNS tricks).
        allow_origins: further origins that may change things (``--allow-origin``).

    Raises:
        UsageError: an ``allow_origins`` value that is no origin.
    """
    guard = Guard(studio.token, host, allowed_origins(tuple(allow_origins)))
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(
        title="stylecascade studio", docs_url=None, redoc_url=None, openapi_url=None,
        default_response_class=AsciiJSON,
    )  # fmt: skip
    app.state.studio = studio
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC, follow_symlink=True), name="static")

    def page() -> FileResponse:
        studio.warm_up()
        return FileResponse(STATIC / "index.html")

    app.add_api_route("/", page, include_in_schema=False)
    handlers = _handlers()
    handlers[StarletteHTTPException] = handlers.pop(HTTPException)
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
    app.add_middleware(GuardMiddleware, guard=guard)
    return app
