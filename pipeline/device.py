"""Choosing and configuring the compute device."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from .choices import DEVICES, MAX_THREADS
from .errors import ArgumentError


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def set_threads(threads: int | None) -> int:
    """Set the CPU threads torch computes with (``--threads``); ``None`` keeps torch's default
    (one per core). A render is reproducible bit for bit only at the same thread count.

    Returns:
        The thread count in use.

    Raises:
        UsageError: ``threads`` outside 1–:data:`MAX_THREADS`.
    """
    if threads is not None:
        if not 1 <= threads <= MAX_THREADS:
            raise ArgumentError("threads", f"{{}} must be 1–{MAX_THREADS}; got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def select_device(name: str) -> torch.device:
    """Resolve ``--device`` and configure the backend for it.

    ``auto`` takes CUDA, else Apple MPS, else the CPU. The arithmetic precision is set per
    render by :func:`precision`.

    Args:
        name: one of ``auto``, ``cuda``, ``mps``, ``cpu``.

    Raises:
        UsageError: unknown name, or the requested device is not available.
    """
    if name not in DEVICES:
        raise ArgumentError(
            "device", f"{{}} {name}: unknown device; choose one of {', '.join(DEVICES)}"
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError(
                "device", "{} cuda: no CUDA GPU is available to PyTorch; use {} cpu", "device"
            )
    if name == "mps" and not _mps_available():
        raise ArgumentError(
            "device", "{} mps: Apple MPS is not available to PyTorch; use {} cpu", "device"
        )
    return torch.device(name)


def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's check: AVX-512 BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(torch.backends.mkldnn.is_available() and check is not None and check())
    except RuntimeError:
        return False


def effective_precision(name: str, device: torch.device) -> str:
    """The precision that ``name`` means on ``device``.

    CUDA: ``auto`` is ``tf32``, the rest themselves. CPU: ``bf16`` (and ``auto``) is ``bf16``
    when :func:`cpu_bf16`, else ``fp32``; ``tf32`` is ``fp32`` (no TF32 on CPUs). MPS: ``fp32``.
    """
    if device.type == "cuda":
        return "tf32" if name == "auto" else name
    if device.type == "cpu" and name in ("auto", "bf16") and cpu_bf16():
        return "bf16"
    return "fp32"


def precision(name: str, device: torch.device) -> tuple[str, AbstractContextManager]:
    """The precision a preset asks for, as it applies on ``device``.

    - ``fp32``: strict float32.
    - ``tf32``: float32 tensors, matrix products and convolutions on TF32 tensor cores (CUDA;
      with channels_last a VGG19 forward + backward at 4096² px on an H100 took 0.145 s against
      0.73 s in strict fp32).
    - ``bf16``: the network runs under bf16 autocast (0.086 s there, about half the activation
      memory); losses and Gram matrices stay float32 (``gram_matrix`` casts, and computes its
      product outside autocast).

    - ``auto``: ``tf32`` on CUDA, ``bf16`` on a CPU that computes it natively
      (:func:`effective_precision`).

    On a CPU with AVX-512 BF16 (or AMX) ``bf16`` runs the network under CPU bf16 autocast
    (oneDNN): VGG19 forward + backward at 256×192 px took 0.49 s against 0.95 s in fp32 here
    (``benchmarks/roofline.py``); other CPUs compute in fp32, where bf16 would be emulated.

    Args:
        name: ``fp32``, ``tf32``, ``bf16`` or ``auto``.
        device: the compute device.

    Returns:
        ``(effective name, context)``: the precision really used and a context manager to wrap
        each network evaluation in.
    """
    name = effective_precision(name, device)
    if device.type == "cpu" and name == "bf16":
        return name, torch.autocast("cpu", dtype=torch.bfloat16)
    if device.type != "cuda":
        return name, nullcontext()
    torch.backends.cuda.matmul.allow_tf32 = name != "fp32"
    torch.backends.cudnn.allow_tf32 = name != "fp32"
    if name == "bf16":
        return "bf16", torch.autocast("cuda", dtype=torch.bfloat16)
    return name, nullcontext()
