#!/usr/bin/env bash
# Third call (prepared in session 15, for a session lent a GPU): the standard suite `aa` on the
# cells still missing for one modality, from the checkpoints and prepared sets session 13 trained
# (carried as gpu-carry/g3/<modality>.tar.xz: the non-DCAE checkpoints, test.h5, test-sub.h5 and
# matched.json of /work/g13/<modality>).
#
#   bash results/gpu-h200/device-call-3.sh MODALITY "MODEL WHICH" ...      WHICH = paper | matched
#   e.g. bash results/gpu-h200/device-call-3.sh lung "baseline paper" "rdmaa matched"
#
# One cell per model and ε set, four at a time, the whole test set (matched) or the 300-row subset
# (paper ε .002 and .005), as the grid runs them; stops at DEADLINE seconds and returns what finished
# in $OUT/metrics3-<modality>.tgz (per-row metrics and the stage times).
set -u
T0=$(date +%s); OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RDM_THREADS=2
M=$1; shift
PY=${PY:-python3}; D=${DEV:-cuda}; W=gw; S=$W/$M/s0      # PY, DEV: for a dry run on a CPU
DEADLINE=${DEADLINE:-500}
[ -n "${NO_INSTALL:-}" ] || $PY -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$OUT/install.log" 2>&1
mkdir -p $W; tar xJf gpu-carry/g3/$M.tar.xz -C $W
: > $W/timings.jsonl
EPSM=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['pgd'])" $S/matched.json)
echo "matched eps $EPSM; unpacked in $(( $(date +%s) - T0 )) s"
cell() {  # cell MODEL paper|matched
  local k=$1 w=$2 f e set
  if [ "$w" = paper ]; then f=wb-aa; e="--eps 0.002 --eps 0.005"; set=$W/$M/test-sub.h5
  else f=matched-wb-aa; e="--eps $EPSM"; set=$W/$M/test.h5; fi
  mkdir -p $S/metrics/$k
  $PY -m rdm.grid timed $W/timings.jsonl $M/s0/eval-$k-$f -- rdm-eval $S/models/$k.ckpt $set --attack aa $e \
    -o $S/metrics/$k/$f.json --seed 0 --device $D -q --batch-size 512
}
export -f cell; export M S W EPSM PY D
left=$(( DEADLINE - ($(date +%s) - T0) ))
printf "%s\n" "$@" | timeout -s TERM $left xargs -P 4 -L 1 bash -c 'cell "$0" "$1"' > "$OUT/cells-$M.log" 2>&1
pkill -f "rdm-eval $S/" 2>/dev/null; sleep 1                   # cells cut off by the deadline
( cd $W && tar czf "$OUT/metrics3-$M.tgz" timings.jsonl $(find $M/s0/metrics -name "*.json") )
echo "total $(( $(date +%s) - T0 )) s"; ls -la "$OUT"; tail -5 "$OUT/cells-$M.log"; cat $W/timings.jsonl
