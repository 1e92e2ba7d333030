#!/usr/bin/env bash
# Round 2 of docs/quality.md, after the student runs (runs/<set>-student) beside the first models (runs/<set>):
#   bash scripts/round2.sh candidates SET     # v1 (first model) and v2 (student) as INT8 candidates, then the PublicTest rule
#   bash scripts/round2.sh ship SET v1|v2     # the winner under the default name, the v1+v2 ensemble SET-accurate,
#                                             # and v2 (the student) as the option SET-robust
# SET: fer2013 or ferplus. Then: ferkit evaluate ... --model-card (see the README's reproduce steps).
set -euo pipefail
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates) and the shared steps

case "$1" in
candidates)
  export_pair $(run_of $2 v1) $2-v1 $C
  export_pair $(run_of $2 v2) $2-v2 $C
  python benchmarks/select_default.py $C/$2-v1.onnx $C/$2-v2.onnx | tee docs/eval/selection/verdict_$2.txt ;;
ship)
  ship_default $2 $3
  ferkit ensemble $C/$2-v1.onnx $C/$2-v2.onnx --out $W/$2-accurate.onnx --name $2-accurate \
    --fit-weights $D/fer2013.csv.gz | tee docs/eval/selection/ensemble_$2.txt
  rm -f $W/$2-accurate.metrics.json $W/$2-robust.metrics.json
  ferkit quantize $C/$2-v2-fp32.onnx $W/$2-robust.onnx --data $D/fer2013.csv.gz --name $2-robust ;;
*) echo "usage: $0 candidates SET | ship SET v1|v2" >&2; exit 2 ;;
esac
