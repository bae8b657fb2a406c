#!/usr/bin/env bash
# Second call: brain-grouped only. Re-prep from raw, fine-tune RDMAA from the first call's DCAE, then the
# standard suite (aa) at the paper's eps and the matched eps on the five models, one batch per eps.
set -u
T0=$(date +%s); OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RDM_THREADS=2
PY=python3; D=cuda; W=gw; M=brain-grouped; S=$W/$M/s0
DEADLINE=${DEADLINE:-230}
$PY -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$OUT/install.log" 2>&1
mkdir -p gdata $S/metrics; tar xJf gpu-carry/brain-mri.tar.xz -C gdata; tar xzf gpu-carry/models-brain-grouped.tgz -C $W
cp /dev/null $W/timings.jsonl
TM="$PY -m rdm.grid timed $W/timings.jsonl"
$TM $M/prep -- rdm-prep gdata/brain-mri --preset brain --group-similar 0.12 --group-cap 30 --audit -o $W/$M --seed 0 -q
$TM $M/subset -- $PY -m rdm.grid subset $W/$M/test.h5 300 -o $W/$M/test-sub.h5 --seed 0
echo "prep done $(( $(date +%s) - T0 )) s"
EPSM=0.003188
cell() {  # cell MODEL paper|matched
  local k=$1 w=$2 f e
  if [ "$w" = paper ]; then f=wb-aa; e="--eps 0.002 --eps 0.005"; else f=matched-wb-aa; e="--eps $EPSM"; fi
  mkdir -p $S/metrics/$k
  $TM $M/s0/eval-$k-$f -- rdm-eval $S/models/$k.ckpt $W/$M/test.h5 --attack aa $e -o $S/metrics/$k/$f.json --seed 0 --device $D -q --batch-size 512
}
export -f cell; export TM M S W D EPSM
( $TM $M/s0/rdmaa -- rdm-finetune $W/$M/train.h5 --dcae $S/models/dcae.ckpt --val $W/$M/val.h5 -o $S/models/rdmaa.ckpt --seed 0 --device $D -q --resume-partial --epochs 40 --patience 6 \
  && mkdir -p $S/metrics/rdmaa && $TM $M/s0/eval-rdmaa-clean -- rdm-eval $S/models/rdmaa.ckpt $W/$M/test.h5 -o $S/metrics/rdmaa/clean.json --seed 0 --device $D -q \
  && cell rdmaa paper && cell rdmaa matched ) > "$OUT/rdmaa.log" 2>&1 &
left=$(( DEADLINE - ($(date +%s) - T0) ))
printf "%s\n" "baseline paper" "advtrain-online paper" "advtrain-fast paper" "advtrain-trades paper" "baseline matched" "advtrain-online matched" "advtrain-fast matched" "advtrain-trades matched" \
  | timeout -s TERM $left xargs -P 4 -L 1 bash -c 'cell "$0" "$1"' > "$OUT/cells.log" 2>&1
wait_left=$(( DEADLINE - ($(date +%s) - T0) )); [ $wait_left -gt 0 ] && timeout $wait_left bash -c 'while pgrep -f rdm-finetune >/dev/null || pgrep -f "eval-rdmaa" >/dev/null; do sleep 2; done'
pkill -f "rdm-|rdm.grid" 2>/dev/null; sleep 1
( cd $W && tar czf "$OUT/metrics2.tgz" timings.jsonl $(find $M -name "*.json") $M/s0/models/rdmaa.ckpt $M/test.h5 $M/test-sub.h5 2>/dev/null )
echo "total $(( $(date +%s) - T0 )) s"; ls -la "$OUT"; tail -3 "$OUT/rdmaa.log"; tail -5 "$OUT/cells.log"
