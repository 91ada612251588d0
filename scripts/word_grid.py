"""How far new words alone take a domain (docs/quality.md, session 12): for each N:RIDGE,
the model's word path grown by the domain's N most frequent missing words, fitted with that
ridge (`TrainConfig.lexicon_add`, no training step), over `ltd adapt`'s split of the same
files (replay first, the domain last, its tail held out); prints the held-out fidelity.

Usage: python scripts/word_grid.py -m MODEL --domain DOMAIN.h5 --replay R.h5 [...]
       4000:0.1 8000:0.1 ...   (models go to a temporary folder)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import ltd_bert.student.train as training
from ltd_bert.student.config import TrainConfig
from ltd_bert.student.data import split
from ltd_bert.student.model import Student
from ltd_bert.tasks.adapt import domain_fidelity
from ltd_bert.teacher.store import TeacherFile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--replay", action="append", default=[])
    ap.add_argument("grid", nargs="+", help="N:RIDGE")
    args = ap.parse_args()
    files = [*args.replay, args.domain]
    sizes = []
    for f in files:
        with TeacherFile(f) as tf:
            sizes.append(len(tf))
    n_domain, n_all = sizes[-1], sum(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.grid:
            n_words, ridge = int(item.split(":")[0]), float(item.split(":")[1])
            training.LEXICON_RIDGE = ridge
            cfg = TrainConfig(epochs=0, init_from=args.model, keep_mean=True, lexicon_add=n_words)
            cfg.window = n_all
            _, n_val = split(n_all, cfg)
            cfg.lexicon_fit_rows = n_domain - n_val
            out = Path(tmp) / item.replace(":", "_")
            training.train(files, out, cfg)
            student = Student.load(out)
            with TeacherFile(args.domain) as tf:
                sents, vecs, weights = tf.read(n_domain - n_val, n_domain)
            fid = domain_fidelity(student, sents, weights, vecs)
            print(
                f"{n_words} words, ridge {ridge:g}: {len(student.lexicon.words)} in the path, "
                f"held-out fidelity {fid:.4f} ({n_val} lines)",
                flush=True,
            )


if __name__ == "__main__":
    main()
