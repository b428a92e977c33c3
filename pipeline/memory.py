"""Memory planning: will a stage fit on the device, and if not, how large may its tiles be?

The activations that autograd keeps for the backward pass grow linearly with the number of
pixels. :func:`activation_bytes_per_pixel` measures that constant for the actual network,
layers, device and precision by counting the bytes of every tensor saved for backward during
one small forward pass; a stage's peak is then estimated as those activations plus a margin
for the gradients in flight, plus the optimizer's state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .stages.vocabulary import LBFGS_HISTORY

BACKWARD_MARGIN = 1.6
"""Peak over saved activations during backward (gradients of the largest layers in flight,
convolution workspaces). Calibrated on the CPU by ``benchmarks/memory.py``: the measured
marginal cost was 2987 B/px against 1532 B/px saved for backward plus 528 B/px of L-BFGS
state, i.e. 1.6 × the saved activations."""
USABLE_FRACTION = 0.9
"""Share of the free memory a stage may plan to use."""
MEASURE_EDGE = 128
"""Size (px) of the square probe image the constant is measured on."""
MIN_TILE = 256
"""Smallest tile (px) worth running; below it the network sees too little context."""
TILE_STEP = 64


def saved_bytes(forward: Callable[[Tensor], Tensor], device: torch.device, edge: int) -> int:
    """Bytes of the tensors autograd saves for backward in ``forward`` of a ``(1, 3, edge,
    edge)`` probe (each storage counted once; the weights included). The probe is never run
    backward: the hooks keep nothing (a pack hook returning an op's own output makes a
    reference cycle through the graph that Python's collector cannot see, and every probe's
    activations and the network's weights stayed alive: 65 MB per in-memory render)."""
    seen: dict[tuple[int, int], int] = {}
    kept: list[Tensor] = []  # alive until the forward ends, as the graph would keep them

    def pack(tensor: Tensor) -> None:
        storage = tensor.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        kept.append(tensor)

    def unpack(_kept: None) -> Tensor:
        raise RuntimeError("the memory probe is not differentiable")

    probe = torch.rand(1, 3, edge, edge, device=device, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        loss = forward(probe)
    del loss
    kept.clear()
    return sum(seen.values())


def activation_bytes_per_pixel(
    forward: Callable[[Tensor], Tensor], device: torch.device, edge: int = MEASURE_EDGE
) -> float:
    """Bytes that autograd saves per input pixel for ``forward``: the slope of
    :func:`saved_bytes` between ``edge/2`` and ``edge`` px probes, so that the weights (saved
    too, but constant) drop out.

    Args:
        forward: maps a ``(1, 3, e, e)`` image in 0–1 to a scalar loss (run it under the
            precision the stage will use).
        device: where to run the probes.
        edge: the larger probe's size in px (the smaller must still pass the network).
    """
    small, large = edge // 2, edge
    grow = saved_bytes(forward, device, large) - saved_bytes(forward, device, small)
    return grow / (large * large - small * small)


def optimizer_bytes(pixels: int, optimizer: str, history: int = LBFGS_HISTORY) -> int:
    """Optimizer state for an image of ``pixels`` px: L-BFGS keeps ``2·history`` image-sized
    vectors plus a few work vectors (at 4096×3072 px and history 20: 2·20·151 MB ≈ 6 GB), Adam
    two moments; float32, 3 channels."""
    vectors = 2 * history + 4 if optimizer == "lbfgs" else 6
    return vectors * 3 * pixels * 4


def stage_bytes(per_pixel: float, pixels: int, optimizer: str, history: int = LBFGS_HISTORY) -> int:
    """Estimated peak memory of an untiled stage of ``pixels`` px."""
    return int(per_pixel * pixels * BACKWARD_MARGIN) + optimizer_bytes(pixels, optimizer, history)


def free_bytes(device: torch.device) -> int | None:
    """Memory a stage may use on ``device``: free CUDA memory plus PyTorch's reusable cache, or
    the available RAM for the CPU (Linux: ``MemAvailable``, which counts the page cache the
    kernel can drop; else the free pages); ``None`` when unknown (no planning)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached
    if device.type != "cpu":
        return None
    available = _mem_available()
    if available is not None or not hasattr(os, "sysconf"):
        return available
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def _mem_available(meminfo: str = "/proc/meminfo") -> int | None:
    """Linux's estimate of the RAM a program can take without swapping (``MemAvailable``,
    bytes): free pages plus the page cache and reclaimable slabs. The free pages alone
    (``SC_AVPHYS_PAGES``) refused README's print example after a test run had filled the cache
    (12 GiB free, 22 GiB available)."""
    try:
        with open(meminfo, "rb") as f:
            text = f.read(1 << 16).decode("ascii", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable" and value.split()[:1] and value.split()[0].isdigit():
            return int(value.split()[0]) * 1024
    return None


@dataclass(frozen=True)
class StagePlan:
    """How a stage runs.

    Attributes:
        tile_edge: tile edge in px, or ``None`` for an untiled stage.
        estimate_bytes: estimated peak of the stage as planned.
        free_bytes: memory available when planned (``None``: unknown).
    """

    tile_edge: int | None
    estimate_bytes: int
    free_bytes: int | None


def plan_stage(
    height: int,
    width: int,
    per_pixel: float,
    optimizer: str,
    available: int | None,
    *,
    tile_edge: int = 0,
    overlap: int = 64,
    history: int = LBFGS_HISTORY,
) -> StagePlan:
    """Choose between an untiled and a tiled stage.

    Args:
        height, width: the stage's size in px.
        per_pixel: :func:`activation_bytes_per_pixel`.
        optimizer: the stage's optimizer (tiled stages use Adam).
        available: :func:`free_bytes`.
        tile_edge: the preset's tile edge in px (``tiling.tile_edge``; 0: tile only when needed).
        overlap: tile overlap in px.
        history: an L-BFGS stage's history size.

    Returns:
        An untiled plan when it fits (or memory is unknown) and no tile is forced; else the
        largest tile (a multiple of 64 px, at least 256) that fits.

    Raises:
        MemoryError: not even a 256 px tile fits.
    """
    pixels = height * width
    whole = stage_bytes(per_pixel, pixels, optimizer, history)
    if tile_edge and max(height, width) > tile_edge:
        need = _tiled_bytes(per_pixel, pixels, tile_edge)
        return StagePlan(tile_edge, need, available)
    if available is None or whole <= available * USABLE_FRACTION:
        return StagePlan(None, whole, available)
    tile = (max(height, width) // TILE_STEP) * TILE_STEP
    while tile >= max(MIN_TILE, overlap + TILE_STEP):
        need = _tiled_bytes(per_pixel, pixels, tile)
        if need <= available * USABLE_FRACTION:
            return StagePlan(tile, need, available)
        tile -= TILE_STEP
    raise MemoryError(
        f"a {width}×{height} px stage needs about {whole / 2**30:.1f} GiB and even "
        f"{MIN_TILE} px tiles need {_tiled_bytes(per_pixel, pixels, MIN_TILE) / 2**30:.1f} GiB; "
        f"{available / 2**30:.1f} GiB is free"
    )


def _tiled_bytes(per_pixel: float, pixels: int, tile: int) -> int:
    """A tiled stage: one tile's activations, plus whole-image Adam state, gradient buffers and
    content image."""
    return int(per_pixel * tile * tile * BACKWARD_MARGIN) + (6 + 4) * 3 * pixels * 4
