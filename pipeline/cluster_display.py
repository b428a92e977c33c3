"""The progress of a cluster batch (``--cluster``): the photos finished across the cluster and
each actor's throughput, as bars on a terminal (:class:`ClusterBars`) or timestamped lines in a
log (:class:`ClusterLog`); ``stylecascade.cluster`` reports to them."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column

from .progress import log_line
from .records import ActorInfo, Outcome
from .stages.cascade import StageResult


def cluster_progress(console: Console) -> ClusterBars | ClusterLog:
    """The progress of a cluster batch for ``console``: bars on a terminal, timestamped lines
    in a log."""
    return ClusterBars(console) if console.is_terminal else ClusterLog(console)


class _ClusterTally:
    """What both cluster displays count: photos finished of the batch, and per actor the photos
    it rendered since it started (its throughput)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.total = self.finished = self.rendered = 0
        self.began = time.monotonic()
        self.actors: list[ActorInfo] = []
        self.done: list[int] = []
        self.started: list[float] = []
        self.names: list[str] = []

    def __enter__(self) -> _ClusterTally:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def batch_started(self, count: int) -> None:
        self.total, self.began = count, time.monotonic()

    def actors_started(self, actors: list[ActorInfo], seconds: float) -> None:
        self.actors, self.done = actors, [0] * len(actors)
        self.started = [time.monotonic()] * len(actors)
        self.names = [""] * len(actors)
        nodes = len({a.node for a in actors})
        where = f"{nodes} node" + ("s" if nodes > 1 else "")
        self.report(f"started {len(actors)} actors on {where} in {seconds:.1f} s")

    def photo_started(self, actor: int, name: str) -> None:
        """``actor`` begins the photo ``name``."""
        self.names[actor] = name

    def count(self, actor: int | None, outcome: Outcome) -> None:
        """Count a finished photo (of ``actor``; ``None``: skipped, or failed without one)."""
        self.finished += 1
        if outcome.status != "skipped":
            self.rendered += 1
        if actor is not None and outcome.status == "done":
            self.done[actor] += 1

    def throughput(self, actor: int) -> str:
        """``3 done · 2.4/min``: the actor's photos and photos per minute since it started."""
        minutes = max(time.monotonic() - self.started[actor], 1e-9) / 60
        return f"{self.done[actor]} done · {self.done[actor] / minutes:.1f}/min"

    def actor_label(self, actor: int) -> str:
        return f"actor {actor + 1} {self.actors[actor].node}"

    def report(self, message: str) -> None:
        log_line(self.console, message)


class ClusterBars(_ClusterTally):
    """On a terminal: an overall bar of the photos finished across the cluster and a line per
    actor with its throughput and the photo and stage it is at, laid out for 80 columns."""

    LABEL = 22
    """Columns of a row's label (``all photos``, ``actor 1 HOST``, cut with ``…``)."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        info = Column(no_wrap=True, overflow="ellipsis", max_width=max(1, console.width - 42))
        self.progress = Progress(
            TextColumn("{task.description}", table_column=Column(width=self.LABEL, no_wrap=True)),
            BarColumn(bar_width=10),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}", table_column=info),
            console=console,
        )
        self.overall: TaskID | None = None
        self.rows: list[TaskID] = []

    def __enter__(self) -> ClusterBars:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def report(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def batch_started(self, count: int) -> None:
        super().batch_started(count)
        self.overall = self.progress.add_task("all photos", total=count, info=f"0/{count}")

    def actors_started(self, actors: list[ActorInfo], seconds: float) -> None:
        super().actors_started(actors, seconds)
        self.rows = [
            self.progress.add_task(self._label(i), total=None, info="0 done")
            for i in range(len(actors))
        ]

    def _label(self, actor: int) -> str:
        label = self.actor_label(actor)
        return label if len(label) <= self.LABEL else label[: self.LABEL - 1] + "…"

    def photo_started(self, actor: int, name: str) -> None:
        super().photo_started(actor, name)
        self.progress.update(self.rows[actor], info=f"{self.throughput(actor)} · {name}")

    def stage_finished(self, actor: int, result: StageResult) -> None:
        info = f"{self.throughput(actor)} · {self.names[actor]} stage {result.index + 1} done"
        self.progress.update(self.rows[actor], info=info)

    def photo_finished(self, actor: int | None, outcome: Outcome) -> None:
        self.count(actor, outcome)
        assert self.overall is not None
        info = f"{self.finished}/{self.total}"
        if self.rendered and self.finished < self.total:
            elapsed = time.monotonic() - self.began
            eta = elapsed / self.rendered * (self.total - self.finished)
            info += f" · eta {time.strftime('%H:%M:%S', time.gmtime(eta))}"
        self.progress.update(self.overall, completed=self.finished, info=info)
        if actor is not None:
            self.progress.update(self.rows[actor], info=self.throughput(actor))

    def actor_died(self, actor: int, name: str, retried: bool) -> None:
        then = "retried on another actor" if retried else "failed"
        self.progress.update(self.rows[actor], total=1, completed=0, info=f"died; {name} {then}")


class ClusterLog(_ClusterTally):
    """In a log: a timestamped line when the actors start, at each stage and photo an actor
    finishes (with its throughput), and when an actor dies."""

    def actors_started(self, actors: list[ActorInfo], seconds: float) -> None:
        super().actors_started(actors, seconds)
        for i, a in enumerate(actors):
            threads = f"{a.threads} thread{'s' if a.threads > 1 else ''}"
            self.report(f"{self.actor_label(i)}: {a.device}, {threads}, pid {a.pid}")

    def photo_started(self, actor: int, name: str) -> None:
        super().photo_started(actor, name)
        self.report(f"{self.actor_label(actor)}: {name} started")

    def stage_finished(self, actor: int, result: StageResult) -> None:
        height, width = result.stage.size
        stage = f"{self.names[actor]} stage {result.index + 1} {width}×{height}"
        self.report(f"{self.actor_label(actor)}: {stage} in {result.seconds:.0f} s")

    def photo_finished(self, actor: int | None, outcome: Outcome) -> None:
        self.count(actor, outcome)
        status = outcome.status if outcome.status != "failed" else f"failed: {outcome.message}"
        batch = f"{self.finished}/{self.total} photos finished"
        message = f"{batch}: {outcome.content.name} {status}"
        if actor is not None and outcome.node:
            message += f" by {self.actor_label(actor)} in {outcome.seconds:.1f} s"
            message += f" (this actor: {self.throughput(actor)})"
        self.report(message)

    def actor_died(self, actor: int, name: str, retried: bool) -> None:
        then = "retrying it on another actor" if retried else "it failed"
        self.report(f"{self.actor_label(actor)} died rendering {name}; {then}")
