#!/usr/bin/env bash
# The GPU suite of stylecascade: one call on a lent GPU machine, ≤ 8 minutes, no network there.
#
#     bash benchmarks/gpu_prepare.sh     # here, once: .gpu/ (compact weights, wheels), sizes
#     bash benchmarks/gpu.sh --dry-run   # here: every step on the CPU at 64 px, then the check
#     bash benchmarks/gpu.sh             # there, from the repository root, carrying .gpu
#
# There, with that machine's own Python (python3, torch 2.11): the wheels in .gpu/wheels are
# installed with --no-index into a temporary folder, stylecascade is put on PYTHONPATH from this
# checkout (pipeline/ linked as the package `stylecascade`), and the weights are
# .gpu/vgg19-compact.pt (else the cached caffe weights). Nothing is downloaded. Steps, most
# important first, each under `timeout` within the budget (a step that fails or times out is
# recorded, the next one runs):
#   render print-4096-bf16        the `print` preset at 4096 px in bf16 (goal ≤ 20 s, ≤ 30 GiB)
#   step_overhead                 full step ÷ bare VGG19 at 2048 and 4096 px, bf16 / tf32 / fp32
#   cuda tests                    tests/test_cuda.py (precision paths, memory plan, a render)
#   render PRESET-SIZE-PRECISION  `standard` and `print` at 4096 and 2048 px in bf16, then tf32
#   memory                        an L-BFGS step's peak against the plan, 512–4096 px
#   render PRESET-SIZE-fp32       the same renders in fp32 (the slowest; the budget may cut them)
# Results, 8 files, in $OUT (else benchmarks/results/gpu/): summary.md, renders.json (each
# render's manifest: seconds, peak and planned memory per stage), benchmarks.json, env.txt,
# steps.tsv, cuda-tests.txt, logs.tar.gz, print-4096-bf16.jpg (the image, 1024 px).
#
# Environment: PYTHON (default python3; the dry run prefers .venv/bin/python), GPU_SUITE_BUDGET_S
# (default 460). Exit code: 0 when every step succeeded, 1 otherwise, 2 for a wrong argument.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DRY_RUN=0
for arg in "$@"; do
    case $arg in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" && exit 0 ;;
    *) echo "error: unknown argument '$arg' (--dry-run, --help)" >&2 && exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
