"""The JSON manifest written beside every render: how to reproduce it and what each stage did."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .preset import Preset
from .stages.cascade import StageResult

__all__ = ["build_manifest", "stage_entry", "versions"]

VERSIONED = ("stylecascade", "torch", "torchvision", "numpy", "pillow")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the result."""
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def stage_entry(result: StageResult) -> dict[str, Any]:
    """One stage of the manifest: ``size`` [W, H] px, ``iterations`` (evaluations used),
    ``stop`` (``converged``, ``cap`` or ``stalled``), ``tolerance``, ``seconds``, weighted
    ``loss_start`` / ``loss_end``, ``recoveries`` (restarts after NaN/inf), ``tile`` (tile edge
    in px of a tiled stage, else ``null``), ``estimated_memory_mib`` (the memory plan's
    estimate), ``peak_memory_mib`` (measured, CUDA; ``null`` elsewhere) and ``loss_trace``
    (weighted total of every evaluation); ``terms``: each term's kind and weight by name
    (``{"style": {"kind": "w2", "weight": 20.0}, …}``)."""
    peak, stage = result.peak_memory_bytes, result.stage
    height, width = stage.size
    return {
        "size": [width, height],
        "iterations": result.evaluations,
        "stop": result.stop,
        "tolerance": stage.tolerance,
        "seconds": round(result.seconds, 3),
        "loss_start": result.loss_start,
        "loss_end": result.loss_end,
        "terms": {t.name: {"kind": t.loss, "weight": t.weight} for t in stage.terms},
        "recoveries": result.recoveries,
        "tile": stage.tile_edge,
        "estimated_memory_mib": (
            None if stage.estimate_bytes is None else round(stage.estimate_bytes / 2**20, 1)
        ),
        "peak_memory_mib": None if peak is None else round(peak / 2**20, 1),
        "loss_trace": [float(f"{v:.5g}") for v in result.loss_trace],
    }


def build_manifest(
    *,
    preset: Preset,
    look: Preset,
    seed: int,
    device: str,
    precision: str,
    weights_source: str,
    weights_sha256: str,
    content: str | Path,
    output: str | Path | None,
    stages: list[dict[str, Any]],
    status: str = "done",
) -> dict[str, Any]:
    """Everything needed to reproduce and audit a render (see README, "Manifest").

    ``preset`` is the resolved preset: its ``styles`` (paths and weights) and ``color`` are the
    ones this render used. ``look`` is the same before ``--size`` scaled its stages: what
    ``presets save NAME --from OUT.json`` and ``--preset OUT.json`` take (the whole look, not
    the size it was tried at).
    ``status`` is ``done``, ``interrupted`` (a checkpoint's) or ``stopped`` (an in-memory
    render ended by its stop handle, :meth:`~stylecascade.renderer.Renderer.render`).
    ``content`` and ``output`` are paths, or descriptions of in-memory images (``output``
    ``None``: not written; the Python API).
    """
    return {
        "status": status,
        "output": None if output is None else str(output),
        "content": str(content),
        "styles": [
            {"image": s.image, "weight": s.weight, **({"mask": s.mask} if s.mask else {})}
            for s in preset.styles
        ],
        "color": preset.color,
        "preset": preset.to_dict(),
        "look": look.to_dict(),
        "seed": seed,
        "device": device,
        "threads": torch.get_num_threads(),
        "precision": precision,
        "weights": {"source": weights_source, "sha256": weights_sha256},
        "versions": versions(),
        "stages": stages,
    }
