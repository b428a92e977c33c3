"""One print over a Ray cluster's actors: its tiled stages' tiles spread over the actors, its
untiled stages on one actor, the image, the optimizer and everything written kept on the driver.

A tiled evaluation (``stages.tiling``) has two passes over the tiles with one reduction between
them, the shape of a data-parallel all-reduce. :class:`TiledCluster` gives the cascade an
evaluator per stage (:meth:`TiledCluster.evaluator`, the signature of
``stages.cascade.evaluator``) whose per-tile work runs on the actors
(:class:`ClusterTiles`, a ``stages.tiling.TileRunner``) while the reduction, the pooled terms'
scores and the stitching stay in ``TiledEvaluator``: the same code as the local evaluation, so
for the same tiles, offsets and seed the cluster's evaluation is the local one (up to float
rounding where the actors' kernels differ from the driver's).

What travels: the network once per actor (the object store); the stage's terms (targets,
guides) and content image once per stage (one object for all actors); per evaluation each tile's
crop once (``ray.put``: the same object for both passes), one object with the slopes of the
pooled terms and the local terms' energies, and back each tile's pooled representations
(Gram matrices: ``C²`` floats per layer) and its crop's gradient.

How the driver decides (:meth:`TiledCluster.prepare`, per stage): a stage whose tiles the preset
forces is tiled with those tiles; else a stage that fits untiled on the largest actor runs there
untiled (as a local stage would, L-BFGS and all); else it is tiled with the largest tile that fits
the actors, made smaller (not below 256 px) until there are at least two tiles per actor, so
no actor waits for the last one. A stage whose tiles fit no actor is refused before any work.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from .errors import StyleCascadeError
from .memory import BACKWARD_MARGIN, MIN_TILE, TILE_STEP, USABLE_FRACTION
from .preset import TilingConfig
from .runner import planned
from .stages.cascade import Stage
from .stages.evaluator import Evaluator
from .stages.losses import Objective
from .stages.tiling import Parts, Tile, TiledEvaluator, tile_grid
from .stages.vgg import VGGFeatures
from .tile_actors import TileActor, portable, stage_payload, tensor_bytes
from .tile_dispatch import Dispatcher, EvaluationTimes, Worker, summary

try:
    import ray
except ImportError:  # the optional extra
    ray = None

TILES_PER_ACTOR = 2
"""A tiled stage whose tile edge is not forced has at least this many tiles per actor."""


class ClusterTiles:
    """The tiles' passes of one stage on the actors (``stages.tiling.TileRunner``): the stage's
    terms are sent to every actor once, when this is made.

    Args:
        dispatcher: the print's actors.
        objective: the stage's objective on the driver.
    """

    def __init__(self, dispatcher: Dispatcher, objective: Objective) -> None:
        self.dispatcher = dispatcher
        self.records: list[EvaluationTimes] = []
        self.times = EvaluationTimes()
        payload = ray.put(stage_payload(objective))
        dispatcher.broadcast("begin_stage", [payload])
        self._crops: tuple[list[Tile], list[Any]] | None = None

    def measured(self, evaluate: Callable[[], Any]) -> Any:
        """``evaluate()``, its times recorded as one :class:`EvaluationTimes`."""
        self.times, began = EvaluationTimes(), time.perf_counter()
        result = evaluate()
        self.times.wall = time.perf_counter() - began
        self.records.append(self.times)
        return result

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
        calls = [([ref, shared], tile) for ref, tile in zip(refs, tiles, strict=True)]
        yield from self.dispatcher.map("gradient", calls, self.times)

    def untiled(self, image: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """The whole stage's evaluation on one actor: ``(value, terms, gradient)`` on the
        CPU (:meth:`~stylecascade.tile_actors.TileActor.untiled`)."""
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

    def close(self) -> None:
        """Forget the last evaluation's crops (the object store frees them)."""
        self._crops = None


def _cpu(parts: Parts) -> Parts:
    return {name: {k: v.detach().cpu() for k, v in ls.items()} for name, ls in parts.items()}


class ClusterTiledEvaluator(TiledEvaluator):
    """A tiled stage's evaluator whose tiles run on the actors (:class:`ClusterTiles`); its
    evaluations are the local ``TiledEvaluator``'s, each one's times in ``runner.records``."""

    runner: ClusterTiles

    def evaluate(self) -> tuple[Tensor, dict[str, Tensor]]:
        result = self.runner.measured(super().evaluate)
        self.runner.close()
        return result


