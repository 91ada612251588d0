#!/usr/bin/env bash
# A 128-unit student from a shipped model, on zh-tiny's teacher files (scripts/lines.sh
# `tiny_teacher_files`), resumable, a finished run skipped:
#   narrow   zh-small narrowed 384 → 128 units, 1,500 steps on corpus sentences
#   widen    zh-tiny widened 64 → 128 units, the same steps
#   mid      one epoch from the better of the two (validation cosine) with paragraphs and
#            documents mixed in, read in windows of 384 characters as `encode` reads them
#   narrow256  zh-small narrowed 384 → 256 units, the first runs' 1,500 steps
#   mid256   one epoch from narrow256 as mid's
#   m256, m256b  two epochs from narrow256 (lr 1e-3, then 5e-4) with every paragraph and
#            document file of zh-small's training since its model 14 (paras, paras2, docs2,
#            docs3a; docs2.h5: zh_docs.txt texts 2,049-8,192), read in windows of 384
#   m256c    3,600 steps from m256b (lr 5e-4) on the corpus lines zh-tiny's files leave out
#            (zh_big.txt 393,217-1,611,776: experiments/teacher_middle.sh's teacher_mid.h5)
#            with the documents, paragraphs and teacher10.h5 (the validation rows)
#   m256w    m256c's word path grown by 4,000 words of teacher_mid.h5's last 300,000 rows,
#            no training step (as zh-small's model 20)
#   m256p, m256n  600 steps from m256w on teacher_mid.h5's first 131,072 rows (teacher_head.h5)
#            and paras.h5, lr 3e-4, with the relational term (`--pair-loss corr`) and without
#   m256q    1,800 steps from m256p with the relational term on teacher_mid.h5's next 262,144
#            rows (teacher_next.h5), paras.h5 and docs3a.h5 (their documents held), lr 3e-4
#   m256qw   m256q's word path grown by 4,000 more words of teacher_mid.h5, as m256w's
#   m288, m288w  zh-small narrowed 384 → 288 units, 4,300 steps (m256's steps to its first
#            epoch's end) at lr 1e-3 on m256c's files, then 4,000 words as m256w's
#   m288c, m288cw  3,600 steps from m288w on m256c's files at lr 5e-4 (as m256c), then
#            4,000 more words
#   m288p, m288pw  1,200 steps from m288cw with the relational term on m256q's files, then
#            4,000 more words
#   m288d    900 steps from m288pw on every paragraph and document file with teacher10.h5,
#            lr 3e-4 (documents' fidelity back over zh-small's)
#   soupA    the weights (1 - A) · m288pw + A · m288d (experiments/soup.py), A = 0.2 ... 0.7;
#            soup0.3p: soup0.3's word path cut to 30,600 words, the 22 MB a shipped model may
#            take (experiments/prune_lexicon.py, weighed on 200,000 lines of middle.txt)
#   m288dp   400 steps of the relational term from m288d on m288p's files
# then each is calibrated on the calibration mix and measured on the suite and on STS-B /
# LCQMC test (OUT/NAME.suite.txt, .suite.json, .sts.txt).
#   OUT=/work/runs/mid bash experiments/narrow_runs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LTD=".venv/bin/ltd"
export LTD_WORKDIR="${LTD_WORKDIR:-repro_work}"
DATA="${DATA:-../shared/data}"
OUT="${OUT:-$LTD_WORKDIR/narrow_runs}"
PRECISION="${PRECISION:-bf16}"  # training in bf16 needs AMX or AVX512-BF16; else fp32
W="$LTD_WORKDIR/tiny"
mkdir -p "$OUT"
. scripts/lines.sh
IDF="$(tiny_idf "$W")"
tiny_teacher_files "$W" "$IDF"
first=(--hidden-size 128 --keep-mean --data "$W/teacher_a.h5" --data "$W/teacher10.h5"
  --mix-files --epochs 1 --max-steps 1500 --lr 1e-3 --batch-size 256 --eval-every 250
  --checkpoint-every 100 --patience 4 --segmenter rjieba --precision "$PRECISION" --seed 70)
train_once "$OUT/narrow" --init-from ltd_bert/models/zh-small "${first[@]}"
train_once "$OUT/widen" --init-from ltd_bert/models/zh-tiny "${first[@]}"
best() { .venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['best']['val_cos'])" "$1/config.json"; }
start="$OUT/narrow"
.venv/bin/python -c "import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))" \
  "$(best "$OUT/widen")" "$(best "$OUT/narrow")" && start="$OUT/widen"
# an epoch from a trained start, long texts read in windows as `encode` reads them
again=(--keep-mean --mix-files --epochs 1 --batch-size 256 --eval-every 500
  --checkpoint-every 100 --patience 4 --segmenter rjieba --precision "$PRECISION"
  --text-window 384)
epoch=("${again[@]}" --data "$W/paras.h5" --data "$W/docs3a.h5" --data "$W/teacher_a.h5"
  --data "$W/teacher10.h5" --lr 1e-3 --seed 71)
