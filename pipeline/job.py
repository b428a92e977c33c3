"""One render job on files: check everything cheap first, then run the stages through a
:class:`~stylecascade.renderer.Renderer`, writing stage images, checkpoints, the image and its
manifest."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import Timeout
from torch import Tensor

from . import __version__
from .checkpoint import Checkpoint, checkpoint_folder, fingerprint
from .choices import MAX_INPUT_PIXELS
from .errors import ArgumentError, UsageError, literal
from .every import Snapshots, snapshot_paths
from .files import (
    check_outputs,
    file_digest,
    output_lock,
    refuse_existing,
    remove_stale_temporaries,
    reporting_write_errors,
    write_json,
)
from .images import load_image
from .interrupt import Interrupted, signals_deferred
from .manifest import manifest_path, stage_entry
from .memory import free_bytes
from .output import OutputOptions, check_output, save_image
from .preset import FILE_FIELDS, Preset
from .printlab import guide_path, prepare_print, print_entry, print_text, write_guide
from .reading import read_json
from .renderer import Renderer
from .runner import Observer, check_sizes, stage_sizes
from .stages.cascade import StageInterrupted
from .stages.stopping import StopHandle
from .stages.vgg import min_input_size


@dataclass(frozen=True, kw_only=True)
class RenderJob:
    """What to render and where.

    Attributes:
        content: the photo.
        output: the image to write; its manifest goes to ``output`` with suffix ``.json``.
        seed: makes the render repeatable.
        save_stages: folder for each stage's result, or ``None``.
        save_every: also each stage's best image every N evaluations into ``save_stages``.
        overwrite: replace existing output files (and an old checkpoint) instead of refusing.
        resume: continue from the checkpoint of an interrupted render of the same job.
        output_options: bit depth, JPEG quality, DPI, profile, compression, and the print's
            trim, bleed and safe margin (:class:`~stylecascade.output.OutputOptions`).
        max_input_pixels: decompression-bomb guard for the content image (``None``: no limit).
    """

    content: Path
    output: Path
    seed: int = 0
    save_stages: Path | None = None
    save_every: int | None = None
    overwrite: bool = False
    resume: bool = False
    output_options: OutputOptions = OutputOptions()
    max_input_pixels: int | None = MAX_INPUT_PIXELS


def _digested(values: Any, digests: dict[str, str]) -> Any:
    """A preset's plain data with every style's file paths (image, masks) and its
    ``init_image`` replaced by the files' SHA-256 (``digests`` caches them by path): the same
    files by other paths give the same data, a file in another role or slot does not."""
    if isinstance(values, dict):
        slots = FILE_FIELDS if "image" in values else ("init_image",)
        return {
            k: _digest(v, digests) if k in slots and v is not None else _digested(v, digests)
            for k, v in values.items()
        }
    if isinstance(values, (list, tuple)):
        return [_digested(v, digests) for v in values]
    return values


def _digest(path: str, digests: dict[str, str]) -> str:
    if path not in digests:
        digests[path] = file_digest(Path(path))
    return digests[path]


def output_files(output: Path, options: OutputOptions | None = None) -> list[Path]:
    """The files a render writes for ``output``: the image and its manifest (and, while it
    runs, its checkpoint folder, :func:`checkpoint_folder`); with a safe margin, its guide."""
    guide = [guide_path(output)] if options is not None and options.safe_margin else []
    return [output, manifest_path(output), *guide]


def stage_paths(job: RenderJob, content_hw: tuple[int, int], preset: Preset) -> list[Path]:
    """Files ``--save-stages`` writes: ``DIR/<output stem>.stageN.WxH.png``."""
    assert job.save_stages is not None
    return [
        job.save_stages / f"{job.output.stem}.stage{i + 1}.{w}x{h}.png"
        for i, (h, w) in enumerate(stage_sizes(content_hw, preset))
    ]


def snapshot_files(
    job: RenderJob, content_hw: tuple[int, int], preset: Preset
) -> dict[tuple[int, int], Path]:
    """Files ``--save-every`` may write (:func:`~stylecascade.every.snapshot_paths`); none
    without it."""
    if job.save_every is None or job.save_stages is None:
        return {}
    caps = [stage.iterations for stage in preset.stages]
    sizes = stage_sizes(content_hw, preset)
    return snapshot_paths(job.save_stages, job.output.stem, sizes, caps, job.save_every)


class CheckedJob:
    """A render job, checked and with its content loaded, ready to :meth:`run`.

    Construction does every check that needs no network, no weights and no optimization, so a
    bad input fails in well under a second, before anything is downloaded or written.

    Args:
        job: what to render and where.
        renderer: the preset, paintings, device and weights (shared by a batch).

    Raises:
        UsageError: bad input images, sizes or output paths; a checkpoint in the way (or none
            to resume).
    """

    def __init__(self, job: RenderJob, renderer: Renderer) -> None:
        self.job, self.renderer = job, renderer
        check_output(job.output, job.output_options)  # may it replace a file: below
        self.manifest_path = manifest_path(job.output)
        self.content = load_image(job.content, "content", job.max_input_pixels)
        preset = renderer.preset
        self.plan, self.content = prepare_print(self.content, job.output_options, preset)
        content_hw = (self.content.shape[-2], self.content.shape[-1])
        minimum, free = min_input_size(preset.layers), free_bytes(renderer.device)
        check_sizes(content_hw, renderer.style_sets, preset, minimum, free)
        if preset.init_image is not None:  # read as the first stage will: fails here, not there
            load_image(preset.init_image, "init", job.max_input_pixels)
        self.stage_files: list[Path] = []
        if job.save_stages is not None:
            if job.save_stages.exists() and not job.save_stages.is_dir():
                raise ArgumentError(
                    "save_stages", f"{{}} {job.save_stages}: exists and is not a folder"
                )
            self.stage_files = stage_paths(job, content_hw, preset)
        self.snapshots = snapshot_files(job, content_hw, preset)
        inputs = [job.content, *(Path(f) for f in preset.files())]
        outputs = [*output_files(job.output, job.output_options), *self.stage_files]
        outputs += self.snapshots.values()
        check_outputs(outputs, inputs, [checkpoint_folder(job.output)])
        self.checkpoint = Checkpoint(job.output, self._fingerprint())
        self.done_before = self._same_render_exists()
        self._check_existing()

    def _same_render_exists(self) -> bool:
        """Whether the output and its manifest are there, made by this very render (the
        manifest's ``fingerprint`` is this job's): running the same command again then keeps
        them and says so, instead of refusing (without ``--overwrite`` or ``--resume``)."""
        job = self.job
        if job.overwrite or job.resume or not job.output.is_file():
            return False
        try:
            manifest = read_json(self.manifest_path, str(self.manifest_path))
        except UsageError:  # none, or not ours: the output is in the way as before
            return False
        return (
            isinstance(manifest, dict)
            and manifest.get("status") == "done"
            and manifest.get("fingerprint") == self.checkpoint.fingerprint
            and manifest.get("print") == print_entry(job.output_options, self.plan)
        )

    def _check_existing(self) -> None:
        """Refuse to replace what is there without ``--overwrite``: the image, its manifest,
        stage images that this render did not write, a checkpoint without ``--resume``. A
        ``--resume`` whose checkpoint holds every stage (the render died while writing its
        image or manifest) may replace them: it writes the same image again.

        Raises:
            UsageError: the first thing in the way, and what to pass.
        """
        job, checkpoint = self.job, self.checkpoint
        if self.done_before:
            return
        if job.resume and not checkpoint.exists():
            folder = literal(checkpoint.folder)
            raise ArgumentError("resume", f"{{}}: no checkpoint {folder} to resume from")
        if checkpoint.exists() and not (job.resume or job.overwrite):
            raise ArgumentError(
                "resume",
                f"{literal(checkpoint.folder)} holds an interrupted render; pass {{}} to "
                f"continue it or {{}} to start over",
                "overwrite",
            )
        finished = checkpoint.finished() if job.resume else 0
        complete = finished == len(self.renderer.preset.stages)
        refuse_existing(output_files(job.output, job.output_options), job.overwrite or complete)
        refuse_existing(self.stage_files[finished:], job.overwrite)
        later = [path for (index, _), path in self.snapshots.items() if index >= finished]
        refuse_existing(later, job.overwrite)

    def _fingerprint(self) -> str:
        """What decides the result: the preset's values (not its name or description), its
        paintings' and masks' contents in their places (not their paths), the seed, the
        weights and the photo's contents — so the same render spelled with other paths, from
        another folder, resumes, and one with another mask does not."""
        preset = self.renderer.preset
        values = _digested({**preset.to_dict(), "name": None, "description": None}, {})
        return fingerprint(
            {
                "preset": values,
                "seed": self.job.seed,
                "weights": self.renderer.weights,
                "content": file_digest(self.job.content),
                **({"print": self.plan.manifest()} if self.plan else {}),
            }
        )

    def run(
        self, observer: Observer | None = None, stop: StopHandle | None = None
    ) -> dict[str, Any]:
        """Load the weights, run the stages, write the image, the manifest and the stage images.

        Files are written atomically; the final image and the manifest only after the last stage
        succeeded. After every stage a checkpoint is saved; SIGINT/SIGTERM (see
        :func:`stylecascade.interrupt.signals_interrupt`) or ``stop`` (set from another thread,
        ``stages.stopping.StopHandle``) during a stage saves the best image so far and an
        ``interrupted`` manifest into it.

        Returns:
            The manifest (also written to ``OUT.json``).

        Raises:
            WeightsError: weights cannot be fetched or loaded.
            DivergedError: the optimization kept producing NaN/inf.
            Interrupted: a signal or ``stop`` stopped a stage (the checkpoint is saved), or a
                signal arrived while the image and manifest were written (held until both
                were).
            StyleCascadeError: an output cannot be written (disk full, no permission).
            UsageError: another process holds the output's lock, or wrote it meanwhile.
        """
        lock = output_lock(self.job.output)
        try:
            with lock:
                self._check_existing()  # again: another render may have written meanwhile
                for path in (self.job.output, self.manifest_path):
                    remove_stale_temporaries(path)  # of a render killed while writing
                return self._run(observer, stop)
        except Timeout:
            raise UsageError(
                f"output {self.job.output} is being rendered by another process (it holds "
                f"{lock.lock_file}); wait for it, or choose another -o"
            ) from None

    def _run(self, observer: Observer | None, stop: StopHandle | None) -> dict[str, Any]:
        job, renderer = self.job, self.renderer
        device = renderer.device
        if job.resume:
            entries, image = self.checkpoint.load()
        else:
            self.checkpoint.remove()  # --overwrite of an old checkpoint
            entries, image = [], None
        if self.stage_files:
            self.stage_files[0].parent.mkdir(parents=True, exist_ok=True)
        final = None if image is None else renderer.shown(image.to(device), self.content)
        resume = None if image is None else (len(entries), image.to(device))
        if self.snapshots:
            paths = {key: path for key, path in self.snapshots.items() if key[0] >= len(entries)}
            observer = Snapshots(observer, paths, lambda x: renderer.shown(x, self.content))
        stages = renderer.stages(
            self.content, seed=job.seed, observer=observer, resume=resume, stop=stop
        )
        try:
            for result, final in stages:
                entries.append(stage_entry(result))
                if self.stage_files:
                    with reporting_write_errors(self.stage_files[result.index]):
                        save_image(final, self.stage_files[result.index])
                with reporting_write_errors(self.checkpoint.folder):
                    self.checkpoint.save_stage(entries, result.image)
        except StageInterrupted as exc:
            raise self._interrupted(exc, entries) from None
        assert final is not None
        manifest = self._manifest(entries, "done")
        self._write(final, manifest)
        return manifest

    def _write(self, final: Tensor, manifest: dict[str, Any]) -> None:
        """Write the output, its guide image (``safe_margin``) and its manifest together, the
        checkpoint removed; a signal meanwhile is held until they are written.

        Raises:
            Interrupted: a signal arrived while writing (the files are complete).
        """
        job = self.job
        with signals_deferred() as held:  # the image and its manifest land together
            with reporting_write_errors(job.output):
                save_image(final, job.output, job.output_options, self._provenance(manifest))
            write_guide(final, job.output, job.output_options, self.plan)
            with reporting_write_errors(self.manifest_path):
                write_json(self.manifest_path, manifest)
            self.checkpoint.remove()
        if held:
            raise Interrupted(
                f"interrupted after the render was complete: {job.output} and "
                f"{self.manifest_path} are written",
                held[0],
            )

    def _provenance(self, manifest: dict[str, Any]) -> dict[str, str]:
        """Text written into the output file: enough to trace it back to its render (the
        weights as its ``manifest`` names them)."""
        preset, weights = self.renderer.preset, manifest["weights"]
        return {
            "Software": f"stylecascade {__version__}",
            "stylecascade:preset": preset.name,
            "stylecascade:seed": str(self.job.seed),
            "stylecascade:styles": json.dumps(
                [{"image": Path(s.image).name, "weight": s.weight} for s in preset.styles]
            ),
            "stylecascade:color": preset.color,
            "stylecascade:weights": f"{weights['source']} sha256:{weights['sha256'][:16]}",
            "stylecascade:manifest": self.manifest_path.name,
            **print_text(self.plan),
        }

    def _manifest(self, entries: list[dict[str, Any]], status: str) -> dict[str, Any]:
        job = self.job
        manifest = self.renderer.manifest(
            content=job.content, output=job.output, seed=job.seed, stages=entries, status=status
        )
        entry = print_entry(job.output_options, self.plan)
        return {**manifest, "fingerprint": self.checkpoint.fingerprint, "print": entry}

    def _interrupted(self, exc: StageInterrupted, entries: list[dict[str, Any]]) -> Interrupted:
        """Save the best image so far and an ``interrupted`` manifest into the checkpoint."""
        folder = self.checkpoint.folder
        partial = folder / "partial.png"
        manifest = self._manifest(entries, "interrupted")
        manifest["interrupted"] = {"stage": exc.index + 1, "evaluations": exc.evaluations}
        with reporting_write_errors(folder):
            folder.mkdir(exist_ok=True)
            save_image(self.renderer.shown(exc.image, self.content), partial)
            write_json(folder / "manifest.json", manifest)
        signum = getattr(exc.__cause__, "signum", signal.SIGINT)
        count, verb = len(self.renderer.preset.stages), "stopped" if exc.stopped else "interrupted"
        return Interrupted(
            f"{verb} in stage {exc.index + 1}/{count} after {exc.evaluations} evaluations; "
            f"best image so far in {literal(partial)}; run the same command with {{}} to "
            f"continue from stage {exc.index + 1}",
            signum,
            "resume",
        )
