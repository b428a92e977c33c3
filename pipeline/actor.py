"""The render actor of a cluster batch: one per GPU (or per ``--cpus-per-actor`` CPUs) on the
nodes of a Ray cluster (:mod:`stylecascade.cluster` runs it with ``ray.remote``; this module
does not import Ray).

An actor builds the network once from the weights the driver sent, decodes the paintings and
masks from their bytes, and keeps the style targets per stage size across photos, as a local batch's
:class:`~stylecascade.renderer.Renderer` does. It writes nothing: it returns each stage's result to
the driver, which writes checkpoints, stage images, the output and its manifest.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .device import select_device, set_threads
from .images import read_image_bytes
from .preset import Preset
from .records import ActorInfo
from .renderer import Renderer, build_network
from .runner import StageResult
from .weights import VGGWeights


@dataclass(frozen=True)
class ActorSetup:
    """What every actor of a batch is built from.

    Attributes:
        preset: the resolved preset.
        files: the bytes of every painting and mask the preset names, by path
            (:meth:`~stylecascade.preset.Preset.files`).
        device: ``cuda`` or ``cpu``.
        threads: CPU threads torch computes with (``None``: torch's default, which Ray sets to
            the actor's CPUs).
        max_input_pixels: decompression-bomb guard (``None``: no limit).
    """

    preset: Preset
    files: dict[str, bytes]
    device: str
    threads: int | None
    max_input_pixels: int | None


class RenderActor:
    """Renders photos sent as bytes with one preset, network and set of style targets.

    Args:
        setup: the preset, paintings, device and threads.
        weights: the VGG19 weights the driver loaded (the same for every actor).

    Raises:
        UsageError: the device is not available on this node, or a painting or mask cannot be
            decoded.
    """

    def __init__(self, setup: ActorSetup, weights: VGGWeights) -> None:
        set_threads(setup.threads)
        device = select_device(setup.device)
        preset, limit = setup.preset, setup.max_input_pixels
        self.renderer = Renderer(
            preset,
            device=device,
            weights=weights.source,
            max_input_pixels=limit,
            network=build_network(weights, preset, device),
            files=setup.files,
        )
        self.renderer.load_paintings()  # decode the paintings and masks now: one error, up front
        self.max_input_pixels = limit
        self.running: Iterator[tuple[StageResult, Tensor]] = iter(())
        self.info = ActorInfo(
            socket.gethostname(), os.getpid(), str(device), torch.get_num_threads()
        )

    def describe(self) -> ActorInfo:
        """Where this actor runs."""
        return self.info

    def start(
        self, content: bytes, name: str, seed: int, resume: tuple[int, Tensor] | None
    ) -> None:
        """Begin a photo (:meth:`Renderer.stages`); :meth:`next_stage` runs its stages one by
        one (one call per stage, as Ray Client has no streaming calls).

        Args:
            content: the photo file's bytes.
            name: its path on the driver, for messages.
            seed: makes the render repeatable.
            resume: ``(k, image)``: start at stage ``k`` from the result of stage ``k − 1``,
                ``(1, 3, h, w)`` in 0–1.

        Raises:
            UsageError: the bytes are not an image this reads.
        """
        image = read_image_bytes(content, name, "content", self.max_input_pixels)
        device = self.renderer.device
        start = None if resume is None else (resume[0], resume[1].to(device))
        self.running = self.renderer.stages(image, seed=seed, resume=start)

    def next_stage(self) -> tuple[StageResult, Tensor] | None:
        """Run the photo's next stage.

        Returns:
            ``(result, shown)`` on the CPU: the stage's result and its image with the color
            mode applied; ``None`` after the last stage.

        Raises:
            UsageError, DivergedError, StyleCascadeError: as :meth:`Renderer.stages`.
        """
        step = next(self.running, None)
        if step is None:
            return None
        result, shown = step
        return dataclasses.replace(result, image=result.image.cpu()), shown.cpu()

    def manifest(self, **fields: Any) -> dict[str, Any]:
        """The manifest of a render by this actor (:meth:`Renderer.manifest`: its device,
        threads and versions), with ``node``, the host that rendered it."""
        return {**self.renderer.manifest(**fields), "node": self.info.node}
