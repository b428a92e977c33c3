"""One render job: check everything cheap first, then load, run the stages, write the results."""

from __future__ import annotations

import dataclasses
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import __version__
from .checkpoint import Checkpoint, fingerprint
from .config import Preset
from .device import effective_precision
from .errors import UsageError
from .files import file_digest, refuse_existing, reporting_write_errors, write_json
from .images import MAX_INPUT_PIXELS, load_image
from .interrupt import Interrupted
from .manifest import build_manifest, manifest_path, stage_entry
from .output import OutputOptions, check_output, save_image
from .runner import Observer, StageInterrupted, StyleTargets, check_sizes, run_stages, stage_sizes
from .stages.blend import WeightedStyle
from .stages.colour import colour_inputs, colour_output
from .stages.resample import resize
from .stages.vgg import VGGFeatures, min_input_size
from .weights import Step, check_weights_spec, load_weights


@dataclass(frozen=True)
class RenderJob:
    """What to render and where.

    Attributes:
        content: the photo.
        output: the image to write; its manifest goes to ``output`` with suffix ``.json``.
        preset: the resolved recipe: ``--size`` applied, ``styles`` (at least one) and ``color``
            set to what this render uses.
        device: where to compute.
        seed: makes the render repeatable.
        weights: ``caffe``, ``torchvision`` or a weights file path.
        save_stages: folder for each stage's result, or ``None``.
        overwrite: replace existing output files (and an old checkpoint) instead of refusing.
        resume: continue from the checkpoint of an interrupted render of the same job.
        output_options: bit depth, JPEG quality and DPI of the output.
        max_input_pixels: decompression-bomb guard for the input images (``None``: no limit).
    """

    content: Path
    output: Path
    preset: Preset
    device: torch.device
    seed: int = 0
    weights: str = "caffe"
    save_stages: Path | None = None
    overwrite: bool = False
    resume: bool = False
    output_options: OutputOptions = OutputOptions()
    max_input_pixels: int | None = MAX_INPUT_PIXELS


@dataclass(frozen=True)
class Network:
    """The loaded VGG19 features, shared by every render of a batch."""

    extractor: VGGFeatures
    source: str
    sha256: str


def load_network(spec: str, preset: Preset, device: torch.device, step: Step) -> Network:
    """Load the weights (fetching them on first use) and build the features the preset reads.

    Raises:
        WeightsError: the weights cannot be fetched or loaded.
    """
    weights = load_weights(spec, step)
    model = preset.model
    extractor = VGGFeatures(
        weights.trunk,
        model.layers,
        model.pooling,
        weights.normalization,
        channels_last=True,
    ).to(device)
    return Network(extractor, weights.source, weights.sha256)


def load_styles(preset: Preset, max_pixels: int | None = MAX_INPUT_PIXELS) -> list[WeightedStyle]:
    """Read the preset's style images, ``(1, 3, H, W)`` in 0–1 each, with their weights.

    Raises:
        UsageError: no style, or a style image that cannot be read.
    """
    if not preset.styles:
        raise UsageError("no style image; give one with --style PAINTING")
    return [
        WeightedStyle(load_image(Path(s.image), "style", max_pixels), s.weight, s.scale)
        for s in preset.styles
    ]


def stage_paths(job: RenderJob, content_hw: tuple[int, int]) -> list[Path]:
    """Files ``--save-stages`` writes: ``DIR/<output stem>.stageN.WxH.png``."""
    assert job.save_stages is not None
    return [
        job.save_stages / f"{job.output.stem}.stage{i + 1}.{w}x{h}.png"
        for i, (h, w) in enumerate(stage_sizes(content_hw, job.preset))
    ]


