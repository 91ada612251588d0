#!/usr/bin/env bash
# The whole pipeline on the shipped sample, offline, with the built-in teacher.
set -euo pipefail
cd "$(dirname "$0")/.."
LTD=".venv/bin/ltd"
W="${LTD_WORKDIR:-demo_work}"
export LTD_WORKDIR="$W"
echo "== 1. word IDF over data/corpus_sample.txt"
$LTD idf build data/corpus_sample.txt
echo "== character weights of two sentences"
$LTD idf weights "今天天气很好，我们去公园散步吧。" "iPhone 15 降价了！"
