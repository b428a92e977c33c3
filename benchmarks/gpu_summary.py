"""The GPU suite's results in three files (``benchmarks/gpu.sh`` calls it last).

    python benchmarks/gpu_summary.py WORK OUT

Reads WORK (``steps.tsv``, ``env.txt``, each render's manifest ``render-NAME.json`` or, for one
stopped by its time limit, the interrupted manifest in ``render-NAME.png.checkpoint/``, and
the benchmarks' ``step_overhead.json`` and ``memory.json``) and writes into OUT:

- ``renders.json``: every render's manifest by name (stages with seconds, peak and planned
  memory);
- ``benchmarks.json``: the benchmarks' results by name;
- ``summary.md``: per render the seconds and peak memory of each stage against the goals
  (``print`` at 4096 px ≤ 20 s, peak ≤ 30 GiB), the step overhead (goal ≤ 1.10 in bf16 at 4096
  px), measured against planned memory, and every step's exit code and seconds.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

GOAL_PRINT_4096_S = 20.0
GOAL_PRINT_4096_GIB = 30.0
GOAL_OVERHEAD = 1.10


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def manifests(work: Path) -> dict[str, dict]:
    """Each render's manifest by name (``print-4096-bf16``), finished or interrupted."""
    found = {}
    for path in sorted(work.glob("render-*.png")) + sorted(work.glob("render-*.png.checkpoint")):
        name = path.name.removeprefix("render-").split(".png")[0]
        for candidate in (path.with_suffix(".json"), path / "manifest.json"):
            if candidate.is_file() and name not in found:
                found[name] = json.loads(candidate.read_text())
    return found


def render_rows(renders: dict[str, dict], steps: dict[str, dict]) -> list[list[Any]]:
    """One row per render: name, status, stages, stage seconds, wall, peak GiB, goal."""
    rows = []
    for name, manifest in renders.items():
        stages = manifest.get("stages", [])
        seconds = sum(s["seconds"] for s in stages)
        peaks = [s["peak_memory_mib"] for s in stages if s.get("peak_memory_mib") is not None]
        peak = max(peaks) / 1024 if peaks else None
        goal = ""
        if name.startswith("print-4096"):
            met = seconds <= GOAL_PRINT_4096_S and (peak or 0) <= GOAL_PRINT_4096_GIB
            goal = "met" if met and manifest.get("status") == "done" else "missed"
        wall = steps.get(f"render-{name}", {}).get("seconds", "—")
        rows.append([name, manifest.get("status", "—"), manifest.get("precision", "—"),
                     len(stages), fmt(seconds), wall, fmt(peak, ".2f"), goal])  # fmt: skip
    return rows


def stage_rows(renders: dict[str, dict]) -> list[list[Any]]:
    rows = []
    for name, manifest in renders.items():
        for i, s in enumerate(manifest.get("stages", []), 1):
            per = s["seconds"] / s["iterations"] * 1e3 if s.get("iterations") else None
            memory = [fmt(s.get(k), ".0f") for k in ("peak_memory_mib", "estimated_memory_mib")]
            size = "×".join(map(str, s["size"]))
            seconds = [fmt(s["seconds"], ".2f"), fmt(per)]
            tile = s.get("tile") or "—"
            rows.append([name, i, size, s.get("iterations"), *seconds, *memory, tile])
    return rows


def benchmark_lines(benchmarks: dict[str, dict]) -> list[str]:
    out = ["", f"## step_overhead (full step ÷ bare VGG19 fwd+bwd; goal ≤ {GOAL_OVERHEAD})", ""]
    data = benchmarks.get("step_overhead")
    out += table(["size", "precision", "bare ms", "full ms", "ratio"], [
        ["×".join(map(str, r["size"])), r.get("precision", "—"), fmt(r["bare_s"] * 1e3),
         fmt(r["full_s"] * 1e3), fmt(r["ratio"], ".3f")] for r in data["results"]
    ]) if data else ["no result"]  # fmt: skip
    out += ["", "## memory (an L-BFGS step: measured peak against the plan)", ""]
    data = benchmarks.get("memory")
    out += table(["size", "precision", "measured MiB", "planned MiB", "planned ÷ measured"], [
        ["×".join(map(str, r["size"])), r["precision"], fmt(r["measured_bytes"] / 2**20, ".0f"),
         fmt(r["planned_bytes"] / 2**20, ".0f"),
         fmt(r["planned_bytes"] / r["measured_bytes"] if r["measured_bytes"] else None, ".2f")]
        for r in data["results"]
    ]) if data else ["no result"]  # fmt: skip
    for data in benchmarks.values():
        out += [f"- failed: {f['precision']}: {f['error']}" for f in data.get("failures", [])]
    return out


def main(work: Path, out: Path) -> None:
    steps = {r["step"]: r for r in csv.DictReader(open(work / "steps.tsv"), delimiter="\t")}
    renders = manifests(work)
    benchmarks = {
        name: json.loads((work / f"{name}.json").read_text())
        for name in ("step_overhead", "memory")
        if (work / f"{name}.json").is_file()
    }
    env = (work / "env.txt").read_text() if (work / "env.txt").is_file() else ""
    lines = ["# GPU suite", ""]
    lines += [x for x in env.splitlines() if x.startswith(("GPU ", "torch ", "stylecascade "))]
    lines += ["", "## Renders of examples/tubingen.jpg × starry_night.jpg", ""]
    header = ["render", "status", "precision", "stages", "stage s", "wall s", "peak GiB"]
    lines += table([*header, "goal (print 4096: ≤ 20 s, ≤ 30 GiB)"], render_rows(renders, steps))
    lines += ["", "Per stage (peak: `torch.cuda.max_memory_allocated`; planned: the memory plan):"]
    lines += [""] + table(["render", "stage", "size", "evaluations", "s", "ms/eval", "peak MiB",
                           "planned MiB", "tile"], stage_rows(renders))  # fmt: skip
    lines += benchmark_lines(benchmarks)
    lines += ["", "## Steps", ""] + table(
        ["step", "exit", "seconds", "limit s"],
        [[r["step"], r["exit"], r["seconds"], r["limit_s"]] for r in steps.values()],
    )
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "renders.json").write_text(json.dumps(renders, indent=1), encoding="utf-8")
    (out / "benchmarks.json").write_text(json.dumps(benchmarks, indent=1), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
