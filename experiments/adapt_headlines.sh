#!/bin/bash
# `ltd adapt` of zh-small to news headlines (docs/quality.md, "Adapting to a domain"): the
# 9,993 distinct titles of THUCNews's dev split (never its test split, from which the suite's
# headlines come), then the general suite of each run. A run already made is skipped, so a
# rerun resumes.
# Usage: bash experiments/adapt_headlines.sh [OUT_DIR] [RUN ...]   (runs: c1 own)
set -euo pipefail
OUT="${1:-adapt_headline_runs}"
shift || true
[ $# -gt 0 ] || set -- c1
RUNS=("$@")
DATA="${DATA:-../shared/data}"
LTD="${LTD:-.venv/bin/python -m ltd_bert}"
mkdir -p "$OUT"
T="$OUT/thuc_dev_titles.txt"
[ -f "$T" ] || { cut -f1 "$DATA/eval/THUCNews/dev.txt" | awk 'NF && !seen[$0]++' > "$T.partial" &&
  mv "$T.partial" "$T"; }
declare -A ARGS=(
  [c1]="--replay-ratio 2 --epochs 2"
  [own]="--replay-ratio 2 --epochs 2 --replay-targets own"
)
for run in "${RUNS[@]}"; do
  mkdir -p "$OUT/work_$run"
  [ "$run" = "${RUNS[0]}" ] || [ -e "$OUT/work_$run/domain.h5" ] ||
    ln -s "$(realpath "$OUT/work_${RUNS[0]}")/domain.h5" "$OUT/work_$run/domain.h5"
  [ -f "$OUT/hl_$run/config.json" ] ||
    $LTD adapt "$T" -m zh-small -o "$OUT/hl_$run" --work "$OUT/work_$run" ${ARGS[$run]} \
      | tee "$OUT/hl_$run.log"
  [ -s "$OUT/hl_$run.suite.json" ] ||
    { $LTD eval suite -m "$OUT/hl_$run" --json > "$OUT/hl_$run.suite.json.partial" &&
      mv "$OUT/hl_$run.suite.json.partial" "$OUT/hl_$run.suite.json"; }
done
