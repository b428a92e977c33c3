"""The renderer: a resolved preset with its paintings, the network and the style targets kept
loaded across the photos of a batch (:class:`Renderer`); every render, from the command line,
the Python API or a cluster actor, runs its stages through one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from .choices import MAX_INPUT_PIXELS
from .device import effective_precision, select_device
from .errors import ArgumentError
from .estimate import record_stage
from .images import ImageSource, as_tensor, mask_from, read_image_bytes
from .manifest import build_manifest, stage_entry
from .naming import check_weights_spec, describe
from .output import to_pil
from .preset import Preset
from .records import Step, no_step
from .runner import Observer, Placement, StageResult, run_stages
from .stages.blend import StyleTargets, WeightedStyle
from .stages.cascade import StageInterrupted
from .stages.color import SHARED_TARGET_MODES, color_inputs, regional_output
from .stages.resample import resize
from .stages.stopping import StopHandle
from .stages.vgg import VGGFeatures
from .weights import VGGWeights, load_weights


@dataclass(frozen=True)
class Network:
    """The loaded VGG19 features, shared by every render of a :class:`Renderer`."""

    extractor: VGGFeatures
    source: str
    sha256: str


def load_network(spec: str, preset: Preset, device: torch.device, step: Step = no_step) -> Network:
    """Load the weights (fetching them on first use) and build the features the preset reads.

    Args:
        spec: ``caffe``, ``torchvision`` or a weights file path.
        preset: its pooling and content and style layers choose the network's outputs.
        device: where the network runs (channels_last memory layout).
        step: reports the download and loading.

    Raises:
        WeightsError: the weights cannot be fetched or loaded.
    """
    return build_network(load_weights(spec, step), preset, device)


def build_network(weights: VGGWeights, preset: Preset, device: torch.device) -> Network:
    """The features the preset reads, from weights already loaded (a cluster actor receives
    them from the driver).

    Args:
        weights: the VGG19 trunk (:func:`~stylecascade.weights.load_weights`).
        preset: its pooling and content and style layers choose the network's outputs.
        device: where the network runs (channels_last memory layout).

    Raises:
        WeightsError: the preset reads a layer deeper than the weights reach (a compact file).
    """
    extractor = weights.features(preset.layers, preset.model.pooling).to(device)
    return Network(extractor, weights.source, weights.sha256)


def load_style_sets(
    preset: Preset,
    max_pixels: int | None = MAX_INPUT_PIXELS,
    sources: Sequence[ImageSource] | None = None,
    files: Mapping[str, bytes] | None = None,
) -> list[list[WeightedStyle]]:
    """The paintings of every set the stages take (:meth:`Preset.style_sets`: the preset's,
    then the stages' own), each ``(1, 3, H, W)`` in 0–1 with its weight, scale, layers and
    masks (``(1, 1, H', W')`` in 0–1, :func:`~stylecascade.images.load_mask`). A file used
    twice is read once.

    Args:
        preset: the resolved preset.
        max_pixels: decompression-bomb guard for files.
        sources: the images of set 0 themselves, one per ``preset.styles`` (paths, PIL images
            or tensors); read from the preset's paths when ``None``.
        files: the bytes of every file the preset names (:meth:`Preset.files`), decoded
            instead of reading the paths (a cluster actor has no access to them).

    Raises:
        UsageError: a stage without a style, or an image or mask that cannot be read.
    """
    sets, chosen = preset.style_sets()
    if 0 in chosen and not preset.styles:
        raise ArgumentError("styles", "no style image; give one with {} (or a preset with styles)")
    read: dict[tuple[str, bool], Tensor] = {}  # a file may be a painting and a mask

    def image(path: str | None, role: str) -> Tensor | None:
        if path is None:
            return None
        key = (path, role.endswith("mask"))
        if key not in read:
            if files is None:
                rgb = as_tensor(path, role, max_pixels)
            else:
                rgb = read_image_bytes(files[path], path, role, max_pixels)
            read[key] = mask_from(rgb) if key[1] else rgb
        return read[key]

    loaded = []
    for n, styles in enumerate(sets):
        given = sources if n == 0 and sources is not None else [None] * len(styles)
        loaded.append(
            [
                WeightedStyle(
                    image(s.image, "style") if x is None else as_tensor(x, "style", max_pixels),
                    s.weight,
                    s.scale,
                    mask=image(s.mask, "mask"),
                    style_mask=image(s.style_mask, "style mask"),
                    layers=s.layers,
                    color=s.color,
                )
                for s, x in zip(styles, given, strict=True)
            ]
        )
    return loaded


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render` returns.

    Attributes:
        image: the final image, 8-bit sRGB (color mode applied); of a stopped render, the
            best image of the stage it stopped in.
        tensor: the same, ``(1, 3, H, W)`` float32 in 0–1 on the CPU (before 8-bit rounding).
        stages: each stage's result as an 8-bit image, coarse to fine (the last is ``image``;
            a stopped render's last is the stopped stage's best image).
        manifest: the render's manifest, as written beside files by the command line (status
            ``done``, or ``stopped`` with ``stopped: {stage, evaluations}``).
    """

    image: Image.Image
    tensor: Tensor
    stages: list[Image.Image]
    manifest: dict[str, Any]


class Renderer:
    """A resolved preset with its paintings, the network and the style targets kept loaded
    across renders of many content images.

    The network loads on first use. Style targets are computed once per stage size and reused
    when the color mode allows it (``none``, ``luminance``); ``histogram`` and
    ``luminance-only`` adapt the paintings to each photo.

    Args:
        preset: the resolved preset, with at least one style.
        device: where to compute: ``auto``, ``cuda``, ``mps``, ``cpu`` or a ``torch.device``.
        weights: ``caffe``, ``torchvision`` or a weights file path.
        sources: the images of ``preset.styles`` themselves, in its order (paths, PIL
            images or tensors, :data:`~stylecascade.images.ImageSource`); read from
            ``preset.styles`` on first use when ``None`` (masks and the stages' own paintings
            are always read from the preset).
        step: reports long steps (the weights download).
        max_input_pixels: decompression-bomb guard for style files (``None``: no limit).
        network: the network already built (:func:`build_network`); then ``weights`` only
            names it. Loaded from ``weights`` on first use when ``None``.
        files: the bytes of the preset's paintings and masks by path, read instead of the
            files (:func:`load_style_sets`).
        look: ``preset`` before a requested size scaled its stages (``None``: ``preset``);
            the manifest keeps it as ``look`` for ``presets save --from OUT.json``.

    Attributes:
        tiles: where its stages run when not here (a cluster's actors,
            ``stylecascade.tile_cluster.print_tiles`` sets it for a print); ``None``: here.

    Raises:
        UsageError: no style, an unreadable style image, an unavailable device, or a bad
            ``weights`` spec.
    """

    tiles: Placement | None = None

    def __init__(
        self,
        preset: Preset,
        *,
        device: str | torch.device = "auto",
        weights: str = "caffe",
        sources: Sequence[ImageSource] | None = None,
        step: Step = no_step,
        max_input_pixels: int | None = MAX_INPUT_PIXELS,
        network: Network | None = None,
        files: Mapping[str, bytes] | None = None,
        look: Preset | None = None,
    ) -> None:
        if network is None:
            check_weights_spec(weights)
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.preset, self.weights, self.step = preset, weights, step
        self._sources, self.max_input_pixels = sources, max_input_pixels
        self._sets: list[list[WeightedStyle]] | None = None
        self._network, self._files = network, files
        self._targets: StyleTargets | None = None
        self.look = preset if look is None else look

    @property
    def styles(self) -> list[WeightedStyle]:
        """The paintings, ``(1, 3, H, W)`` in 0–1 each with its weight, scale and masks
        (set 0 of :attr:`style_sets`).

        Raises:
            UsageError: no style, or a style image or mask that cannot be read.
        """
        return self.style_sets[0]

    @property
    def style_sets(self) -> list[list[WeightedStyle]]:
        """Every set of paintings the stages take (:func:`load_style_sets`), read on first
        use (:meth:`load_paintings`).

        Raises:
            UsageError: no style, or a style image or mask that cannot be read.
        """
        return self.load_paintings()

    def load_paintings(self) -> list[list[WeightedStyle]]:
        """Read every painting and mask now, if not yet read (a bad file fails before any
        work), and return :attr:`style_sets`.

        Raises:
            UsageError: no style, or a style image or mask that cannot be read.
        """
        if self._sets is None:
            self._sets = load_style_sets(
                self.preset, self.max_input_pixels, self._sources, self._files
            )
        return self._sets

    @property
    def network(self) -> Network:
        """The network, loaded (and the weights fetched) on first use."""
        if self._network is None:
            self._network = load_network(self.weights, self.preset, self.device, self.step)
        return self._network

    @property
    def shared_targets(self) -> StyleTargets | None:
        """The style targets shared by every render so far (computed per stage size on first
        use); ``None`` before the first render and for color modes that adapt the paintings
        to each photo."""
        return self._targets

    def _shared_targets(self, sets: list[list[WeightedStyle]]) -> StyleTargets | None:
        modes = {self.preset.color, *(s.color for styles in sets for s in styles if s.color)}
        if not modes <= set(SHARED_TARGET_MODES):
            return None
        if self._targets is None:
            layers = self.preset.model.style_layers
            self._targets = StyleTargets(self.network.extractor, sets[0], layers, sets[1:])
        return self._targets

    def shown(self, image: Tensor, content: Tensor) -> Tensor:
        """The optimized ``(1, 3, h, w)`` image as the user sees it: the color mode applied
        with ``content`` (``(1, 3, H, W)`` sRGB in 0–1, any size), and under the mask of each
        painting with a mode of its own (everywhere without a mask), that mode
        (``stages.color.regional_output``)."""
        content = resize(content.to(image.device), tuple(image.shape[-2:]))
        everywhere = torch.ones(1, 1, 1, 1)
        regions = {
            (s.color, id(s.mask)): (s.color, everywhere if s.mask is None else s.mask)
            for styles in self.style_sets
            for s in styles
            if s.color is not None
        }
        return regional_output(self.preset.color, image, content, list(regions.values()))

    def stages(
        self,
        content: Tensor,
        *,
        seed: int = 0,
        observer: Observer | None = None,
        resume: tuple[int, Tensor] | None = None,
        stop: StopHandle | None = None,
    ) -> Iterator[tuple[StageResult, Tensor]]:
        """Run the cascade on one content image.

        Args:
            content: ``(1, 3, H, W)`` sRGB in 0–1, any device.
            seed: makes the render repeatable (same seed, same threads, same device).
            observer: progress receiver.
            resume: ``(k, image)``: start at stage ``k`` from the result of stage ``k − 1``.
            stop: ends the render from another thread (``stages.stopping.StopHandle``).

        Yields:
            ``(result, shown)`` per stage: the stage's result and its image with the color mode
            applied, ``(1, 3, h, w)`` in 0–1 on the device.

        Raises:
            WeightsError, UsageError, DivergedError, StyleCascadeError: see
            :func:`stylecascade.runner.run_stages`; StageInterrupted on SIGINT or ``stop``.
        """
        content = content.to(self.device)
        content_in = color_inputs(self.preset.color, content, [])[0]
        sets = [self._on_device(styles, content) for styles in self.style_sets]
        stages = run_stages(
            self.network.extractor,
            self.preset,
            content_in,
            sets[0],
            seed=seed,
            observer=observer,
            targets=self._shared_targets(sets),
            resume=resume,
            stage_styles=sets[1:],
            stop=stop,
            tiles=self.tiles,
        )
        precision = effective_precision(self.preset.precision, self.device)
        for result in stages:
            if self.tiles is None:  # learn this device's speed (not the cluster's)
                record_stage(result, self.network.extractor, self.device, precision)
            yield result, self.shown(result.image, content)

    def _on_device(self, styles: list[WeightedStyle], content: Tensor) -> list[WeightedStyle]:
        """Paintings and masks on the device, each painting as its color mode (its own, else
        the render's) prepares it (``stages.color.color_inputs``) for ``content``
        ``(1, 3, H, W)``."""

        def prepared(style: WeightedStyle) -> Tensor:
            mode = style.color or self.preset.color
            return color_inputs(mode, content, [style.image.to(content)])[1][0]

        return [
            dataclasses.replace(
                s,
                image=prepared(s),
                mask=None if s.mask is None else s.mask.to(self.device),
                style_mask=None if s.style_mask is None else s.style_mask.to(self.device),
            )
            for s in styles
        ]

    def manifest(
        self,
        *,
        content: str | Path,
        output: str | Path | None,
        seed: int,
        stages: list[dict[str, Any]],
        status: str = "done",
    ) -> dict[str, Any]:
        """The manifest of a render by this renderer (``stylecascade.manifest``); a print on a
        cluster's actors adds ``cluster`` (``TiledCluster.profile``: where each stage's time
        went per evaluation)."""
        network = self.network
        cluster = {} if self.tiles is None else {"cluster": self.tiles.profile()}
        manifest = build_manifest(
            preset=self.preset,
            look=self.look,
            seed=seed,
            device=str(self.device),
            precision=effective_precision(self.preset.precision, self.device),
            weights_source=network.source,
            weights_sha256=network.sha256,
            content=content,
            output=output,
            stages=stages,
            status=status,
        )
        return manifest | cluster

    def render(
        self,
        content: ImageSource,
        *,
        seed: int = 0,
        observer: Observer | None = None,
        stop: StopHandle | None = None,
    ) -> RenderResult:
        """Render one content image in memory (nothing is written).

        Args:
            content: a path, a PIL image, or a float tensor ``(3, H, W)`` / ``(1, 3, H, W)``
                in 0–1.
            seed: makes the render repeatable.
            observer: progress receiver (e.g. ``stylecascade.progress.StageProgress``).
            stop: set from another thread, ends the render at its next evaluation; the result
                then holds the finished stages and the stopped stage's best image so far.

        Raises:
            UsageError: unreadable content, or stages too small for the network.
            WeightsError, DivergedError, StyleCascadeError: see :meth:`stages`.
        """
        image = as_tensor(content, "content")
        entries, shown, stopped = [], [], None
        try:
            for result, picture in self.stages(image, seed=seed, observer=observer, stop=stop):
                entries.append(stage_entry(result))
                shown.append(picture)
        except StageInterrupted as exc:
            if not exc.stopped:
                raise
            shown.append(self.shown(exc.image, image))
            stopped = {"stage": exc.index + 1, "evaluations": exc.evaluations}
        final = shown[-1].cpu()
        status = "done" if stopped is None else "stopped"
        manifest = self.manifest(
            content=describe(content), output=None, seed=seed, stages=entries, status=status
        )
        if stopped is not None:
            manifest["stopped"] = stopped
        return RenderResult(to_pil(final), final, [to_pil(s) for s in shown], manifest)