if ((DRY_RUN)) && [[ -z ${PYTHON:-} && -x .venv/bin/python ]]; then PY=$ROOT/.venv/bin/python; fi
BUDGET_S=${GPU_SUITE_BUDGET_S:-460}
BUNDLE=.gpu
KILL_AFTER_S=10 # SIGKILL this long after timeout's SIGTERM (a render saves its checkpoint first)
RESERVE_S=15    # kept back for the summary
MIN_STEP_S=15   # a step is skipped rather than started with less time than this
TMP=$(mktemp -d "${TMPDIR:-/tmp}/stylecascade-gpu.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
WORK=$TMP/work
LOGS=$WORK/logs
OUT_DIR=${OUT:-$ROOT/benchmarks/results/gpu}
((DRY_RUN)) && OUT_DIR=${OUT:-$ROOT/benchmarks/results/gpu-dry-run}
mkdir -p "$LOGS" "$OUT_DIR"
DEADLINE=$((SECONDS + BUDGET_S - RESERVE_S))

# The wheels the machine lacks, installed without network (the dry run installs the same
# CPython 3.12 wheels, only to show that they install, and keeps its own packages).
if compgen -G "$BUNDLE/wheels/*.whl" >/dev/null; then
    target=()
    ((DRY_RUN)) && target=(--python-version 3.12 --implementation cp --only-binary=:all:)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target "$TMP/site" ${target[@]+"${target[@]}"} "$BUNDLE"/wheels/*.whl
    ((DRY_RUN)) || export PYTHONPATH=$TMP/site${PYTHONPATH:+:$PYTHONPATH}
    echo "wheels: $(find "$BUNDLE/wheels" -name '*.whl' | wc -l) installed into $TMP/site"
fi
# stylecascade from this checkout: the package folder `stylecascade` links pipeline/'s files,
# stages/ and presets/, as pyproject.toml maps them.
mkdir -p "$TMP/src/stylecascade"
ln -s "$ROOT"/pipeline/* "$TMP/src/stylecascade/"
ln -s "$ROOT/stages" "$TMP/src/stylecascade/stages"
ln -s "$ROOT/presets" "$TMP/src/stylecascade/presets"
export PYTHONPATH=$TMP/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ! "$PY" -c 'import sys, stylecascade.cli; assert stylecascade.__file__.startswith(sys.argv[1])' \
    "$TMP/src"; then
    echo "error: '$PY' cannot import stylecascade from this checkout (see above)" >&2
    exit 1
fi

if [[ -f $BUNDLE/vgg19-compact.pt ]]; then
    WEIGHTS=$ROOT/$BUNDLE/vgg19-compact.pt
else
    WEIGHTS=$("$PY" -c 'from stylecascade.weights import cached_path; print(cached_path("caffe"))')
    [[ -f $WEIGHTS ]] || {
        echo "error: no weights: run 'bash benchmarks/gpu_prepare.sh' here and carry $BUNDLE" >&2
        exit 1
    }
fi
export STYLECASCADE_TEST_WEIGHTS=$WEIGHTS
echo "weights: $WEIGHTS"

if ((DRY_RUN)); then
    DEVICE=cpu SIZES=(64) BENCH=(--quick) OVERHEAD_SIZES=()
else
    "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' || {
        echo "error: no CUDA GPU is visible to PyTorch; --dry-run checks the suite on a CPU" >&2
        exit 1
    }
    DEVICE=cuda SIZES=(4096 2048) BENCH=() OVERHEAD_SIZES=(--sizes 2048 4096)
fi

# Presets: the bundled `standard` and `print` with their precision line set.
"$PY" - "$TMP" <<'PY'
import sys
from pathlib import Path

import yaml
from stylecascade.preset_files import load_preset, read_preset

for name in ("standard", "print"):
    data = yaml.safe_load(read_preset(name)[0])
    for precision in ("fp32", "tf32", "bf16"):
        data["precision"] = precision
        path = Path(sys.argv[1]) / f"{name}-{precision}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        assert load_preset(str(path)).precision == precision, path
PY

printf 'step\texit\tseconds\tlimit_s\n' >"$WORK/steps.tsv"
FAILED=0

# run_step NAME CAP_S COMMAND...: COMMAND under timeout (CAP_S, less when the budget runs out),
# its output in logs/NAME.log; its exit code and seconds recorded in steps.tsv.
run_step() {
    local name=$1 cap=$2
    shift 2
    local left=$((DEADLINE - SECONDS - KILL_AFTER_S))
    local limit=$((cap < left ? cap : left))
    if ((limit < MIN_STEP_S)); then
        printf '%s\tskipped\t0\t%s\n' "$name" "$limit" >>"$WORK/steps.tsv"
        echo "== $name: skipped (${left}s of the budget left)"
        FAILED=$((FAILED + 1))
        return 0
    fi
    local began rc=0 took
    began=$(date +%s.%N)
    timeout --kill-after="$KILL_AFTER_S" "$limit" "$@" >"$LOGS/$name.log" 2>&1 || rc=$?
    took=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$took" "$limit" >>"$WORK/steps.tsv"
    echo "== $name: exit $rc in ${took}s (limit ${limit}s)"
    if ((rc != 0)); then
        FAILED=$((FAILED + 1))
        tail -n 3 "$LOGS/$name.log" | sed 's/^/   | /'
    fi
}

render() { # render PRESET SIZE PRECISION CAP_S
    local name=render-$1-$2-$3
    run_step "$name" "$4" "$PY" -m stylecascade render examples/tubingen.jpg \
        --style examples/starry_night.jpg --preset "$TMP/$1-$3.yaml" --size "$2" \
        --device "$DEVICE" --seed 0 --weights "$WEIGHTS" --yes -o "$WORK/$name.png"
}

{
    date -u
    timeout 30 nvidia-smi 2>&1 || echo "(no nvidia-smi)"
    timeout 60 "$PY" -c '
import platform, sys, torch, stylecascade
print("python", platform.python_version(), "at", sys.executable)
print("stylecascade", stylecascade.__version__, "from", stylecascade.__file__)
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN", torch.backends.cudnn.version())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("GPU", p.name, "| memory", f"{p.total_memory / 2**30:.1f} GiB", "| SMs", p.multi_processor_count)
print("CPU threads", torch.get_num_threads())
' 2>&1
    git rev-parse HEAD 2>/dev/null || echo "(not a git checkout)"
} >"$WORK/env.txt"

render print "${SIZES[0]}" bf16 90
run_step step_overhead 120 "$PY" benchmarks/step_overhead.py --device "$DEVICE" \
    --precision bf16,tf32,fp32 ${BENCH[@]+"${BENCH[@]}"} \
    ${OVERHEAD_SIZES[@]+"${OVERHEAD_SIZES[@]}"} --out "$WORK/step_overhead.json"
run_step cuda-tests 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
renders_in() { # renders_in PRECISION: both presets at each size, but the one rendered first
    local size preset
    for size in "${SIZES[@]}"; do
        for preset in print standard; do
            [[ $preset-$size-$1 == print-${SIZES[0]}-bf16 ]] && continue
            render "$preset" "$size" "$1" $((size > 2048 ? 75 : 45))
        done
    done
}
renders_in bf16
renders_in tf32
run_step memory 90 "$PY" benchmarks/memory.py --device "$DEVICE" --precision bf16,tf32,fp32 \
    ${BENCH[@]+"${BENCH[@]}"} --out "$WORK/memory.json"
renders_in fp32

"$PY" benchmarks/gpu_summary.py "$WORK" "$OUT_DIR" || FAILED=$((FAILED + 1))
cp "$WORK/env.txt" "$WORK/steps.tsv" "$OUT_DIR/"
cp "$LOGS/cuda-tests.log" "$OUT_DIR/cuda-tests.txt" 2>/dev/null || true
tar -czf "$OUT_DIR/logs.tar.gz" -C "$WORK" logs
"$PY" - "$WORK/render-print-${SIZES[0]}-bf16.png" "$OUT_DIR/print-${SIZES[0]}-bf16.jpg" <<'PY' || true
import sys

from PIL import Image

image = Image.open(sys.argv[1]).convert("RGB")
image.thumbnail((1024, 1024))
image.save(sys.argv[2], quality=90)
PY
echo "wrote $(find "$OUT_DIR" -maxdepth 1 -type f | wc -l) files into $OUT_DIR in ${SECONDS}s"
if ((DRY_RUN)); then
    bash benchmarks/gpu_prepare.sh --check
fi
if ((FAILED)); then
    echo "$FAILED step(s) failed, timed out or were skipped; see steps.tsv and logs.tar.gz" >&2
    exit 1
fi
