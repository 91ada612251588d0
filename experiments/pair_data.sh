#!/usr/bin/env bash
# Teacher files for the relational (pair) training of the shipped models, with the model's
# own IDF table and segmenter: corpus sentences, paragraphs and documents. Resumable: rerun
# after an interruption and each teacher-embed continues where it stopped.
#   DIR=repro_work bash experiments/pair_data.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LTD=".venv/bin/ltd"
DATA="${DATA:-../shared/data}"
DIR="${DIR:-${LTD_WORKDIR:-repro_work}}"
MODEL="${MODEL:-ltd_bert/models/zh-small}"
NSENT="${NSENT:-131072}"
NPARA="${NPARA:-8192}"
NDOC="${NDOC:-2048}"
mkdir -p "$DIR"
. scripts/lines.sh
EMB=("$LTD" teacher-embed --idf "$MODEL/idf.tsv.gz" --segmenter rjieba)
lines "$DATA/corpus/zh_big.txt" 1 262144 "$DIR/sent.txt"
[ -f "$DIR/paras.txt" ] || .venv/bin/python scripts/paragraphs.py "$DATA/corpus/zh_docs.txt" \
  20481 56132 "$DIR/paras.txt" 24576
lines "$DATA/corpus/zh_docs.txt" 1 20480 "$DIR/docs.txt"
"${EMB[@]}" -i "$DIR/sent.txt" -o "$DIR/sent.h5" --limit $((NSENT / 2))
"${EMB[@]}" -i "$DIR/paras.txt" -o "$DIR/paras.h5" --limit "$NPARA" --batch-size 32 --chunk-size 512
"${EMB[@]}" -i "$DIR/docs.txt" -o "$DIR/docs.h5" --limit "$NDOC" --batch-size 32 --chunk-size 256
"${EMB[@]}" -i "$DIR/sent.txt" -o "$DIR/sent.h5" --limit "$NSENT"
