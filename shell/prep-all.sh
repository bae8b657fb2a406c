#!/usr/bin/env bash
# Prepare train/val/test sets for the paper's three modalities.
# Usage: DATA_ROOT=../shared/data OUT=out shell/prep-all.sh [extra rdm-prep options, e.g. --seed 1]
# Writes $OUT/{lung,brain,leukemia}/{train,val,test}.h5 and prints their paths.
set -euo pipefail
DATA_ROOT=${DATA_ROOT:?set DATA_ROOT to the folder holding lung-nodule/ brain-mri/ leukemia/}
OUT=${OUT:?set OUT to the output folder}
RDM_PREP=${RDM_PREP:-rdm-prep}
"$RDM_PREP" "$DATA_ROOT/lung-nodule" --preset lung     -o "$OUT/lung"     "$@"
"$RDM_PREP" "$DATA_ROOT/brain-mri"   --preset brain    -o "$OUT/brain"    "$@"
"$RDM_PREP" "$DATA_ROOT/leukemia"    --preset leukemia -o "$OUT/leukemia" "$@"
