"""A batch on a Ray cluster: the actors (:class:`Actor`, :func:`start_actors`), the renderer
whose stages run on an actor (:class:`ActorRenderer`) and the pull queue that hands each idle
actor the next photo, once more on another actor when its actor dies
(:func:`run_cluster_batch`). The connection is :mod:`stylecascade.cluster`'s.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from .actor import ActorSetup, RenderActor
from .batch import render_job, skip_existing
from .cluster import ACTOR_DEATHS, Cluster, actor_threads, ray, spawn
from .errors import StyleCascadeError
from .interrupt import Interrupted, Signalled
from .job import RenderJob
from .naming import checkpoint_folder
from .reading import image_bound, read_bytes
from .records import ActorInfo, Outcome, Step, no_step
from .renderer import Renderer
from .runner import StageResult
from .weights import load_weights


class ClusterObserver(Protocol):
    """Receives a cluster batch's progress (``stylecascade.cluster_display.ClusterBars``,
    ``ClusterLog``); actors are numbered from 0 in the order of ``actors_started``."""

    def batch_started(self, count: int) -> None: ...

    def actors_started(self, actors: list[ActorInfo], seconds: float) -> None: ...

    def photo_started(self, actor: int, name: str) -> None: ...

    def stage_finished(self, actor: int, result: StageResult) -> None: ...

    def photo_finished(self, actor: int | None, outcome: Outcome) -> None: ...

    def actor_died(self, actor: int, name: str, retried: bool) -> None: ...


@dataclass
class Actor:
    """A started actor: its Ray handle and where it runs."""

    handle: Any
    info: ActorInfo


def start_actors(
    renderer: Renderer,
    count: int,
    *,
    cpus_per_actor: int = 1,
    threads: int | None = None,
    step: Step = no_step,
) -> list[Actor]:
    """Start ``count`` actors and wait until each has built its network.

    Args:
        renderer: the batch's preset, paintings (read from their files), weights and device
            (``cuda``: one GPU per actor; ``cpu``: ``cpus_per_actor`` CPUs each).
        count: how many.
        cpus_per_actor: CPUs each CPU actor reserves.
        threads: torch threads per actor (default: ``cpus_per_actor`` on CPUs, torch's on GPUs).
        step: reports loading the weights, which the driver sends to every actor.

    Raises:
        WeightsError: the weights cannot be loaded here.
        ClusterError: an actor could not start (e.g. a node without stylecascade).
    """
    weights = ray.put(load_weights(renderer.weights, step))
    setup = ActorSetup(
        preset=renderer.preset,
        files={
            path: _image_bytes(path, renderer.max_input_pixels) for path in renderer.preset.files()
        },
        device=renderer.device.type,
        threads=actor_threads(threads, renderer.device, cpus_per_actor),
        max_input_pixels=renderer.max_input_pixels,
    )
    started = spawn(
        RenderActor, (setup, weights), count, renderer.device, cpus_per_actor=cpus_per_actor
    )
    return [Actor(handle, info) for handle, info in started]


class ActorRenderer(Renderer):
    """The batch's :class:`Renderer` with its stages run by an actor, for one photo: a
    :class:`~stylecascade.job.CheckedJob` checks, locks, checkpoints and writes around it exactly as
    for a local render.

    Args:
        local: the batch's renderer (preset, paintings, weights name) on the driver.
        actor: the actor that runs the stages.
        content: the photo; its file's bytes are sent.
        on_stage: called with each finished stage's result, or ``None``.
    """

    def __init__(
        self,
        local: Renderer,
        actor: Actor,
        content: Path,
        on_stage: Callable[[StageResult], None] | None = None,
    ) -> None:
        super().__init__(
            local.preset,
            device=torch.device("cpu"),
            weights=local.weights,
            max_input_pixels=local.max_input_pixels,
            look=local.look,
        )
        self._sets = local.style_sets  # read once by the batch's renderer, not per photo
        self.actor, self.content, self.on_stage = actor, content, on_stage
        self.started = False

    def stages(
        self,
        content: Tensor,
        *,
        seed: int = 0,
        observer: object = None,
        resume: tuple[int, Tensor] | None = None,
        stop: object = None,
    ) -> Iterator[tuple[StageResult, Tensor]]:
        """:meth:`Renderer.stages` on the actor, one call per stage (``content`` is decoded
        there from the file's bytes; stages are reported to ``on_stage``, not ``observer``).
        A cluster batch is stopped by SIGINT/SIGTERM (its actors are killed); ``stop`` handles
        are not sent to actors, so one must be ``None``.

        Raises:
            StyleCascadeError: as raised on the actor; a ``stop`` handle given.
            RayActorError, ObjectLostError: the actor died.
        """
        if stop is not None:
            raise StyleCascadeError("a cluster render stops with Ctrl-C, not a stop handle")
        self.started = True
        handle = self.actor.handle
        start = None if resume is None else (resume[0], resume[1].cpu())
        data = _image_bytes(self.content, self.max_input_pixels)
        _get(handle.start.remote(data, str(self.content), seed, start))
        while (stage := _get(handle.next_stage.remote())) is not None:
            if self.on_stage is not None:
                self.on_stage(stage[0])
            yield stage

    def manifest(self, **fields: Any) -> dict[str, Any]:
        """The actor's manifest (its device, threads, versions, node)."""
        return _get(self.actor.handle.manifest.remote(**fields))


def _image_bytes(path: str | Path, max_pixels: int | None) -> bytes:
    """An image file's bytes for an actor, read by the one bounded reader."""
    return read_bytes(path, image_bound(max_pixels), f"image {path}")


def _get(ref: Any) -> Any:
    """``ray.get``, with an expected failure on the actor raised as itself (one line)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, StyleCascadeError):
            raise exc.cause from None
        raise


@dataclass
class _Photo:
    index: int
    job: RenderJob
    deaths: list[str] = field(default_factory=list)


class _Dispatch:
    """One driver thread per actor pulls photos from a shared queue and renders them there."""

    def __init__(
        self,
        renderer: Renderer,
        actors: list[Actor],
        photos: list[_Photo],
        progress: ClusterObserver | None,
    ) -> None:
        self.renderer, self.actors, self.progress = renderer, actors, progress
        self.queue = deque(photos)
        self.outcomes: dict[int, Outcome] = {}
        self.alive, self.busy = len(actors), 0
        self.changed = threading.Condition()
        self.stopped = False
        self.errors: list[BaseException] = []

    def run(self, total: int) -> dict[int, Outcome]:
        """Render every photo; ``total`` counts the batch's photos (for the message).

        Raises:
            Interrupted: Ctrl-C or SIGTERM; the actors are killed, finished stages kept.
        """
        threads = [
            threading.Thread(target=self._serve, args=(i,), daemon=True)
            for i in range(len(self.actors))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except KeyboardInterrupt as exc:
            self._stop(threads)
            signum = exc.signum if isinstance(exc, Signalled) else signal.SIGINT
            done = sum(o.status != "failed" for o in self.outcomes.values())
            raise Interrupted(
                f"interrupted; {done} of {total} photos done or skipped, the others stopped "
                f"(their finished stages are kept); run the same command with {{}} to "
                f"finish them",
                signum,
                "resume",
            ) from None
        if self.errors:
            raise self.errors[0]
        return self.outcomes

    def _stop(self, threads: list[threading.Thread]) -> None:
        with self.changed:
            self.stopped = True
            self.changed.notify_all()
        for actor in self.actors:
            ray.kill(actor.handle, no_restart=True)
        for thread in threads:
            thread.join()

    def _serve(self, actor: int) -> None:
        try:
            while (photo := self._next()) is not None:
                if not self._render(actor, photo):
                    return
        except BaseException as exc:  # a bug: the main thread raises it
            self.errors.append(exc)
            with self.changed:
                self.stopped = True
                self.changed.notify_all()

    def _next(self) -> _Photo | None:
        """The next photo, waiting while others are in flight (a dying actor's photo comes
        back); ``None`` when all are done or the batch stopped."""
        with self.changed:
            while not self.queue and self.busy and not self.stopped:
                self.changed.wait()
            if self.stopped or not self.queue:
                return None
            self.busy += 1
            return self.queue.popleft()

    def _render(self, actor: int, photo: _Photo) -> bool:
        """Render ``photo`` on ``actor``; ``False`` when the actor died."""
        job, progress = photo.job, self.progress
        if photo.deaths:  # go on from the stages the dead actor finished
            job = dataclasses.replace(job, resume=checkpoint_folder(job.output).exists())
        if progress is not None:
            progress.photo_started(actor, job.content.name)
        on_stage = None if progress is None else partial(progress.stage_finished, actor)
        remote = ActorRenderer(self.renderer, self.actors[actor], job.content, on_stage)
        try:
            outcome = render_job(job, remote)
        except ACTOR_DEATHS:
            self._died(actor, photo)
            return False
        if remote.started:
            outcome.node = self.actors[actor].info.node
        self._finished([(photo, outcome)], actor)
        return True

    def _died(self, actor: int, photo: _Photo) -> None:
        """Queue a dead actor's photo again for another actor, or fail it when it has died on
        two, or when no actor is left (then also every photo still queued)."""
        with self.changed:
            if self.stopped:  # killed by Ctrl-C
                return
            self.alive -= 1
            photo.deaths.append(f"actor {actor + 1} on {self.actors[actor].info.node}")
            retry = len(photo.deaths) < 2 and self.alive > 0
            if retry:
                self.queue.appendleft(photo)
            failed = [] if retry else [(photo, _death_message(photo.deaths))]
            if not self.alive:
                failed += [(p, "no actor left: every actor of the batch died") for p in self.queue]
                self.queue.clear()
            self.busy -= 1
            self.changed.notify_all()
        if self.progress is not None:
            self.progress.actor_died(actor, photo.job.content.name, retry)
        self._finished([(p, _failure(p.job, reason)) for p, reason in failed], None)

    def _finished(self, done: list[tuple[_Photo, Outcome]], actor: int | None) -> None:
        """Record outcomes; the photo of ``actor`` (``None``: none) is no longer in flight."""
        with self.changed:
            for photo, outcome in done:
                self.outcomes[photo.index] = outcome
            self.busy -= actor is not None
            self.changed.notify_all()
        if self.progress is not None:
            for _photo, outcome in done:
                self.progress.photo_finished(actor, outcome)


def _death_message(deaths: list[str]) -> str:
    """Why a photo failed whose actors died (``actor 1 on HOST``, once or twice)."""
    if len(deaths) > 1:
        return f"the actors rendering it died ({', '.join(deaths)})"
    return f"its actor died ({deaths[0]}) and no other actor is left"


def _failure(job: RenderJob, reason: str) -> Outcome:
    return Outcome(job.content, job.output, "failed", 0.0, reason, 1)


def run_cluster_batch(
    jobs: list[RenderJob],
    renderer: Renderer,
    cluster: Cluster,
    progress: ClusterObserver | None,
    *,
    actors: int | None = None,
    cpus_per_actor: int = 1,
    threads: int | None = None,
    step: Step = no_step,
) -> list[Outcome]:
    """Render a batch on the cluster: what :func:`~stylecascade.batch.run_batch` does locally
    (existing outputs skipped unless ``overwrite``, failures reported, the batch goes on).

    Args:
        jobs: one per photo (:func:`~stylecascade.batch.batch_jobs`).
        renderer: the batch's preset, paintings, weights and device (``Cluster.device``).
        cluster: the connected cluster.
        progress: the progress display, or ``None`` (quiet).
        actors: at most this many actors (default: as many as fit, no more than photos).
        cpus_per_actor: CPUs each actor reserves on a cluster without GPUs.
        threads: torch threads per actor (:func:`start_actors`).
        step: reports long steps (loading the weights).

    Returns:
        One :class:`Outcome` per job, in order; ``node`` names the host that rendered it.

    Raises:
        ClusterError: no actor can start.
        Interrupted: a signal stopped the batch.
    """
    if progress is not None:
        progress.batch_started(len(jobs))
    outcomes: dict[int, Outcome] = {}
    photos = []
    for index, job in enumerate(jobs):
        skipped = skip_existing(job)
        if skipped is None:
            photos.append(_Photo(index, job))
            continue
        outcomes[index] = skipped
        if progress is not None:
            progress.photo_finished(None, skipped)
    if photos:
        fit = min(cluster.capacity(renderer.device, cpus_per_actor), len(photos))
        count = min(fit, actors or fit)
        began = time.perf_counter()
        options = {"cpus_per_actor": cpus_per_actor, "threads": threads, "step": step}
        started = start_actors(renderer, count, **options)
        if progress is not None:
            progress.actors_started([a.info for a in started], time.perf_counter() - began)
        outcomes |= _Dispatch(renderer, started, photos, progress).run(len(jobs))
    return [outcomes[i] for i in range(len(jobs))]
