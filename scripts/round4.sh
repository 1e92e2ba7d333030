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
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates), export_pair

case "$1" in
candidates)
  default=$([ "$2" = fer2013 ] && echo v1 || echo v3)           # the model shipped as SET today
  [ -f $C/$2-v1.onnx ] || export_pair runs/$2 $2-v1 $C           # earlier rounds, if their scripts have not run here
  [ -f $C/$2-v2.onnx ] || export_pair runs/$2-student $2-v2 $C
  [ -f $C/$2-v3.onnx ] || export_pair runs/$2-distilled $2-v3 $C
  export_pair runs/$2-multi $2-v4 $C
  python benchmarks/select_default.py $C/$2-$default.onnx $C/$2-v4.onnx --clean-margin 0.001 --robust-margin -0.005 \
    | tee docs/eval/selection/verdict4_$2.txt
  # a fit that puts all the weight on one model is refused (exit 1): that is a verdict too, so it is kept
  { ferkit ensemble $C/$2-v1.onnx $C/$2-v2.onnx $C/$2-v3.onnx $C/$2-v4.onnx --out $C/$2-accurate4.onnx \
      --name $2-accurate --fit-weights $D/fer2013.csv.gz 2>&1 || true; } | tee docs/eval/selection/ensemble4_$2.txt ;;
ship)  # a replaced model's old PrivateTest figures go with it: rerun `ferkit evaluate --model-card` for the new ones
  if [ "$3" = v4 ]; then
    export_pair runs/$2-multi $2 $W
    rm -f $W/$2.metrics.json $W/$2-fp32.metrics.json
    cp runs/$2-multi/curves.png docs/eval/curves_$2.png
  fi
  if [ "$4" = 4 ]; then
    cp $C/$2-accurate4.onnx $W/$2-accurate.onnx
    rm -f $W/$2-accurate.metrics.json
  fi ;;
esac
