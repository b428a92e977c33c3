"""One render job on files: check everything cheap first, then run the stages through a
:class:`~stylecascade.renderer.Renderer`, writing stage images, checkpoints, the image and its
manifest."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import Timeout
from torch import Tensor

from . import __version__
from .checkpoint import Checkpoint, fingerprint
from .choices import MAX_INPUT_PIXELS, PROFILE_NAMES, SOURCES
from .errors import ArgumentError, UsageError, literal
from .every import Snapshots, snapshot_paths
from .files import (
    check_folder,
    file_digest,
    make_folder,
    own_folder,
    remove_stale_temporaries,
    render_lock,
    reporting_write_errors,
    write_json,
)
from .images import load_image
from .interrupt import Interrupted, signals_deferred
from .manifest import stage_entry
from .memory import free_bytes
from .naming import checkpoint_folder, manifest_path
from .output import OutputOptions, check_output, save_image
from .preset import FILE_FIELDS, Preset
from .printlab import guide_path, prepare_print, print_entry, print_text, write_guide
from .reading import read_json
from .record import Outputs
from .renderer import Renderer
from .runner import Observer, check_sizes, stage_sizes
from .stages.cascade import StageInterrupted
from .stages.stopping import StopHandle
from .stages.vgg import min_input_size
from .write_checks import check_outputs, refuse_existing


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
        inputs: the run's other input files an output must never replace (the preset file
            and a weights file: ``request_files.other_inputs``; the photo and the preset's
            paintings, masks and init image are known already).
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
    inputs: tuple[Path, ...] = ()


UNWRITTEN = {
    "output": "where the file goes, not what it holds (the job is that file's)",
    "overwrite": "whether an existing file may be replaced, not what is written",
    "resume": "where the work starts, not what it writes",
    "print_every": "progress lines on the console",
    "quiet": "the console",
    "yes": "the time gate",
}
"""The fields of the record's ``Outputs`` part that change no written byte, each with why:
the fingerprint of what a job writes (:func:`written_options`) holds every other one."""


def written_options(job: RenderJob) -> dict[str, Any]:
    """How the job's files are written beyond the render's pixels, generated from the record:
    every field of its ``Outputs`` part but :data:`UNWRITTEN`, and every field of
    :class:`~stylecascade.output.OutputOptions` (``dpi`` and ``print_size`` are the ``Look``'s),
    as JSON values (the stage folder resolved; a profile file by its bytes' SHA-256). A rerun
    with any of them changed writes other bytes or other files: not the same render.

    Raises:
        KeyError: an ``Outputs`` field neither the job nor ``OutputOptions`` carries (a new
            one belongs in one of them, or in :data:`UNWRITTEN`).
    """
    options = dataclasses.asdict(job.output_options)
    if options["profile"] not in PROFILE_NAMES:
        options["profile"] = f"sha256:{file_digest(Path(options['profile']))}"
    stages = job.save_stages
    values = {
        **options,
        "save_stages": None if stages is None else str(Path(os.path.abspath(stages)).resolve()),
        "save_every": job.save_every,
    }
    names = [f.name for f in dataclasses.fields(Outputs) if f.name not in UNWRITTEN]
    names += [f.name for f in dataclasses.fields(OutputOptions)]
    return {name: values[name] for name in dict.fromkeys(names)}


def lock_paths(job: RenderJob) -> list[Path]:
    """What one job's lock covers (:func:`~stylecascade.files.render_lock`): the output (by its
    stem: the manifest shared by ``x.png`` and ``x.jpg``; the checkpoint folder is the one
    render's that holds it), its guide and, with ``save_stages``, the stage images named after
    it."""
    stages = [] if job.save_stages is None else [job.save_stages / job.output.name]
    return [*output_files(job.output, job.output_options), *stages]


def run_inputs(job: RenderJob, preset: Preset, weights: str | os.PathLike | None) -> list[Path]:
    """Every input file of the job, none of which an output may replace: the photo, the
    preset's files (paintings, masks, init image), a weights file (``weights``, unless a
    source's name or ``None``), an output profile file and :attr:`RenderJob.inputs`."""
    named = weights is None or str(weights) in SOURCES
    weights_file = [] if named else [Path(weights).expanduser()]
    profile = job.output_options.profile
    profile_file = [] if profile in PROFILE_NAMES else [Path(profile)]
    files = [Path(f) for f in preset.files()]
    return [job.content, *files, *weights_file, *profile_file, *job.inputs]


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
            check_folder(job.save_stages, "save_stages")
            self.stage_files = stage_paths(job, content_hw, preset)
        self.snapshots = snapshot_files(job, content_hw, preset)
        inputs = run_inputs(job, preset, renderer.weights)
        outputs = [*output_files(job.output, job.output_options), *self.stage_files]
        outputs += self.snapshots.values()
        check_outputs(outputs, inputs, [checkpoint_folder(job.output)])
        self.checkpoint = Checkpoint(job.output, self._fingerprint())
        self.fingerprint = fingerprint(
            {"render": self.checkpoint.fingerprint, "written": written_options(job)}
        )
        self.done_before = self._same_render_exists()
        self._check_existing()

    def _same_render_exists(self) -> bool:
        """Whether the output and its manifest are there, made by this very render and written
        the same way (the manifest's ``fingerprint`` is this job's :attr:`fingerprint`: the
        render's and :func:`written_options`): running the same command again then keeps
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
            and manifest.get("fingerprint") == self.fingerprint
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
        """What decides the render's pixels (the checkpoint's): the preset's values (not its
        name or description), its paintings' and masks' contents in their places (not their
        paths), the seed, the weights and the photo's contents — so the same render spelled
        with other paths, from another folder, resumes, and one with another mask does not.
        How the files are written is not in it (a resume may write 16 bits): the manifest's
        :attr:`fingerprint` adds it."""
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
            UsageError: another process holds the lock of a file it writes
                (:func:`lock_paths`), or wrote it meanwhile.
        """
        try:
            with render_lock(lock_paths(self.job)):
                self._check_existing()  # again: another render may have written meanwhile
                for path in (self.job.output, self.manifest_path):
                    remove_stale_temporaries(path)  # of a render killed while writing
                return self._run(observer, stop)
        except Timeout as exc:
            raise UsageError(
                f"output {self.job.output} is being rendered by another process (it holds "
                f"{exc.lock_file}); wait for it, or choose another -o"
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
            make_folder(self.stage_files[0].parent, "save_stages")
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
        return {**manifest, "fingerprint": self.fingerprint, "print": entry}

    def _interrupted(self, exc: StageInterrupted, entries: list[dict[str, Any]]) -> Interrupted:
        """Save the best image so far and an ``interrupted`` manifest into the checkpoint."""
        folder = self.checkpoint.folder
        partial = folder / "partial.png"
        manifest = self._manifest(entries, "interrupted")
        manifest["interrupted"] = {"stage": exc.index + 1, "evaluations": exc.evaluations}
        with reporting_write_errors(folder):
            own_folder(folder)
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
