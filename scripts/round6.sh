#!/usr/bin/env bash
# Round 6 of docs/quality.md (FER+ only), after the run runs/ferplus-distilled50 beside rounds 1-4:
#   bash scripts/round6.sh candidates          # v5 (round 3's student, 50 epochs) as an INT8 candidate; the PublicTest
#                                              # rule against the default (v3), paired test included; the v1-v5
#                                              # ensemble, its two-fold estimate and its cost per face
#   bash scripts/round6.sh ship DEFAULT ACC    # DEFAULT: keep or v5; ACC: keep or 5 (the v1-v5 ensemble)
# Then: ferkit evaluate ... --model-card (see the README's reproduce steps).
set -euo pipefail
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps
round_args v5 5 "$@"

case "$1" in
candidates)
  rm -f $C/ferplus-accurate5.onnx  # so a refused fit leaves no old ensemble to time
  challenge ferplus 6 v3 v5 --max-p 0.05
  # step 2's ceiling: 5 ms per face at batch 1 (the "classifier latency, batch 1" line)
  if [ -f $C/ferplus-accurate5.onnx ]; then
    python benchmarks/core.py --model $C/ferplus-accurate5.onnx | tee docs/eval/selection/cost6_ferplus.txt
  fi ;;
ship)
  if [ "$2" = v5 ]; then ship_default ferplus v5; fi
  if [ "$3" = 5 ]; then ship_accurate $C/ferplus-accurate5.onnx ferplus; fi ;;
esac
