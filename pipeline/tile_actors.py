"""The tile actor of one print on a Ray cluster: one per GPU (or per ``--cpus-per-actor``
CPUs), holding the network (sent once, through the object store) and, per stage, the stage's
terms and content image (sent once per stage); per evaluation it runs the tiles the driver hands
it (:mod:`stylecascade.tile_cluster`) with the same functions as a local tiled stage
(``stages.tiling``), so a tile's result is the one the driver would compute itself.

Inputs come as object references inside a list, so the actor fetches them itself and can say
how long that took (transfer) apart from its compute.
"""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .device import precision, select_device, set_threads
from .memory import activation_bytes_per_pixel, free_bytes
from .records import ActorInfo
from .stages.losses import FeatureTerm, Objective, TVTerm, detached, total
from .stages.tiling import Parts, Tile, TileTerms, energy_parts, pooled_parts, tile_gradient
from .stages.vgg import VGGFeatures


@dataclass(frozen=True)
class TileActorInfo:
    """Where a tile actor runs and what it can hold.

    Attributes:
        actor: node, process, device and threads.
        free_bytes: memory a stage may plan to use there (the actor's Ray ``memory``
            reservation when smaller); ``None``: unknown.
        per_pixel: activation bytes per input pixel of its network, device and precision
            (:func:`~stylecascade.memory.activation_bytes_per_pixel`).
    """

    actor: ActorInfo
    free_bytes: int | None
    per_pixel: float


@dataclass(frozen=True)
class Timed:
    """A tile's result with the actor's seconds: ``fetch`` (getting its inputs from the
    object store) and ``compute`` (the network, forward and backward)."""

    value: Any
    fetch: float
    compute: float


def portable(extractor: VGGFeatures) -> tuple[VGGFeatures, bool]:
    """A CPU copy of the network to send to the actors, and whether it runs channels_last: its
    ``memory_format`` is left out (pickle may name ``torch.contiguous_format`` after a driver's
    ``__main__`` that imports torch, which an actor cannot resolve); :class:`TileActor` puts it
    back."""
    copy = deepcopy(extractor).cpu()
    channels_last = copy.memory_format == torch.channels_last
    del copy.memory_format
    copy.__dict__.pop("_views", None)  # its stages' views (``through``): made again there
    return copy, channels_last


def stage_payload(objective: Objective) -> bytes:
    """A stage's terms, content image and layers as bytes (``torch.save``), for
    :meth:`TileActor.begin_stage`: every tensor inside (targets, guides, the ``(1, 3, H, W)``
    reference) comes back on the actor's device, whatever device the driver holds it on; the
    actor runs its network only as deep as the stage's layers (``VGGFeatures.through``)."""
    buffer = io.BytesIO()
    feature, image = objective.feature_terms, objective.image_terms
    layers = sorted(objective.extractor.layers)
    data = {"feature": feature, "image": image, "reference": objective.reference, "layers": layers}
    torch.save(data, buffer)
    return buffer.getvalue()


