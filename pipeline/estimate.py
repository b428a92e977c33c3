"""How long a render will take, said before it starts (issue 28, item 1).

A render's work is counted, not guessed: each stage makes at most its cap of evaluations, and
one evaluation costs :func:`~stylecascade.stages.vgg.evaluation_flops` (VGG19 forward + input
gradient up to the deepest layer the preset reads) times :data:`OVERHEAD` for the losses and
the optimizer. The device's rate is measured once by a probe (a forward + backward at
:data:`PROBE` px, about a second on a CPU) and kept per device, precision, thread count and
torch version in ``$STYLECASCADE_HOME/rates.json``. Stages that converge stop earlier, so the
estimate is an upper bound for untiled stages; tiles add their overlap.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from .errors import StyleCascadeError
from .files import write_json
from .paths import home
from .reading import read_json
from .stages.vgg import VGGFeatures, deepest_layer, evaluation_flops

PROBE = (192, 256)
"""``(H, W)`` of the probe image: large enough that the rate is the one of real stages (at
128 × 96 px this CPU reaches a third of it)."""
OVERHEAD = 1.2
"""An evaluation's time over the network's alone (losses, L-BFGS, line search): 0.99–1.19
measured by ``benchmarks/step_overhead.py``."""
H100_RATE = 167_000.0
"""GFLOP/s of an H100 on this work: VGG19 → relu5_1 forward + backward at 4096² px (24.2 TFLOP)
in 0.145 s, TF32 and channels_last (measured in the project's first round)."""
CONFIRM_SECONDS = 30 * 60
"""A render estimated longer than this on a CPU asks for ``--yes`` first."""


@dataclass(frozen=True)
class Estimate:
    """A render's work and time before it starts.

    Attributes:
        stage_seconds: the upper bound of each stage, in order.
        flops: the work of every stage at its cap.
        rate: the device's measured GFLOP/s.
    """

    stage_seconds: tuple[float, ...]
    flops: float
    rate: float

    @property
    def seconds(self) -> float:
        """The whole render's upper bound."""
        return sum(self.stage_seconds)


def render_estimate(
    sizes: Sequence[tuple[int, int]], caps: Sequence[int], layers: set[str], rate: float
) -> Estimate:
    """The estimate of stages of ``sizes`` (``(H, W)`` px) with ``caps`` evaluations each,
    through the deepest of ``layers``, at ``rate`` GFLOP/s."""
    deepest = deepest_layer(layers)
    work = [n * evaluation_flops(deepest, h, w) for (h, w), n in zip(sizes, caps, strict=True)]
    seconds = tuple(f * OVERHEAD / (rate * 1e9) for f in work)
    return Estimate(seconds, sum(work), rate)


_MEASURED: dict[str, float] = {}
"""Rates this process probed or read, by key: one probe and one read of ``rates.json`` per
process, even where the file cannot be kept (each test's own ``STYLECASCADE_HOME``)."""


def device_rate(
    extractor: VGGFeatures, device: torch.device, precision: str, autocast: AbstractContextManager
) -> float:
    """GFLOP/s of ``extractor`` on ``device`` at ``precision``: from ``rates.json`` when this
    device, precision, thread count and torch were measured before, else probed now (and
    kept)."""
    key = f"{device}|{precision}|{torch.get_num_threads()} threads|torch {torch.__version__}"
    if key in _MEASURED:  # this process probed it already (a batch, a notebook, the tests)
        return _MEASURED[key]
    path = home() / "rates.json"
    try:
        known = read_json(path, "rates.json") if path.exists() else {}
    except StyleCascadeError:
        known = {}  # damaged: measured again and rewritten
    known = known if isinstance(known, dict) else {}
    rate = known.get(key)
    if not isinstance(rate, (int, float)) or not rate > 0:
        rate = _probe(extractor, device, autocast)
        try:
            write_json(path, {**known, key: rate})
        except (OSError, StyleCascadeError):
            pass  # a read-only cache: probe again next time
    _MEASURED[key] = float(rate)
    return _MEASURED[key]


def _probe(extractor: VGGFeatures, device: torch.device, autocast: AbstractContextManager) -> float:
    """GFLOP/s of one forward + backward at :data:`PROBE` px (median of 3 after a warm-up)."""
    image = torch.rand(1, 3, *PROBE, device=device)
    deepest = max(extractor.layers, key=lambda name: evaluation_flops(name, *PROBE))
    times = []
    for _ in range(4):
        x = image.clone().requires_grad_(True)
        began = time.perf_counter()
        with autocast:
            loss = sum(f.float().mean() for f in extractor(x).values())
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - began)
    return evaluation_flops(deepest, *PROBE) / statistics.median(times[1:]) / 1e9


def duration(seconds: float) -> str:
    """``95`` → ``1 min 35 s``; ``7300`` → ``2 h 1 min`` (minutes cut, not rounded)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
