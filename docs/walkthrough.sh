#!/usr/bin/env bash
# The README walkthrough, as run for the README (needs `molrg up` running, e.g. `bash scripts/up`).
# Usage: bash docs/walkthrough.sh [OUT_DIR]   (or MOLRG_WALKTHROUGH_DIR; default ./molrg-walkthrough)
# Writes its figures (walk_*.png) to OUT_DIR, never into the repository's tracked files.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
# the repository's CLI first (scripts/setup also links it onto the PATH)
[ -x "$REPO/.venv/bin/molrg" ] && export PATH="$REPO/.venv/bin:$PATH"
OUT=${1:-${MOLRG_WALKTHROUGH_DIR:-./molrg-walkthrough}}
mkdir -p "$OUT"
export MOLRG_URL=${MOLRG_URL:-http://127.0.0.1:8000}
export MOLRG_API_KEY=${MOLRG_API_KEY:-$(cat "${MOLRG_DATA_DIR:-molrg-data}/api-key")}
# `jq -r .FIELD` where jq is installed, else the same with the venv's Python
field() {
  if command -v jq >/dev/null 2>&1; then jq -r "$1"; else
    python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].lstrip(".").split("."):
    v = v[k]
print(v)' "$1"; fi
}

# 1. synthetic data: two 4-dim subspaces of R^48, 200 points each (ground truth kept)
DS=$(molrg datasets create-synthetic -n 48 -d 4,4 --samples-per-component 200 --json | field .id)
# 2. fit with the diffusion loss, then watch it live (progress bar with step and loss)
JOB=$(molrg fit "$DS" -K 2 -d 4,4 --method diffusion --json | field .id)
molrg jobs watch "$JOB"
MODEL=$(molrg jobs show "$JOB" --json | field .result.model_id)
molrg models show "$MODEL"
# 3. sample from it (--wait: progress bar until done), read the diagnostics, fetch the figures
SS=$(molrg sample "$MODEL" -N 200 --wait --json | field .result.sample_set_id)
molrg sample-sets show "$SS"
molrg models plots "$MODEL" -o "$OUT" --prefix walk_synthetic_
# 4. real data: scikit-learn's 8x8 digits, K = 10 (one per digit), dims from the data (95% energy)
DIG=$(molrg datasets create-builtin digits --json | field .id)
DJOB=$(molrg fit "$DIG" -K 10 --method subspace_clustering --json | field .id)
molrg jobs watch "$DJOB"
DMODEL=$(molrg jobs show "$DJOB" --json | field .result.model_id)
molrg models show "$DMODEL"
DSS=$(molrg sample "$DMODEL" -N 32 --wait --json | field .result.sample_set_id)
molrg sample-sets show "$DSS"
molrg models plots "$DMODEL" -o "$OUT" --prefix walk_digits_
molrg sample-sets plots "$DSS" -o "$OUT" --prefix walk_digits_
molrg jobs list --limit 6
echo "figures in $OUT; results page: $MOLRG_URL/results#job=$JOB&key=<your API key>"