class TileActor:
    """Runs tiles of a print's stages (module description).

    Args:
        network: :func:`portable`'s network and channels_last flag (built once on the driver).
        device: ``cuda`` or ``cpu``.
        threads: CPU threads torch computes with (``None``: torch's default).
        precision_name: the preset's precision (``fp32``, ``tf32``, ``bf16``, ``auto``).
        memory_limit: bytes this actor reserved from Ray (``None``: none); caps
            :attr:`TileActorInfo.free_bytes`.

    Raises:
        UsageError: the device is not available on this node.
    """

    def __init__(
        self,
        network: tuple[VGGFeatures, bool],
        device: str,
        threads: int | None,
        precision_name: str,
        memory_limit: int | None = None,
    ) -> None:
        set_threads(threads)
        self.device = select_device(device)
        extractor, channels_last = network
        extractor.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.extractor = extractor.to(self.device)
        self.autocast = precision(precision_name, self.device)[1]
        self.memory_limit = memory_limit
        self.network = self.extractor  # the stage's: as deep as its layers (begin_stage)
        self.terms: TileTerms | None = None
        self.objective: Objective | None = None
        node, threads = socket.gethostname(), torch.get_num_threads()
        self.info = ActorInfo(node, os.getpid(), str(self.device), threads)

    def describe(self) -> TileActorInfo:
        """Where this actor runs, its free memory and its activation bytes per pixel."""
        extractor = self.extractor
        with self.autocast:
            per_pixel = activation_bytes_per_pixel(
                lambda x: sum(f.float().mean() for f in extractor(x).values()), self.device
            )
        free = free_bytes(self.device)
        if self.memory_limit is not None:
            free = self.memory_limit if free is None else min(free, self.memory_limit)
        return TileActorInfo(self.info, free, per_pixel)

    def begin_stage(self, refs: Sequence[Any]) -> None:
        """Take a stage's terms, content image and layers: ``refs[0]`` holds
        :func:`stage_payload`'s bytes (one object for every actor)."""
        payload = _fetch(refs)[0][0]
        data = torch.load(io.BytesIO(payload), map_location=self.device, weights_only=False)
        feature: list[FeatureTerm] = data["feature"]
        image: list[TVTerm] = data["image"]
        reference = data["reference"]
        self.network = self.extractor.through(data["layers"])
        self.terms = TileTerms(
            [t for t in feature if not t.pooled], [t for t in feature if t.pooled], reference
        )
        self.objective = Objective(self.network, feature, image, reference)

    def energies(self, tile: Tile) -> Timed:
        """:func:`~stylecascade.stages.tiling.energy_parts` of ``tile``, on the CPU."""
        began = time.perf_counter()
        terms = self._terms()
        with self.autocast:
            parts = energy_parts(self.network, terms.local, terms.reference, tile)
        return Timed(_cpu_parts(parts), 0.0, time.perf_counter() - began)

    def pooled(self, refs: Sequence[Any], tile: Tile) -> Timed:
        """:func:`~stylecascade.stages.tiling.pooled_parts` of the crop ``refs[0]``
        ``(1, 3, h, w)`` at ``tile``, on the CPU."""
        (crop,), fetch = _fetch(refs)
        began = time.perf_counter()
        with self.autocast:
            parts = pooled_parts(self.network, self._terms().pooled, crop.to(self.device), tile)
        return Timed(_cpu_parts(parts), fetch, time.perf_counter() - began)

    def gradient(self, refs: Sequence[Any], tile: Tile) -> Timed:
        """:func:`~stylecascade.stages.tiling.tile_gradient` of the crop ``refs[0]`` at
        ``tile``; ``refs[1]`` holds ``(slopes, energies)``. Returns ``(crop gradient
        (1, 3, h, w), {local term: value × pixels})`` on the CPU."""
        (crop, (slopes, energies)), fetch = _fetch(refs)
        began = time.perf_counter()
        slopes, energies = _on(slopes, self.device), _on(energies, self.device)
        with self.autocast:
            grad, values = tile_gradient(
                self.network, self._terms(), crop.to(self.device), tile, slopes, energies
            )
        value = (grad.cpu(), {k: v.cpu() for k, v in values.items()})
        return Timed(value, fetch, time.perf_counter() - began)

    def untiled(self, refs: Sequence[Any]) -> Timed:
        """The whole stage's evaluation on the image ``refs[0]`` ``(1, 3, H, W)`` in 0–1, as
        ``stages.evaluator.UntiledEvaluator`` computes it. Returns ``(value, terms, gradient
        (1, 3, H, W))`` on the CPU: the total × H·W and the detached weighted terms."""
        (image,), fetch = _fetch(refs)
        began = time.perf_counter()
        if self.objective is None:
            raise RuntimeError("untiled before begin_stage")
        leaf = image.to(self.device).detach().clone().requires_grad_(True)
        with self.autocast:
            terms = self.objective(leaf)
        scaled = total(terms) * (leaf.shape[-2] * leaf.shape[-1])
        scaled.backward()
        value = (scaled.detach().cpu(), {k: v.cpu() for k, v in detached(terms).items()})
        return Timed((*value, leaf.grad.cpu()), fetch, time.perf_counter() - began)

    def _terms(self) -> TileTerms:
        if self.terms is None:
            raise RuntimeError("a tile before begin_stage")
        return self.terms


def _fetch(refs: Sequence[Any]) -> tuple[list[Any], float]:
    """The objects behind ``refs`` (Ray object references) and the seconds it took."""
    import ray  # on the nodes, only where Ray runs this actor

    began = time.perf_counter()
    values = ray.get(list(refs))
    return values, time.perf_counter() - began


def _cpu_parts(parts: Parts) -> Parts:
    return {name: {k: v.cpu() for k, v in layers.items()} for name, layers in parts.items()}


def _on(parts: Parts, device: torch.device) -> Parts:
    return {name: {k: v.to(device) for k, v in layers.items()} for name, layers in parts.items()}


def tensor_bytes(value: Any) -> int:
    """Bytes of the tensors in ``value`` (nested tuples, lists, dicts, :class:`Timed`)."""
    if isinstance(value, Tensor):
        return value.nelement() * value.element_size()
    if isinstance(value, Timed):
        return tensor_bytes(value.value)
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0
