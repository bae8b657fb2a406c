#!/usr/bin/env bash
# Submit the whole experiment grid to Slurm: one job array per dependency level of the grid
# (data -> models -> adversarial sets -> evaluations -> ...), each level after the previous one
# succeeded (--dependency=afterok), then one job that regenerates the report.
#
#   shell/slurm/submit.sh                    CPU tasks, DEVICE=cpu
#   RDM_GPU=1 shell/slurm/submit.sh          one GPU per task (--gres=gpu:1), DEVICE=cuda
#   shell/slurm/submit.sh --dry-run          write the cell list, print the sbatch commands only
#
# Environment: the variables of shell/slurm/env.sh (MODE, OUT, DATA_ROOT, ...), plus
#   RDM_GPU=1            GPU variant          RDM_GPUS=gpu:1    the --gres value
#   RDM_SBATCH_FLAGS     extra sbatch flags for every job (partition, account, time, ...)
# Run from the repository root after `make install`. Re-running it after a failure or
# preemption skips every cell whose outputs exist.
set -euo pipefail
cd "$(dirname "$0")/../.."
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
if [ "${RDM_GPU:-0}" = 1 ]; then
  export DEVICE=${DEVICE:-cuda}; gpu=(--gres="${RDM_GPUS:-gpu:1}")
else
  export DEVICE=${DEVICE:-cpu}; gpu=()
fi
source shell/slurm/env.sh
[ -x "$PY" ] || { echo "error: $PY not found: run 'make install' first" >&2; exit 1; }
mods=()
for m in $MODALITIES; do mods+=(--modality "$m"); done
if [ "$MODE" = tables ]; then   # each modality's data folder (the grid's `source`) under DATA_ROOT
  "$PY" -m rdm.pipeline.grid check-data --grid "$GRID" --data-root "${DATA_ROOT:-$(mkvar DATA_ROOT)}" "${mods[@]}" || exit 1
fi
mkdir -p "$OUT/slurm"
"$PY" -m rdm.pipeline.grid makefile --mode "$MODE" --grid "$GRID" --seed "$SEED" --seeds "$SEEDS" "${mods[@]}" > "$OUT/grid.mk.tmp"
"$PY" -m rdm.pipeline.grid cells --mode "$MODE" --grid "$GRID" --seed "$SEED" --seeds "$SEEDS" "${mods[@]}" > "$CELLS.tmp"
mv "$OUT/grid.mk.tmp" "$OUT/grid.mk"
mv "$CELLS.tmp" "$CELLS"
export MODE OUT RESULTS GRID SEED SEEDS TRAIN_FLAGS SUBSET_N RDM_REPO="$PWD"
extra=(${RDM_SBATCH_FLAGS:-})
dep=()
jid=""
for level in $(cut -f1 "$CELLS" | sort -n | uniq); do
  n=$(awk -F'\t' -v l="$level" '$1 == l' "$CELLS" | wc -l)
  cmd=(sbatch --parsable --array="0-$((n - 1))" "${gpu[@]}" "${dep[@]}" "${extra[@]}"
       --job-name="rdm-L$level" --export="ALL,RDM_LEVEL=$level" shell/slurm/cell.sbatch)
  if [ $dry = 1 ]; then echo "${cmd[*]}"; jid="L$level"; else jid=$("${cmd[@]}"); jid=${jid%%;*}; fi
  echo "level $level: $n cells -> job $jid" >&2
  dep=(--dependency="afterok:$jid")
done
cmd=(sbatch --parsable "${dep[@]}" "${extra[@]}" shell/slurm/report.sbatch)
if [ $dry = 1 ]; then echo "${cmd[*]}"; else jid=$("${cmd[@]}"); echo "report -> job $jid" >&2; fi
