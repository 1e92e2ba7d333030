# Shared by scripts/round2.sh to round8.sh (sourced, not run): where things are, the export step, one round's
# PublicTest verdicts and the two ship steps.
D=${FERKIT_DATA:-../shared/data/fer2013}
W=src/ferkit/weights
C=runs/candidates
# Sourcing writes nothing: a script can refuse its arguments (round_args) before anything is touched.

round_args() {  # vN N ARGS...: a one-set round's arguments, `candidates` or `ship keep|vN keep|N`; else usage, exit 2
  local v=$1 n=$2
  shift 2
  case "${1:-}:${2:-}:${3:-}:$#" in
    candidates:::1|ship:keep:$n:3|ship:$v:keep:3|ship:$v:$n:3) ;;
    *) echo "usage: $0 candidates | ship keep|$v keep|$n" >&2; exit 2 ;;
  esac
}

export_pair() {  # RUN NAME OUTDIR: best.pt -> NAME-fp32.onnx (temperature fitted on PublicTest) and NAME.onnx (INT8)
  mkdir -p "$3"
  ferkit export "$1/best.pt" "$3/$2-fp32.onnx" --name "$2-fp32" --calibrate $D/fer2013.csv.gz
  ferkit quantize "$3/$2-fp32.onnx" "$3/$2.onnx" --data $D/fer2013.csv.gz --name "$2"
}

run_of() {  # SET vN: the training run behind candidate vN, one per round of docs/quality.md
  case "$1:$2" in  # rounds 1-4 trained both sets alike; from round 5 on each round trained one set
    *:v1) echo runs/$1 ;; *:v2) echo runs/$1-student ;; *:v3) echo runs/$1-distilled ;; *:v4) echo runs/$1-multi ;;
    ferplus:v5) echo runs/ferplus-distilled50 ;;
    fer2013:v5) echo runs/fer2013-multi-w1 ;; fer2013:v6) echo runs/fer2013-multi80 ;; fer2013:v7) echo runs/fer2013-distilled80 ;;
    fer2013:v8) echo runs/fer2013-wide80 ;;
    *) echo "no training run is known for candidate $2 of $1" >&2; return 2 ;;
  esac
}

export_candidates() {  # SET vN: export vN afresh and any earlier candidate missing here; sets members=(v1..vN files)
  local n=${2#v} i
  members=()
  for i in $(seq 1 $n); do
    if [ v$i = "$2" ] || [ ! -f $C/$1-v$i.onnx ]; then export_pair $(run_of $1 v$i) $1-v$i $C; fi
    members+=($C/$1-v$i.onnx)
  done
}

challenge() {  # SET ROUND OLD NEW [RULE...]: export NEW (and earlier candidates missing here), judge it against the
               # shipped OLD on PublicTest (RULE: more select_default.py options), then fit the ensemble of
               # candidates v1..NEW and print its two-fold estimate
  local n=${4#v} members
  mkdir -p docs/eval/selection
  rm -f $C/$1-accurate$n.onnx  # so a refused fit leaves no older ensemble behind for ensemble_cost to time
  export_candidates $1 $4
  judge $1 $2 $C/$1-$3.onnx $C/$1-$4.onnx "${@:5}"
  fit_ensemble $1 $2 $n - "${members[@]}"
}

judge() {  # SET ROUND OLD NEW [RULE...]: the PublicTest rule (rounds 3 on: +0.1 clean, at most -0.5 corrupted; RULE:
           # more select_default.py options) for the model files or names OLD and NEW, kept as verdictROUND_SET.txt
  python benchmarks/select_default.py $3 $4 --clean-margin 0.001 --robust-margin -0.005 "${@:5}" \
    | tee docs/eval/selection/verdict$2_$1.txt
}

fit_ensemble() {  # SET ROUND N BUDGET MEMBER.onnx...: weights fitted on PublicTest -> $C/SET-accurateN.onnx, with
                  # the two-fold estimate; BUDGET: ms per face the members may add up to (round 9 on), - for none.
                  # A fit that puts all the weight on one model is refused (exit 1): that is a verdict too, so kept
  local budget=()
  if [ "$4" != - ]; then budget=(--budget-ms $4); fi
  { ferkit ensemble "${@:5}" --out $C/$1-accurate$3.onnx --name $1-accurate --fit-weights $D/fer2013.csv.gz \
      "${budget[@]}" 2>&1 || true; } | tee docs/eval/selection/ensemble$2_$1.txt
}

ensemble_cost() {  # SET ROUND N: the classifier latency of the ensemble challenge SET ROUND OLD vN just fitted
                   # (none if the fit was refused), against a round's ceiling; no accuracy is shown
  if [ -f $C/$1-accurate$3.onnx ]; then
    python benchmarks/core.py --model $C/$1-accurate$3.onnx --latency-only | tee docs/eval/selection/cost$2_$1.txt
  fi
}

one_set_round() {  # SET ROUND OLD vN ARGS...: rounds 6 on, for one label set. ARGS `candidates`: challenge vN
                   # against the shipped OLD (paired test included) and time the ensemble; `ship keep|vN keep|N`
  local set=$1 round=$2 old=$3 new=$4 n=${4#v}
  shift 4
  round_args $new $n "$@"
  case "$1" in
  candidates)
    challenge $set $round $old $new --max-p 0.05
    ensemble_cost $set $round $n ;;
  ship)
    if [ "$2" = $new ]; then ship_default $set $new; fi
    if [ "$3" = $n ]; then ship_accurate $C/$set-accurate$n.onnx $set; fi ;;
  esac
}

# A replaced model's old PrivateTest figures go with it: rerun `ferkit evaluate --model-card` for the new ones.
ship_default() {  # SET vN: candidate vN's run becomes SET and SET-fp32 (exported again under that name),
                  # and its curves the set's
  local run
  run=$(run_of $1 $2)
  export_pair $run $1 $W
  rm -f $W/$1.metrics.json $W/$1-fp32.metrics.json
  cp $run/curves.png docs/eval/curves_$1.png
}
ship_accurate() {  # ONNX SET: an ensemble file becomes SET-accurate
  cp "$1" $W/$2-accurate.onnx
  rm -f $W/$2-accurate.metrics.json
}
