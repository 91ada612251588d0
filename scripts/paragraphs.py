"""Paragraph-length training texts: pieces of 100-400 characters cut at sentence ends from
lines FROM..TO of a long-text corpus (`zh_docs.txt`), at most two per document, shuffled.

    .venv/bin/python scripts/paragraphs.py CORPUS FROM TO OUT LIMIT [SEED]

The student follows the teacher least on texts of ~65-400 characters
(docs/research-record-2026.md); the corpus lines are sentences (76 characters on average) or
whole documents.
OUT is written under a temporary name and renamed into place; it prints the piece count.
"""

from __future__ import annotations

import os
import random
import re
import sys

SHORTEST, LONGEST = 100, 400
ENDS = re.compile(r"(?<=[。！？!?；;])")


def pieces_of(line: str, rng: random.Random) -> list[str]:
    """Up to two pieces of one document: sentences joined until a length drawn in
    [SHORTEST, LONGEST] is reached, from a random sentence in its first half."""
    sents = [s for s in ENDS.split(line.strip()) if s]
    out, cur, target = [], "", rng.randint(SHORTEST, LONGEST)
    for s in sents[rng.randint(0, max(0, len(sents) - 1) // 2) :]:
        cur += s
        if len(cur) >= target:
            if SHORTEST <= len(cur) <= LONGEST:
                out.append(cur)
            cur, target = "", rng.randint(SHORTEST, LONGEST)
            if len(out) == 2:
                break
    return out


def main() -> None:
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__.split("\n\n")[1])
    src, lo, hi, out, limit = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        sys.argv[4],
        int(sys.argv[5]),
    )
    rng = random.Random(int(sys.argv[6]) if len(sys.argv) == 7 else 17)
    pieces: list[str] = []
    with open(src, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if n > hi:
                break
            if n >= lo:
                pieces.extend(pieces_of(line, rng))
    rng.shuffle(pieces)
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        f.write("".join(p + "\n" for p in pieces[:limit]))
    os.replace(out + ".tmp", out)
    print(f"{min(len(pieces), limit)} pieces → {out}")


if __name__ == "__main__":
    main()
