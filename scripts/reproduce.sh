#!/usr/bin/env bash
# Rebuild the shipped default model from scratch: the whole recipe, resumable at every step.
# Needs ../shared/data (the 2 M-sentence corpus and the evaluation sets). On 2 CPU cores the
# teacher step dominates: ~60 sentences/s, so LIMIT=200000 is about an hour; rerun the
# script after an interruption and every step continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
LTD=".venv/bin/ltd"
export LTD_WORKDIR="${LTD_WORKDIR:-repro_work}"
DATA="${DATA:-../shared/data}"
LIMIT="${LIMIT:-202752}"
SIZE="${SIZE:-base}"
EPOCHS="${EPOCHS:-3}"
E="$DATA/eval"

[ -f "$LTD_WORKDIR/idf.tsv" ] || $LTD idf build "$DATA/corpus/zh_big.txt"
$LTD teacher-embed --limit "$LIMIT"
if [ -d "$LTD_WORKDIR/model.partial" ]; then RESUME=--resume; else RESUME=; fi
[ -f "$LTD_WORKDIR/model/config.json" ] && [ -z "$RESUME" ] || \
  $LTD train --size "$SIZE" --epochs "$EPOCHS" --batch-size 256 --lr 3e-3 --eval-every 400 $RESUME
$LTD eval fidelity
# settings were chosen on the validation splits; the test splits are reported once
$LTD eval "$E/STS-B/STS-B.test.data" "$E/LCQMC/LCQMC.test.data" --teacher builtin \
  --baselines --max-pairs 3000
