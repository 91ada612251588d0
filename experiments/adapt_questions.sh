#!/bin/bash
# `ltd adapt` of zh-small to near-paraphrase questions (docs/quality.md, "Adapting to a
# domain"): LCQMC's 15,917 distinct validation questions (never a test set), then the runs
# of the tables, each followed by its general suite. About 70 minutes a run on 2 cores
# (three epochs: 2 hours); a run already made is skipped, so a rerun resumes.
# Usage: bash experiments/adapt_questions.sh [OUT_DIR] [RUN ...]
#        (runs: c1 c3 c3own c1dom c1domlr)
set -euo pipefail
OUT="${1:-adapt_question_runs}"
shift || true
[ $# -gt 0 ] || set -- c1 c3
RUNS=("$@")
LTD="${LTD:-.venv/bin/python -m ltd_bert}"
mkdir -p "$OUT"
Q="$OUT/lcqmc_valid_questions.txt"
[ -f "$Q" ] || .venv/bin/python experiments/lcqmc_questions.py "$Q"
# settings as each run was made (before --new-words 4000, --pair-k 48 and --pair-anchors
# domain were the defaults)
declare -A ARGS=(
  [c1]="--replay-ratio 2 --pair-k 48 --new-words 4000 --epochs 2 --pair-anchors all --lr 5e-4"
  [c3]="--pair-k 48 --new-words 4000 --epochs 3 --pair-anchors all --lr 5e-4"
  [c3own]="--pair-k 48 --new-words 4000 --epochs 3 --replay-targets own --pair-anchors all --lr 5e-4"
  [c1dom]="--replay-ratio 2 --pair-k 48 --new-words 4000 --epochs 2 --pair-anchors domain --no-suite --lr 5e-4"
  [c1domlr]="--replay-ratio 2 --pair-k 48 --new-words 4000 --epochs 2 --pair-anchors domain --no-suite --lr 1e-3"
)
source experiments/adapt_runs.sh
adapt_runs "$Q" lq "${RUNS[@]}"
# zh-small's own, the figures each run is set against
[ -s "$OUT/zh-small.suite.json" ] || {
  $LTD eval suite -m zh-small --json > "$OUT/zh-small.suite.json.partial" &&
    mv "$OUT/zh-small.suite.json.partial" "$OUT/zh-small.suite.json"
}
