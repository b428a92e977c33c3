"""How long a render will take, said before it starts, learned from what renders here took
(issue 28, item 1; issue 37, friction 1).

A render's work is counted, not guessed: each stage makes at most its cap of evaluations, and
one evaluation costs :func:`~stylecascade.stages.vgg.evaluation_flops` (VGG19 forward + input
gradient up to the deepest layer the preset reads); a tiled stage runs every tile twice
(:data:`TILED_PASSES`). What a TFLOP of that work takes is *learned*: after each stage a render
records its seconds per counted TFLOP (:func:`record_stage`), per device, precision, thread
count and torch version (:func:`rate_key`) and per group of stages, its style loss and whether
it was tiled (``gram``, ``swd``, ``w2+tiled``, …); the estimate takes the median of a group's
last :data:`HISTORY` observations. A group not seen yet is priced from the others through the
measured cost factors :data:`KIND_COST` and :data:`TILED_COST`. Before the first render on a
device, a probe (a forward + backward at :data:`PROBE` px, about a second on a CPU) is the first
guess, kept only when the machine was quiet (:func:`machine_busy`): a probe taken while other
work shares the CPU reads many times too slow and is used for that render alone.

Stages that converge stop earlier, so with the caps the estimate is an upper bound on the work,
at the typical (median) speed of recent renders. Observations live in ``timings.json`` in the
state folder (:func:`~stylecascade.paths.state_folder`), at most :data:`MAX_KEYS` ×
(3 style losses × 2) × :data:`HISTORY` numbers (under 40 KB), written under a file lock
through the one writer (:func:`~stylecascade.files.write_json`).
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from torch import nn

from .errors import StyleCascadeError
from .files import write_json
from .paths import state_folder
from .printsize import MIN_LONG_EDGE
from .reading import read_json
from .stages.cascade import Stage, StageResult
from .stages.resample import fit_long_edge
from .stages.tiling import tile_grid
from .stages.vgg import VGGFeatures, deepest_layer, evaluation_flops
from .stages.vocabulary import STYLE_LOSSES

PROBE = (192, 256)
"""``(H, W)`` of the probe image: large enough that the rate is the one of real stages (at
128 × 96 px this CPU reaches a third of it)."""
OVERHEAD = 2.2
"""An evaluation's time with the Gram loss, through the whole model, over the bare network's as
the probe times it (the losses in float32, L-BFGS and its line search, the image's own work).
Applies to the probe only; learned rates include it. Fitted to the first renders measured on
the 2-core CPU, 2 threads, nothing else running, against the probe there (628 GFLOP/s bf16,
370 fp32): the quick start's ``draft`` took 99.0 s in bf16 (2.3× the bare network's time for
its counted work) and 165.6 s in fp32 (2.3×); ``print --size 1024`` 99.7 s, ``--size 2048``
155.7 s, the 30 × 40 cm poster 1225 s. With these factors the probe's first guess of those
four is −12 %, +11 %, +20 % and −20 %, of the fp32 ``draft`` −11 % (with the 1.2 measured in
fp32 by ``benchmarks/step_overhead.py``: −52 %, −32 %, −19 %, −46 %: the bare network runs
faster per FLOP than a whole evaluation, most of all under bf16)."""
DEPTH_COST = {"relu1_1": 3.5, "relu1_2": 3.5, "relu2_1": 2.5, "relu2_2": 2.0, "relu3_1": 1.4}
"""Seconds per FLOP of a network that stops early over the whole model's, at the sizes such
stages run (a detail stage is a large one): its 64- and 128-channel layers at full and half
resolution move more memory per FLOP. Measured on the 2-core CPU, bf16, nothing else running:
relu3_1 at 1181×886 px 5.2 s/TFLOP and the learned median of seven such stages 5.24, against
3.7 for the whole model with Gram (the quick start's ``draft``): 1.4; relu2_1 5.5–6.8× the bare
probe (the 2048 px print's last stage, learned; the poster's 4724 px one, 10.9 s/TFLOP) over
the whole model's 2.3×: 2.4–3.0, so 2.5. ``relu1_*`` and ``relu2_2`` are not measured alone."""
KIND_COST = {"gram": 1.0, "w2": 1.35, "swd": 1.35}
"""An evaluation's time with each style loss over the Gram loss's, untiled, before renders
here have taught better. SWD: 1.35 in bf16 on the 2-core CPU, nothing else running (its
stages' learned median 4.93 s/TFLOP against the Gram whole model's 3.66, the probe × the
:data:`OVERHEAD`); in fp32 it measured 1.67 (``docs/performance.md``: 512×384 px Gram 1.80 s,
W2 2.04 s, SWD 3.00 s; 256×192 px 0.43, 0.58, 0.68 s). W2: 1.35, the larger fp32
measurement (not measured in bf16)."""
TILED_PASSES = 1.5
"""Counted work of a tiled evaluation over its tiles' untiled evaluations: every tile runs
forward without gradients (½), then forward and backward (1) (``stages.tiling``)."""
TILED_COST = 2.5
"""A tiled stage's seconds per counted TFLOP over the untiled stage's, same style loss (small
tiles run the network less efficiently; the tiles' bookkeeping, feathering, pooled scores):
2.4 and 2.5 measured on the 2-core CPU at 256×192 px in 128 px tiles against untiled, Gram,
four Adam evaluations each, two interleaved pairs (710/297 and 375/149 s/TFLOP, on a machine
shared at a load of 13–17). Larger tiles cost less: three tiled stages rendered here replace
it."""
HISTORY, MIN_OWN, MAX_KEYS = 16, 3, 16
"""Observations kept per device key and group (the learned rate is their median); how many a
group needs before its own alone decide; device keys kept (the least recently used goes)."""
MIN_EVALUATION_GFLOP = 50.0
"""Stages whose evaluations are smaller than this (about 224 × 168 px through relu5_1) are not
recorded: their fixed costs (targets, Python) would make large renders look slow."""
MIN_STAGE_SECONDS = 1.0
"""Stages shorter than this are not recorded (timer noise)."""
BUSY_LOAD = 0.75
"""A CPU is busy when its 1-minute load average exceeds this many runnable tasks per core:
a probe then is not kept (on 2 cores: above 1.5)."""
H100_RATE = 167_000.0
"""GFLOP/s of an H100 on this work: VGG19 → relu5_1 forward + backward at 4096² px (24.2 TFLOP)
in 0.145 s, TF32 and channels_last (measured in the project's first round)."""
CONFIRM_SECONDS = 30 * 60
"""A render estimated longer than this on a CPU asks for ``--yes`` first."""
TIMINGS, LOCK_SECONDS = "timings.json", 5.0
"""The file in the state folder that holds learned timings and quiet probes; how long (s) a
render waits for another's write of it before it skips its own."""


@dataclass(frozen=True)
class StageWork:
    """One stage's work, as the estimate counts it.

    Attributes:
        size: ``(H, W)`` of the stage's image in px.
        evaluations: evaluations (a cap, or those run).
        kind: the style loss, one of ``vocabulary.STYLE_LOSSES`` (``gram``, ``w2``, ``swd``).
        tile_edge: tile edge in px of a tiled stage, ``None``: untiled.
        tile_overlap: overlap of neighbouring tiles in px.
        deepest: the deepest layer of the stage's own network (a detail stage's own layers),
            ``None``: the run's.
    """

    size: tuple[int, int]
    evaluations: int
    kind: str = "gram"
    tile_edge: int | None = None
    tile_overlap: int = 64
    deepest: str | None = None

    @property
    def tiled(self) -> bool:
        """Whether the stage runs in more than one tile."""
        return self.tile_edge is not None and max(self.size) > self.tile_edge

    @property
    def group(self) -> str:
        """What its rate is learned with: the style loss, ``+tiled`` for a tiled stage,
        ``@layer`` for a stage of its own, shallower network (its FLOPs run slower)."""
        group = f"{self.kind}+tiled" if self.tiled else self.kind
        return group if self.deepest is None else f"{group}@{self.deepest}"

    def tflop(self, deepest: str) -> float:
        """Counted TFLOP of the stage's evaluations through ``deepest`` (a layer name): a tiled
        stage counts its tiles (the grid unshifted) × :data:`TILED_PASSES`; the stage's own
        :attr:`deepest` layer, if it has one, counts instead."""
        deepest = self.deepest or deepest
        h, w = self.size
        if not self.tiled:
            return self.evaluations * evaluation_flops(deepest, h, w) / 1e12
        assert self.tile_edge is not None
        tiles = tile_grid(h, w, self.tile_edge, self.tile_overlap, (0, 0))
        per = sum(evaluation_flops(deepest, t.bottom - t.top, t.right - t.left) for t in tiles)
        return self.evaluations * TILED_PASSES * per / 1e12


def prior_cost(group: str) -> float:
    """A group's seconds per TFLOP over untiled Gram stages', before it is learned:
    :data:`KIND_COST` × :data:`TILED_COST` when tiled × :data:`DEPTH_COST` of its deepest
    layer (an unknown style loss costs as SWD)."""
    group, _, deepest = group.partition("@")
    kind, _, tiled = group.partition("+")
    cost = KIND_COST.get(kind, max(KIND_COST.values()))
    return cost * (TILED_COST if tiled else 1.0) * DEPTH_COST.get(deepest, 1.0)


def stage_work(
    stage: Stage, evaluations: int | None = None, layers: Iterable[str] = ()
) -> StageWork:
    """The :class:`StageWork` of a planned ``stage`` (``runner.schedule`` / ``runner.planned``),
    at its cap unless ``evaluations`` says how many ran, through the deepest of its layers
    (``layers``: the run's network's); a stage without a style term counts as Gram."""
    kinds = [t.loss for t in stage.terms if t.loss in STYLE_LOSSES]
    mine = stage.content_layers is not None or stage.style_layers is not None
    own = stage.layers(layers) if mine else frozenset()
    return StageWork(
        size=stage.size,
        evaluations=stage.iterations if evaluations is None else evaluations,
        kind=kinds[0] if kinds else "gram",
        tile_edge=stage.tile_edge,
        tile_overlap=stage.tile_overlap,
        deepest=deepest_layer(own) if own else None,
    )


@dataclass(frozen=True)
class Estimate:
    """A render's work and time before it starts.

    Attributes:
        stage_seconds: the upper bound of each stage in s, in order.
        flops: the counted work of every stage at its cap (FLOP).
        rate: the effective GFLOP/s of the whole (``flops`` / seconds).
        source: where the speed came from: ``learned`` (renders here), ``probe`` (a quiet probe)
            or ``busy probe`` (a probe while other work shared the CPU: often far too slow).
        observations: how many recorded stages the learned speed rests on.
    """

    stage_seconds: tuple[float, ...]
    flops: float
    rate: float
    source: str = "probe"
    observations: int = 0

    @property
    def seconds(self) -> float:
        """The whole render's upper bound in s."""
        return sum(self.stage_seconds)

    @property
    def h100_seconds(self) -> float:
        """What the same work would take on an H100 (:data:`H100_RATE`), in s."""
        return self.flops * OVERHEAD / (H100_RATE * 1e9)


def learned_cost(history: Mapping[str, Sequence[float]], group: str) -> tuple[float, int] | None:
    """Seconds per counted TFLOP of ``group`` learned from ``history`` (group → observed s/TFLOP,
    oldest first): the median of the group's own observations once it has
    :data:`MIN_OWN`; before, the median of those and every other group's, each × the
    :func:`prior_cost` ratio of the two groups. ``None`` with no observations. Returns
    ``(s/TFLOP, observations used)``."""
    own = [v for v in history.get(group, ()) if v > 0]
    if len(own) >= MIN_OWN:
        return statistics.median(own), len(own)
    scaled = [
        v / prior_cost(other) * prior_cost(group)
        for other, values in history.items()
        if other != group
        for v in values
        if v > 0
    ]
    pooled = own + scaled
    return (statistics.median(pooled), len(pooled)) if pooled else None


def estimate_stages(
    works: Sequence[StageWork],
    layers: set[str] | frozenset[str],
    history: Mapping[str, Sequence[float]],
    probe_rate: Callable[[], tuple[float, bool]],
) -> Estimate:
    """The estimate of ``works`` through the deepest of ``layers``: at the learned speed of
    each stage's group (:func:`learned_cost`), else at ``probe_rate()`` (GFLOP/s of the bare
    network, busy or not; called only when nothing is learned) × :data:`OVERHEAD` ×
    :func:`prior_cost`."""
    deepest = deepest_layer(layers)
    tflops = [work.tflop(deepest) for work in works]
    learned = [learned_cost(history, work.group) for work in works]
    if all(item is not None for item in learned):
        costs = [item[0] for item in learned if item is not None]
        used = max((item[1] for item in learned if item is not None), default=0)
        source = "learned"
    else:
        rate, busy = probe_rate()
        costs = [1e3 / rate * OVERHEAD * prior_cost(work.group) for work in works]
        used, source = 0, "busy probe" if busy else "probe"
    seconds = tuple(t * c for t, c in zip(tflops, costs, strict=True))
    total = sum(tflops) * 1e12
    rate = total / 1e9 / sum(seconds) if sum(seconds) > 0 else 0.0
    return Estimate(seconds, total, rate, source, used)


def rate_key(device: torch.device, precision: str, threads: int | None = None) -> str:
    """What a learned speed is kept under: the device (a GPU by its name), the precision
    really used, the thread count (``torch.get_num_threads()`` unless given) and torch's
    version."""
    name = str(device)
    if device.type == "cuda":
        name = f"{device} {torch.cuda.get_device_name(device)}"
    threads = torch.get_num_threads() if threads is None else threads
    return f"{name}|{precision}|{threads} threads|torch {torch.__version__}"


def machine_busy(device: torch.device) -> tuple[bool, float]:
    """Whether other work shares the CPU now: the 1-minute load average per usable core over
    :data:`BUSY_LOAD`. A GPU is never busy by this measure; where the load average is unknown
    (not Unix) the CPU counts as quiet. Returns ``(busy, load per core)``."""
    if device.type != "cpu":
        return False, 0.0
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False, 0.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per_core = load / max(cores or 1, 1)
    return per_core > BUSY_LOAD, per_core


def timings_path() -> Path:
    """``timings.json`` in the state folder."""
    return state_folder() / TIMINGS


def read_timings(path: Path) -> dict[str, Any]:
    """The learned timings at ``path``: ``{key: {"probe": GFLOP/s, "used": unix time,
    "stages": {group: [s/TFLOP, …]}}}``; empty when missing, damaged or not ours (it is
    rewritten at the next record)."""
    try:
        data = read_json(path, TIMINGS) if path.exists() else {}
    except (OSError, StyleCascadeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _history(entry: Mapping[str, Any]) -> dict[str, list[float]]:
    """A key's observations by group, numbers only."""
    stages = entry.get("stages")
    if not isinstance(stages, dict):
        return {}
    return {
        group: [float(v) for v in values if isinstance(v, (int, float)) and v > 0]
        for group, values in stages.items()
        if isinstance(values, list)
    }


def observed(
    data: Mapping[str, Any],
    key: str,
    group: str | None,
    value: float | None,
    now: float,
    probe: float | None = None,
) -> dict[str, Any]:
    """``data`` (:func:`read_timings`) with one observation of ``value`` s/TFLOP for ``group``
    under ``key`` (the last :data:`HISTORY` kept) and/or a quiet ``probe`` in GFLOP/s; the key
    marked used at ``now`` (unix s) and only the :data:`MAX_KEYS` most recently used keys
    kept. Pure: ``data`` is not changed."""
    entry = dict(data.get(key, {}))
    stages = _history(entry)
    if group is not None and value is not None:
        stages[group] = [*stages.get(group, []), float(f"{value:.4g}")][-HISTORY:]
    entry["stages"] = stages
    if probe is not None:
        entry["probe"] = float(f"{probe:.4g}")
    entry["used"] = round(now)
    kept = {k: v for k, v in data.items() if k != key and isinstance(v, dict)}
    newest = sorted(kept, key=lambda k: kept[k].get("used", 0), reverse=True)
    return {key: entry, **{k: kept[k] for k in newest[: MAX_KEYS - 1]}}


def _update(change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Read ``timings.json``, apply ``change`` and write it, under its lock; a file that cannot
    be written (read-only state folder, disk full) or a lock held longer than
    :data:`LOCK_SECONDS` skips the update: the next render learns instead."""
    path = timings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(path.with_name(TIMINGS + ".lock"), timeout=LOCK_SECONDS):
            write_json(path, change(read_timings(path)))
    except (OSError, StyleCascadeError, Timeout):
        pass


def full_width(extractor: VGGFeatures) -> bool:
    """Whether ``extractor`` is VGG19 at its full width (64 channels first), the network whose
    work :func:`~stylecascade.stages.vgg.evaluation_flops` counts (the tests' narrow one is
    not)."""
    first = next((m for m in extractor.net if isinstance(m, nn.Conv2d)), None)
    return first is not None and first.out_channels == 64


def record_stage(
    result: StageResult, extractor: VGGFeatures, device: torch.device, precision: str
) -> None:
    """Learn from a finished stage: its seconds per counted TFLOP, kept under
    :func:`rate_key` and the stage's group. Skipped (nothing written) for a narrow network,
    stages under :data:`MIN_STAGE_SECONDS` or with evaluations under
    :data:`MIN_EVALUATION_GFLOP`. Never raises for a file that cannot be written.

    Args:
        result: the stage's result (``stage``, ``evaluations``, ``seconds``).
        extractor: the network it ran through (its deepest layer counts the work).
        device: where it ran.
        precision: the precision really used (``device.effective_precision``).
    """
    work = stage_work(result.stage, result.evaluations, extractor.layers)
    deepest = work.deepest or extractor.deepest
    per_evaluation = evaluation_flops(deepest, *work.size) / 1e9
    if result.evaluations <= 0 or result.seconds < MIN_STAGE_SECONDS:
        return
    if per_evaluation < MIN_EVALUATION_GFLOP or not full_width(extractor):
        return
    value = result.seconds / work.tflop(deepest)
    key, now = rate_key(device, precision), time.time()
    _update(lambda data: observed(data, key, work.group, value, now))


_PROBED: dict[str, tuple[float, bool, float]] = {}
"""Probes of this process by key, ``(GFLOP/s, busy, time.monotonic())``: a quiet one for the
process's life (even where the file cannot be kept: each test's own state folder), a busy one
for :data:`BUSY_REUSE_SECONDS` (a gate that prices several sizes probes once)."""
BUSY_REUSE_SECONDS = 60.0
"""How long this process reuses a probe taken while the CPU was busy."""


def probe_rate(
    extractor: VGGFeatures, device: torch.device, precision: str, autocast: AbstractContextManager
) -> tuple[float, bool]:
    """GFLOP/s of the bare network on ``device``: a quiet probe kept before (this process or
    ``timings.json``), else probed now and kept in the file only if the machine was quiet
    (:func:`machine_busy`, before the probe). Returns ``(GFLOP/s, busy)``."""
    key = rate_key(device, precision)
    rate, busy, when = _PROBED.get(key, (0.0, False, -math.inf))
    if rate > 0 and (not busy or time.monotonic() - when < BUSY_REUSE_SECONDS):
        return rate, busy
    kept = read_timings(timings_path()).get(key, {}).get("probe")
    if isinstance(kept, (int, float)) and kept > 0:
        _PROBED[key] = (float(kept), False, time.monotonic())
        return float(kept), False
    busy, _load = machine_busy(device)
    rate = _probe(extractor, device, autocast)
    _PROBED[key] = (rate, busy, time.monotonic())
    if not busy:
        now = time.time()
        _update(lambda data: observed(data, key, None, None, now, probe=rate))
    return rate, busy


def estimate(
    works: Sequence[StageWork],
    extractor: VGGFeatures,
    device: torch.device,
    precision: str,
    autocast: AbstractContextManager,
) -> Estimate:
    """The gate's estimate of ``works`` (:func:`stage_work` of each planned stage still to run)
    on ``device`` at ``precision`` (the precision really used, with its ``autocast``): learned
    from the renders recorded here (:func:`record_stage`), else from a probe
    (:func:`probe_rate`; the estimate's ``source`` says which, and whether the probe was busy).
    """
    return pricer(extractor, device, precision, autocast)(works)


def pricer(
    extractor: VGGFeatures,
    device: torch.device,
    precision: str,
    autocast: AbstractContextManager,
) -> Callable[[Sequence[StageWork]], Estimate]:
    """:func:`estimate` of any ``works``, the learned timings read once (the gate prices many
    sizes and photos); ``extractor`` is only probed, so a network of the same shape with random
    weights prices as well as the real one."""
    history = _history(read_timings(timings_path()).get(rate_key(device, precision), {}))
    probe = functools.partial(probe_rate, extractor, device, precision, autocast)
    return lambda works: estimate_stages(works, extractor.layers, history, probe)


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


def smallest_size(
    shapes: Sequence[tuple[int, int]], need: int, minimum: int = MIN_LONG_EDGE
) -> int:
    """The smallest long edge (px, at least ``minimum``) at which every image of ``shapes``
    (``(H, W)`` px), resized to it (``stages.resample.fit_long_edge``, rounding included),
    keeps ``need`` px on its short edge: what ``inspect --size`` may suggest and then
    accepts."""
    lower = ((need - 0.5) * max(h, w) / min(h, w) for h, w in shapes)  # rounding up helps
    edge = max([minimum, *(math.floor(x) for x in lower)])
    while any(min(fit_long_edge(h, w, edge)) < need for h, w in shapes):
        edge += 1  # at most a few steps
    return edge


def duration(seconds: float) -> str:
    """``95`` → ``1 min 35 s``; ``7300`` → ``2 h 1 min`` (minutes cut, not rounded); under
    half a second: ``under 1 s``."""
    if seconds < 0.5:
        return "under 1 s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
