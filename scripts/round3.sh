#!/usr/bin/env bash
# Round 3 of docs/quality.md, after the distilled runs (runs/<set>-distilled) beside rounds 1 and 2:
#   bash scripts/round3.sh candidates SET        # v3 (the student) as an INT8 candidate; the PublicTest rule against
#                                                # the default (v1); the v1+v2+v3 ensemble with weights fitted on PublicTest
#   bash scripts/round3.sh ship SET DEFAULT ACC  # DEFAULT: v1 (keep) or v3; ACC: 2 (keep SET-accurate) or 3
# SET: fer2013 or ferplus. Then: ferkit evaluate ... --model-card (see the README's reproduce steps).
set -euo pipefail
usage() { echo "usage: $0 candidates fer2013|ferplus | ship fer2013|ferplus v1|v3 2|3" >&2; exit 2; }
case "${1:-}:${2:-}:${3:-}:${4:-}:$#" in
  candidates:fer2013:::2|candidates:ferplus:::2) ;;
  ship:fer2013:v[13]:[23]:4|ship:ferplus:v[13]:[23]:4) ;;
  *) usage ;;
esac
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps

case "$1" in
candidates)
  challenge $2 3 v1 v3 ;;
ship)
  if [ "$3" = v3 ]; then ship_default $2 v3; fi
  if [ "$4" = 3 ]; then ship_accurate $C/$2-accurate3.onnx $2; fi ;;
esac
