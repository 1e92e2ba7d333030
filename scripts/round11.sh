#!/usr/bin/env bash
# Round 11 of docs/quality.md: per-class offsets on the log-probabilities, fitted on PublicTest, no training.
#   bash scripts/round11.sh candidates      # `ferkit offsets` for each model at stake: figures, verdict, a candidate
#                                           # file runs/candidates/NAME-offsets.onnx
#   bash scripts/round11.sh ship NAME...    # the named models (those whose verdict passed) get their offsets
# Then: ferkit evaluate ... --model-card for each shipped one (see the README's reproduce steps).
set -euo pipefail
. "$(dirname "$0")/rounds.sh"  # D (data), W (weights), C (candidates)
MODELS="fer2013 fer2013-fp32 fer2013-accurate"
usage() { echo "usage: $0 candidates | ship NAME... (NAME: ${MODELS// /, })" >&2; exit 2; }
case "${1:-}" in
  candidates) [ $# -eq 1 ] || usage ;;
  ship) [ $# -gt 1 ] || usage
    for m in "${@:2}"; do case " $MODELS " in *" $m "*) ;; *) usage ;; esac; done ;;
  *) usage ;;
esac
case "$1" in
candidates)
  mkdir -p docs/eval/selection $C
  for m in $MODELS; do
    ferkit offsets $m --fit $D/fer2013.csv.gz --out $C/$m-offsets.onnx --report docs/eval/selection/offsets11_$m.json \
      | tee docs/eval/selection/offsets11_$m.txt
  done ;;
ship)
  for m in "${@:2}"; do
    cp $C/$m-offsets.onnx $W/$m.onnx
    rm -f $W/$m.metrics.json  # its old figures go with it
  done ;;
esac
