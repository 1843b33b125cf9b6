#!/usr/bin/env bash
# The README walkthrough, as run for the README (needs `molrg up` running and jq).
# Writes its figures to docs/img/ (walk_*.png).
set -euo pipefail
export MOLRG_URL=${MOLRG_URL:-http://127.0.0.1:8000}
export MOLRG_API_KEY=${MOLRG_API_KEY:-$(cat molrg-data/api-key)}

# 1. synthetic data: two 4-dim subspaces of R^48, 200 points each (ground truth kept)
DS=$(molrg datasets create-synthetic -n 48 -d 4,4 --samples-per-component 200 --json | jq -r .id)
# 2. fit with the diffusion loss, then watch it live (progress bar with step and loss)
JOB=$(molrg fit "$DS" -K 2 -d 4,4 --method diffusion --json | jq -r .id)
molrg jobs watch "$JOB"
MODEL=$(molrg jobs show "$JOB" --json | jq -r .result.model_id)
molrg models show "$MODEL"
# 3. sample from it (--wait: progress bar until done), read the diagnostics, fetch the figures
SS=$(molrg sample "$MODEL" -N 200 --wait --json | jq -r .result.sample_set_id)
molrg sample-sets show "$SS"
molrg models plots "$MODEL" -o docs/img --prefix walk_synthetic_
# 4. real data: scikit-learn's 8x8 digits, K = 10 (one per digit), dims from the data (95% energy)
DIG=$(molrg datasets create-builtin digits --json | jq -r .id)
DJOB=$(molrg fit "$DIG" -K 10 --method subspace_clustering --json | jq -r .id)
molrg jobs watch "$DJOB"
DMODEL=$(molrg jobs show "$DJOB" --json | jq -r .result.model_id)
molrg models show "$DMODEL"
DSS=$(molrg sample "$DMODEL" -N 32 --wait --json | jq -r .result.sample_set_id)
molrg sample-sets show "$DSS"
molrg models plots "$DMODEL" -o docs/img --prefix walk_digits_
molrg sample-sets plots "$DSS" -o docs/img --prefix walk_digits_
molrg jobs list --limit 6
