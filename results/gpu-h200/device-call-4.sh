#!/usr/bin/env bash
# Fourth call (session 16, lent an H100): the standard suite `aa` on one modality's missing cells, in
# shards, so that a part cut off by the deadline loses only itself (N = 1: the whole cell as one part).
# Each cell runs as `rdm-eval --shard i/N` parts, P at a time, and a cell whose parts all finished is joined with `rdm-eval --merge`. The parts use the same
# --shard i/N as the CPU queue, so any part still missing can run on the CPU and merge with these.
#
#   bash results/gpu-h200/device-call-4.sh MODALITY "MODEL WHICH N" ...     WHICH = paper | matched
#   e.g. bash results/gpu-h200/device-call-4.sh lung "baseline paper 2" "rdmaa matched 8"
#
# Reads gpu-carry/g3/<modality>.tar.xz (checkpoints, test.h5, test-sub.h5, matched.json); returns
# $OUT/metrics4-<modality>.tgz (finished parts, merged cells, stage times). Env: PY, DEV (a dry run
# on a CPU), P (parts at a time, 16), DEADLINE (s, 520), NO_INSTALL.
# Set DEADLINE from `status`'s budget_left_s (less the start and ~40 s to merge and pack), not from the
# per-call limit: session 16's second call, on a warm machine, was cut at the budget (198 s) and kept
# nothing. Parts share the card, and a part's time follows its searches (one per eps) more than its
# rows (397 s for 150 rows x 2 eps, ~200 s for 203 rows x 1 eps, 16 at once): prefer fewer, larger parts.
set -u
T0=$(date +%s); OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RDM_THREADS=1
M=$1; shift
PY=${PY:-python3}; D=${DEV:-cuda}; W=gw; S=$W/$M/s0
DEADLINE=${DEADLINE:-520}; P=${P:-16}
[ -n "${NO_INSTALL:-}" ] || $PY -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$OUT/install.log" 2>&1
mkdir -p $W; tar xJf gpu-carry/g3/$M.tar.xz -C $W
: > $W/timings.jsonl
EPSM=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['pgd'])" $S/matched.json)
echo "matched eps $EPSM; unpacked in $(( $(date +%s) - T0 )) s"; nvidia-smi -L 2>/dev/null
part() {  # part MODEL paper|matched I N
  local k=$1 w=$2 i=$3 n=$4 c e set
  if [ "$w" = paper ]; then c=wb; e="--eps 0.002 --eps 0.005"; set=$W/$M/test-sub.h5
  else c=matched; e="--eps $EPSM"; set=$W/$M/test.h5; fi
  local st=eval-$k-wb-aa; [ $c = matched ] && st=eval-$k-matched-wb-aa
  mkdir -p $S/parts/$k
  $PY -m rdm.grid timed $W/timings.jsonl $M/s0/$st.$i -- rdm-eval $S/models/$k.ckpt $set --attack aa $e \
    --shard $i/$n -o $S/parts/$k/$c-aa.$i.json --seed 0 --device $D -q --batch-size 512
}
export -f part; export M S W EPSM PY D
for a in "$@"; do set -- $a; for i in $(seq 0 $(( $3 - 1 ))); do echo "$1 $2 $i $3"; done; done > $W/parts.txt
echo "$(wc -l < $W/parts.txt) parts, $P at a time"
left=$(( DEADLINE - ($(date +%s) - T0) ))
timeout -s TERM $left xargs -P $P -L 1 bash -c 'part "$0" "$1" "$2" "$3"' < $W/parts.txt > "$OUT/parts-$M.log" 2>&1
pkill -f "rdm-eval $S/" 2>/dev/null; sleep 1                    # parts cut off by the deadline
for a in $(awk '{print $1":"$2":"$4}' $W/parts.txt | sort -u); do   # join the cells whose parts all finished
  IFS=: read k w n <<< "$a"; c=wb; out=$S/metrics/$k/wb-aa.json
  [ $w = matched ] && { c=matched; out=$S/metrics/$k/matched-wb-aa.json; }
  ps=(); for i in $(seq 0 $((n-1))); do f=$S/parts/$k/$c-aa.$i.json; [ -s $f ] && ps+=($f); done
  [ ${#ps[@]} -eq $n ] && mkdir -p $S/metrics/$k && rdm-eval --merge "${ps[@]}" -o $out -q && echo "merged $out"
done
( cd $W && tar czf "$OUT/metrics4-$M.tgz" timings.jsonl $(find $M/s0/parts $M/s0/metrics -name "*.json" 2>/dev/null) )
echo "total $(( $(date +%s) - T0 )) s"; ls -la "$OUT"; tail -3 "$OUT/parts-$M.log"; cat $W/timings.jsonl
