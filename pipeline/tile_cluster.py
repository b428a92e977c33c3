"""One print over a Ray cluster's actors: its tiled stages' tiles spread over the actors, its
untiled stages on one actor, the image, the optimizer and everything written kept on the driver.

A tiled evaluation (``stages.tiling``) has two passes over the tiles with one reduction between
them, the shape of a data-parallel all-reduce. :class:`TiledCluster` gives the cascade a runner
per stage (:meth:`TiledCluster.runner`, for ``stages.cascade.run_schedule``'s ``runners``):
:class:`ClusterTiles`, a ``stages.cascade.StageRunner`` whose per-tile work (or a whole untiled
evaluation) runs on the actors while the reduction, the pooled terms' scores and the stitching
stay in the cascade's own evaluators: the same code as the local evaluation, so for the same
tiles, offsets and seed the cluster's evaluation is the local one (up to float rounding where
the actors' kernels differ from the driver's).

What travels: the network once per actor (the object store); the stage's terms (targets,
guides), content image and layers once per stage (one object for all actors); per evaluation
each tile's crop once (``ray.put``: the same object for both passes), one object with the
slopes of the pooled terms and the local terms' energies, and back each tile's pooled
representations (Gram matrices: ``C²`` floats per layer) and its crop's gradient.

How the driver decides (:meth:`TiledCluster.prepare`, per stage): a stage whose tiles the preset
forces is tiled with those tiles; else a stage that fits untiled on the largest actor runs there
untiled (as a local stage would, L-BFGS and all); else it is tiled with the largest tile that fits
the actors, made smaller (not below 256 px) until there are at least two tiles per actor, so
no actor waits for the last one. A stage whose tiles fit no actor is refused before any work
(:meth:`TiledCluster.check`). One pool of actors serves every stage of the print
(:func:`print_tiles`); the driver computes on its CPU (the image, the optimizer, the style
targets, scoring and stitching).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from rich.console import Console
from torch import Tensor

from .cluster import Cluster, actor_threads, spawn
from .errors import ArgumentError, literal
from .memory import BACKWARD_MARGIN, MIN_TILE, TILE_STEP, USABLE_FRACTION
from .preset import TilingConfig
from .progress import log_line
from .renderer import Renderer
from .runner import planned
from .stages.cascade import Stage
from .stages.losses import Objective
from .stages.tiling import Parts, Tile, tile_grid
from .stages.vgg import VGGFeatures
from .tile_actors import TileActor, portable, stage_payload, tensor_bytes
from .tile_dispatch import LOG, Dispatcher, EvaluationTimes, Worker, summary

try:
    import ray
except ImportError:  # the optional extra
    ray = None

TILES_PER_ACTOR = 2
"""A tiled stage whose tile edge is not forced has at least this many tiles per actor."""


class ClusterTiles:
    """One stage's evaluations on the actors (``stages.cascade.StageRunner``): its tiles'
    passes, or a whole untiled evaluation on one actor; the stage's terms are sent to every
    actor once, when this is made.

    Args:
        dispatcher: the print's actors.
        objective: the stage's objective on the driver.

    Attributes:
        records: one :class:`~stylecascade.tile_dispatch.EvaluationTimes` per evaluation.
    """

    def __init__(self, dispatcher: Dispatcher, objective: Objective) -> None:
        self.dispatcher = dispatcher
        self.records: list[EvaluationTimes] = []
        self.times = EvaluationTimes()
        self.logged = False  # its times logged (``TiledCluster``)
        payload = ray.put(stage_payload(objective))
        dispatcher.broadcast("begin_stage", [payload])
        self._crops: tuple[list[Tile], list[Any]] | None = None

    @contextmanager
    def evaluation(self) -> Iterator[None]:
        """One evaluation: its times recorded (and logged at ``DEBUG`` on
        ``stylecascade.cluster``); its crops forgotten after it (the object store frees them)."""
        self.times, began = EvaluationTimes(), time.perf_counter()
        try:
            yield
        finally:
            self._crops = None
        self.times.wall = time.perf_counter() - began
        self.records.append(self.times)
        LOG.debug("evaluation %d: %s", len(self.records), where_time_goes(self.times.as_dict()))

    def energies(self, tiles: Sequence[Tile]) -> Iterator[Parts]:
        yield from self.dispatcher.map("energies", [(t,) for t in tiles], EvaluationTimes())

    def pooled(self, image: Tensor, tiles: Sequence[Tile]) -> Iterator[Parts]:
        refs = self._put_crops(image, tiles)
        calls = [([ref], tile) for ref, tile in zip(refs, tiles, strict=True)]
        yield from self.dispatcher.map("pooled", calls, self.times, "reduction")

    def gradients(
        self, image: Tensor, tiles: Sequence[Tile], slopes: Parts, energies: Parts
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        refs = self._put_crops(image, tiles)
        shared = self._put((_cpu(slopes), _cpu(energies)))
        self.times.bytes_shared += tensor_bytes((slopes, energies))
        calls = [([ref, shared], tile) for ref, tile in zip(refs, tiles, strict=True)]
        yield from self.dispatcher.map("gradient", calls, self.times)

    def whole(self, image: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """The whole stage's evaluation on one actor (the first idle one: the largest):
        ``(value, terms, gradient)`` on the CPU
        (:meth:`~stylecascade.tile_actors.TileActor.untiled`)."""
        ref = self._put(image.detach().cpu().clone())
        return next(self.dispatcher.map("untiled", [([ref],)], self.times))

    def _put_crops(self, image: Tensor, tiles: Sequence[Tile]) -> list[Any]:
        """Each tile's crop in the object store, once per evaluation (the backward pass reuses
        the forward pass's: the image does not change in between)."""
        if self._crops is not None and self._crops[0] == list(tiles):
            return self._crops[1]
        crops = [image.detach()[tile.window].cpu().clone() for tile in tiles]
        refs = [self._put(crop) for crop in crops]
        self._crops = (list(tiles), refs)
        self.times.tiles = len(tiles)
        return refs

    def _put(self, value: Any) -> Any:
        began = time.perf_counter()
        ref = ray.put(value)
        self.times.put += time.perf_counter() - began
        self.times.bytes_out += tensor_bytes(value)
        return ref


