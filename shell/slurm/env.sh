# Sourced by the Slurm scripts (run from the repository root): the variables of one grid run.
# Everything comes from the environment; unset ones take the Makefile's defaults (read from the
# Makefile itself, so the cluster run and `make tables` / `make demo` cannot drift apart).
#   MODE=tables|demo  OUT  RESULTS  GRID  DATA_ROOT  SEED  SEEDS  DEVICE  SUBSET_N  DEMO_N  TRAIN_FLAGS
#   MODALITIES (default: all for tables, DEMO_MODALITIES for demo)  VENV  MAKE
#   RDM_MAKE_FLAGS       extra make flags for the cells (e.g. -n to print what a task would run)
MAKE=${MAKE:-make}
mkvar() {   # the Makefile's value of a variable (environment first, as make itself does)
  "$MAKE" -s --no-print-directory -f Makefile --eval 'rdm-print-%: ; @echo $($*)' "rdm-print-$1"
}
MODE=${MODE:-tables}
case "$MODE" in
  tables)
    OUT=${OUT:-$(mkvar OUT)}; RESULTS=${RESULTS:-$(mkvar RESULTS)}
    TRAIN_FLAGS=${TRAIN_FLAGS-$(mkvar TRAIN_FLAGS)}; SUBSET_N=${SUBSET_N:-$(mkvar SUBSET_N)}
    MODALITIES=${MODALITIES:-}; SEEDS=${SEEDS:-$(mkvar SEEDS)} ;;
  demo)
    OUT=${OUT:-$(mkvar DEMO_OUT)}; RESULTS=${RESULTS:-$(mkvar DEMO_RESULTS)}
    TRAIN_FLAGS=${TRAIN_FLAGS-$(mkvar DEMO_TRAIN_FLAGS)}; SUBSET_N=${SUBSET_N:-$(mkvar DEMO_SUBSET_N)}
    MODALITIES=${MODALITIES:-$(mkvar DEMO_MODALITIES)}; SEEDS=${SEEDS:-$(mkvar DEMO_SEEDS)} ;;
  *) echo "error: MODE=$MODE: expected tables or demo" >&2; exit 1 ;;
esac
GRID=${GRID:-$(mkvar GRID)}
SEED=${SEED:-$(mkvar SEED)}
VENV=${VENV:-$(mkvar VENV)}
PY=$VENV/bin/python
CELLS=$OUT/slurm/cells.tsv
export SEED DEVICE DATA_ROOT DEMO_N VENV 2>/dev/null || true
# threads: what Slurm gave the task
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
  export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK RDM_THREADS=$SLURM_CPUS_PER_TASK
fi
# every make call of a task: the grid's rules, never a reinstall of the venv (-o: the install
# stamp counts as done; `make install` once before submitting)
rdm_make() {
  "$MAKE" --no-print-directory -f Makefile -o "$VENV/.rdm-installed" MODE="$MODE" GRID="$GRID" \
    GRID_MK="$OUT/grid.mk" OUT="$OUT" RESULTS="$RESULTS" SEED="$SEED" SEEDS="$SEEDS" TRAIN_FLAGS="$TRAIN_FLAGS" SUBSET_N="$SUBSET_N" ${RDM_MAKE_FLAGS:-} "$@"
}
