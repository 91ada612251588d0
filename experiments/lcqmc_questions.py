"""A near-paraphrase question domain for `ltd adapt`: the distinct questions of LCQMC's
validation set (never its test set), shuffled with seed 0, one per line.

    .venv/bin/python experiments/lcqmc_questions.py OUT.txt
    ltd adapt OUT.txt -m zh-small -o lq_none --replay-ratio 2 --pair-loss none
    ltd adapt OUT.txt -m zh-small -o lq_corr --replay-ratio 2 --pair-loss corr
    ltd eval suite -m lq_corr        # the general kinds' pair columns after it
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

VALID = Path(__file__).resolve().parents[2] / "shared/data/eval/LCQMC/LCQMC.valid.data"


def main() -> None:
    seen: dict[str, None] = {}
    for line in VALID.read_text(encoding="utf-8").splitlines():
        for q in line.split("\t")[:2]:
            if q.strip():
                seen.setdefault(q.strip())
    questions = list(seen)
    random.Random(0).shuffle(questions)
    Path(sys.argv[1]).write_text("\n".join(questions) + "\n", encoding="utf-8")
    print(f"{len(questions)} questions -> {sys.argv[1]}")


if __name__ == "__main__":
    main()