class Render:
    """A render job, checked and with its inputs loaded, ready to :meth:`run`.

    Construction does every check that needs no network, no weights and no optimization, so a
    bad input fails in well under a second, before anything is downloaded or written.

    Args:
        job: what to render.
        styles: the job's style images already loaded (a batch loads them once); read from
            ``job.preset.styles`` when ``None``.

    Raises:
        UsageError: bad input images, sizes or output paths; a checkpoint in the way (or none
            to resume).
    """

    def __init__(self, job: RenderJob, styles: list[WeightedStyle] | None = None) -> None:
        self.job = job
        check_weights_spec(job.weights)
        check_output(job.output, job.output_options, job.overwrite)
        self.manifest_path = manifest_path(job.output)
        refuse_existing([self.manifest_path], job.overwrite)
        self.content = load_image(job.content, "content", job.max_input_pixels)
        self.styles = (
            styles if styles is not None else load_styles(job.preset, job.max_input_pixels)
        )
        model = job.preset.model
        content_hw = tuple(self.content.shape[-2:])
        check_sizes(
            content_hw,
            self.styles,
            job.preset,
            min_input_size(model.layers),
        )
        self.stage_files: list[Path] = []
        if job.save_stages is not None:
            if job.save_stages.exists() and not job.save_stages.is_dir():
                raise UsageError(f"--save-stages {job.save_stages}: exists and is not a folder")
            self.stage_files = stage_paths(job, content_hw)
            refuse_existing(self.stage_files, job.overwrite or job.resume)
        self.checkpoint = Checkpoint(job.output, self._fingerprint())
        if job.resume and not self.checkpoint.exists():
            raise UsageError(f"--resume: no checkpoint {self.checkpoint.folder} to resume from")
        if self.checkpoint.exists() and not (job.resume or job.overwrite):
            raise UsageError(
                f"{self.checkpoint.folder} holds an interrupted render; pass --resume to "
                f"continue it or --overwrite to start over"
            )

    def _fingerprint(self) -> str:
        job = self.job
        return fingerprint(
            {
                "preset": {**job.preset.to_dict(), "name": None, "description": None},
                "seed": job.seed,
                "weights": job.weights,
                "content": file_digest(job.content),
                "styles": [file_digest(Path(s.image)) for s in job.preset.styles],
            }
        )

    def run(
        self,
        step: Step,
        observer: Observer | None = None,
        network: Network | None = None,
        targets: StyleTargets | None = None,
    ) -> dict[str, Any]:
        """Load the weights, run the stages, write the image, the manifest and the stage images.

        Files are written atomically; the final image and the manifest only after the last stage
        succeeded. After every stage a checkpoint is saved; SIGINT/SIGTERM (see
        :func:`stylecascade.interrupt.signals_interrupt`) during a stage saves the best image so
        far and an ``interrupted`` manifest into it.

        Args:
            step: reports long steps (weights download).
            observer: progress receiver.
            network: already loaded features (a batch); loaded here when ``None``.
            targets: style targets to reuse (a batch with colour mode other than
                ``histogram``); computed here when ``None``.

        Returns:
            The manifest (also written to ``OUT.json``).

        Raises:
            WeightsError: weights cannot be fetched or loaded.
            DivergedError: the optimization kept producing NaN/inf.
            Interrupted: a signal stopped a stage; the checkpoint is saved.
            StyleCascadeError: an output cannot be written (disk full, no permission).
        """
        job, mode = self.job, self.job.preset.color
        network = network or load_network(job.weights, job.preset, job.device, step)
        if job.resume:
            entries, image = self.checkpoint.load()
        else:
            self.checkpoint.remove()  # --overwrite of an old checkpoint
            entries, image = [], None
        content = self.content.to(job.device)
        content_in, style_images = colour_inputs(
            mode, content, [s.image.to(job.device) for s in self.styles]
        )
        styles = [
            dataclasses.replace(s, image=i) for s, i in zip(self.styles, style_images, strict=True)
        ]
        if self.stage_files:
            self.stage_files[0].parent.mkdir(parents=True, exist_ok=True)
        final = None if image is None else self._shown(image.to(job.device), content)
        resume = None if image is None else (len(entries), image.to(job.device))
        stages = run_stages(
            network.extractor,
            job.preset,
            content_in,
            styles,
            job.seed,
            observer,
            targets,
            resume,
        )
        try:
            for result in stages:
                entries.append(stage_entry(result))
                final = self._shown(result.image, content)
                if self.stage_files:
                    with reporting_write_errors(self.stage_files[result.index]):
                        save_image(final, self.stage_files[result.index])
                with reporting_write_errors(self.checkpoint.folder):
                    self.checkpoint.save_stage(entries, result.image)
        except StageInterrupted as exc:
            raise self._interrupted(exc, network, entries, content) from None
        assert final is not None
        with reporting_write_errors(job.output):
            save_image(final, job.output, job.output_options, self._provenance(network))
        manifest = self._manifest(network, entries, "done")
        with reporting_write_errors(self.manifest_path):
            write_json(self.manifest_path, manifest)
        self.checkpoint.remove()
        return manifest

    def _provenance(self, network: Network) -> dict[str, str]:
        """Text written into the output file: enough to trace it back to its render."""
        job = self.job
        return {
            "Software": f"stylecascade {__version__}",
            "stylecascade:preset": job.preset.name,
            "stylecascade:seed": str(job.seed),
            "stylecascade:styles": json.dumps(
                [{"image": Path(s.image).name, "weight": s.weight} for s in job.preset.styles]
            ),
            "stylecascade:color": job.preset.color,
            "stylecascade:weights": f"{network.source} sha256:{network.sha256[:16]}",
            "stylecascade:manifest": self.manifest_path.name,
        }

    def _shown(self, image: Tensor, content: Tensor) -> Tensor:
        """The optimized image as the user sees it (colour mode applied)."""
        return colour_output(self.job.preset.color, image, resize(content, image.shape[-2:]))

    def _manifest(self, network: Network, entries: list[dict[str, Any]], status: str) -> dict:
        job = self.job
        return build_manifest(
            preset=job.preset,
            seed=job.seed,
            device=str(job.device),
            precision=effective_precision(job.preset.precision, job.device),
            weights_source=network.source,
            weights_sha256=network.sha256,
            content=job.content,
            output=job.output,
            stages=entries,
            status=status,
        )

    def _interrupted(
        self,
        exc: StageInterrupted,
        network: Network,
        entries: list[dict[str, Any]],
        content: Tensor,
    ) -> Interrupted:
        """Save the best image so far and an ``interrupted`` manifest into the checkpoint."""
        folder = self.checkpoint.folder
        partial = folder / "partial.png"
        manifest = self._manifest(network, entries, "interrupted")
        manifest["interrupted"] = {"stage": exc.index + 1, "evaluations": exc.evaluations}
        with reporting_write_errors(folder):
            folder.mkdir(exist_ok=True)
            save_image(self._shown(exc.image, content), partial)
            write_json(folder / "manifest.json", manifest)
        signum = getattr(exc.__cause__, "signum", signal.SIGINT)
        count = len(self.job.preset.stages)
        return Interrupted(
            f"interrupted in stage {exc.index + 1}/{count} after {exc.evaluations} evaluations; "
            f"best image so far in {partial}; run the same command with --resume to continue "
            f"from stage {exc.index + 1}",
            signum,
        )
