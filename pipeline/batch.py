"""Batch renders: one preset and one set of paintings applied to many photos.

The network is loaded once and, when the colour mode allows (``none``, ``luminance``), the
style targets are computed once per stage size and reused for every photo. An input whose
output exists is skipped (unless ``--overwrite``); an input that fails is reported and the batch
goes on.
"""

from __future__ import annotations

import dataclasses
import string
import time
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import checkpoint_folder
from .config import Preset
from .errors import StyleCascadeError, UsageError
from .interrupt import Interrupted
from .output import OUTPUT_FORMATS
from .progress import StageProgress
from .render import Network, Render, RenderJob, load_network, load_styles
from .runner import StyleTargets
from .weights import Step

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
NAME_FIELDS = ("content", "styles", "preset", "seed")
DEFAULT_NAME = "{content}-{styles}.png"
SHARED_TARGET_MODES = ("none", "luminance")
"""Colour modes whose style targets do not depend on the photo (``histogram`` and
``luminance-only`` adapt the paintings to each photo)."""


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Image files named directly, plus the image files directly inside named folders (sorted).

    Raises:
        UsageError: a path that does not exist, or a folder without image files.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            images = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not images:
                raise UsageError(
                    f"content folder {path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it"
                )
            found.extend(images)
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"content image {path}: no such file")
    return found


def output_name(pattern: str, content: Path, preset: Preset, seed: int) -> str:
    """The output file name for ``content`` from ``--name``'s pattern.

    Fields: ``{content}`` (the photo's stem), ``{styles}`` (the paintings' stems joined by
    ``+``), ``{preset}``, ``{seed}``.

    Raises:
        UsageError: an unknown field, a path separator, or an unsupported extension.
    """
    fields = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    unknown = fields - set(NAME_FIELDS)
    if unknown:
        raise UsageError(
            f"--name {pattern!r}: unknown field {{{sorted(unknown)[0]}}}; use "
            f"{', '.join('{' + f + '}' for f in NAME_FIELDS)}"
        )
    name = pattern.format(
        content=content.stem,
        styles="+".join(Path(s.image).stem for s in preset.styles),
        preset=preset.name,
        seed=seed,
    )
    if "/" in name or Path(name).suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(
            f"--name {pattern!r}: must be a file name ending in one of {', '.join(OUTPUT_FORMATS)}"
        )
    return name


@dataclass
class Outcome:
    """What happened to one input: ``status`` is ``done``, ``skipped`` or ``failed``."""

    content: Path
    output: Path
    status: str
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0


def run_batch(
    inputs: list[Path],
    template: RenderJob,
    out_dir: Path,
    pattern: str,
    step: Step,
    progress: StageProgress | None,
) -> list[Outcome]:
    """Render every input with the same preset and paintings.

    Args:
        inputs: photos (see :func:`expand_inputs`).
        template: the job for every photo; its ``content`` and ``output`` are replaced.
        out_dir: folder for the outputs (must exist).
        pattern: ``--name`` pattern (:func:`output_name`).
        step: reports long steps (weights download).
        progress: the progress display, or ``None`` (quiet).

    Returns:
        One :class:`Outcome` per input, in order.

    Raises:
        UsageError: a bad folder, pattern or style image (before anything runs).
        Interrupted: a signal stopped the batch (the current photo's checkpoint is saved).
    """
    if not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir}: no such folder")
    preset = template.preset
    names = [output_name(pattern, p, preset, template.seed) for p in inputs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise UsageError(
            f"--name {pattern!r} gives several inputs the same output {sorted(duplicates)[0]}; "
            f"add {{content}} to it or rename the photos"
        )
    styles = load_styles(preset, template.max_input_pixels)
    network: Network | None = None
    targets: StyleTargets | None = None
    outcomes = []
    if progress is not None:
        progress.batch_started(len(inputs))
    for content, name in zip(inputs, names, strict=True):
        output = out_dir / name
        resume = template.resume and checkpoint_folder(output).exists()
        job = dataclasses.replace(template, content=content, output=output, resume=resume)
        if progress is not None:
            progress.input_started(content.name)
        began = time.perf_counter()
        if output.exists() and not template.overwrite:
            outcomes.append(Outcome(content, output, "skipped", message="output exists"))
        else:
            try:
                render = Render(job, styles)
                if network is None:
                    network = load_network(job.weights, preset, job.device, step)
                    if preset.color in SHARED_TARGET_MODES:
                        on_device = [
                            dataclasses.replace(s, image=s.image.to(job.device)) for s in styles
                        ]
                        targets = StyleTargets(
                            network.extractor, on_device, list(preset.model.style_layers)
                        )
                render.run(step, progress, network, targets)
                outcomes.append(Outcome(content, output, "done", time.perf_counter() - began))
            except Interrupted:
                raise
            except StyleCascadeError as exc:
                seconds = time.perf_counter() - began
                outcomes.append(
                    Outcome(content, output, "failed", seconds, str(exc), exc.exit_code)
                )
        if progress is not None:
            progress.input_finished()
    return outcomes
