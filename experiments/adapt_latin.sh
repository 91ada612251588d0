#!/bin/bash
# `ltd adapt` on Chinese text with English in it (the suite's `latin` kind: Latin letters
# ≥ 30 % of the characters; product names, code, names in subtitles) from zh-small's
# model 19, the shipped network before its words (docs/quality.md, "Adapting to a domain"):
# the 20,291 such lines of zh_big.txt 1-1,880,000, replayed beside 12,288 general lines and
# model 19's 24,576 paragraphs; one epoch; 4,000 new words alone; new words and one epoch;
# new words and two; all 6,725 words seen twice or more and 3,000 pieces of the Latin words
# still outside, alone and with one epoch; 12,000 words and 3,000 pieces fitted on
# more of the domain, the 78,571 lines of 1-1,880,000 with some English (Latin letters 10-30 %
# of the characters, `domain_lines.py latin_some`), embedded first into a teacher file of
# their own, alone (~140 minutes in all, most of it training, the teacher and
# the measurements before and after).
# Usage: MODEL=path/to/model19 PARAS=path/to/paras.h5 bash experiments/adapt_latin.sh [OUT_DIR]
# (`make reproduce` makes both: repro_work/model19, repro_work/paras.h5)
set -euo pipefail
OUT="${1:-adapt_latin_runs}"
DATA="${DATA:-../shared/data}"
MODEL="${MODEL:?set MODEL to model 19 (make reproduce: repro_work/model19)}"
PARAS="${PARAS:?set PARAS to the paras.h5 of model 19}"
LTD="${LTD:-.venv/bin/python -m ltd_bert}"
mkdir -p "$OUT"
.venv/bin/python scripts/domain_lines.py latin "$OUT" --corpus "$DATA/corpus/zh_big.txt" \
  --from 1 --domain latin:30000 --general 0
# the general lines of the verse demonstration (every 50th of 1,071,105-1,880,000, not verse)
.venv/bin/python scripts/domain_lines.py poetry "$OUT" --corpus "$DATA/corpus/zh_big.txt"
ARGS=(-m "$MODEL" --work "$OUT/latin.work" --replay "$OUT/general12k.txt" --replay "$PARAS"
  --pairs "$DATA/eval/STS-B/STS-B.test.data" --pairs "$DATA/eval/LCQMC/LCQMC.test.data")
run() {  # run NAME ARGS...: one adaptation into OUT/NAME, once
  local name="$1"
  shift
  [ -f "$OUT/$name/config.json" ] || $LTD adapt "$OUT/latin.txt" -o "$OUT/$name" "${ARGS[@]}" "$@"
}
run epoch1
run words --new-words 4000 --epochs 0
run words_epoch1 --new-words 4000
run words_epoch2 --new-words 4000 --epochs 2
run words_pieces --new-words 7000 --new-pieces 3000 --epochs 0
run words_pieces_epoch1 --new-words 7000 --new-pieces 3000
# more domain text, a teacher file made beside (~25 minutes of teacher), the
# text's rows after it (the held-out rows are latin.txt's tail, as before)
.venv/bin/python scripts/domain_lines.py latin_some "$OUT" --corpus "$DATA/corpus/zh_big.txt" \
  --from 1 --domain latin_some:100000 --general 0
$LTD teacher-embed -i "$OUT/latin_some.txt" -o "$OUT/latin_some.h5" --idf "$MODEL/idf.tsv.gz" \
  --segmenter rjieba
[ -f "$OUT/more_words_pieces/config.json" ] || $LTD adapt "$OUT/latin_some.h5" "$OUT/latin.txt" \
  -o "$OUT/more_words_pieces" "${ARGS[@]}" --new-words 12000 --new-pieces 3000 --epochs 0
