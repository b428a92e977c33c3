#!/usr/bin/env bash
# Prepare the GPU suite for a machine without network (run here, where PyPI answers):
#
#     bash benchmarks/gpu_prepare.sh [--check]  # from the repository root, with .venv installed
#
# Writes the ignored folder .gpu/ that the GPU machine needs beside the working tree:
#   .gpu/vgg19-compact.pt   the caffe VGG19 through relu5_1 in float16, 26 MB
#                           (`stylecascade weights export --compact`; verified by its digest)
#   .gpu/wheels/*.whl       the packages the lent machine's Python 3.12 lacks (its image has torch
#                           2.11 and most of our dependencies: see /work/.library/device/KINDS.md),
#                           at this venv's versions, for CPython 3.12 on manylinux x86-64
# and says how much would travel (tracked and untracked-not-ignored files plus .gpu/, limit
# 64 MiB) and the command that runs the suite there: `bash benchmarks/gpu.sh`, carrying .gpu.
# --check: only that last part, for a .gpu/ prepared before (`gpu.sh --dry-run` ends with it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-.venv/bin/python}
BUNDLE=.gpu
LIMIT_MIB=64
# What the lent machine lacks, by its package list (pydantic and its parts, platformdirs, pypng);
# typer and click travel too, because ours need typer ≥ 0.29 and that image's version is unknown.
MISSING=(pydantic pydantic_core annotated_types typing_inspection typing_extensions
    platformdirs pypng typer click)

prepare() {
    mkdir -p "$BUNDLE/wheels"
    rm -f "$BUNDLE"/wheels/*.whl
    "$PY" -m stylecascade weights export --compact "$BUNDLE/vgg19-compact.pt" --overwrite
    local pins=() name version
    for name in "${MISSING[@]}"; do
        version=$("$PY" -c 'import sys; from importlib.metadata import version as v
print(v(sys.argv[1]))' "$name")
        pins+=("$name==$version")
    done
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$BUNDLE/wheels" "${pins[@]}"
}

case ${1:-} in
"") prepare ;;
--check)
    [[ -f $BUNDLE/vgg19-compact.pt ]] || {
        echo "error: no $BUNDLE/vgg19-compact.pt: run 'bash benchmarks/gpu_prepare.sh'" >&2
        exit 1
    }
    ;;
*) echo "error: unknown argument '$1' (--check)" >&2 && exit 2 ;;
esac

tree_bytes=$(git ls-files -z --cached --others --exclude-standard |
    xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
bundle_bytes=$(find "$BUNDLE" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
total=$((tree_bytes + bundle_bytes))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "working tree $(mib "$tree_bytes") + $BUNDLE $(mib "$bundle_bytes")" \
    "($(ls "$BUNDLE"/wheels | wc -l) wheels) = $(mib "$total") of $LIMIT_MIB MiB"
if ((total > LIMIT_MIB * 1048576)); then
    echo "error: more than $LIMIT_MIB MiB would travel; ignore or carry less" >&2
    exit 1
fi
echo "send: run(command='bash benchmarks/gpu.sh', carry=['$BUNDLE'], timeout_s=540)"
