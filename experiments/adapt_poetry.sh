#!/bin/bash
# `ltd adapt` on classical verse (docs/quality.md, "Adapting to a domain"): the domain text,
# 12,288 general lines to replay, and the two runs.
# Usage: bash experiments/adapt_poetry.sh [OUT_DIR]   (run 2 replays model 19's paragraphs:
# PARAS=path/to/paras.h5, made by `make reproduce`'s model 19 block; ~30 minutes in all).
# The documented runs started from zh-small's model 19: MODEL=repro_work/model19 (`make
# reproduce`) gives the same start; the default is the shipped zh-small (model 21).
set -euo pipefail
OUT="${1:-adapt_poetry_runs}"
DATA="${DATA:-../shared/data}"
PARAS="${PARAS:-}"
MODEL="${MODEL:-zh-small}"
LTD="${LTD:-.venv/bin/python -m ltd_bert}"
mkdir -p "$OUT"
.venv/bin/python scripts/domain_lines.py poetry "$OUT" --corpus "$DATA/corpus/zh_big.txt" \
  --domain poems4k:4096 --domain poems8k:8192
PAIRS=(--pairs "$DATA/eval/STS-B/STS-B.test.data" --pairs "$DATA/eval/LCQMC/LCQMC.test.data")
$LTD adapt "$OUT/poems4k.txt" -m "$MODEL" -o "$OUT/adapt_poetry" --replay "$OUT/general12k.txt" \
  "${PAIRS[@]}"
if [ -n "$PARAS" ]; then
  $LTD adapt "$OUT/poems8k.txt" -m "$MODEL" -o "$OUT/adapt_poetry2" \
    --replay "$OUT/adapt_poetry.work/replay-0.h5" --replay "$PARAS" --epochs 2 "${PAIRS[@]}"
fi
