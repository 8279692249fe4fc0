#!/bin/bash
# The large profile's long CPU run (issue 12), in the background and resumable:
#   nohup bash tools/large_run.sh > large-run.log 2>&1 &
# It runs from a fresh clone of this checkout's HEAD (so every record names a clean commit, whatever is being
# edited meanwhile) and writes records and checkpoints into this checkout's results/large/. Killed at any point,
# the next call resumes: finished cells are skipped and training continues from its last checkpoint.
set -euo pipefail
REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
CLONE=${CLONE:-$REPO/../advlib-large-run}
RESULTS=${RESULTS:-$REPO/results/large}  # another folder re-runs cells recorded elsewhere (a device check)
# The paper's central cells first, then ATDA (no full-profile records yet), then ensemble.
CELLS=${CELLS:-madry-linf,trades-linf,madry-l2,trades-l2,madry-mix,trades-mix,atda-linf,atda-l2,atda-mix,ensemble-linf,ensemble-l2,ensemble-mix}
rm -rf "$CLONE"
git clone -q "$REPO" "$CLONE"
cd "$CLONE"
export PYTHONPATH=$CLONE MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296
echo "large run from $(git rev-parse --short HEAD), cells $CELLS, records in $RESULTS"
exec nice -n 15 python -m advlib reproduce --profile large --cells "$CELLS" --out "$RESULTS"
