"""The studio's work: one worker thread renders one job at a time (one device), later ones wait
in a queue; what happens is posted as events the page reads (server-sent events).

A job is a try (an in-memory render whose stage images the page shows) or a print (a render
into files through the launcher). Its :class:`~stylecascade.stages.stopping.StopHandle` stops
it from the web server's threads; a queued job is cancelled instead.
"""

from __future__ import annotations

import io
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import StyleCascadeError, UsageError
from ..stages.stopping import StopHandle

if TYPE_CHECKING:
    from torch import Tensor

    from ..preset import Preset
    from ..stages.cascade import Stage, StageResult

STATES = ("queued", "running", "done", "stopped", "failed", "cancelled")
"""A job's states, in the order they may come (the last four end it)."""
LOSS_SECONDS = 0.5
"""Seconds between the loss samples the page's curve gets during a stage."""
PREVIEW_SECONDS = 2.0
"""Seconds between the current images the page gets during a stage."""
PREVIEW_EDGE = 512
"""Long edge in px of the images sent to the page (a print's are larger)."""
MAX_QUEUED = 8
"""Jobs waiting at once (besides the running one); one more is refused (:class:`Busy`)."""
MAX_KEPT = 50
"""Ended jobs kept with their images; the oldest beyond are forgotten (their numbers 404)."""
MAX_EVENTS = 2000
"""Events kept for pages that (re)connect; older ones are dropped (a new stream replays at
most these, about 200 KB)."""


class Busy(UsageError):
    """The queue is full (the studio answers 429)."""


def one_line(exc: StyleCascadeError) -> str:
    """The message the page shows after ``error:``, naming the page's fields as the request
    names them (``size``, ``style weight``: the inputs' ids, spaced), never a command-line
    flag."""
    return exc.named(lambda field: field.replace("_", " "))


def png_bytes(image: Tensor) -> bytes:
    """``(1, 3, H, W)`` in 0–1 as an 8-bit PNG, its long edge at most :data:`PREVIEW_EDGE`."""
    from ..output import to_pil

    picture = to_pil(image.detach().clamp(0.0, 1.0).cpu())
    picture.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


class EventLog:
    """The last ``keep`` events of this studio session, numbered from 1; thread-safe appends,
    and readers that ask for the events after the last one they saw (a page that reconnects
    misses none of those kept).

    Args:
        keep: how many events are kept (default :data:`MAX_EVENTS`).
    """

    def __init__(self, keep: int = MAX_EVENTS) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.last = 0  # the number of the latest event (0: none yet)

    def post(self, kind: str, **data: Any) -> None:
        """Append an event ``{"id": n, "type": kind, **data}`` (values JSON-ready)."""
        with self._lock:
            self.last += 1
            self._events.append({"id": self.last, "type": kind, **data})

    def since(self, seen: int) -> list[dict[str, Any]]:
        """The kept events numbered after ``seen``, in order."""
        with self._lock:
            first = self._events[0]["id"] if self._events else 1
            return list(itertools.islice(self._events, max(seen - first + 1, 0), None))


