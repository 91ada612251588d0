#!/usr/bin/env bash
# Training that reads long texts in windows (docs/speed.md "Long texts in windows"): from
# zh-small, 300 steps on the teacher files of experiments/pair_data.sh (paragraphs,
# sentences and documents), calibrated and measured on the calibration mix. Resumable.
#   DIR=/work/runs/p OUT=/work/runs/w bash experiments/window_train.sh [NAME:TEXT_WINDOW...]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${DIR:-repro_work}"
OUT="${OUT:-$DIR/window_runs}"
CALIB=ltd_bert/suites/calib
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- win384:384
for run in "$@"; do
  IFS=: read -r name window <<< "$run"
  out="$OUT/$name"
  resume=
  [ -d "$out.partial" ] && resume=--resume
  [ -f "$out/config.json" ] || .venv/bin/ltd train --data "$DIR/paras.h5" --data "$DIR/sent.h5" \
    --data "$DIR/docs.h5" -o "$out" --init-from ltd_bert/models/zh-small --keep-mean --lr 3e-4 \
    --batch-size 64 --max-steps 300 --eval-every 100 --checkpoint-every 50 \
    --text-window "$window" $resume
  .venv/bin/ltd eval suite -m "$out" --suite "$CALIB" --calibrate-on "$CALIB" --json \
    > "$OUT/$name.calib.json"
done
.venv/bin/ltd eval suite -m zh-small --suite "$CALIB" --json > "$OUT/zh-small.calib.json"
