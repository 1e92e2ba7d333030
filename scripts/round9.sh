#!/usr/bin/env bash
# Round 9 of docs/quality.md (FER-2013, `fer2013-accurate` only), after the run runs/fer2013-wide80 beside rounds 1-8:
#   bash scripts/round9.sh candidates     # v8 (v7's recipe, 1.5x wider) as an INT8 candidate: the PublicTest rule
#                                         # against the shipped fer2013-accurate (paired test included) and v8's
#                                         # cost per face; then the v1-v8 ensemble, its two-fold estimate and cost
#   bash scripts/round9.sh ship keep|v8|8 # what becomes fer2013-accurate: nothing, v8 alone or the v1-v8 ensemble
# v8 is slower than the 1 ms per face a default may cost, so `fer2013` is not at stake in this round.
set -euo pipefail
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps
case "${1:-}:${2:-}:$#" in
  candidates::1|ship:keep:2|ship:v8:2|ship:8:2) ;;
  *) echo "usage: $0 candidates | ship keep|v8|8" >&2; exit 2 ;;
esac
case "$1" in
candidates)
  mkdir -p docs/eval/selection
  rm -f $C/fer2013-accurate8.onnx  # so a refused fit leaves no older ensemble behind for ensemble_cost to time
  export_candidates fer2013 v8
  judge fer2013 9 fer2013-accurate $C/fer2013-v8.onnx --max-p 0.05 --role fer2013-accurate
  python benchmarks/core.py --model $C/fer2013-v8.onnx --latency-only | tee docs/eval/selection/cost9_fer2013-v8.txt
  fit_ensemble fer2013 9 8 5 "${members[@]}"  # under a 5 ms budget
  ensemble_cost fer2013 9 8 ;;
ship)
  case "$2" in
    v8) ship_accurate $C/fer2013-v8.onnx fer2013 ;;
    8) ship_accurate $C/fer2013-accurate8.onnx fer2013 ;;
  esac ;;
esac