def _cpu(parts: Parts) -> Parts:
    return {name: {k: v.detach().cpu() for k, v in ls.items()} for name, ls in parts.items()}


def where_time_goes(times: dict[str, float | int]) -> str:
    """One evaluation's times (:meth:`EvaluationTimes.as_dict`, or a stage's means) in words:
    ``1.20 s: compute 2.10 s over 2 actors, transfer 0.031 s (12.3 MiB), reduction 0.001 s,
    driver 0.100 s, 16 tiles`` (compute summed over the actors: their network time)."""
    moved = (times["bytes_out"] + times["bytes_in"]) / 2**20
    tiles = f", {times['tiles']:.0f} tiles" if times["tiles"] else ""
    return (
        f"{times['wall']:.2f} s: compute {times['compute']:.2f} s over {times['actors']:.0f} "
        f"actors, transfer {times['transfer']:.3f} s ({moved:.1f} MiB), reduction "
        f"{times['reduction']:.3f} s, driver {times['driver']:.3f} s{tiles}"
    )


def actor_bytes(per_pixel: float, size: tuple[int, int], tile_edge: int | None) -> int:
    """An actor's peak for a stage of ``size`` = ``(H, W)`` px: one tile's activations
    (``tile_edge`` px; ``None``: the whole image's) × the backward margin, plus the stage's
    content image and one image-sized buffer (float32, 3 channels). The optimizer's state stays
    on the driver."""
    height, width = size
    pixels = height * width if tile_edge is None else min(tile_edge, height) * min(tile_edge, width)
    return int(per_pixel * pixels * BACKWARD_MARGIN) + 2 * 3 * 4 * height * width


def fits(free: int | None, need: int) -> bool:
    """Whether ``need`` bytes fit in ``free`` (``None``: unknown, assumed to fit)."""
    return free is None or need <= free * USABLE_FRACTION


