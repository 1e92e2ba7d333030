#!/usr/bin/env bash
# One round of docs/quality.md, step by step, for any candidate: what scripts/round2.sh to round11.sh did for their
# own rounds (those are in git history, see docs/quality.md). Writes under $ROUND_DIR (default runs/round), never
# into src/: shipping a model is a separate, deliberate step (docs/training.md, "Ship a model").
#   bash research/round.sh candidate RUN NAME          # RUN/best.pt -> NAME-fp32.onnx (temperature fitted on
#                                                      # PublicTest) and NAME.onnx (INT8)
#   bash research/round.sh judge OLD NEW [OPTIONS]     # the PublicTest rule (python -m research.select), kept as
#                                                      # verdict_<NEW>.txt; OPTIONS: --role, margins, --max-p
#   bash research/round.sh ensemble NAME MEMBER... [--budget-ms MS]   # weights fitted on PublicTest -> NAME.onnx
#   bash research/round.sh report MODEL                # PrivateTest figures, after the verdicts
# Data: $FERKIT_DATA (the FER-2013 folder). Needs the [train] extra and scipy.
set -euo pipefail
usage() { echo "usage: $0 candidate RUN NAME | judge OLD NEW [OPTIONS] | ensemble NAME MEMBER... [--budget-ms MS] | report MODEL" >&2; exit 2; }
OUT=${ROUND_DIR:-runs/round}
D=${FERKIT_DATA:-}
[ -n "$D" ] || { echo "$0: set FERKIT_DATA to the folder holding fer2013.csv.gz" >&2; exit 2; }
case "${1:-}" in
candidate)
  [ $# -eq 3 ] || usage
  mkdir -p "$OUT"
  ferkit export "$2/best.pt" "$OUT/$3-fp32.onnx" --name "$3-fp32" --calibrate "$D"
  ferkit quantize "$OUT/$3-fp32.onnx" "$OUT/$3.onnx" --data "$D" --name "$3" ;;
judge)
  [ $# -ge 3 ] || usage
  mkdir -p "$OUT"
  python -m research.select "$2" "$3" --data "$D" "${@:4}" | tee "$OUT/verdict_$(basename "$3" .onnx).txt" ;;
ensemble)
  [ $# -ge 4 ] || usage
  mkdir -p "$OUT"
  name=$2
  shift 2
  python -m research.ensemble build "$@" --out "$OUT/$name.onnx" --name "$name" --fit-weights "$D" \
    | tee "$OUT/ensemble_$name.txt" ;;
report)
  [ $# -eq 2 ] || usage
  ferkit evaluate --model "$2" --data "$D" --tta none --robustness --out "$OUT" ;;
*) usage ;;
esac
