#!/usr/bin/env bash
# Round 5 of docs/quality.md (FER-2013 only), after the run runs/fer2013-multi-w1 beside rounds 1-4:
#   bash scripts/round5.sh candidates          # v5 (auxiliary weight 1.0) as an INT8 candidate; the PublicTest rule
#                                              # against the default (v4); the v1-v5 ensemble and its two-fold estimate
#   bash scripts/round5.sh ship DEFAULT ACC    # DEFAULT: keep or v5; ACC: keep or 5 (the v1-v5 ensemble)
# Then: ferkit evaluate ... --model-card (see the README's reproduce steps).
set -euo pipefail
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps
round_args v5 5 "$@"

case "$1" in
candidates)
  challenge fer2013 5 v4 v5 ;;
ship)
  if [ "$2" = v5 ]; then ship_default fer2013 v5; fi
  if [ "$3" = 5 ]; then ship_accurate $C/fer2013-accurate5.onnx fer2013; fi ;;
esac
