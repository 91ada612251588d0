#!/usr/bin/env bash
# Rebuild the shipped `zh-tiny` (session 8): three teacher files, one training run, the
# similarity map chosen on the calibration mix, then STS-B/LCQMC test. Resumable at every
# step: rerun after an interruption. Needs ../shared/data. On 2 cores with AMX: ~11 + 8 +
# 8 minutes of teacher (bf16), ~20 minutes of training.
set -euo pipefail
cd "$(dirname "$0")/.."
LTD=".venv/bin/ltd"
export LTD_WORKDIR="${LTD_WORKDIR:-repro_work}"
DATA="${DATA:-../shared/data}"
W="$LTD_WORKDIR/tiny"
mkdir -p "$W"
IDF="$W/idf.tsv"  # the shipped zh-small's IDF table (the teacher vectors zh-small learnt)
[ -f "$IDF" ] || { gunzip -c ltd_bert/models/zh-small/idf.tsv.gz > "$IDF.tmp" && mv "$IDF.tmp" "$IDF"; }
. scripts/lines.sh
lines "$DATA/corpus/zh_big.txt" 1 393216 "$W/head.txt"
lines "$DATA/corpus/zh_docs.txt" 8193 20480 "$W/docs.txt"
lines "$DATA/corpus/zh_big.txt" 1611777 1879999 "$W/rest.txt"
$LTD teacher-embed -i "$W/head.txt" -o "$W/teacher_a.h5" --idf "$IDF"
$LTD teacher-embed -i "$W/docs.txt" -o "$W/docs3a.h5" --idf "$IDF" --batch-size 32 \
  --chunk-size 512
$LTD teacher-embed -i "$W/rest.txt" -o "$W/teacher10.h5" --idf "$IDF"
out="$W/zh-tiny" resume=
[ -d "$out.partial" ] && resume=--resume
[ -f "$out/config.json" ] && [ -z "$resume" ] || \
  $LTD train -o "$out" --embedding-dim 256 --hidden-size 128 --lexicon 16000 \
    --lexicon-dim 384 --data "$W/teacher_a.h5" --data "$W/docs3a.h5" \
    --data "$W/teacher10.h5" --epochs 2 --lr 3e-3 --batch-size 256 --eval-every 500 \
    --checkpoint-every 100 --patience 4 --seed 60 --segmenter rjieba --no-mix-files $resume
$LTD eval suite -m "$out" --calibrate-on data/calib
E="$DATA/eval"
$LTD eval "$E/STS-B/STS-B.test.data" "$E/LCQMC/LCQMC.test.data" -m "$out" \
  --teacher builtin --baselines --max-pairs 3000