train_once "$OUT/mid" --init-from "$start" "${epoch[@]}"
train_once "$OUT/narrow256" --init-from ltd_bert/models/zh-small "${first[@]}" --hidden-size 256
train_once "$OUT/mid256" --init-from "$OUT/narrow256" "${epoch[@]}"
lines "$DATA/corpus/zh_docs.txt" 2049 8192 "$W/docs2.txt"
$LTD teacher-embed -i "$W/docs2.txt" -o "$W/docs2.h5" --idf "$IDF" "${LONG_TEXTS[@]}"
# every paragraph and document file zh-small learnt from since its model 14
long=(--data "$W/paras.h5" --data "$W/paras2.h5" --data "$W/docs2.h5" --data "$W/docs3a.h5")
both=("${again[@]}" "${long[@]}" --data "$W/teacher_a.h5" --data "$W/teacher10.h5")
train_once "$OUT/m256" --init-from "$OUT/narrow256" "${both[@]}" --lr 1e-3 --seed 71
train_once "$OUT/m256b" --init-from "$OUT/m256" "${both[@]}" --lr 5e-4 --seed 72
middle_teacher_file "$W" "$IDF"
# the new corpus lines with the documents and paragraphs; 4,000 words of them, no step
middle=("${again[@]}" "${long[@]}" --data "$W/teacher_mid.h5" --data "$W/teacher10.h5")
words=(--data "$W/teacher_mid.h5" "${NO_STEP[@]}" --lexicon-add 4000 --lexicon-fit-rows 300000)
train_once "$OUT/m256c" --init-from "$OUT/m256b" "${middle[@]}" --lr 5e-4 --max-steps 3600 \
  --seed 73
train_once "$OUT/m256w" --init-from "$OUT/m256c" "${words[@]}"
rows() {  # rows FIRST LINES OUT: teacher_mid.h5's rows of input lines FIRST..LINES-1, once
  [ -f "$3" ] || .venv/bin/python -c "import sys; from pathlib import Path
from ltd_bert.tasks.replay import head_rows
head_rows(Path(sys.argv[1]), int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[2]))" \
    "$W/teacher_mid.h5" "$@"
}
rows 0 131072 "$W/teacher_head.h5"
# the steps with (or, as their control, without) the relational term
pairs=(--keep-mean --mix-files --lr 3e-4 --batch-size 256 --checkpoint-every 100
  --segmenter rjieba --precision "$PRECISION" --text-window 384 --pair-batch 128)
for run in m256p:corr m256n:none; do
  train_once "$OUT/${run%:*}" --init-from "$OUT/m256w" --data "$W/teacher_head.h5" \
    --data "$W/paras.h5" "${pairs[@]}" --max-steps 600 --eval-every 200 \
    --pair-loss "${run#*:}" --seed 74
done
rows 131072 393216 "$W/teacher_next.h5"
# the next rows, paragraphs and documents (the relational term's pairs table is per file list)
next=(--data "$W/teacher_next.h5" --data "$W/paras.h5" --data "$W/docs3a.h5")
train_once "$OUT/m256q" --init-from "$OUT/m256p" "${next[@]}" "${pairs[@]}" \
  --max-steps 1800 --eval-every 300 --pair-loss corr --seed 75
train_once "$OUT/m256qw" --init-from "$OUT/m256q" "${words[@]}"
train_once "$OUT/m288" --init-from ltd_bert/models/zh-small --hidden-size 288 "${middle[@]}" \
  --lr 1e-3 --max-steps 4300 --seed 76
train_once "$OUT/m288w" --init-from "$OUT/m288" "${words[@]}"
train_once "$OUT/m288c" --init-from "$OUT/m288w" "${middle[@]}" --lr 5e-4 --max-steps 3600 \
  --seed 77
train_once "$OUT/m288cw" --init-from "$OUT/m288c" "${words[@]}"
train_once "$OUT/m288p" --init-from "$OUT/m288cw" "${next[@]}" "${pairs[@]}" \
  --max-steps 1200 --eval-every 300 --pair-loss corr --seed 78
train_once "$OUT/m288pw" --init-from "$OUT/m288p" "${words[@]}"
train_once "$OUT/m288d" --init-from "$OUT/m288pw" "${again[@]}" "${long[@]}" \
  --data "$W/teacher10.h5" --lr 3e-4 --max-steps 900 --eval-every 300 --seed 79
for a in 0.2 0.3 0.5 0.7; do
  [ -d "$OUT/soup$a" ] || .venv/bin/python experiments/soup.py "$OUT/m288pw" "$OUT/m288d" \
    "$OUT/soup$a" --alpha "$a"
done
[ -d "$OUT/soup0.3p" ] || .venv/bin/python experiments/prune_lexicon.py "$OUT/soup0.3" \
  "$OUT/soup0.3p" --sample "$W/middle.txt" --lines 200000 --words 30600
train_once "$OUT/m288dp" --init-from "$OUT/m288d" "${next[@]}" "${pairs[@]}" \
  --max-steps 400 --eval-every 200 --pair-loss corr --seed 80
E="$DATA/eval"
for m in narrow widen mid narrow256 mid256 m256 m256b m256c m256w m256p m256n m256q m256qw \
  m288 m288w m288cw m288pw m288d soup0.2 soup0.3 soup0.5 soup0.7 soup0.3p \
  m288dp; do
  [ -f "$OUT/$m.sts.txt" ] && continue
  $LTD eval suite -m "$OUT/$m" --calibrate-on ltd_bert/suites/calib > "$OUT/$m.suite.txt"
  $LTD eval suite -m "$OUT/$m" --json > "$OUT/$m.suite.json"
  $LTD eval pairs "$E/STS-B/STS-B.test.data" "$E/LCQMC/LCQMC.test.data" -m "$OUT/$m" \
    --max-pairs 3000 > "$OUT/$m.sts.txt.tmp" && mv "$OUT/$m.sts.txt.tmp" "$OUT/$m.sts.txt"
done
