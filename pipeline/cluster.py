"""The Ray cluster of ``render … --cluster ADDRESS``: the address forms, the connection
(:func:`connect`), its device, how many actors it holds (one per GPU, or per
``--cpus-per-actor`` CPUs on a cluster without GPUs) and how they start (:func:`spawn`, for
both kinds). A batch on it is :mod:`stylecascade.cluster_batch`'s (one photo per actor); one
print's tiles on it :mod:`stylecascade.tile_cluster`'s (one pool of tile actors per print,
kept across its stages).

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

import logging
import os
import re
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .errors import ArgumentError, StyleCascadeError, literal

try:
    import ray
    from ray.exceptions import ObjectLostError, RayActorError
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
                f"the cluster {literal(self.address)} has {self.cpus} CPUs; {{}} "
                f"{cpus_per_actor} leaves no room for an actor",
                "cpus_per_actor",
            )
        return count


def actor_threads(threads: int | None, device: torch.device, cpus_per_actor: int) -> int | None:
    """An actor's torch threads: ``threads`` if given, else its ``cpus_per_actor`` on a CPU,
    else torch's default (``None``) on a GPU."""
    return threads if threads or device.type == "cuda" else cpus_per_actor


def spawn(
    actor: type,
    args: Sequence[Any],
    count: int,
    device: torch.device,
    *,
    cpus_per_actor: int = 1,
    memory: int | None = None,
) -> list[tuple[Any, Any]]:
    """Start ``count`` actors of class ``actor`` on the connected cluster and wait until each
    has answered its ``describe()`` (built its network).

    Args:
        actor: the class (``actor.RenderActor``, ``tile_actors.TileActor``), run with
            ``ray.remote``.
        args: its constructor's arguments (object references or values).
        count: how many (:meth:`Cluster.capacity`).
        device: ``cuda`` (one GPU each) or ``cpu`` (``cpus_per_actor`` CPUs each).
        memory: bytes each reserves from Ray's ``memory`` resource (``None``: none).

    Returns:
        ``(handle, description)`` per actor, in the order started.

    Raises:
        ClusterError: an actor could not start (e.g. a node without stylecascade).
    """
    resources: dict[str, Any] = (
        {"num_gpus": 1} if device.type == "cuda" else {"num_cpus": cpus_per_actor}
    )
    if memory:
        resources["memory"] = memory
    remote = ray.remote(actor).options(**resources)
    handles = [remote.remote(*args) for _ in range(count)]
    try:
        infos = ray.get([handle.describe.remote() for handle in handles])
    except ACTOR_DEATHS + (ray.exceptions.RayTaskError,) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ClusterError(f"an actor could not start: {lines[-1]}") from None
    return list(zip(handles, infos, strict=True))


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
        raise ClusterError("{} needs Ray; install it with: pip install -e '.[cluster]'", "cluster")
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
        problem = literal(f"{address}: cannot connect ({reason})")
        raise ClusterError(f"{{}} {problem}", "cluster") from None
    finally:
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)
