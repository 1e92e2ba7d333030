# Shared by scripts/round2.sh and round3.sh (sourced, not run): where things are, and one export step.
D=${FERKIT_DATA:-../shared/data/fer2013}
W=src/ferkit/weights
C=runs/candidates
mkdir -p $C docs/eval/selection

export_pair() {  # RUN NAME OUTDIR: best.pt -> NAME-fp32.onnx (temperature fitted on PublicTest) and NAME.onnx (INT8)
  ferkit export "$1/best.pt" "$3/$2-fp32.onnx" --name "$2-fp32" --calibrate $D/fer2013.csv.gz
  ferkit quantize "$3/$2-fp32.onnx" "$3/$2.onnx" --data $D/fer2013.csv.gz --name "$2"
}