class ActorUntiledEvaluator(Evaluator):
    """An untiled stage's evaluator on one actor (the first idle one: the largest), as
    ``stages.evaluator.UntiledEvaluator`` computes it; the image and optimizer stay here.

    Args:
        objective, image, autocast: as for :class:`~stylecascade.stages.evaluator.Evaluator`.
        runner: the stage's actors (its terms already sent).
    """

    def __init__(
        self,
        objective: Objective,
        image: Tensor,
        runner: ClusterTiles,
        autocast: AbstractContextManager | None = None,
    ) -> None:
        super().__init__(objective, image, autocast)
        self.runner = runner

    def evaluate(self) -> tuple[Tensor, dict[str, Tensor]]:
        value, terms, grad = self.runner.measured(lambda: self.runner.untiled(self.image))
        device = self.image.device
        if self.image.grad is None:
            self.image.grad = grad.to(device)
        else:
            self.image.grad += grad.to(device)
        return value.to(device), {k: v.to(device) for k, v in terms.items()}


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

    Attributes:
        records: per stage evaluated here, ``{"stage": (H, W), "tile_edge", "actors",
            "times": summary}`` (:meth:`profile`).
    """

    def __init__(self, workers: Sequence[Worker], tiling: TilingConfig) -> None:
        ordered = sorted(workers, key=lambda w: -(w.info.free_bytes or 2**62))
        self.dispatcher = Dispatcher(ordered)
        self.tiling = tiling
        self.stages: list[tuple[Stage, ClusterTiles]] = []

    @property
    def workers(self) -> list[Worker]:
        """The actors still alive."""
        return self.dispatcher.workers

    def prepare(self, index: int, stage: Stage) -> Stage:
        """``stage`` planned for the actors' memory (module description: untiled on one actor,
        or tiled), for ``stages.cascade.run_schedule``'s ``prepare``.

        Raises:
            StyleCascadeError: its tiles fit no actor (naming the largest actor and the tile
                edge that fits it).
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
        refused up front. Returns the planned stages."""
        return [self.prepare(index, stage) for index, stage in enumerate(stages)]

    def _refusal(self, index: int, stage: Stage, edge: int) -> StyleCascadeError:
        """The error for a stage whose ``edge`` px tiles fit no actor."""
        worker = self.workers[0]
        info, (h, w) = worker.info, stage.size
        need = actor_bytes(info.per_pixel, stage.size, edge) / 2**30
        free = "unknown" if info.free_bytes is None else f"{info.free_bytes / 2**30:.2f} GiB"
        fit = largest_tile(info.per_pixel, stage.size, info.free_bytes, self.tiling.overlap)
        advice = (
            f"tiles of at most {fit} px would fit it (tiling: size: {fit} in the preset)"
            if fit
            else f"not even {MIN_TILE} px tiles fit it: use actors with more memory or a "
            f"smaller size"
        )
        return StyleCascadeError(
            f"stage {index + 1} ({w}×{h} px) in {edge} px tiles needs about {need:.2f} GiB on an "
            f"actor; the largest actor, {worker}, has {free} free; {advice}"
        )

    def evaluator(
        self,
        objective: Objective,
        stage: Stage,
        image: Tensor,
        generator: torch.Generator,
        autocast: AbstractContextManager | None = None,
        on_tile: Callable[[int, int], None] | None = None,
    ) -> Evaluator:
        """The stage's evaluator on the actors, for ``stages.cascade.run_schedule`` (the
        signature of ``stages.cascade.evaluator``): tiles over the actors for a tiled stage
        (:class:`ClusterTiledEvaluator`), else one actor (:class:`ActorUntiledEvaluator`).
        Sends the stage's terms to every actor."""
        runner = ClusterTiles(self.dispatcher, objective)
        self.stages.append((stage, runner))
        if stage.tile_edge is None:
            return ActorUntiledEvaluator(objective, image, runner, autocast)
        return ClusterTiledEvaluator(
            objective, image, stage.tile_edge, stage.tile_overlap, generator, autocast, on_tile,
            runner,
        )  # fmt: skip

    def profile(self) -> dict[str, Any]:
        """For the manifest: ``stages``, per stage evaluated here, its size ``[W, H]``, tile
        edge and per-evaluation means (``stylecascade.tile_dispatch.EvaluationTimes``: wall,
        waiting, put, get, reduction, driver, compute, fetch, transfer in s; bytes; tiles;
        actors; deaths), and ``actor_deaths``, one line per actor that died."""
        stages = [
            {
                "size": [stage.size[1], stage.size[0]],
                "tile_edge": stage.tile_edge,
                "times": summary(runner.records),
            }
            for stage, runner in self.stages
        ]
        return {"stages": stages, "actor_deaths": list(self.dispatcher.deaths)}

    def close(self) -> None:
        """Kill the actors."""
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
        StyleCascadeError: an actor could not start.
    """
    cuda = device.type == "cuda"
    network = ray.put(portable(extractor))
    resources: dict[str, Any] = {"num_gpus": 1} if cuda else {"num_cpus": cpus_per_actor}
    if memory_per_actor:
        resources["memory"] = memory_per_actor
    remote = ray.remote(TileActor).options(**resources)
    threads = threads if threads or cuda else cpus_per_actor
    args = (device.type, threads, precision_name, memory_per_actor)
    handles = [remote.remote(network, *args) for _ in range(count)]
    try:
        infos = ray.get([handle.describe.remote() for handle in handles])
    except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise StyleCascadeError(f"a tile actor could not start: {lines[-1]}") from None
    return [Worker(h, info, n) for n, (h, info) in enumerate(zip(handles, infos, strict=True), 1)]
