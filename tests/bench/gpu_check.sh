#!/usr/bin/env bash
# The prepared GPU run: the CUDA benchmark, then the whole grid through the in-process
# step runner (`make tables RUNNER=pool`: JOBS long-lived workers, one torch import and CUDA context
# each) with one seed and then three seeds, timed, results copied flat into $OUT. From the
# repository root on the GPU machine:
#
#     OUT=/some/dir bash tests/bench/gpu_check.sh
#
# It expects there: python3 with a CUDA torch, h5py, typer, rich, scikit-learn, scikit-image (no internet);
# .whl/ with the torchattacks 3.5.1 and ART 1.20.1 wheels (plus six and tqdm, which ART imports: without
# them the bench skips ART with a message); the raw data as .gpudata/<source> (as in shared/data), or
# packed as .gpupack/gpudata.tgz (unpacked into .gpudata here). Run it with the git-ignored
# .gpupack and .whl beside the checkout:  OUT=<folder> bash tests/bench/gpu_check.sh
# Each part has its own time limit, so a hang costs that part only; `set -x` logs every step. The whole
# run is held to TOTAL_T (default 540 s): the three-seed part gets what is left of it.
#   parts: install (≤ 30 + 20 s; about 5 s) · CUDA bench (≤ BENCH_T = 100 s) · APGD profile (≤ 45 s)
#          · grid, 1 seed (≤ GRID1_T = 200 s)
#          · grid, 3 seeds (the rest of TOTAL_T; seed 0 is already done, so it runs seeds 1 and 2) · collect
# Settings (environment): DEVICE=cuda (cpu: a dry run of every part on the CPU; with MODE=demo the grid is
#   the demo's, on phantoms), JOBS=12 and RDM_THREADS=1 (12 workers share the card, 12 of the 16 cores),
#   RUNNER=pool (make: a process per step, as before), MODE=tables, DATA=.gpudata, WHL=.whl, PYTHON=python3,
#   TRAIN_FLAGS (passed to the training commands), BENCH_T, GRID1_T, TOTAL_T,
#   MODALITIES (default the core tier's "lung leukemia brain-grouped"; .gpudata must hold their sources),
#   TIER (core: what `make tables` runs; full: every cell).
# Writes to $OUT (flat, ≤ 10 files): summary.json (card, part times and exit codes, each grid part's wall
#   and stage time, steps done), bench-cuda.json, apgd-profile.json (tests/bench/apgd_profile.py),
#   timings-seeds1.jsonl and timings.jsonl (per-stage times after the 1-seed part and after both),
#   REPORT-seeds1.md and REPORT.md (the reports), results.tgz (the results folder make tables wrote), gpu_check.log.
set -uo pipefail        # not -e: a failed part is recorded and the next part still runs
OUT=${OUT:?set OUT to the folder for the results}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
set -x
T0=$(date +%s)
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
DATA=${DATA:-.gpudata}
WHL=${WHL:-.whl}
JOBS=${JOBS:-12}
export RDM_THREADS=${RDM_THREADS:-1}
RUNNER=${RUNNER:-pool}
MODE=${MODE:-tables}
BENCH_T=${BENCH_T:-100}
GRID1_T=${GRID1_T:-200}
TOTAL_T=${TOTAL_T:-540}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
MODALITIES=${MODALITIES:-lung leukemia brain-grouped}
TIER=${TIER:-core}
SCRATCH=${SCRATCH:-$(mktemp -d)}
SITE=$SCRATCH/site
WORK=$SCRATCH/work
RES=$SCRATCH/results
PARTS=$SCRATCH/parts.txt
: > "$PARTS"

part() {   # part NAME LIMIT_S COMMAND...: run with a time limit (the whole process group), record rc and time
  local name=$1 limit=$2 t rc
  shift 2
  t=$(date +%s)
  timeout -k 10 "$limit" "$@"
  rc=$?
  echo "$name $rc $(( $(date +%s) - t ))" >> "$PARTS"
  echo "=== part $name: exit $rc after $(( $(date +%s) - t )) s (limit $limit s; $(( $(date +%s) - T0 )) s in all)"
  return 0
}

