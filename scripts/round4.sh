#!/usr/bin/env bash
# Round 4 of docs/quality.md, after the multi-task runs (runs/<set>-multi) beside rounds 1-3:
#   bash scripts/round4.sh candidates SET        # v4 (multi-task) as an INT8 candidate; the PublicTest rule against
#                                                # the default (fer2013: v1, ferplus: v3); the v1-v4 ensemble with
#                                                # weights fitted on PublicTest and its two-fold estimate
#   bash scripts/round4.sh ship SET DEFAULT ACC  # DEFAULT: keep or v4; ACC: keep or 4 (the v1-v4 ensemble)
# SET: fer2013 or ferplus. Then: ferkit evaluate ... --model-card (see the README's reproduce steps).
set -euo pipefail
usage() { echo "usage: $0 candidates fer2013|ferplus | ship fer2013|ferplus keep|v4 keep|4" >&2; exit 2; }
case "${1:-}:${2:-}:${3:-}:${4:-}:$#" in
  candidates:fer2013:::2|candidates:ferplus:::2) ;;
  ship:fer2013:keep:keep:4|ship:fer2013:keep:4:4|ship:fer2013:v4:keep:4|ship:fer2013:v4:4:4) ;;
  ship:ferplus:keep:keep:4|ship:ferplus:keep:4:4|ship:ferplus:v4:keep:4|ship:ferplus:v4:4:4) ;;
  *) usage ;;
esac
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps

case "$1" in
candidates)
  default=$([ "$2" = fer2013 ] && echo v1 || echo v3)           # the model shipped as SET today
  challenge $2 4 $default v4 ;;
ship)
  if [ "$3" = v4 ]; then ship_default $2 v4; fi
  if [ "$4" = 4 ]; then ship_accurate $C/$2-accurate4.onnx $2; fi ;;
esac
