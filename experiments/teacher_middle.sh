#!/usr/bin/env bash
# The corpus lines zh-tiny's teacher files leave out (zh_big.txt 393,217-1,611,776: 1,218,560
# lines) embedded with zh-small's IDF table into LTD_WORKDIR/tiny/teacher_mid.h5, for a
# student trained on the whole corpus (a model between zh-tiny and zh-small, docs/speed.md).
# Resumable: rerun after an interruption. ~45-70 minutes on 2 cores with AMX (bf16).
set -euo pipefail
cd "$(dirname "$0")/.."
LTD=".venv/bin/ltd"
export LTD_WORKDIR="${LTD_WORKDIR:-repro_work}"
DATA="${DATA:-../shared/data}"
W="$LTD_WORKDIR/tiny"
. scripts/lines.sh
middle_teacher_file "$W" "$(tiny_idf "$W")"
