#!/usr/bin/env bash
# The GPU measurements behind stacked seeds (docs/performance.md) as one script, so a
# lent GPU's few minutes go to measuring, not typing.  From the repository root:
#
#   CNNBENCH_DATA=/path/to/data OUT=/some/dir benchmarks/gpu_stacked.sh
#
# On a lent device machine, which reaches no dataset host: copy ../shared/data/mnist into an
# ignored .gpu-data/mnist here, carry .gpu-data, and run it with CNNBENCH_DATA=.gpu-data in one
# call of at most 600 s (the step limits below add up to 570 s; expect about half).
#
# It writes one log and the tables it measured into $OUT (default reports/gpu-stacked):
#   gpu_stacked.log          every command, its output and its wall time
#   perf-stack.csv           bench perf: 32 stacked convnet seeds (and 8 of lenet-12) against one run
#   grid-groups.csv          runs.csv of the default grid in seed groups (today's default)
#   grid-stacked.csv         runs.csv of the same grid stacked (--stack-seeds 8)
#   grid-6x20x5.csv          runs.csv of 6 networks x 20 seeds x 5 epochs, stacked
# Each step has its own time limit; a failing step is logged and the next one runs.
# Smaller settings for a smoke test elsewhere: DEVICE=cpu ARCHS=lenet-12 SEEDS=2 BIG_SEEDS=2 EPOCHS=1 STEPS=5
set -u -o pipefail

OUT=${OUT:-reports/gpu-stacked}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
ARCHS=${ARCHS:-tag:default}
SEEDS=${SEEDS:-3}
BIG_SEEDS=${BIG_SEEDS:-20}
EPOCHS=${EPOCHS:-5}
STEPS=${STEPS:-300}
export PYTHONUNBUFFERED=1 COLUMNS=200  # rich wraps at 80 columns when writing to a pipe
mkdir -p "$OUT"
log="$OUT/gpu_stacked.log"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2 started rc
    shift 2
    echo "== $name: $*" | tee -a "$log"
    started=$(date +%s%N)
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    rc=$?
    echo "== $name: exit $rc after $(( ($(date +%s%N) - started) / 1000000 )) ms" | tee -a "$log"
}

grid() {  # grid NAME LIMIT ARGS...: a grid into scratch, its runs.csv kept as $OUT/NAME.csv
    local name=$1 limit=$2
    shift 2
    step "$name" "$limit" "$PYTHON" -m bench --device "$DEVICE" --dataset mnist --no-report \
        --out "$scratch/$name" "$@"
    [ -f "$scratch/$name/runs.csv" ] && cp "$scratch/$name/runs.csv" "$OUT/$name.csv"
}

: > "$log"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  git rev-parse --short HEAD 2>/dev/null || true; } | tee -a "$log"

if [ "$DEVICE" != cpu ]; then
    step cuda-tests 180 "$PYTHON" -m pytest tests/test_cuda.py -q -x -p no:cacheprovider
fi
step perf-stack 90 "$PYTHON" -m bench perf --device "$DEVICE" --archs convnet --stack-seeds 32 \
    --steps "$STEPS" --repeats 3 --csv "$scratch/perf-convnet.csv"
step perf-stack-lenet 60 "$PYTHON" -m bench perf --device "$DEVICE" --archs lenet-12 --stack-seeds 8 \
    --steps "$STEPS" --repeats 3 --csv "$scratch/perf-lenet.csv"
cat "$scratch"/perf-convnet.csv > "$OUT/perf-stack.csv" 2>/dev/null
tail -n +2 "$scratch"/perf-lenet.csv >> "$OUT/perf-stack.csv" 2>/dev/null
grid grid-groups 60 --archs "$ARCHS" --seeds "$SEEDS" --epochs "$EPOCHS"
grid grid-stacked 60 --archs "$ARCHS" --seeds "$SEEDS" --epochs "$EPOCHS" --stack-seeds 8
grid grid-6x20x5 120 --archs "$ARCHS" --seeds "$BIG_SEEDS" --epochs "$EPOCHS" --stack-seeds "$BIG_SEEDS"
grep -E "^== .*exit|runs \(.*\) in|cost .*x the time of one" "$log"
