"""Plain records that several layers pass around: what happened to a photo (:class:`Outcome`),
where a cluster actor runs (:class:`ActorInfo`) and the long-step reporter (:data:`Step`).

A leaf: it imports nothing of the package and no torch, so the progress displays, the weights
loader, the batch runner and the cluster can all use these names without importing each
other.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

Step = Callable[[str], AbstractContextManager]
"""Reports a long step: ``with step("Downloading …"): …`` (e.g. a rich status spinner)."""


def no_step(_message: str) -> AbstractContextManager:
    """A :data:`Step` that reports nothing."""
    return nullcontext()


STATUSES = ("done", "skipped", "failed", "interrupted", "not started")
"""What can happen to one photo of a batch (:class:`Outcome`)."""


@dataclass
class Outcome:
    """What happened to one photo: ``status`` is one of :data:`STATUSES`; ``message`` and
    ``exit_code`` are the one-line error and its code when it failed or was interrupted, and
    ``error`` the exception itself (the command line words an ``ArgumentError`` with its
    flags); ``node`` is the cluster node that rendered it (``""``: this process)."""

    content: Path
    output: Path
    status: str
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0
    node: str = ""
    error: Exception | None = None


@dataclass(frozen=True)
class ActorInfo:
    """Where a cluster actor runs: its node's host name, process id, device and CPU
    threads."""

    node: str
    pid: int
    device: str
    threads: int