# ---- 0. the machine, and the data unpacked if it came packed
if [ ! -d "$DATA" ] && [ -f .gpupack/gpudata.tgz ]; then
  mkdir -p "$DATA" && tar xzf .gpupack/gpudata.tgz -C "$DATA"
fi
ls "$DATA" || true

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PYTHON" -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_available())"

# ---- 1. install rdm (editable, no index) and the comparison libraries (into $SITE, no deps)
part install-rdm 30 "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index -e .
rm -rf "$SITE" && mkdir -p "$SITE"
ls "$WHL"/*.whl && part install-wheels 20 "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" "$WHL"/*.whl
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
# the rdm-* commands: where pip put them, else small wrappers (the grid calls them by name)
SCRIPTS=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$SCRIPTS:$HOME/.local/bin:$PATH"
if ! command -v rdm-eval >/dev/null || ! "$PYTHON" -c "import rdm, rdm_tools" 2>/dev/null; then
  echo "rdm-* not installed: using wrappers over the source tree"
  mkdir -p $SCRATCH/bin/pkg && ln -sfn "$PWD/tools" $SCRATCH/bin/pkg/rdm_tools
  export PYTHONPATH="$PWD/lib:$SCRATCH/bin/pkg:$PYTHONPATH"
  for t in prep train_cnn pretrain_dcae finetune advtrain attack eval; do
    printf '#!/usr/bin/env bash\nexec %s -c "import sys; from rdm_tools.%s import main; sys.argv[0] = \\"rdm-%s\\"; main()" "$@"\n' \
      "$PYTHON" "$t" "${t//_/-}" > "$SCRATCH/bin/rdm-${t//_/-}"
    chmod +x "$SCRATCH/bin/rdm-${t//_/-}"
  done
  export PATH="$SCRATCH/bin:$PATH"
fi
command -v rdm-eval
"$PYTHON" -c "import rdm, torchattacks, art; print('rdm', rdm.__file__, 'torchattacks', torchattacks.__version__, 'art', art.__version__)" || true

# ---- 2. the CUDA benchmark (bench/bench-cuda.json); DEVICE=cpu runs its code on the CPU at tiny sizes
DRY=()
[ "$DEVICE" = cpu ] && DRY=(--cuda-dry-run)
part bench "$BENCH_T" "$PYTHON" tests/bench/bench.py --device cuda "${DRY[@]}" --out "$OUT/bench-cuda.json"

# ---- 2b. where APGD's time goes on the card (APGD-CE-10 ran at 1.6–3.0× its floor, PGD-10 at 1.02×):
# rdm's floor, PGD-10 with and without the random start, APGD-CE-10, then one APGD call profiled
PROF=()
[ "$DEVICE" = cpu ] && PROF=(--batch 16 --reps 1)
part apgd-profile 45 "$PYTHON" tests/bench/apgd_profile.py --device "$DEVICE" "${PROF[@]}" --out "$OUT/apgd-profile.json"

# ---- 3. the grid through the step runner: one seed, then three (seed 0's outputs are reused: the
# second part runs seeds 1 and 2 only, and its wall plus the first part's is the three-seed wall)
rm -rf "$WORK" "$RES"
grid() {   # grid SEEDS LIMIT
  if [ "$MODE" = demo ]; then
    part "grid-seeds$1" "$2" make --no-print-directory demo RUNNER="$RUNNER" JOBS="$JOBS" NO_VENV=1 PYTHON="$PYTHON" \
      DEVICE="$DEVICE" DEMO_MODALITIES="$MODALITIES" DEMO_SEEDS="$1" DEMO_OUT="$WORK" DEMO_RESULTS="$RES"
  elif [ "$RUNNER" = pool ]; then
    part "grid-seeds$1" "$2" make --no-print-directory tables RUNNER=pool JOBS="$JOBS" NO_VENV=1 PYTHON="$PYTHON" \
      DEVICE="$DEVICE" TIER="$TIER" SEEDS="$1" MODALITIES="$MODALITIES" DATA_ROOT="$DATA" OUT="$WORK" RESULTS="$RES" \
      TRAIN_FLAGS="$TRAIN_FLAGS"
  else
    part "grid-seeds$1" "$2" make -j"$JOBS" --no-print-directory tables NO_VENV=1 PYTHON="$PYTHON" DEVICE="$DEVICE" \
      TIER="$TIER" SEEDS="$1" MODALITIES="$MODALITIES" DATA_ROOT="$DATA" OUT="$WORK" RESULTS="$RES" TRAIN_FLAGS="$TRAIN_FLAGS"
  fi
}
GT=$(date +%s)
grid 1 "$GRID1_T"
GRID1_WALL=$(( $(date +%s) - GT ))
cp "$WORK/timings.jsonl" "$OUT/timings-seeds1.jsonl" 2>/dev/null || echo "no timings.jsonl after one seed"
cp "$RES/REPORT.md" "$OUT/REPORT-seeds1.md" 2>/dev/null || echo "no REPORT.md after one seed"
LEFT=$(( TOTAL_T - ($(date +%s) - T0) - 25 ))
GT=$(date +%s)
if [ "$LEFT" -ge 30 ]; then grid 3 "$LEFT"; else echo "=== part grid-seeds3: skipped, $LEFT s left"; fi
GRID3_WALL=$(( $(date +%s) - GT ))

# ---- 4. collect (flat names)
cp "$WORK/timings.jsonl" "$OUT/timings.jsonl" 2>/dev/null || echo "no timings.jsonl"
cp "$RES/REPORT.md" "$OUT/REPORT.md" 2>/dev/null || echo "no REPORT.md"
# the whole results folder make tables wrote (report, cells, cards, tables, figures), for the repository's results/
[ -d "$RES" ] && tar czf "$OUT/results.tgz" -C "$RES" . || echo "no results folder"
"$PYTHON" - "$OUT" "$PARTS" "$GRID1_WALL" "$GRID3_WALL" "$JOBS" "$DEVICE" "$T0" "$RUNNER" "$WORK" "$MODE" "$MODALITIES" "$TIER" <<'EOF' || true
import json, subprocess, sys, time
from pathlib import Path
out, parts, wall1, wall3, jobs, device, t0, runner, work, mode, modalities, tier = sys.argv[1:]
s = {"device": device, "jobs": int(jobs), "runner": runner, "rdm_threads": __import__("os").environ.get("RDM_THREADS"),
     "parts": {}, "grid_wall_s": {"seeds1": int(wall1), "seeds3_after_seeds1": int(wall3),
                                  "seeds3_total": int(wall1) + int(wall3)},
     "total_s": int(time.time()) - int(t0)}
try:   # how much of the three-seed grid the runner would still have to do
    sys.path.insert(0, "lib")
    from rdm.pipeline.plan import Plan, needed_steps
    for k in (1, 3):
        steps = needed_steps(Plan(__import__("os").environ.get("GRID"), mode, modalities.split(), 0, k,
                                  tier if mode == "tables" else "full"))
        s[f"steps_seeds{k}"] = {"needed": len(steps), "done": sum(all((Path(work) / o).exists() for o in st.outputs)
                                                                   for st in steps)}
except Exception as e:  # noqa: BLE001 - a summary, not a check
    s["steps_error"] = str(e)
for line in Path(parts).read_text().split("\n"):
    if line.strip():
        name, rc, sec = line.split()
        s["parts"][name] = {"rc": int(rc), "s": int(sec)}
try:
    s["card"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True).stdout.strip()
except OSError:
    s["card"] = None
for name in ("timings-seeds1.jsonl", "timings.jsonl"):
  tj = Path(out) / name
  if tj.exists():
      rows = [json.loads(l) for l in tj.read_text().splitlines() if l.strip()]
      secs = [r.get("seconds", 0) for r in rows]
      s[f"grid_stages_{name}"] = len(rows)
      s[f"grid_stage_time_s_{name}"] = round(sum(float(x or 0) for x in secs), 1)
      by: dict = {}
      for r, x in zip(rows, secs):
          k = str(r.get("stage", "?")).split("/")[-1].split("-")[0]     # prep, attack, eval, baseline, ...
          by[k] = round(by.get(k, 0) + float(x or 0), 1)
      s[f"grid_stage_time_by_kind_s_{name}"] = by
s["report_written"] = (Path(out) / "REPORT.md").exists()
(Path(out) / "summary.json").write_text(json.dumps(s, indent=1))
print(json.dumps(s, indent=1))
EOF
ls -la "$OUT"
