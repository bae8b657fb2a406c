#!/usr/bin/env bash
# One device call: the standard suite (aa) at the paper's and the matched eps for baseline, RDMAA,
# on-line PGD-AT, TRADES and fast AT on lung, leukemia and brain-grouped (seed 0), from the raw data.
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RDM_THREADS=${RDM_THREADS:-1}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
JOBS=${JOBS:-12}
DEADLINE=${DEADLINE:-480}          # seconds after T0 by which every grid step must be over
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; $PY -c "import torch;print(torch.__version__, torch.cuda.is_available())"; nproc; command -v make; } > "$OUT/env.txt" 2>&1
if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$OUT/install.log" 2>&1 || { echo "install failed"; cat "$OUT/install.log"; }
fi
mkdir -p gdata
for m in lung-nodule brain-mri leukemia; do [ -d gdata/$m ] || tar xJf gpu-carry/$m.tar.xz -C gdata & done; wait
echo "untar done $(( $(date +%s) - T0 )) s"
W=${W:-gw}; mkdir -p $W
MODS="lung leukemia brain-grouped"
$PY -m rdm.grid makefile --mode tables --grid experiments/grid.toml --seed 0 --seeds 1 $(for m in $MODS; do echo --modality $m; done) > $W/grid.mk
MODELS="baseline rdmaa advtrain-online advtrain-trades advtrain-fast"
core=(); extra=()
for m in $MODS; do for k in $MODELS; do
  for f in clean wb-aa matched-wb-aa; do core+=("$W/$m/s0/metrics/$k/$f.json"); done
  for f in wb-pgd wb-apgd transfer sweep-wb-fgsm sweep-wb-pgd matched-wb-pgd wb-noise; do extra+=("$W/$m/s0/metrics/$k/$f.json"); done
done; done
MK=(make -k -j"$JOBS" --no-print-directory NO_VENV=1 PYTHON=$PY DEVICE=$DEVICE MODE=tables GRID_MK=$W/grid.mk OUT=$W DATA_ROOT=gdata SEEDS=1)
phase() {   # phase NAME TARGETS...: run make on the targets until the deadline
  local name=$1; shift
  local left=$(( DEADLINE - ($(date +%s) - T0) ))
  [ "$left" -gt 20 ] || { echo "$name: no time left"; return; }
  echo "$name: $# targets, $left s left"
  timeout -s TERM "$left" "${MK[@]}" "$@" >> "$OUT/make.log" 2>&1; echo "$name rc $? at $(( $(date +%s) - T0 )) s"
}
if command -v make >/dev/null; then
  phase core "${core[@]}"
  phase extra "${extra[@]}"
else
  echo "no make: the pool runner on the whole grid"
  left=$(( DEADLINE - ($(date +%s) - T0) ))
  timeout -s TERM "$left" $PY -m rdm.grid run --jobs "$JOBS" --grid experiments/grid.toml --mode tables --seed 0 --seeds 1 \
    $(for m in $MODS; do echo --modality $m; done) PY=$PY RDM= DEVICE=$DEVICE OUT=$W DATA_ROOT=gdata SUBSET_N=300 >> "$OUT/make.log" 2>&1
fi
pkill -f "rdm-|rdm.grid" 2>/dev/null; sleep 1
$PY gpu-carry/pack.py "$W" "$OUT" $MODS
echo "total $(( $(date +%s) - T0 )) s"
ls -la "$OUT"
