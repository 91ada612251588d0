"""Write the texts of the fidelity suite (`ltd_bert/suites/suite/*.txt`) from held-back
parts of the shared corpora: zh_big.txt lines from 1,900,000 on and zh_docs.txt lines from
60,133 on, which no shipped model trains on (scripts/reproduce.sh stops before them), and news
headlines: every 16th title of THUCNews test.txt (its classes in turn; the labels unused).

`--calib` writes the calibration mix instead (`ltd_bert/suites/calib/*.txt`, half as many
texts per kind): the same kinds from lines 1,880,000-1,899,999 and 56,133-60,132, which no
model trains on either, so the similarity map is chosen on other texts than the suite reports
(no headlines and no Latin-mixed text: the shipped maps were chosen without them).

Usage: python scripts/make_suite.py [--calib] [--shared ../shared/data/corpus]
       [--eval ../shared/data/eval] [--out DIR]
Deterministic: the first texts of each kind in file order.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

BIG_FROM = 1_900_000  # zh_big.txt: lines before this are for training
DOCS_FROM = 60_133  # zh_docs.txt: the last 4,000 documents are held back
CALIB_BIG = (1_880_000, BIG_FROM)  # the calibration mix's lines
CALIB_DOCS = (56_133, DOCS_FROM)

CJK = re.compile(r"[\u4e00-\u9fff]")
QUESTION = re.compile(r"([？?]|[吗呢么][。！!…]*)$")
LEGAL = re.compile(r"本法|本条例|本规定|本办法|依照|依法|人民法院|当事人|应当")
MODERN = re.compile(r"[的了是们这那么吗呢啊吧我你他她它很要会说没]")
LATIN_SHARE = 0.3  # Chinese text with English in it: Latin letters ≥ 30 % of the characters


def latin(t: str) -> bool:
    """Chinese text with Latin-script words in it (product names, code, English terms)."""
    letters = sum(c.isascii() and c.isalpha() for c in t)
    return letters >= LATIN_SHARE * len(t) and len(CJK.findall(t)) >= 4


POEM = re.compile(
    r"^([\u4e00-\u9fff]{5}|[\u4e00-\u9fff]{7})[，,]([\u4e00-\u9fff]{5}|[\u4e00-\u9fff]{7})[。！？；;]"
)

# kind: (source, test, count)
KINDS = {
    "short": ("big", lambda t: len(t) <= 16, 600),
    "medium": ("big", lambda t: 17 <= len(t) <= 64, 600),
    "long_sentences": ("big", lambda t: 65 <= len(t) <= 200, 600),
    "questions": ("big", lambda t: bool(QUESTION.search(t)), 600),
    "legal": ("big", lambda t: bool(LEGAL.search(t)) and len(CJK.findall(t)) >= 10, 600),
    "poetry": ("big", lambda t: bool(POEM.match(t)) and not MODERN.search(t), 600),
    "latin": ("big", latin, 600),
    "docs_200_1000": ("docs", lambda t: 200 <= len(t) <= 1000, 500),
    "docs_1000_4000": ("docs", lambda t: 1000 < len(t) <= 4000, 300),
}
#: kinds added to the suite after the shipped maps were chosen (Latin-mixed text)
NOT_IN_CALIB = {"latin"}
#: the suite's headlines: every HEADLINE_STEP-th title of THUCNews/test.txt (by class)
HEADLINES, HEADLINE_STEP = 600, 16


def headlines(eval_dir: Path) -> list[str]:
    with open(eval_dir / "THUCNews" / "test.txt", encoding="utf-8") as fh:
        titles = [line.split("\t")[0].strip() for line in fh]
    return [t for t in titles[::HEADLINE_STEP] if t][:HEADLINES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default="../shared/data/corpus")
    ap.add_argument("--eval", default="../shared/data/eval", help="for the headlines")
    ap.add_argument("--out", default=None)
    ap.add_argument("--calib", action="store_true", help="the calibration mix")
    args = ap.parse_args()
    out = Path(args.out or ("ltd_bert/suites/calib" if args.calib else "ltd_bert/suites/suite"))
    ranges = (
        {"big": CALIB_BIG, "docs": CALIB_DOCS}
        if args.calib
        else {"big": (BIG_FROM, None), "docs": (DOCS_FROM, None)}
    )
    share = 2 if args.calib else 1
    out.mkdir(parents=True, exist_ok=True)
    picked = {k: [] for k in KINDS if not (args.calib and k in NOT_IN_CALIB)}
    taken: set[str] = set()
    for source, name in (("big", "zh_big.txt"), ("docs", "zh_docs.txt")):
        start, stop = ranges[source]
        with open(Path(args.shared) / name, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i < start:
                    continue
                if stop is not None and i >= stop:
                    break
                t = line.strip()
                if not t or t in taken:
                    continue
                for kind in picked:
                    src, test, count = KINDS[kind]
                    if src == source and len(picked[kind]) < count // share and test(t):
                        picked[kind].append(t)
                        taken.add(t)
                        break
    if not args.calib:
        picked["headlines"] = headlines(Path(args.eval))
    for kind, texts in picked.items():
        (out / f"{kind}.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        print(
            f"{kind}: {len(texts)} texts, "
            f"mean {sum(map(len, texts)) / max(len(texts), 1):.0f} chars"
        )


if __name__ == "__main__":
    main()