def largest_tile(per_pixel: float, size: tuple[int, int], free: int | None, overlap: int) -> int:
    """The largest tile edge (a multiple of 64 px, at least 256 and more than ``overlap``)
    that fits ``free`` bytes, or 0 when none does."""
    tile = (max(size) // TILE_STEP) * TILE_STEP
    while tile >= max(MIN_TILE, overlap + TILE_STEP):
        if fits(free, actor_bytes(per_pixel, size, tile)):
            return tile
        tile -= TILE_STEP
    return 0


def busy_tile(size: tuple[int, int], tile: int, overlap: int, actors: int) -> int:
    """``tile`` made smaller, 64 px at a time and not below 256 px, until a stage of ``size``
    has :data:`TILES_PER_ACTOR` tiles per actor."""
    while tile - TILE_STEP >= max(MIN_TILE, overlap + TILE_STEP):
        if len(tile_grid(*size, tile, overlap, (0, 0))) >= TILES_PER_ACTOR * actors:
            break
        tile -= TILE_STEP
    return tile


class TiledCluster:
    """One print's stages on a cluster's tile actors: the entry point of a single photo's
    ``--cluster`` (module description for what runs where).

    Args:
        workers: the started actors (:func:`start_tile_actors`).
        tiling: the preset's tiling settings.
        where: the cluster in words, for the manifest (``cluster local (1 node, …)``).

    Attributes:
        stages: ``(stage, its runner)`` per stage evaluated here (:meth:`profile`).
    """

    def __init__(self, workers: Sequence[Worker], tiling: TilingConfig, where: str = "") -> None:
        ordered = sorted(workers, key=lambda w: -(w.info.free_bytes or 2**62))
        self.dispatcher = Dispatcher(ordered)
        self.tiling, self.where = tiling, where
        self.started = [str(w) for w in sorted(workers, key=lambda w: w.number)]
        self.stages: list[tuple[Stage, ClusterTiles]] = []

    @property
    def workers(self) -> list[Worker]:
        """The actors still alive."""
        return self.dispatcher.workers

    def prepare(self, index: int, stage: Stage) -> Stage:
        """``stage`` planned for the actors' memory (module description: untiled on one actor,
        or tiled), for ``stages.cascade.run_schedule``'s ``prepare``.

        Raises:
            ArgumentError: its tiles fit no actor (naming the largest actor and the tile
                edge that fits it; field ``tile_size``).
            UsageError, ArgumentError: as ``stylecascade.runner.planned`` (a style loss that
                cannot be tiled, tiles too small against their overlap).
        """
        largest = self.workers[0].info
        size, per_pixel, overlap = stage.size, largest.per_pixel, self.tiling.overlap
        forced = self.tiling.tile_edge and max(size) > self.tiling.tile_edge
        whole = actor_bytes(per_pixel, size, None)
        if not forced and fits(largest.free_bytes, whole):
            untiled = dataclasses.replace(self.tiling, tile_edge=0)
            return planned(index, stage, untiled, per_pixel, None)
        edge = self.tiling.tile_edge
        if not forced:
            edge = largest_tile(per_pixel, size, largest.free_bytes, overlap)
        if not edge or not fits(largest.free_bytes, actor_bytes(per_pixel, size, edge)):
            raise self._refusal(index, stage, edge or MIN_TILE)
        if not forced:
            edge = busy_tile(size, edge, overlap, len(self.workers))
        tiling = dataclasses.replace(self.tiling, tile_edge=edge)
        return planned(index, stage, tiling, per_pixel, None)

    def check(self, stages: Sequence[Stage]) -> list[Stage]:
        """Every stage planned (:meth:`prepare`) before any work: a stage that fits no actor is
        refused up front. Returns the planned stages.

        Raises:
            UsageError, ArgumentError: see :meth:`prepare`.
        """
        return [self.prepare(index, stage) for index, stage in enumerate(stages)]

    def _refusal(self, index: int, stage: Stage, edge: int) -> ArgumentError:
        """The error for a stage whose ``edge`` px tiles fit no actor."""
        worker = self.workers[0]
        info, (h, w) = worker.info, stage.size
        need = actor_bytes(info.per_pixel, stage.size, edge) / 2**30
        free = "unknown" if info.free_bytes is None else f"{info.free_bytes / 2**30:.2f} GiB"
        fit = largest_tile(info.per_pixel, stage.size, info.free_bytes, self.tiling.overlap)
        problem = (
            f"stage {index + 1} ({w}×{h} px) in {edge} px tiles needs about {need:.2f} GiB on an "
            f"actor; the largest actor, {literal(worker)}, has {free} free"
        )
        if fit:
            advice = f"tiles of at most {fit} px would fit it: {{}} {fit}"
            return ArgumentError("tile_size", f"{problem}; {advice}")
        advice = (
            f"not even {MIN_TILE} px tiles fit it: use actors with more memory or a smaller {{}}"
        )
        return ArgumentError("size", f"{problem}; {advice}")

    def runner(self, objective: Objective, stage: Stage) -> ClusterTiles:
        """The stage's runner on the actors (:class:`ClusterTiles`), for
        ``stages.cascade.run_schedule``'s ``runners``: sends the stage's terms to every actor.
        The previous stage's times are logged (``INFO`` on ``stylecascade.cluster``)."""
        self._log_stage()
        runner = ClusterTiles(self.dispatcher, objective)
        self.stages.append((stage, runner))
        return runner

    def _log_stage(self) -> None:
        """Log where the last stage's time went per evaluation (its means), once."""
        if not self.stages or self.stages[-1][1].logged or not self.stages[-1][1].records:
            return
        stage, runner = self.stages[-1]
        times, (h, w) = summary(runner.records), stage.size
        how = f"in {stage.tile_edge} px tiles" if stage.tile_edge else "untiled on one actor"
        count, spent = times["evaluations"], where_time_goes(times)
        LOG.info("stage %d×%d %s, %d evaluations, each %s", w, h, how, count, spent)
        runner.logged = True

    def profile(self) -> dict[str, Any]:
        """For the manifest's ``cluster``: ``where`` (the cluster), ``actors`` (each actor
        started), ``stages`` (per stage evaluated here: its size ``[W, H]``, tile edge and
        per-evaluation means, ``stylecascade.tile_dispatch.summary``: wall, waiting, put, get,
        reduction, driver, compute, fetch, transfer in s; bytes; tiles; actors; deaths) and
        ``actor_deaths`` (one line per actor that died)."""
        stages = [
            {
                "size": [stage.size[1], stage.size[0]],
                "tile_edge": stage.tile_edge,
                "times": summary(runner.records),
            }
            for stage, runner in self.stages
        ]
        deaths = list(self.dispatcher.deaths)
        return {
            "where": self.where,
            "actors": self.started,
            "stages": stages,
            "actor_deaths": deaths,
        }

    def close(self) -> None:
        """Log the last stage's times and kill the actors."""
        self._log_stage()
        for worker in self.workers:
            ray.kill(worker.handle, no_restart=True)


def start_tile_actors(
    extractor: VGGFeatures,
    count: int,
    *,
    device: torch.device,
    precision_name: str = "fp32",
    cpus_per_actor: int = 1,
    threads: int | None = None,
    memory_per_actor: int | None = None,
) -> list[Worker]:
    """Start ``count`` tile actors on the connected cluster (``stylecascade.cluster.connect``)
    and wait until each has built its network and measured its memory.

    Args:
        extractor: the network the driver built (sent once, as a CPU copy).
        count: how many (``stylecascade.cluster.Cluster.capacity``).
        device: ``cuda`` (one GPU per actor) or ``cpu`` (``cpus_per_actor`` CPUs each).
        precision_name: the preset's precision.
        cpus_per_actor: CPUs each CPU actor reserves.
        threads: torch threads per actor (default: ``cpus_per_actor`` on CPUs).
        memory_per_actor: bytes each actor reserves from Ray's ``memory`` resource and plans
            with at most (``None``: its free memory).

    Raises:
        ClusterError: an actor could not start.
    """
    network = ray.put(portable(extractor))
    threads = actor_threads(threads, device, cpus_per_actor)
    args = (network, device.type, threads, precision_name, memory_per_actor)
    options = {"cpus_per_actor": cpus_per_actor, "memory": memory_per_actor}
    started = spawn(TileActor, args, count, device, **options)
    return [Worker(handle, info, n) for n, (handle, info) in enumerate(started, 1)]


@contextmanager
def print_tiles(
    session: Cluster,
    renderer: Renderer,
    device: str = "auto",
    *,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    threads: int | None = None,
    console: Console | None = None,
) -> Iterator[TiledCluster]:
    """One print's pool of tile actors for the block: started with ``renderer``'s network and
    preset, given to ``renderer`` (its stages run on them: ``Renderer.tiles``), killed after.

    Args:
        session: the connected cluster.
        renderer: the print's renderer on the driver.
        device: the actors' device (``Cluster.device``: ``auto`` takes the GPUs if any).
        actors: at most this many (default: one per GPU, or per ``cpus_per_actor`` CPUs).
        cpus_per_actor: CPUs each actor reserves without GPUs (default 1).
        threads: torch threads per actor.
        console: where the cluster's log lines go (stage times, actors that die).

    Raises:
        UsageError: a device the cluster does not have.
        ClusterError: no actor fits, or one could not start.
        WeightsError: the weights cannot be loaded.
    """
    where, cpus = session.device(device), cpus_per_actor or 1
    fit = session.capacity(where, cpus)
    workers = start_tile_actors(
        renderer.network.extractor, min(fit, actors or fit), device=where,
        precision_name=renderer.preset.precision, cpus_per_actor=cpus, threads=threads,
    )  # fmt: skip
    tiles = TiledCluster(workers, renderer.preset.tiling, str(session))
    handler = None if console is None else _console_log(console)
    LOG.info("started %d tile actors: %s", len(workers), "; ".join(tiles.started))
    renderer.tiles = tiles
    try:
        yield tiles
    finally:
        renderer.tiles = None
        tiles.close()
        if handler is not None:
            LOG.removeHandler(handler)


class _Lines(logging.Handler):
    """``stylecascade.cluster``'s records as timestamped lines on a console (above its
    progress bars; ``progress.log_line``)."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        log_line(self.console, record.getMessage())


def _console_log(console: Console) -> logging.Handler:
    """A handler of ``stylecascade.cluster``'s ``INFO`` lines on ``console``, attached."""
    handler = _Lines(console)
    LOG.addHandler(handler)
    LOG.setLevel(min(LOG.level or logging.INFO, logging.INFO))
    return handler
