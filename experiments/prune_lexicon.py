"""A copy of a model with a smaller word path: the words whose vectors move a text sample's
vectors least are dropped (a word's weight: its characters' mass over the sample's texts, as
the word path pools them, times the norm of its projected vector). Each new word costs a
model ~400 bytes on disk (int8 row, scale, its name), so a path grown past the 22 MB a shipped
model may take is cut back here rather than by refitting.

    .venv/bin/python experiments/prune_lexicon.py MODEL OUT --sample FILE --lines 200000
        --words 30600
"""

from __future__ import annotations

import argparse
import json
import shutil
from itertools import islice
from pathlib import Path

import numpy as np

from ltd_bert.runtime.lexicon import Lexicon
from ltd_bert.student.model import Student


def word_mass_totals(student, lexicon: Lexicon, texts: list[str]) -> np.ndarray:
    """Each lexicon row's summed mass over `texts` (row 0, the unknown word, included)."""
    totals = np.zeros(len(lexicon.words) + 1)

    def add(out, rows, ids, mass):  # the pooling's rows, summed by word instead of by text
        np.add.at(totals, ids, mass)

    lexicon._sum_rows = add
    cleaned, weights = student.prepare(texts)
    lexicon.pooled(cleaned, weights, student.weighter.words, student.max_chars)
    del lexicon._sum_rows
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sample", type=Path, required=True, help="text lines to weigh words on")
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--words", type=int, required=True, help="words to keep")
    args = ap.parse_args()
    student = Student.load(args.model)
    lexicon = Lexicon.load(args.model)
    with args.sample.open(encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in islice(f, args.lines)]
    mass = word_mass_totals(student, lexicon, texts)
    norms = np.linalg.norm(lexicon.embedding @ lexicon.proj_t, axis=1)
    weight = (mass * norms)[1:]
    keep = np.sort(np.argsort(-weight, kind="stable")[: args.words])  # the words' order kept
    words = [lexicon.words[i] for i in keep]
    table = lexicon.embedding[np.r_[0, keep + 1]]
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists")
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.model, tmp)
    Lexicon(words, table, lexicon.proj_t.T).save(tmp)
    config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
    config["student"]["lexicon_size"] = len(words)
    (tmp / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), "utf-8")
    tmp.rename(args.out)
    dropped = np.setdiff1d(np.arange(len(weight)), keep)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(
        f"{args.out}: {len(words)} of {len(lexicon.words)} words, {size:,} bytes; the dropped "
        f"words' share of the weight {weight[dropped].sum() / weight.sum():.4f}"
    )


if __name__ == "__main__":
    main()