@dataclass
class Job:
    """One render the page asked for.

    Attributes:
        id: its number, from 1, in the order asked.
        kind: ``try`` or ``print``.
        settings: what the page sent (shown in the strip of tries), JSON-ready.
        work: runs the job in the worker thread (given the job); raises a
            :class:`StyleCascadeError` to fail it.
        state: one of :data:`STATES`; message: the one-line error or note that ended it.
        stages: each finished stage's image (PNG bytes); current: the running stage's best
            image so far (PNG bytes).
        look: a try's preset before its size (what ``presets save`` keeps).
        output: a print's file, once known.
        stop: stops it while it runs.
        estimate: how long it takes at most, as the time gate said it (``gate.check_one``).
    """

    id: int
    kind: str
    settings: dict[str, Any]
    work: Callable[[Job], None]
    state: str = "queued"
    message: str | None = None
    stages: list[bytes] = field(default_factory=list)
    current: bytes | None = None
    look: Preset | None = None
    output: str | None = None
    stop: StopHandle = field(default_factory=StopHandle)
    estimate: str | None = None

    def summary(self) -> dict[str, Any]:
        """What the page lists about the job (JSON-ready)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "settings": self.settings,
            "state": self.state,
            "message": self.message,
            "stages": len(self.stages),
            "output": self.output,
            "estimate": self.estimate,
        }


class Worker:
    """The one thread that renders (started with the first job), and its queue: jobs run one
    at a time in the order given.

    Args:
        events: where every change of a job is posted (``job`` events carry its summary).
    """

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.jobs: dict[int, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(
        self,
        kind: str,
        settings: dict[str, Any],
        work: Callable[[Job], None],
        estimate: str | None = None,
    ) -> Job:
        """Queue a job (``estimate``: the time gate's, shown with it); it runs when the jobs
        before it have ended.

        Raises:
            Busy: :data:`MAX_QUEUED` jobs are waiting already.
        """
        with self._lock:
            waiting = sum(job.state == "queued" for job in self.jobs.values())
            if waiting >= MAX_QUEUED:
                raise Busy(f"{waiting} jobs are waiting already; stop one or wait for them")
            self._forget_old()
            job = Job(next(self._ids), kind, settings, work, estimate=estimate)
            self.jobs[job.id] = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="studio-worker")
                self._thread.daemon = True
                self._thread.start()
        self._changed(job)
        self._queue.put(job)
        return job

    def stop(self, job: Job) -> None:
        """Stop a running job (it keeps its best image so far) or cancel a queued one."""
        with self._lock:
            if job.state == "queued":
                job.state, job.message = "cancelled", "cancelled before it started"
        if job.state == "cancelled":
            self._changed(job)
        job.stop.stop()

    def _forget_old(self) -> None:
        """Drop the oldest ended jobs beyond :data:`MAX_KEPT` (called holding the lock)."""
        ended = [n for n, job in self.jobs.items() if job.state not in ("queued", "running")]
        for number in ended[: max(len(ended) - MAX_KEPT + 1, 0)]:
            del self.jobs[number]

    def close(self, seconds: float = 10.0) -> None:
        """Stop every job (a running print saves its checkpoint) and wait up to ``seconds``
        for the worker to end."""
        for job in list(self.jobs.values()):
            self.stop(job)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(seconds)

    def _changed(self, job: Job) -> None:
        self.events.post("job", job=job.summary())

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != "queued":
                    continue
                job.state = "running"
            self._changed(job)
            self._run(job)
            self._changed(job)

    def _run(self, job: Job) -> None:
        """Run ``job``; its state and message say how it ended."""
        try:
            job.work(job)
        except StyleCascadeError as exc:
            job.state, job.message = "failed", one_line(exc)
        except Exception as exc:  # a bug: shown on the page, the studio goes on
            job.state, job.message = "failed", f"internal error: {type(exc).__name__}: {exc}"
        else:
            if job.state == "running":  # the work sets "stopped" when a stop ended it
                job.state = "done"


class PageObserver:
    """Posts a job's progress for the page: stages starting and ending (stop reason, evaluations,
    loss trace, image), loss samples every :data:`LOSS_SECONDS` and the current best image every
    :data:`PREVIEW_SECONDS` (when ``picture`` is given).

    Args:
        job: the job whose progress it is.
        events: where to post.
        picture: the image as the user sees it (color mode applied, ``Renderer.shown``), from
            the optimized ``(1, 3, H, W)`` tensor; ``None``: no images (a print).
    """

    def __init__(
        self, job: Job, events: EventLog, picture: Callable[[Tensor], Tensor] | None
    ) -> None:
        self.job, self.events, self.picture = job, events, picture
        self.index, self.cap = 0, 0
        self.loss_at = self.image_at = 0.0

    def batch_started(self, count: int) -> None:
        """A print is a batch of one: nothing to show."""

    def input_started(self, name: str) -> None:
        """The print's photo begins."""
        self.events.post("note", job=self.job.id, text=f"rendering {name}")

    def input_finished(self) -> None:
        """The print's photo ended (its outcome is the job's state)."""

    def stage_started(self, index: int, count: int, stage: Stage) -> None:
        """Post ``stage_started`` with the stage's number, count, size and cap."""
        self.index, self.cap = index, stage.iterations
        self.loss_at = self.image_at = time.monotonic()
        height, width = stage.size
        self.events.post(
            "stage_started", job=self.job.id, index=index, count=count, size=[width, height],
            cap=stage.iterations,
        )  # fmt: skip

    def iteration(self, done: int, terms: Mapping[str, Tensor]) -> None:
        """Every :data:`LOSS_SECONDS`, post ``progress`` with the evaluations done and the
        weighted total loss (reading it waits for the device)."""
        now = time.monotonic()
        if now - self.loss_at < LOSS_SECONDS:
            return
        self.loss_at = now
        from ..stages.losses import total

        self.events.post(
            "progress", job=self.job.id, index=self.index, done=done, cap=self.cap,
            loss=float(total(terms)),
        )  # fmt: skip

    def current_image(self, index: int, image: Tensor) -> None:
        """Every :data:`PREVIEW_SECONDS`, keep the stage's best image so far for the page and
        post ``current``."""
        now = time.monotonic()
        if self.picture is None or now - self.image_at < PREVIEW_SECONDS:
            return
        self.image_at = now
        self.job.current = png_bytes(self.picture(image.clamp(0.0, 1.0)))
        self.events.post("current", job=self.job.id, index=index, version=int(now * 1000))

    def stage_finished(self, result: StageResult) -> None:
        """Keep the stage's image (when ``picture`` is given) and post ``stage`` with its stop
        reason, evaluations, seconds and loss trace."""
        if self.picture is not None:
            self.job.stages.append(png_bytes(self.picture(result.image)))
        height, width = result.size
        self.events.post(
            "stage", job=self.job.id, index=result.index, size=[width, height],
            stop=result.stop, evaluations=result.evaluations, seconds=round(result.seconds, 2),
            loss=[float(f"{v:.5g}") for v in result.loss_trace],
            image=self.picture is not None,
        )  # fmt: skip
