"""Handing a print's tiles to its actors (:mod:`stylecascade.tile_cluster`), and where the time
of each evaluation goes.

Tiles are taken dynamically from one shared list: every idle actor is handed the next tile,
one in flight per actor, so an actor that finishes early takes the remaining tiles instead of
waiting (``ray.wait`` over the futures in flight). Results are handed on in tile order (held
back until their predecessors arrive), so the driver reduces and stitches them in the order
the local evaluation does. An actor that dies (``RayActorError``) leaves the list; its tile is
handed to another and the evaluation completes (logged on ``stylecascade.cluster``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .cluster import ClusterError
from .records import ActorInfo
from .tile_actors import TileActorInfo, Timed, tensor_bytes

try:
    import ray
    from ray.exceptions import ActorDiedError, ObjectLostError, RayActorError
except ImportError:  # the optional extra
    ray = None

LOG = logging.getLogger("stylecascade.cluster")


class AllActorsDied(ClusterError):
    """Every actor of the print died; the evaluation cannot complete."""


def _deaths() -> tuple[type[BaseException], ...]:
    return () if ray is None else (RayActorError, ActorDiedError, ObjectLostError)


@dataclass
class Worker:
    """A started tile actor: its Ray handle, what it reported, its 1-based number."""

    handle: Any
    info: TileActorInfo
    number: int

    @property
    def actor(self) -> ActorInfo:
        return self.info.actor

    def __str__(self) -> str:
        """``actor 2 (node, pid 1234)``."""
        return f"actor {self.number} ({self.actor.node}, pid {self.actor.pid})"


@dataclass
class EvaluationTimes:
    """Where one evaluation's time went, in seconds (bytes for the transfers).

    The driver's wall time is split into ``waiting`` (for actors' results: their compute and
    the transfers it cannot see), ``put`` (crops and slopes into the object store), ``get``
    (results out of it), ``reduction`` (summing the tiles' pooled representations) and
    ``driver`` (the rest: the tile grid, scoring the pooled terms, stitching the tiles'
    gradients, the TV term). ``compute`` and ``fetch`` are summed over the actors: their network
    time and the time they spent fetching inputs. ``bytes_out`` counts what the driver puts
    (each object once), ``bytes_shared`` the part every actor fetches (the slopes: over a
    network, once per node), ``bytes_in`` what comes back.
    """

    wall: float = 0.0
    waiting: float = 0.0
    put: float = 0.0
    get: float = 0.0
    reduction: float = 0.0
    compute: float = 0.0
    fetch: float = 0.0
    bytes_out: int = 0
    bytes_shared: int = 0
    bytes_in: int = 0
    tiles: int = 0
    actors: int = 0
    deaths: int = 0

    @property
    def driver(self) -> float:
        """The driver's own work: the wall time not spent waiting, transferring or reducing."""
        return max(0.0, self.wall - self.waiting - self.put - self.get - self.reduction)

    @property
    def transfer(self) -> float:
        """Object-store seconds seen: the driver's puts and gets plus the actors' fetches."""
        return self.put + self.get + self.fetch

    def as_dict(self) -> dict[str, float | int]:
        """Every field plus ``driver`` and ``transfer`` (s), for logs and the manifest."""
        return {**asdict(self), "driver": self.driver, "transfer": self.transfer}


def summary(records: Sequence[EvaluationTimes]) -> dict[str, float | int]:
    """Per-evaluation means of ``records`` (``evaluations``: their count; ``deaths``: the
    total), for a stage's entry in the manifest."""
    if not records:
        return {"evaluations": 0}
    rows = [r.as_dict() for r in records]
    means = {k: sum(row[k] for row in rows) / len(rows) for k in rows[0]}
    return {**means, "evaluations": len(rows), "deaths": sum(r.deaths for r in records)}


class Dispatcher:
    """Hands calls to a print's actors (module description).

    Args:
        workers: the actors, the first handed work first (the largest first).
    """

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)
        self.deaths: list[str] = []

    def broadcast(self, method: str, *args: Any) -> None:
        """Call ``method(*args)`` on every actor and wait; an actor that dies leaves.

        Raises:
            AllActorsDied: none is left.
        """
        calls = [(w, getattr(w.handle, method).remote(*args)) for w in self.workers]
        for worker, future in calls:
            try:
                ray.get(future)
            except _deaths():
                self._died(worker, f"while taking the stage's {method}")
        self._alive()

    def map(
        self, method: str, calls: Sequence[tuple], times: EvaluationTimes, spent: str = ""
    ) -> Iterator[Any]:
        """``method(*calls[i])`` on whichever actor is idle, each call once it succeeds; yields
        the results (:class:`~stylecascade.tile_actors.Timed` values) in the order of
        ``calls``. The actors' seconds and the bytes go into ``times``; the seconds the caller
        spends between two results into ``times.<spent>`` (e.g. ``reduction``).

        Raises:
            AllActorsDied: every actor died before the calls were done.
        """
        queue, idle = deque(range(len(calls))), list(self.workers)
        running: dict[Any, tuple[Worker, int]] = {}
        ready: dict[int, Any] = {}
        following = 0
        times.actors = max(times.actors, len(self.workers))
        while following < len(calls):
            while queue and idle:
                worker, index = idle.pop(0), queue.popleft()
                running[getattr(worker.handle, method).remote(*calls[index])] = (worker, index)
            self._alive(bool(running))
            worker, index, value = self._next(running, times)
            if worker is None:  # its actor died: another takes it
                queue.appendleft(index)
                continue
            idle.append(worker)
            ready[index] = value
            while following in ready:
                handed = time.perf_counter()
                yield ready.pop(following)
                following += 1
                if spent:
                    setattr(times, spent, getattr(times, spent) + time.perf_counter() - handed)

    def _next(
        self, running: dict[Any, tuple[Worker, int]], times: EvaluationTimes
    ) -> tuple[Worker | None, int, Any]:
        """Wait for one call in flight: ``(worker, index, value)``, or ``(None, index, None)``
        when its actor died (the caller hands the call to another)."""
        began = time.perf_counter()
        (future,), _ = ray.wait(list(running), num_returns=1)
        fetched = time.perf_counter()
        times.waiting += fetched - began
        worker, index = running.pop(future)
        try:
            timed: Timed = ray.get(future)
        except _deaths():
            self._died(worker, f"during an evaluation (its tile {index + 1} runs on another)")
            times.deaths += 1
            return None, index, None
        finally:
            times.get += time.perf_counter() - fetched
        times.compute += timed.compute
        times.fetch += timed.fetch
        times.bytes_in += tensor_bytes(timed.value)
        return worker, index, timed.value

    def _died(self, worker: Worker, when: str) -> None:
        """Drop a dead actor, and log it."""
        if worker in self.workers:
            self.workers.remove(worker)
        self.deaths.append(f"{worker} died {when}")
        LOG.warning("%s died %s; actors left: %d", worker, when, len(self.workers))

    def _alive(self, busy: bool = False) -> None:
        """Raise :class:`AllActorsDied` when no actor is left and none is busy."""
        if not self.workers and not busy:
            raise AllActorsDied(
                "every actor of the print died: " + "; ".join(self.deaths or ["none started"])
            )
