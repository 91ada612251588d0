#!/usr/bin/env bash
# The relational-term runs of docs/quality.md: from zh-small, 200 steps on the teacher files
# of experiments/pair_data.sh (paragraphs and sentences), each calibrated and measured on the
# calibration mix. Resumable; a finished run is skipped.
#   DIR=/work/runs/p OUT=/work/runs/x bash experiments/pair_runs.sh [NAME:PAIR_LOSS[:ARGS]...]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${DIR:-repro_work}"
OUT="${OUT:-$DIR/pair_runs}"
CALIB=ltd_bert/suites/calib
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- none:none corr:corr list:list "wide:corr:--pair-k 256 --pairs $DIR/wide.pairs.h5"
for run in "$@"; do
  IFS=: read -r name loss args <<< "$run"
  out="$OUT/$name"
  resume=
  [ -d "$out.partial" ] && resume=--resume
  # shellcheck disable=SC2086
  [ -f "$out/config.json" ] || .venv/bin/ltd train --data "$DIR/paras.h5" --data "$DIR/sent.h5" \
    -o "$out" --init-from ltd_bert/models/zh-small --keep-mean --lr 3e-4 --batch-size 64 \
    --max-steps 200 --eval-every 100 --checkpoint-every 50 --pair-loss "$loss" --pair-batch 64 \
    $args $resume
  .venv/bin/ltd eval suite -m "$out" --suite "$CALIB" --calibrate-on "$CALIB" --json \
    > "$OUT/$name.calib.json"
done
