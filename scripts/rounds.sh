# Shared by scripts/round2.sh to round5.sh (sourced, not run): where things are, the export step, one round's
# PublicTest verdicts and the two ship steps.
D=${FERKIT_DATA:-../shared/data/fer2013}
W=src/ferkit/weights
C=runs/candidates
mkdir -p $C docs/eval/selection

export_pair() {  # RUN NAME OUTDIR: best.pt -> NAME-fp32.onnx (temperature fitted on PublicTest) and NAME.onnx (INT8)
  ferkit export "$1/best.pt" "$3/$2-fp32.onnx" --name "$2-fp32" --calibrate $D/fer2013.csv.gz
  ferkit quantize "$3/$2-fp32.onnx" "$3/$2.onnx" --data $D/fer2013.csv.gz --name "$2"
}

challenge() {  # SET ROUND OLD NEW: the candidate SET-NEW (exported) against the shipped SET-OLD on PublicTest, then
               # the ensemble of candidates v1..NEW with weights fitted on PublicTest and its two-fold estimate
  python benchmarks/select_default.py $C/$1-$3.onnx $C/$1-$4.onnx --clean-margin 0.001 --robust-margin -0.005 \
    | tee docs/eval/selection/verdict$2_$1.txt
  local n=${4#v} members=() i
  for i in $(seq 1 $n); do members+=($C/$1-v$i.onnx); done
  # a fit that puts all the weight on one model is refused (exit 1): that is a verdict too, so it is kept
  { ferkit ensemble "${members[@]}" --out $C/$1-accurate$n.onnx --name $1-accurate --fit-weights $D/fer2013.csv.gz \
      2>&1 || true; } | tee docs/eval/selection/ensemble$2_$1.txt
}

# A replaced model's old PrivateTest figures go with it: rerun `ferkit evaluate --model-card` for the new ones.
ship_default() {  # RUN SET: RUN's best.pt becomes SET and SET-fp32, its curves the set's
  export_pair "$1" "$2" $W
  rm -f $W/$2.metrics.json $W/$2-fp32.metrics.json
  cp "$1/curves.png" docs/eval/curves_$2.png
}
ship_accurate() {  # ONNX SET: an ensemble file becomes SET-accurate
  cp "$1" $W/$2-accurate.onnx
  rm -f $W/$2-accurate.metrics.json
}
