#!/usr/bin/env bash
# One call on a lent GPU machine, run from the repository root (README, "A lent GPU: the recipe").
#
#   bash tools/gpu_session.sh [SECONDS]      # default 560: ends well inside a 600-second call
#
# Stages, each switched off by setting it to 0: SMOKE (python -m advlib smoke on cuda; the call stops if it
# fails), BENCH (benchmarks/bench.py -> $OUT/bench.json), CELLS (the next pending full-profile cells, in
# protocols.CELL_ORDER, within what is left of SECONDS, after PROBE, benchmarks/step_probe.py, has chosen the
# fastest memory format and cuDNN mode; CELL_LIST=... names the cells, EXTENDED=1 adds the extended evaluation,
# which needs pyautoattack on PYTHONPATH; CELLS_PROFILE=large runs that profile's cells instead of full's).
# EXTEND_PROFILE=large (before CELLS) adds the extended evaluation to records made elsewhere, from the checkpoints
# tools/slim_checkpoints.py put in the carried .slim/ (EXTEND_CELLS=... names the cells; default: every carried one). Everything that comes back is under $OUT: the logs, bench.json,
# full-records.tgz (every record in results/full/, finished before the call's end) and <profile>-records.tgz.
# Check and unpack the records here with: python tools/gpu_collect.py <fetched folder>
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/advlib-gpu-out}"
mkdir -p "$OUT"
limit="${1:-560}"
if ls .whl/*.whl >/dev/null 2>&1; then  # torchattacks for the benchmark, carried as a wheel (no network there)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/advlib-site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/advlib-site"
fi
device="${DEVICE:-cuda}"  # DEVICE=cpu runs the same recipe on a CPU (tests/test_tools_gpu_session.py)
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
fi
python3 -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'no cuda')" \
  | tee -a "$OUT/gpu.txt"
if [ "${SMOKE:-1}" = 1 ]; then
  python3 -m advlib smoke --device "$device" ${SMOKE_CELLS:+--cells "$SMOKE_CELLS"} 2>&1 | tee "$OUT/smoke.log" \
    || { echo "smoke check FAILED: stopping"; exit 1; }
fi
if [ "${BENCH:-1}" = 1 ]; then
  python3 benchmarks/bench.py --device "$device" --out "$OUT/bench.json" --n-pgd 10000 --train-steps 0 \
    --check-profile "${BENCH_CHECK_PROFILE:-quick}" ${BENCH_CHECK_OUT:+--check-out "$BENCH_CHECK_OUT"} 2>&1 \
    | tee "$OUT/bench.log"
fi
if [ -n "${EXTEND_PROFILE:-}" ]; then  # records made elsewhere get the extended block from carried checkpoints
  p="$EXTEND_PROFILE"
  [ -d ".slim/results/$p" ] || { echo "no .slim/results/$p: run tools/slim_checkpoints.py here and carry .slim"; exit 1; }
  cp -r .slim/results/. results/
  carried=$(for f in .slim/results/"$p"/checkpoints/*/*.pt; do [ -e "$f" ] && basename "$f" .pt; done | paste -sd, -)
  echo "extending $p: ${EXTEND_CELLS:-$carried} (carried: $carried)"
  extended=()
  for cell in $(echo "${EXTEND_CELLS:-$carried}" | tr , ' '); do  # one process per cell: a failure spares the rest
    left=$((limit - SECONDS - 20))
    if [[ ",$carried," != *",$cell,"* ]]; then echo "$cell: no carried checkpoint, skipped"; continue; fi
    if [ "$left" -lt 60 ]; then echo "$cell: ${left} s left, skipped"; continue; fi
    timeout "$left" python3 -m advlib reproduce --profile "$p" --device "$device" --quiet --extended --cells "$cell" \
      --out "results/$p" 2>&1 | tee -a "$OUT/extend-$p.log" && extended+=("results/$p/$cell.json")
  done
  [ "${#extended[@]}" -gt 0 ] && tar czf "$OUT/$p-records.tgz" "${extended[@]}"
fi
if [ "${CELLS:-1}" = 1 ]; then
  if [ "${PROBE:-1}" = 1 ]; then  # pick the fastest memory format / cuDNN mode for training (seconds)
    eval "$(python3 benchmarks/step_probe.py --device "$device" --json "$OUT/probe.json" 2>&1 | tee "$OUT/probe.log" | grep '^export ')"
    echo "probe chose: ADVLIB_CHANNELS_LAST=${ADVLIB_CHANNELS_LAST:-} ADVLIB_CUDNN_BENCHMARK=${ADVLIB_CUDNN_BENCHMARK:-}"
  fi
  p="${CELLS_PROFILE:-full}"
  left=$((limit - SECONDS))
  echo "cells ($p profile): ${left} s left of ${limit}"
  if [ "$left" -gt 30 ]; then
    python3 -m advlib reproduce --profile "$p" --device "$device" --quiet --time-budget "$left" ${CELL_LIST:+--cells "$CELL_LIST"} ${EXTENDED:+--extended} \
      2>&1 | tee "$OUT/cells.log"
  fi
  # every record of that profile (the extended ones above included) comes back
  [ "$p" != full ] && ls results/"$p"/*.json >/dev/null 2>&1 && tar czf "$OUT/$p-records.tgz" results/"$p"/*.json
fi
ls results/full/*.json >/dev/null 2>&1 && tar czf "$OUT/full-records.tgz" results/full/*.json
echo "gpu_session: done in ${SECONDS} s"
