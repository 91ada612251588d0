"""Write the texts of an `ltd adapt` demonstration (docs/quality.md, "Adapting to a domain"):
the lines of one suite kind (scripts/make_suite.py's rule for it; or `latin_some`, below)
from a range of zh_big.txt, none of them in the suite or the calibration mix, and every 50th
other line of the same range as general text to replay.

Usage: python scripts/domain_lines.py KIND OUT_DIR [--from 1071105] [--to 1880000]
       [--corpus ../shared/data/corpus/zh_big.txt] [--domain NAME:N ...] [--general N]
Writes OUT_DIR/NAME.txt (the first N domain lines) for each --domain and
OUT_DIR/generalNk.txt; deterministic, in file order (`latin_some`: by SHARE_STEPS). Lines
are numbered from 1 (--from, --to inclusive); the general lines are those whose number less
one is a multiple of 50.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from make_suite import CJK, KINDS

#: Latin letters' share of the characters, for `latin_some`: more text of the
#: `latin` kind's domain, Chinese text with fewer English words in it
SOME_LATIN = (0.1, 0.3)
#: `latin_some` lines are written by share, highest first: 20-30 %, 15-20 %, 10-15 %
SHARE_STEPS = (0.2, 0.15)


def latin_share(t: str) -> float:
    return sum(c.isascii() and c.isalpha() for c in t) / len(t)


def latin_some(t: str) -> bool:
    """Chinese text with some English: Latin letters 10-30 % of the characters."""
    lo, hi = SOME_LATIN
    return lo <= latin_share(t) < hi and len(CJK.findall(t)) >= 4


def share_step(t: str) -> int:
    return sum(latin_share(t) < s for s in SHARE_STEPS)


#: kinds of domain text outside the suite: (test, the order lines are written in)
MORE = {"latin_some": (latin_some, share_step)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    big = [k for k, (src, _, _) in KINDS.items() if src == "big"]
    ap.add_argument("kind", choices=big + list(MORE))
    ap.add_argument("out", type=Path)
    ap.add_argument("--corpus", default="../shared/data/corpus/zh_big.txt")
    ap.add_argument("--from", dest="first", type=int, default=1_071_105)
    ap.add_argument("--to", dest="last", type=int, default=1_880_000)
    ap.add_argument("--domain", action="append", default=[], help="NAME:N, repeatable")
    ap.add_argument("--general", type=int, default=12_288)
    args = ap.parse_args()
    test, order = MORE.get(args.kind) or (KINDS[args.kind][1], None)
    held: set[str] = set()
    for folder in ("ltd_bert/suites/suite", "ltd_bert/suites/calib"):
        for f in Path(folder).glob("*.txt"):
            held |= set(f.read_text(encoding="utf-8").splitlines())
    wanted = {name: int(n) for name, n in (d.split(":") for d in args.domain)}
    domain: list[str] = []
    general: list[str] = []
    seen: set[str] = set()
    with open(args.corpus, encoding="utf-8") as fh:
        for i, line in enumerate(fh):  # line i + 1
            if i + 1 < args.first:
                continue
            if i + 1 > args.last:
                break
            t = line.strip()
            if not t or t in seen or t in held:
                continue
            seen.add(t)
            if test(t):
                domain.append(t)
            elif i % 50 == 0 and len(general) < args.general:
                general.append(t)
    if order:
        domain.sort(key=order)  # stable: file order within a step
    args.out.mkdir(parents=True, exist_ok=True)
    files = {name: domain[:n] for name, n in wanted.items()}
    if args.general:
        files[f"general{args.general // 1024}k"] = general
    for name, rows in files.items():
        (args.out / f"{name}.txt").write_text("".join(t + "\n" for t in rows), encoding="utf-8")
        print(f"{name}: {len(rows)} lines")


if __name__ == "__main__":
    main()
