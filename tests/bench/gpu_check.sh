#!/usr/bin/env bash
# The one prepared GPU run (issue 14): the CUDA benchmark and the brain modality of `make tables` on one
# GPU, timed, results copied flat into $OUT. Run from the repository root on the GPU machine:
#
#     OUT=/some/dir bash tests/bench/gpu_check.sh
#
# It expects there: python3 with a CUDA torch, h5py, typer, rich, scikit-learn, scikit-image (no internet);
# .whl/ with the torchattacks 3.5.1 and ART 1.20.1 wheels (plus six and tqdm, which ART imports: without
# them the bench skips ART with a message); .gpudata/brain-mri (the raw folder, as in shared/data).
# Each part has its own time limit, so a hang costs that part only; `set -x` logs every step.
#   parts: install (≤ 30 + 20 s; about 5 s) · CUDA bench (≤ BENCH_T = 150 s) · brain grid (≤ GRID_T = 240 s) · collect
# Settings (environment): DEVICE=cuda (cpu: a dry run of every part on the CPU at tiny sizes),
#   JOBS=6 and RDM_THREADS=2 (6 processes share the card, 12 of the 16 cores), DATA=.gpudata, WHL=.whl,
#   PYTHON=python3, TRAIN_FLAGS (passed to the training commands), BENCH_T, GRID_T,
#   MODALITIES (default brain; "lung brain leukemia" for the whole grid, .gpudata holding their folders).
# Writes to $OUT (flat, ≤ 8 files): summary.json (card, part times and exit codes, grid wall and stage time),
#   bench-cuda.json, timings.jsonl (per-stage times of the grid), REPORT.md (its report), gpu_check.log.
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
JOBS=${JOBS:-6}
export RDM_THREADS=${RDM_THREADS:-2}
BENCH_T=${BENCH_T:-150}
GRID_T=${GRID_T:-240}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
MODALITIES=${MODALITIES:-brain}
SITE=/tmp/rdm-gpu-site
WORK=/tmp/rdm-gpu-work
RES=/tmp/rdm-gpu-results
PARTS=/tmp/rdm-gpu-parts.txt
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

# ---- 0. the machine
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
  mkdir -p /tmp/rdm-gpu-bin/pkg && ln -sfn "$PWD/tools" /tmp/rdm-gpu-bin/pkg/rdm_tools
  export PYTHONPATH="$PWD/lib:/tmp/rdm-gpu-bin/pkg:$PYTHONPATH"
  for t in prep train_cnn pretrain_dcae finetune advtrain attack eval; do
    printf '#!/usr/bin/env bash\nexec %s -c "import sys; from rdm_tools.%s import main; sys.argv[0] = \\"rdm-%s\\"; main()" "$@"\n' \
      "$PYTHON" "$t" "${t//_/-}" > "/tmp/rdm-gpu-bin/rdm-${t//_/-}"
    chmod +x "/tmp/rdm-gpu-bin/rdm-${t//_/-}"
  done
  export PATH="/tmp/rdm-gpu-bin:$PATH"
fi
command -v rdm-eval
"$PYTHON" -c "import rdm, torchattacks, art; print('rdm', rdm.__file__, 'torchattacks', torchattacks.__version__, 'art', art.__version__)" || true

# ---- 2. the CUDA benchmark (results/bench-cuda.json); DEVICE=cpu runs its code on the CPU at tiny sizes
DRY=()
[ "$DEVICE" = cpu ] && DRY=(--cuda-dry-run)
part bench "$BENCH_T" "$PYTHON" tests/bench/bench.py --device cuda "${DRY[@]}" --out "$OUT/bench-cuda.json"

# ---- 3. the brain modality of `make tables` on this device, timed (fresh work folder)
rm -rf "$WORK" "$RES"
GT=$(date +%s)
part grid "$GRID_T" make -j"$JOBS" --no-print-directory tables NO_VENV=1 PYTHON="$PYTHON" DEVICE="$DEVICE" \
  MODALITIES="$MODALITIES" DATA_ROOT="$DATA" OUT="$WORK" RESULTS="$RES" TRAIN_FLAGS="$TRAIN_FLAGS"
GRID_WALL=$(( $(date +%s) - GT ))

# ---- 4. collect (flat names)
cp "$WORK/timings.jsonl" "$OUT/timings.jsonl" 2>/dev/null || echo "no timings.jsonl"
cp "$RES/REPORT.md" "$OUT/REPORT.md" 2>/dev/null || echo "no REPORT.md"
"$PYTHON" - "$OUT" "$PARTS" "$GRID_WALL" "$JOBS" "$DEVICE" "$T0" <<'EOF' || true
import json, subprocess, sys, time
from pathlib import Path
out, parts, grid_wall, jobs, device, t0 = sys.argv[1:]
s = {"device": device, "jobs": int(jobs), "rdm_threads": __import__("os").environ.get("RDM_THREADS"),
     "parts": {}, "grid_wall_s": int(grid_wall), "total_s": int(time.time()) - int(t0)}
for line in Path(parts).read_text().split("\n"):
    if line.strip():
        name, rc, sec = line.split()
        s["parts"][name] = {"rc": int(rc), "s": int(sec)}
try:
    s["card"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True).stdout.strip()
except OSError:
    s["card"] = None
tj = Path(out) / "timings.jsonl"
if tj.exists():
    rows = [json.loads(l) for l in tj.read_text().splitlines() if l.strip()]
    secs = [r.get("seconds", 0) for r in rows]
    s["grid_stages"] = len(rows)
    s["grid_stage_time_s"] = round(sum(float(x or 0) for x in secs), 1)
    by: dict = {}
    for r, x in zip(rows, secs):
        k = str(r.get("stage", "?")).split("/")[-1].split("-")[0]     # prep, attack, eval, baseline, ...
        by[k] = round(by.get(k, 0) + float(x or 0), 1)
    s["grid_stage_time_by_kind_s"] = by
s["report_written"] = (Path(out) / "REPORT.md").exists()
(Path(out) / "summary.json").write_text(json.dumps(s, indent=1))
print(json.dumps(s, indent=1))
EOF
ls -la "$OUT"
