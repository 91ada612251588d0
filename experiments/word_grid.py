"""How far new words alone take a domain (docs/research-record-2026.md): for each N:RIDGE,
`ltd adapt --new-words N --epochs 0` with the word path's ridge set to RIDGE (no training
step, no general suite); prints the domain's held-out fidelity before and after.

Usage: python experiments/word_grid.py DOMAIN.txt -m MODEL --work WORK --replay R.h5 [...]
       4000:0.1 8000:0.1 ...
WORK holds (or gets: the teacher embeds DOMAIN.txt once, resumable) the domain's teacher
file; the adapted models go to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import ltd_bert.student.train as training
from ltd_bert.tasks.adapt import adapt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--replay", action="append", required=True)
    ap.add_argument("grid", nargs="+", help="N:RIDGE")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.grid:
            n_words, ridge = int(item.split(":")[0]), float(item.split(":")[1])
            training.LEXICON_RIDGE = ridge
            report = adapt(
                args.model,
                [args.corpus],
                Path(tmp) / item.replace(":", "_"),
                args.replay,
                work=args.work,
                epochs=0,
                new_words=n_words,
                suite=False,
            )
            before, after = (report.scores[k]["domain"] for k in ("before", "after"))
            print(
                f"{n_words} words, ridge {ridge:g}: {report.words_added} added, held-out "
                f"fidelity {before:.4f} → {after:.4f} ({report.held_out} lines)",
                flush=True,
            )


if __name__ == "__main__":
    main()
