"""``stylecascade inspect``: pictures that explain a render (layer reconstructions, a stage
contact sheet, the loss curve, the masks), on the record's declared options
(:data:`stylecascade.options.INSPECT`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from . import options as opt
from .cliapp import app, console, reports_errors
from .errors import StyleCascadeError, UsageError
from .files import atomic_write, check_folder, make_folder, reporting_write_errors
from .naming import check_weights_spec
from .preset_files import load_preset
from .reading import read_json
from .record import Inspection, check_bounds
from .write_checks import check_outputs, refuse_existing

if TYPE_CHECKING:
    from PIL import Image


def _said(note: str) -> None:
    console.print(note, soft_wrap=True)


@app.command("inspect")
@reports_errors
@opt.takes(opt.INSPECT, said=_said)
def inspect_command(
    *,
    content: Path | None,
    style: Path | None,
    out_dir: Path,
    size: int,
    iterations: int,
    save_stages: Path | None,
    manifest: Path | None,
    device: str,
    weights: str,
    seed: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Pictures that explain a render, written into --out-dir DIR.

    layers.png: the content reconstructed from single layers and the style from growing sets of
    layers (Gatys et al. 2016, Fig. 1), from CONTENT and --style at --size px. stages.png: a
    contact sheet of a render's --save-stages folder. losses.png: the loss curve of a render's
    OUT.json; masks.png: its masks at each stage, when it had any.
    """
    wanted = []
    if content is not None:
        if style is None:
            raise UsageError("inspect CONTENT needs --style PAINTING for the style row")
        wanted.append("layers.png")
    if save_stages is not None:
        wanted.append("stages.png")
    if manifest is not None:
        wanted.append("losses.png")
        if _has_masks(manifest):
            wanted.append("masks.png")
    if not wanted:
        raise UsageError(
            "nothing to do: give CONTENT --style S, --save-stages DIR or --manifest OUT.json"
        )
    check_bounds([Inspection], {"size": size, "iterations": iterations})
    if content is not None:
        check_weights_spec(weights)
    paths = [out_dir / name for name in wanted]
    _check_places(out_dir, paths, [content, style, manifest], save_stages, overwrite)
    pictures = _quick_pictures(wanted, save_stages, manifest)
    targets = None  # every input read first: a bad one fails before a folder or weights
    if content is not None and style is not None:
        from .inspection import reconstruction_targets

        targets = reconstruction_targets(content, style, size)
    if make_folder(out_dir, "out_dir") and not quiet:  # the last step before the work
        console.print(f"created folder {escape(str(out_dir))}", soft_wrap=True)
    if targets is not None:
        pictures["layers.png"] = _layer_picture(targets, weights, device, iterations, seed, quiet)
    for name, picture in pictures.items():
        path = out_dir / name
        with reporting_write_errors(path):
            atomic_write(path, lambda tmp, p=picture: p.save(tmp, "PNG"), argument="out_dir")
        if not quiet:
            console.print(f"wrote {escape(str(path))}")


def _quick_pictures(
    wanted: list[str], save_stages: Path | None, manifest: Path | None
) -> dict[str, Image.Image]:
    """The pictures that need no network: the loss curve, the masks, the contact sheet.

    Raises:
        UsageError: an input that cannot be read.
    """
    from .pictures import contact_sheet

    pictures = {}
    if manifest is not None:
        pictures["losses.png"] = _loss_picture(manifest)
    if "masks.png" in wanted:
        from .inspection import mask_sheet

        pictures["masks.png"] = mask_sheet(manifest)
    if save_stages is not None:
        pictures["stages.png"] = contact_sheet(save_stages)
    return pictures


def _check_places(
    out_dir: Path,
    paths: list[Path],
    inputs: list[Path | None],
    save_stages: Path | None,
    overwrite: bool,
) -> None:
    """The write rule for ``inspect``'s pictures, before anything is read: ``out_dir`` a
    folder or missing, each picture nothing or a file it may replace, never an input (the
    photo, painting, manifest, or an image of ``save_stages``).

    Raises:
        ArgumentError, UsageError: the first problem.
    """
    check_folder(out_dir, "out_dir")
    sources = [p for p in inputs if p is not None]
    if save_stages is not None and save_stages.is_dir():
        sources += [p for p in save_stages.iterdir() if p.is_file()]
    check_outputs(paths, sources, argument="out_dir")
    refuse_existing(paths, overwrite)


def _layer_picture(
    targets: tuple[Any, Any],
    weights: str,
    device: str,
    iterations: int,
    seed: int,
    quiet: bool,
) -> Image.Image:
    """``inspect``'s layer reconstructions (``inspection.layer_reconstructions``) of
    ``targets`` (``inspection.reconstruction_targets``), unless ``quiet`` with their
    progress: a bar on a terminal, a timestamped line each in a log."""
    from .device import select_device
    from .inspection import layer_reconstructions
    from .progress import counted_progress, step_reporter

    torch_device = select_device(device)
    shown = None if quiet else console
    with counted_progress(shown, "reconstructions", 10) as done:
        return layer_reconstructions(
            targets,
            weights=weights,
            device=torch_device,
            iterations=iterations,
            seed=seed,
            step=step_reporter(shown),
            done=done,
        )


def _has_masks(path: Path) -> bool:
    """Whether the manifest at ``path`` is of a render with masks (unreadable: ``False``;
    :func:`_loss_picture` reports it)."""
    try:
        return load_preset(str(path)).masked
    except StyleCascadeError:
        return False


def _loss_picture(path: Path) -> Image.Image:
    """The loss curve of the manifest at ``path`` (:func:`~stylecascade.pictures.loss_curve`).

    Raises:
        UsageError: a missing or unreadable file, not JSON, not a manifest, no loss values —
            as ``--manifest PATH: …``.
    """
    from .pictures import loss_curve

    manifest = read_json(path, f"--manifest {path}")
    try:
        return loss_curve(manifest)
    except UsageError as exc:
        raise UsageError(f"--manifest {path}: {exc}") from None
