"""How much of the teacher's mean should the similarity vectors keep? (issue 5)

For each model: Spearman × 100 on the STS-B and LCQMC validation pairs (at most 3,000 each,
the fixed sample `ltd eval` uses) of cosines between `p + s·mean`, for several scales `s`
(0 = centred, 1 = the teacher's own space); with `--data`, also the label-free criterion
`ltd train` uses to choose `s` (ltd_bert/student/calibrate.py) on that teacher file's held-out rows
(the model's own split).

    .venv/bin/python experiments/mean_scale.py MODEL... [--data teacher.h5] [--scales 0,0.5,1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ltd_bert.student.calibrate import best_mean_scale
from ltd_bert.student.model import Student
from ltd_bert.tasks.evaluate import held_out, read_pairs, score

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "data" / "eval"
SETS = ("STS-B/STS-B.valid.data", "LCQMC/LCQMC.valid.data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", help="teacher file for the label-free criterion")
    ap.add_argument("--scales", default="0,0.25,0.5,0.75,1,1.5")
    ap.add_argument("--max-pairs", type=int, default=3000)
    a = ap.parse_args()
    scales = [float(x) for x in a.scales.split(",")]
    sets = [read_pairs(EVAL / s, a.max_pairs) for s in SETS]
    print("| model | s | STS-B valid | LCQMC valid | avg | neighbour-pair Spearman |")
    print("|---|--:|--:|--:|--:|--:|")
    for path in a.models:
        student = Student.load(path)
        cache: dict[tuple[str, ...], np.ndarray] = {}

        def centred(sentences, student=student, cache=cache):
            key = tuple(sentences)
            if key not in cache:
                cache[key] = student.encode(sentences, space="centred")
            return cache[key]

        table = {}
        if a.data:
            pred, vecs, _, _ = held_out(student, a.data)
            best, table = best_mean_scale(pred, vecs, student.mean)
        for s in scales:
            r = [score(p, lambda x, s=s, m=student.mean: centred(x) + s * m) for p in sets]
            crit = f"{table[s]:.2f}" if s in table else "–"
            print(f"| {path} | {s:g} | {r[0]:.2f} | {r[1]:.2f} | {np.mean(r):.2f} | {crit} |")
        if a.data:
            print(f"| {path} | chosen: {best:g} | | | | {table[best]:.2f} |")


if __name__ == "__main__":
    main()
