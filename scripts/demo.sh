#!/usr/bin/env bash
# The whole pipeline on the shipped sample, offline, with the built-in teacher:
# idf build → teacher-embed → train → encode → most similar pairs → eval.
set -euo pipefail
cd "$(dirname "$0")/.."
LTD=".venv/bin/ltd"
export LTD_WORKDIR="${LTD_WORKDIR:-demo_work}"
SHARED_EVAL="../shared/data/eval/STS-B/STS-B.test.data"
step() { printf '\n== %s\n' "$*"; }

step "1. word IDF over data/corpus_sample.txt (4,000 lines)"
$LTD idf build data/corpus_sample.txt
step "   what the weights do to two sentences"
$LTD idf weights "今天天气很好，我们去公园散步吧。" "iPhone 15 降价了！"

step "2. teacher vectors (built-in multilingual-e5-small; converted on first use, then resumable)"
$LTD teacher-embed

step "3. train the BiLSTM student (small size, 4 epochs)"
$LTD train --size small --epochs 4 --batch-size 64 --lr 3e-3

step "4. encode data/sentences.txt"
$LTD encode data/sentences.txt -o "$LTD_WORKDIR/sentences.npy"
.venv/bin/python scripts/similar_pairs.py data/sentences.txt "$LTD_WORKDIR/sentences.npy"

step "5. fidelity to the teacher on the held-out rows"
$LTD eval fidelity
if [ -f "$SHARED_EVAL" ]; then
  step "6. STS-B test (500 pairs): a 4,000-sentence demo student vs the static floor"
  $LTD eval "$SHARED_EVAL" --baselines --max-pairs 500
  step "   the same pairs with the shipped zh-small (1.88 M sentences, 20,480 documents, a word path; README \"Results\")"
  $LTD eval "$SHARED_EVAL" -m ltd_bert/models/zh-small --max-pairs 500
fi
echo
echo "Done. The run is in $LTD_WORKDIR/ (run.json records every step)."
