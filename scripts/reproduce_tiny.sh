#!/usr/bin/env bash
# Rebuild the shipped `zh-tiny` (its model card has the recipe): six teacher files,
# three training runs, the similarity map chosen on the calibration mix, two word-only
# steps (seconds to minutes), the map chosen again, then STS-B/LCQMC test. Resumable at every
# step: rerun after an interruption. Needs ../shared/data. On 2 cores with AMX: ~11 + 8 +
# 8 + 12 minutes of teacher (bf16), ~30 + 12 + 12 minutes of training.
set -euo pipefail
cd "$(dirname "$0")/.."
LTD=".venv/bin/ltd"
export LTD_WORKDIR="${LTD_WORKDIR:-repro_work}"
DATA="${DATA:-../shared/data}"
W="$LTD_WORKDIR/tiny"
. scripts/lines.sh
IDF="$(tiny_idf "$W")"  # the shipped zh-small's IDF table (the teacher vectors zh-small learnt)
tiny_teacher_files "$W" "$IDF"
# hidden 64 (the earlier 256/128 zh-tiny's recipe at half the units), then two more
# epochs with the paragraphs of zh-small's model 19 mixed in
train_once "$W/tiny64" --embedding-dim 256 --hidden-size 64 --lexicon 16000 \
  --lexicon-dim 384 --data "$W/teacher_a.h5" --data "$W/docs3a.h5" \
  --data "$W/teacher10.h5" --epochs 2 --lr 3e-3 --batch-size 256 --eval-every 500 \
  --checkpoint-every 100 --patience 4 --seed 60 --segmenter rjieba --no-mix-files
more=(--keep-mean --data "$W/paras.h5" --data "$W/paras2.h5" --data "$W/docs3a.h5"
  --data "$W/teacher_a.h5" --data "$W/teacher10.h5" --mix-files --epochs 1 --batch-size 256
  --eval-every 500 --checkpoint-every 100 --patience 4 --segmenter rjieba)
train_once "$W/tiny64b" --init-from "$W/tiny64" "${more[@]}" --lr 1e-3 --seed 62
train_once "$W/zh-tiny" --init-from "$W/tiny64b" "${more[@]}" --lr 5e-4 --seed 63
$LTD eval suite -m "$W/zh-tiny" --calibrate-on ltd_bert/suites/calib
# words only, as zh-small's model 20 (scripts/reproduce.sh): 4,000 words of the
# corpus lines with English in them, then 6,000 of teacher10.h5's lines, no training step
# (`add_words` in scripts/lines.sh)
out="$W/zh-tiny20"  # the shipped zh-tiny
add_words train_once "$W/zh-tiny" "$out" "$W" --idf "$IDF"
$LTD eval suite -m "$out" --calibrate-on ltd_bert/suites/calib
E="$DATA/eval"
$LTD eval "$E/STS-B/STS-B.test.data" "$E/LCQMC/LCQMC.test.data" -m "$out" \
  --teacher builtin --baselines --max-pairs 3000
