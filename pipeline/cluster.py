"""Batches on a Ray cluster (``render … --cluster ADDRESS``): one actor per GPU, or per
``--cpus-per-actor`` CPUs on a cluster without GPUs; idle actors pull the next photo.

The driver (this process) does what a local batch does around each photo — the checks, the
locks, checkpoints, stage images, the output and its manifest, all written atomically by
:class:`~stylecascade.job.CheckedJob` — and an actor (:class:`~stylecascade.actor.RenderActor`)
runs the stages: the photo travels as its file's bytes and each stage's result comes back as
it finishes. A photo whose actor dies is tried once more on another actor (from its last
checkpointed stage); Ctrl-C kills the actors and keeps the finished stages for ``--resume``.

Needs the optional extra (``pip install -e '.[cluster]'``); only the launcher
(:mod:`stylecascade.launch`) imports this module, and only for a ``cluster`` request.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from .actor import ActorSetup, RenderActor
from .batch import render_job, skip_existing
from .checkpoint import checkpoint_folder
from .errors import ArgumentError, StyleCascadeError
from .interrupt import Interrupted, Signalled
from .job import RenderJob
from .reading import image_bound, read_bytes
from .records import ActorInfo, Outcome, Step, no_step
from .renderer import Renderer
from .runner import StageResult
from .weights import load_weights

try:
    import ray
    from ray.exceptions import ObjectLostError, RayActorError, RayTaskError
except ImportError:  # the optional extra
    ray = None

ADDRESS = re.compile(r"local|auto|ray://[^\s/:]+:\d+")
"""``--cluster`` values: a new local instance, the running one, or a Ray Client address."""
ACTOR_DEATHS = () if ray is None else (RayActorError, ObjectLostError)


class ClusterError(StyleCascadeError):
    """Ray is missing, the cluster cannot be reached, or no actor can start there."""


class Cluster:
    """A connected Ray cluster (:func:`connect`) and the resources it has."""

    def __init__(self, address: str) -> None:
        self.address = address
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.cpus = int(resources.get("CPU", 0))
        self.nodes = sum(node["Alive"] for node in ray.nodes())

    def __str__(self) -> str:
        """``cluster local (1 node, 2 CPUs, 0 GPUs)``."""
        nodes = f"{self.nodes} node" + ("s" if self.nodes > 1 else "")
        counts = f"{nodes}, {self.cpus} CPUs, {self.gpus} GPUs"
        return f"cluster {self.address} ({counts})"

    def device(self, requested: str) -> torch.device:
        """Where the actors compute for ``--device``: ``auto`` takes the GPUs when the cluster
        has any, else the CPUs.

        Raises:
            UsageError: ``cuda`` on a cluster without GPUs, ``mps``, or an unknown name.
        """
        if requested == "cpu" or (requested == "auto" and not self.gpus):
            return torch.device("cpu")
        if requested == "cuda" and not self.gpus:
            raise ArgumentError("device", f"{{}} cuda: the cluster {self.address} has no GPU")
        if requested not in ("auto", "cuda"):
            raise ArgumentError("device", f"{{}} {requested}: on a cluster use auto, cuda or cpu")
        return torch.device("cuda")

    def capacity(self, device: torch.device, cpus_per_actor: int) -> int:
        """How many actors fit: one per GPU, or one per ``cpus_per_actor`` CPUs.

        Raises:
            ClusterError: not even one.
        """
        count = self.gpus if device.type == "cuda" else self.cpus // cpus_per_actor
        if count < 1:
            raise ClusterError(
                f"the cluster {self.address} has {self.cpus} CPUs; --cpus-per-actor "
                f"{cpus_per_actor} leaves no room for an actor"
            )
        return count


@contextmanager
def connect(address: str) -> Iterator[Cluster]:
    """Connect to a Ray cluster for the block, and disconnect after it (a ``local`` instance
    is shut down). A Ray already initialized in this process is used as it is and left running.

    Args:
        address: ``local`` (start Ray on this machine, with its GPUs and CPUs), ``auto`` (the
            instance running on this machine, or ``RAY_ADDRESS``), or ``ray://HOST:PORT``
            (a cluster's Ray Client server, usually port 10001).

    Raises:
        UsageError: an address of another form.
        ClusterError: Ray is not installed, or the cluster cannot be reached.
    """
    if not ADDRESS.fullmatch(address):
        raise ArgumentError(
            "cluster",
            f"{{}} {address}: expected local, auto or ray://HOST:PORT (e.g. ray://head:10001)",
        )
    if ray is None:
        raise ClusterError("--cluster needs Ray; install it with: pip install -e '.[cluster]'")
    if ray.is_initialized():
        yield Cluster(address)
        return
    _start(address)
    try:
        yield Cluster(address)
    finally:
        ray.shutdown()


def _start(address: str) -> None:
    """``ray.init`` quietly, without usage statistics or a dashboard, keeping our SIGTERM
    handler (Ray installs its own).

    Raises:
        ClusterError: the cluster cannot be reached.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never report to the internet
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address == "local":
        options["include_dashboard"] = False
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClusterError(f"--cluster {address}: cannot connect ({reason})") from None
    finally:
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)


class ClusterObserver(Protocol):
    """Receives a cluster batch's progress (``stylecascade.progress.ClusterBars``,
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
    cuda = renderer.device.type == "cuda"
    weights = ray.put(load_weights(renderer.weights, step))
    setup = ActorSetup(
        preset=renderer.preset,
        files={
            path: _image_bytes(path, renderer.max_input_pixels) for path in renderer.preset.files()
        },
        device=renderer.device.type,
        threads=threads if threads or cuda else cpus_per_actor,
        max_input_pixels=renderer.max_input_pixels,
    )
    resources = {"num_gpus": 1} if cuda else {"num_cpus": cpus_per_actor}
    remote = ray.remote(RenderActor).options(**resources)
    handles = [remote.remote(setup, weights) for _ in range(count)]
    try:
        infos = ray.get([handle.describe.remote() for handle in handles])
    except ACTOR_DEATHS as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ClusterError(f"an actor could not start: {lines[-1]}") from None
    return [Actor(handle, info) for handle, info in zip(handles, infos, strict=True)]


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
    except RayTaskError as exc:
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
                f"(their finished stages are kept); run the same command with --resume to "
                f"finish them",
                signum,
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
