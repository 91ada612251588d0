#!/bin/bash
# `ltd adapt` of zh-small to news headlines (docs/quality.md, "Adapting to a domain"): the
# 9,993 distinct titles of THUCNews's dev split (never its test split, from which the suite's
# headlines come), then the general suite of each run. A run already made is skipped, so a
# rerun resumes.
# Usage: bash experiments/adapt_headlines.sh [OUT_DIR] [RUN ...]   (runs: c1 own dom domlr dompw2)
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
  [c1]="--replay-ratio 2 --epochs 2 --pair-anchors all --lr 5e-4"
  [own]="--replay-ratio 2 --epochs 2 --replay-targets own --pair-anchors all --lr 5e-4"
  [dom]="--replay-ratio 2 --epochs 2 --pair-anchors domain --no-suite --lr 5e-4"
  [domlr]="--replay-ratio 2 --epochs 2 --pair-anchors domain --no-suite --lr 1e-3"
  [dompw2]="--replay-ratio 2 --epochs 2 --pair-anchors domain --no-suite --lr 1e-3 --pair-weight 2"
)
source experiments/adapt_runs.sh
adapt_runs "$T" hl "${RUNS[@]}"
