#!/usr/bin/env bash
# Fine-tuning runs from zh-small on the teacher files of experiments/pair_data.sh, each
# calibrated and measured on the calibration mix; resumable, a finished run is skipped.
# The relational-term runs of docs/quality.md (200 steps on paragraphs and sentences):
#   DIR=/work/runs/p OUT=/work/runs/x bash experiments/pair_runs.sh [NAME:PAIR_LOSS[:ARGS]...]
# Training that reads in windows, docs/speed.md (300 steps, documents too):
#   DIR=/work/runs/p OUT=/work/runs/w DATA="paras sent docs" STEPS=300 \
#       bash experiments/pair_runs.sh "win384:none:--text-window 384"
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${DIR:-repro_work}"
OUT="${OUT:-$DIR/pair_runs}"
CALIB=ltd_bert/suites/calib
DATA="${DATA:-paras sent}"
STEPS="${STEPS:-200}"
data=()
for f in $DATA; do data+=(--data "$DIR/$f.h5"); done
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- none:none corr:corr list:list "wide:corr:--pair-k 256 --pairs $DIR/wide.pairs.h5"
for run in "$@"; do
  IFS=: read -r name loss args <<< "$run"
  out="$OUT/$name"
  resume=
  [ -d "$out.partial" ] && resume=--resume
  # shellcheck disable=SC2086
  [ -f "$out/config.json" ] || .venv/bin/ltd train "${data[@]}" \
    -o "$out" --init-from ltd_bert/models/zh-small --keep-mean --lr 3e-4 --batch-size 64 \
    --max-steps "$STEPS" --eval-every 100 --checkpoint-every 50 --pair-loss "$loss" --pair-batch 64 \
    $args $resume
  .venv/bin/ltd eval suite -m "$out" --suite "$CALIB" --calibrate-on "$CALIB" --json \
    > "$OUT/$name.calib.json"
done
# zh-small itself on the mix, for comparison (its own similarity map)
.venv/bin/ltd eval suite -m zh-small --suite "$CALIB" --json > "$OUT/zh-small.calib.json"
