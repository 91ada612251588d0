"""How far an adapted model's cosines are from the teacher's on the domain's held-out pairs
(what `ltd adapt` reports as "domain pairs"): the spread of the teacher's cosines, the
standard deviation of the student's error on them, and the matched Spearman.

    .venv/bin/python experiments/adapt_pair_errors.py WORK/domain.h5 HELD_OUT MODEL [MODEL ...]

HELD_OUT is the number of held-out rows `ltd adapt` printed (the tail of the domain file).
"""

from __future__ import annotations

import sys

import numpy as np

from ltd_bert.common.stats import cosines, spearman
from ltd_bert.student.calibrate import NEIGHBOURS, neighbour_pairs
from ltd_bert.student.model import Student
from ltd_bert.teacher.store import TeacherFile


def main() -> None:
    path, held_out, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    with TeacherFile(path) as tf:
        texts, vecs, weights = tf.read(len(tf) - held_out, len(tf))
    i, j = neighbour_pairs(vecs, NEIGHBOURS)
    print("| model | pairs | teacher cosine p5 / p50 / p95 | error sd | matched |")
    print("|---|--:|--:|--:|--:|")
    for name in models:
        student = Student.load(name)
        pred = student.encode_prepared(texts, weights)
        target = vecs - student.mean
        tc, sc = cosines(target[i], target[j]), cosines(pred[i], pred[j])
        p = " / ".join(f"{x:.2f}" for x in np.percentile(tc, [5, 50, 95]))
        print(f"| {name} | {len(i)} | {p} | {np.std(sc - tc):.3f} | {100 * spearman(sc, tc):.1f} |")


if __name__ == "__main__":
    main()
