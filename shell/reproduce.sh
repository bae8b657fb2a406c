#!/usr/bin/env bash
# The whole experiment graph for one modality as a plain script, for users without make.
# It runs the same steps, from the same grid file, as `make tables`; finished steps are skipped.
#
#   shell/reproduce.sh lung                       # real data from DATA_ROOT (default ../shared/data)
#   MODE=demo shell/reproduce.sh lung             # synthetic phantoms
#   OUT=/scratch/rdm DATA_ROOT=/data shell/reproduce.sh brain
#   SEEDS=3 shell/reproduce.sh lung                # seeds SEED … SEED+2 (default SEED=0, SEEDS=1)
#
# Needs rdm installed (`make install`, or `pip install -e .`) and its commands on PATH,
# or VENV pointing at the virtual environment (default .venv if present).
set -euo pipefail
modality=${1:?usage: shell/reproduce.sh lung|brain|leukemia}
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
if [ -x "$VENV/bin/python" ]; then export PY="$VENV/bin/python" RDM="$VENV/bin/"; else export PY=${PY:-python3} RDM=${RDM:-}; fi
MODE=${MODE:-tables}
if [ "$MODE" = demo ]; then export OUT=${OUT:-demo/work} TRAIN_FLAGS=${TRAIN_FLAGS:---epochs 4}; fi
"$PY" -m rdm.pipeline.grid script --modality "$modality" --mode "$MODE" --seed "${SEED:-0}" --seeds "${SEEDS:-1}" \
  ${GRID:+--grid "$GRID"} | bash
