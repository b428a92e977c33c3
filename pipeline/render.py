"""One render job: check everything cheap first, then load, run the stages, write the results."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import Preset
from .errors import StyleCascadeError, UsageError
from .images import check_output_path, load_image, save_image
from .manifest import build_manifest, manifest_path, stage_entry, write_manifest
from .runner import Observer, check_sizes, run_stages, stage_sizes
from .stages.vgg import VGGFeatures, min_input_size
from .weights import Step, check_weights_spec, load_weights


@dataclass(frozen=True)
class RenderJob:
    """What to render and where.

    Attributes:
        content, style: input image files.
        output: the image to write; its manifest goes to ``output`` with suffix ``.json``.
        preset: the validated recipe (``--size`` already applied).
        device: where to compute.
        seed: makes the render repeatable.
        weights: ``caffe``, ``torchvision`` or a weights file path.
        save_stages: folder for each stage's result, or ``None``.
        overwrite: replace existing output files instead of refusing.
    """

    content: Path
    style: Path
    output: Path
    preset: Preset
    device: torch.device
    seed: int = 0
    weights: str = "caffe"
    save_stages: Path | None = None
    overwrite: bool = False


def stage_paths(job: RenderJob, content_hw: tuple[int, int]) -> list[Path]:
    """Files ``--save-stages`` writes: ``DIR/<output stem>.stageN.WxH.png``."""
    assert job.save_stages is not None
    return [
        job.save_stages / f"{job.output.stem}.stage{i + 1}.{w}x{h}.png"
        for i, (h, w) in enumerate(stage_sizes(content_hw, job.preset))
    ]


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into a one-line error."""
    try:
        yield
    except OSError as exc:
        raise StyleCascadeError(f"cannot write {path}: {exc.strerror or exc}") from None


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    if overwrite:
        return
    for path in paths:
        if path.exists():
            raise UsageError(f"{path} already exists; pass --overwrite to replace it")


class Render:
    """A render job, checked and with its inputs loaded, ready to :meth:`run`.

    Construction does every check that needs no network, no weights and no optimization, so a
    bad input fails in well under a second, before anything is downloaded or written.

    Raises:
        UsageError: bad input images, sizes or output paths.
    """

    def __init__(self, job: RenderJob) -> None:
        self.job = job
        check_weights_spec(job.weights)
        check_output_path(job.output, job.overwrite)
        self.manifest_path = manifest_path(job.output)
        _refuse_existing([self.manifest_path], job.overwrite)
        self.content = load_image(job.content, "content")
        self.style = load_image(job.style, "style")
        model = job.preset.model
        self.layers = set(model.content_layers) | set(model.style_layers)
        content_hw = tuple(self.content.shape[-2:])
        check_sizes(
            content_hw, tuple(self.style.shape[-2:]), job.preset, min_input_size(self.layers)
        )
        self.stage_files: list[Path] = []
        if job.save_stages is not None:
            if job.save_stages.exists() and not job.save_stages.is_dir():
                raise UsageError(f"--save-stages {job.save_stages}: exists and is not a folder")
            self.stage_files = stage_paths(job, content_hw)
            _refuse_existing(self.stage_files, job.overwrite)

    def run(self, step: Step, observer: Observer | None = None) -> dict[str, Any]:
        """Load the weights, run the stages, write the image, the manifest and the stage images.

        Files are written atomically; the final image and the manifest only after the last stage
        succeeded.

        Returns:
            The manifest (also written to ``OUT.json``).

        Raises:
            WeightsError: weights cannot be fetched or loaded.
            DivergedError: the optimization produced NaN/inf.
            StyleCascadeError: an output cannot be written (disk full, no permission).
        """
        job = self.job
        weights = load_weights(job.weights, step)
        extractor = VGGFeatures(
            weights.trunk,
            self.layers,
            job.preset.model.pooling,
            weights.normalization,
            channels_last=True,
        ).to(job.device)
        if self.stage_files:
            self.stage_files[0].parent.mkdir(parents=True, exist_ok=True)
        stages = []
        final = None
        content, style = self.content.to(job.device), self.style.to(job.device)
        for result in run_stages(extractor, job.preset, content, style, job.seed, observer):
            stages.append(stage_entry(result))
            if self.stage_files:
                with _writing(self.stage_files[result.index]):
                    save_image(result.image, self.stage_files[result.index])
            final = result.image
        assert final is not None
        with _writing(job.output):
            save_image(final, job.output)
        manifest = build_manifest(
            preset=job.preset,
            seed=job.seed,
            device=str(job.device),
            weights_source=weights.source,
            weights_sha256=weights.sha256,
            content=job.content,
            style=job.style,
            output=job.output,
            stages=stages,
        )
        with _writing(self.manifest_path):
            write_manifest(self.manifest_path, manifest)
        return manifest
