#!/bin/bash
# `ltd adapt` on Chinese text with English in it (the suite's `latin` kind: Latin letters
# ≥ 30 % of the characters; product names, code, names in subtitles) with the shipped
# zh-small (docs/quality.md, "Adapting to a domain", session 12): the 20,291 such lines of
# zh_big.txt 1-1,880,000, replayed beside 12,288 general lines and stage 19's 24,576
# paragraphs, one epoch (~25 minutes with the measurements before and after).
# Usage: PARAS=path/to/paras.h5 bash scripts/adapt_latin.sh [OUT_DIR]
# (paras.h5 is made by `make reproduce`'s stage 19 block)
set -euo pipefail
OUT="${1:-adapt_latin_runs}"
DATA="${DATA:-../shared/data}"
PARAS="${PARAS:?set PARAS to stage 19's paras.h5}"
LTD="${LTD:-.venv/bin/python -m ltd_bert}"
mkdir -p "$OUT"
.venv/bin/python scripts/domain_lines.py latin "$OUT" --corpus "$DATA/corpus/zh_big.txt" \
  --from 1 --domain latin:30000
.venv/bin/python scripts/domain_lines.py poetry "$OUT" --corpus "$DATA/corpus/zh_big.txt"
PAIRS=(--pairs "$DATA/eval/STS-B/STS-B.test.data" --pairs "$DATA/eval/LCQMC/LCQMC.test.data")
$LTD adapt "$OUT/latin.txt" -m zh-small -o "$OUT/adapt_latin" --replay "$OUT/general12k.txt" \
  --replay "$PARAS" "${PAIRS[@]}"
