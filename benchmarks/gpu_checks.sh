#!/usr/bin/env bash
# The GPU checks in one call on the lent GPU machine: install, `pytest -m gpu` (tests/test_gpu.py), then
# `effnet benchmark` rows: B0 at 224 px, batch 256, bf16-mixed, channels_last, eager / --vs-bare /
# --compile, and B0-B7 at native sizes with --grad-checkpointing. Everything lands in $OUT (the device tool
# brings it back; at most 8 files). See docs/gpu.md.
#
# Here, once:   bash benchmarks/build_wheelhouse.sh        (writes .whl/, git-ignored through info/exclude)
# Device call:  command "bash benchmarks/gpu_checks.sh", carry [".whl"], timeout_s 600
#
# Each stage has its own time limit, so a stage that hangs still leaves the others' results; the benchmark gets
# what is left of END_BY (s, default 570: the call's 600 s limit less time to hand the files back). Environment
# knobs: TESTS_TIMEOUT (s, default 300), BENCH_STEPS (timed steps of the B0 rows, default 50), FAMILY_STEPS
# (of the B0-B7 checkpointed rows, default 20), BENCH_ARGS (extra options for every `effnet benchmark` row),
# LEGACY_THROUGHPUT=1 (also benchmarks/gpu_throughput.py, with COMPILE=1 its compiled rows, if time is left),
# SKIP_TESTS=1 (the benchmark only, e.g. a follow-up call for the variants a cut-off run did not reach),
# SKIP_INSTALL=1 with PY="uv run python" on a GPU machine that has the project's environment already.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
END_BY=${END_BY:-570}  # seconds after the start (bash's SECONDS)
PY=${PY:-python3}  # the device image's Python 3.12, which holds torch
# -P (Python >= 3.11) below: the repository root is not put on sys.path, so `import effnet_lightning` finds the
# installed package (with its datamodules/ and callbacks/ subpackages), not the bare folder in the checkout.
say() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/summary.txt"; }

say "environment"
{
  date -u
  nvidia-smi || true
  $PY -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda,
'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name() if torch.cuda.is_available() else 'NO CUDA')"
  $PY -m pip list 2>/dev/null | grep -iE '^(torch|torchvision|lightning|pytorch-lightning|timm|torchmetrics|numpy|setuptools|opencv|tensorboard|rich|pytest) '
} >"$OUT/env.txt" 2>&1
tail -n 12 "$OUT/env.txt"

if [ -n "${SKIP_INSTALL:-}" ]; then
  say "install skipped (SKIP_INSTALL): using $PY as it is"
else
say "install: carried wheels into /tmp/site, the project with pip install --no-deps -e ."
ls .whl/*.whl >/dev/null 2>&1 || { say "no .whl/ here: run benchmarks/build_wheelhouse.sh and carry .whl"; exit 2; }
{
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} &&
    if ! $PY -m pip install -q --no-index --no-deps --no-build-isolation -e .; then
      # Fallback when the image's setuptools cannot build an editable install: the same package layout
      # (datamodules/ and callbacks/ as effnet_lightning subpackages, pyproject's package-dir) through links.
      echo "editable install failed; linking the package into /tmp/shim instead"
      mkdir -p /tmp/shim/bin && cp -rs "$PWD/effnet_lightning" /tmp/shim/ &&
        ln -sfn "$PWD/datamodules" /tmp/shim/effnet_lightning/datamodules &&
        ln -sfn "$PWD/callbacks" /tmp/shim/effnet_lightning/callbacks &&
        printf '#!/bin/sh\nexec %s -P -m effnet_lightning.cli "$@"\n' "$(command -v $PY)" >/tmp/shim/bin/effnet &&
        chmod +x /tmp/shim/bin/effnet && export PYTHONPATH=/tmp/shim:$PYTHONPATH PATH=/tmp/shim/bin:$PATH
    fi
} >"$OUT/install.log" 2>&1
$PY -P -c "import albumentations, jsonargparse, docstring_parser, typeshed_client, effnet_lightning.cli
from effnet_lightning.datamodules.cifar10 import CIFAR10DataModule; print('imports ok')" >>"$OUT/install.log" 2>&1 ||
  { tail -n 30 "$OUT/install.log"; say "install failed (install.log)"; exit 2; }
command -v effnet >>"$OUT/install.log" 2>&1 || say "no effnet console script on PATH: the DDP test will fail"
tail -n 3 "$OUT/install.log"
fi

if [ -n "${SKIP_TESTS:-}" ]; then
  say "pytest skipped (SKIP_TESTS)"
else
say "pytest -m gpu (tests/test_gpu.py)"
EFFNET_GPU_REPORT="$OUT/gpu_report.jsonl" timeout -k 10 "${TESTS_TIMEOUT:-300}" \
  $PY -P -m pytest -m gpu tests/test_gpu.py -v -rA -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" \
  >"$OUT/gpu_tests.log" 2>&1
say "pytest exit $?"
grep -E '^(PASSED|FAILED|ERROR|SKIPPED)|^=+ .*(passed|failed|error)' "$OUT/gpu_tests.log" | tail -n 15
cat "$OUT/gpu_report.jsonl" 2>/dev/null
fi

say "effnet benchmark (GPU rows)"
# One `effnet benchmark` per row, most wanted first, each within the time left until END_BY, so a cut-off or an
# out-of-memory row keeps the rows before it. CSV rows go to throughput.csv (one header), stderr to throughput.log.
B0_ROW="--variants b0 --resolution 224 --batch-size 256 --precision bf16-mixed --channels-last --device cuda"
B0_ROW="$B0_ROW --steps ${BENCH_STEPS:-50} --format csv"
bench() {  # bench LABEL ARGS...: one row (or one per variant) appended to throughput.csv
  local label=$1; shift
  local left=$((END_BY - SECONDS))
  if [ "$left" -lt 30 ]; then say "benchmark $label skipped: ${left}s left"; return; fi
  echo "# $label: effnet benchmark $* ${BENCH_ARGS:-}" >>"$OUT/throughput.log"
  timeout -k 10 "$left" $PY -P -m effnet_lightning.cli benchmark "$@" ${BENCH_ARGS:-} >"$OUT/row.csv" 2>>"$OUT/throughput.log"
  local status=$?
  if [ -s "$OUT/throughput.csv" ]; then tail -n +2 "$OUT/row.csv"; else cat "$OUT/row.csv"; fi >>"$OUT/throughput.csv"
  rm -f "$OUT/row.csv"
  say "benchmark $label exit $status"
}
: >"$OUT/throughput.csv"
bench "b0 eager" $B0_ROW
bench "b0 vs bare loop" $B0_ROW --vs-bare
bench "b0 compiled" $B0_ROW --compile
for variant in b0 b1 b2 b3 b4 b5 b6 b7; do  # native resolutions, gradient checkpointing
  bench "$variant checkpointed" --variants $variant --batch-size 256 --precision bf16-mixed --channels-last \
    --device cuda --steps "${FAMILY_STEPS:-20}" --grad-checkpointing --format csv
done
cat "$OUT/throughput.csv"
if [ -n "${LEGACY_THROUGHPUT:-}" ]; then  # benchmarks/gpu_throughput.py (B0-B7 eager, both layouts), if time is left
  say "gpu_throughput.py (LEGACY_THROUGHPUT)"
  LEFT=$((END_BY - SECONDS)); [ "$LEFT" -ge 60 ] || LEFT=60
  timeout -k 10 "$LEFT" $PY benchmarks/gpu_throughput.py ${COMPILE:+--compile} >>"$OUT/throughput.log" 2>&1
  say "gpu_throughput.py exit $?"
fi
