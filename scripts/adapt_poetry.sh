#!/bin/bash
# `ltd adapt` on classical verse with the shipped zh-small (docs/quality.md, "Adapting to a
# domain", session 11): the domain text, 12,288 general lines to replay, and the two runs.
# Usage: bash scripts/adapt_poetry.sh [OUT_DIR]   (run 2 replays stage 19's paragraphs:
# PARAS=path/to/paras.h5, made by `make reproduce`'s stage 19 block; ~30 minutes in all)
set -euo pipefail
OUT="${1:-adapt_poetry_runs}"
DATA="${DATA:-../shared/data}"
PARAS="${PARAS:-}"
LTD="${LTD:-.venv/bin/python -m ltd_bert}"
mkdir -p "$OUT"
.venv/bin/python - "$DATA/corpus/zh_big.txt" "$OUT" <<'PY'
import sys
sys.path.insert(0, "scripts")
from make_suite import MODERN, POEM

src, out = sys.argv[1], sys.argv[2]
held = set()
for k in ("suite", "calib"):
    held |= set(open(f"data/{k}/poetry.txt", encoding="utf-8").read().splitlines())
poems, general, seen = [], [], set()
with open(src, encoding="utf-8") as fh:
    for i, line in enumerate(fh):  # lines 1,071,105-1,879,999 (0-based 1,071,104-)
        if i < 1_071_104:
            continue
        if i >= 1_880_000:
            break
        t = line.strip()
        if not t or t in seen or t in held:
            continue
        seen.add(t)
        if POEM.match(t) and not MODERN.search(t):
            poems.append(t)
        elif i % 50 == 0 and len(general) < 12288:
            general.append(t)
for name, rows in (("poems4k", poems[:4096]), ("poems8k", poems[:8192]), ("general12k", general)):
    with open(f"{out}/{name}.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
PY
PAIRS=(--pairs "$DATA/eval/STS-B/STS-B.test.data" --pairs "$DATA/eval/LCQMC/LCQMC.test.data")
$LTD adapt "$OUT/poems4k.txt" -m zh-small -o "$OUT/adapt_poetry" --replay "$OUT/general12k.txt" \
  "${PAIRS[@]}"
if [ -n "$PARAS" ]; then
  $LTD adapt "$OUT/poems8k.txt" -m zh-small -o "$OUT/adapt_poetry2" \
    --replay "$OUT/adapt_poetry.work/replay-0.h5" --replay "$PARAS" --epochs 2 "${PAIRS[@]}"
fi
