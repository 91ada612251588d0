"""A narrow domain for `ltd adapt` from the shared evaluation sets: the distinct texts of a
pair file's first two columns (never a test set), shuffled with seed 0, one per line. The
default is LCQMC's validation set (near-paraphrase questions, the kind the issue names);
`--source` takes another, e.g. STS-B's training set (captions and news sentences) to check
a setting chosen on the first.

    .venv/bin/python experiments/lcqmc_questions.py OUT.txt [--source FILE]
    ltd adapt OUT.txt -m zh-small -o lq_none --replay-ratio 2 --pair-loss none
    ltd adapt OUT.txt -m zh-small -o lq_corr --replay-ratio 2 --pair-loss corr
    ltd eval suite -m lq_corr        # the general kinds' pair columns after it
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

EVAL = Path(__file__).resolve().parents[2] / "shared/data/eval"
VALID = EVAL / "LCQMC/LCQMC.valid.data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--source", type=Path, default=VALID)
    args = ap.parse_args()
    if "test" in args.source.name:
        raise SystemExit(f"{args.source}: a test set is never a domain to adapt to")
    seen: dict[str, None] = {}
    for line in args.source.read_text(encoding="utf-8").splitlines():
        for q in line.split("\t")[:2]:
            if q.strip():
                seen.setdefault(q.strip())
    texts = list(seen)
    random.Random(0).shuffle(texts)
    args.out.write_text("\n".join(texts) + "\n", encoding="utf-8")
    print(f"{len(texts)} texts -> {args.out}")


if __name__ == "__main__":
    main()
