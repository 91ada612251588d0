# Sourced by the reproduce scripts.
# a word path step with no training step, the model's mean kept, words cut with rjieba
# (add_words, add_pieces)
NO_STEP=(--keep-mean --epochs 0 --segmenter rjieba)
lines() {  # lines FILE FROM TO OUT: lines FROM..TO of FILE into OUT, once (atomic)
  [ -f "$4" ] || { sed -n "$2,$3p" "$1" > "$4.tmp" && mv "$4.tmp" "$4"; }
}
# add_words TRAIN MODEL OUT DIR [TEACHER-EMBED ARGS...]: the word steps of model 20, no training
# step (docs/pipeline.md): MODEL's word path grows by the 4,000 most frequent words it lacks in
# the corpus lines with English in them (DIR/latin.txt, embedded into DIR/latin.h5), into
# OUTa, then by 6,000 more of DIR/teacher10.h5's lines (model 14's), into OUT; each word
# fitted to the model's errors on those rows. TRAIN is the script's train wrapper (resumable).
add_words() {
  local train="$1" model="$2" out="$3" dir="$4"
  shift 4
  [ -f "$dir/latin.txt" ] || .venv/bin/python scripts/domain_lines.py latin "$dir" \
    --corpus "$DATA/corpus/zh_big.txt" --from 1 --domain latin:30000 --general 0
  $LTD teacher-embed -i "$dir/latin.txt" -o "$dir/latin.h5" --segmenter rjieba "$@"
  "$train" "${out}a" --init-from "$model" --data "$dir/latin.h5" "${NO_STEP[@]}" \
    --lexicon-add 4000 --lexicon-fit-rows 30000
  "$train" "$out" --init-from "${out}a" --data "$dir/teacher10.h5" "${NO_STEP[@]}" \
    --lexicon-add 6000 --lexicon-fit-rows 300000
}
# add_pieces TRAIN MODEL OUT DIR: the pieces of model 21, no training step (docs/pipeline.md):
# MODEL's word path (after add_words) grows by 600 pieces of the Latin words it still lacks
# in DIR/latin.h5, into OUT, fitted to its errors there; a Latin word outside the path is cut
# into them (`--lexicon-pieces`). TRAIN is the script's train wrapper (resumable).
add_pieces() {
  "$1" "$3" --init-from "$2" --data "$4/latin.h5" "${NO_STEP[@]}" --lexicon-pieces 600 \
    --lexicon-fit-rows 30000
}
# tiny_teacher_files DIR IDF: zh-tiny's teacher files (scripts/reproduce_tiny.sh), resumable:
# teacher_a.h5 (zh_big.txt lines 1-393,216), teacher10.h5 (1,611,777-1,879,999), docs3a.h5
# (zh_docs.txt texts 8,193-20,480), paras.h5 and paras2.h5 (24,576 paragraphs each).
# Needs LTD and DATA.
# teacher-embed's settings for long texts (paragraphs, documents): smaller batches, windows
# of 512 characters
LONG_TEXTS=(--batch-size 32 --chunk-size 512)
tiny_teacher_files() {
  local w="$1" idf="$2"
  lines "$DATA/corpus/zh_big.txt" 1 393216 "$w/head.txt"
  lines "$DATA/corpus/zh_docs.txt" 8193 20480 "$w/docs.txt"
  lines "$DATA/corpus/zh_big.txt" 1611777 1879999 "$w/rest.txt"
  $LTD teacher-embed -i "$w/head.txt" -o "$w/teacher_a.h5" --idf "$idf"
  $LTD teacher-embed -i "$w/docs.txt" -o "$w/docs3a.h5" --idf "$idf" "${LONG_TEXTS[@]}"
  $LTD teacher-embed -i "$w/rest.txt" -o "$w/teacher10.h5" --idf "$idf"
  [ -f "$w/paras.txt" ] || .venv/bin/python scripts/paragraphs.py "$DATA/corpus/zh_docs.txt" \
    20481 56132 "$w/paras.txt" 24576
  [ -f "$w/paras2.txt" ] || .venv/bin/python scripts/paragraphs.py "$DATA/corpus/zh_docs.txt" \
    1 20480 "$w/paras2.txt" 24576 18
  $LTD teacher-embed -i "$w/paras.txt" -o "$w/paras.h5" --idf "$idf" "${LONG_TEXTS[@]}"
  $LTD teacher-embed -i "$w/paras2.txt" -o "$w/paras2.h5" --idf "$idf" "${LONG_TEXTS[@]}"
}
# middle_teacher_file DIR IDF: the corpus lines zh-tiny's teacher files leave out (zh_big.txt
# 393,217-1,611,776: 1,218,560 lines) embedded into DIR/teacher_mid.h5, resumable. Needs LTD
# and DATA.
middle_teacher_file() {
  lines "$DATA/corpus/zh_big.txt" 393217 1611776 "$1/middle.txt"
  $LTD teacher-embed -i "$1/middle.txt" -o "$1/teacher_mid.h5" --idf "$2"
}
# tiny_idf DIR: DIR/idf.tsv, the shipped zh-small's IDF table (the teacher vectors zh-small
# learnt), unpacked once; prints its path
tiny_idf() {
  local idf="$1/idf.tsv"
  mkdir -p "$1"
  [ -f "$idf" ] || { gunzip -c ltd_bert/models/zh-small/idf.tsv.gz > "$idf.tmp" && mv "$idf.tmp" "$idf"; }
  echo "$idf"
}
# train_once OUT ARGS...: `ltd train -o OUT ARGS` unless OUT is done; resumed if interrupted
train_once() {
  local out="$1" resume=
  shift
  [ -d "$out.partial" ] && resume=--resume
  [ -f "$out/config.json" ] && [ -z "$resume" ] || $LTD train -o "$out" "$@" $resume
}
