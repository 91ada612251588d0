"""What the suite's pair columns can reach: per kind, a model's pair agreement with its
centred vectors at several shares of the mean (`s`, against the teacher's own cosines), its
centred vectors against the teacher's centred cosines (`matched`), and the teacher's own
centred vectors scored as the `pairs, centred` column scores a student, and as the default
column does with the model's share of the mean (the columns' ceilings for a student that
reproduced the teacher exactly).

    .venv/bin/python experiments/pair_ceiling.py [MODEL] [SUITE]

The teacher's vectors come from the suite's cache (`ltd eval suite -m MODEL` makes them).
"""

from __future__ import annotations

import sys

import numpy as np

from ltd_bert.common.stats import cosines, spearman
from ltd_bert.student.calibrate import neighbour_pairs, pair_fidelity
from ltd_bert.student.model import Student
from ltd_bert.tasks.suite import NEIGHBOURS, cache_dir, load_kind, suite_files, teacher_vectors

SCALES = (0.0, 0.2, 0.5, 1.0)


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "zh-small"
    st = Student.load(model)
    m = st.mean
    head = " | ".join(f"s {s:g}" for s in SCALES)
    print(f"| kind | {head} | matched | teacher centred | teacher, s {st.mean_scale:g} |")
    print("|---|" + "--:|" * (len(SCALES) + 3))
    rows = []
    for f in suite_files(sys.argv[2] if len(sys.argv) > 2 else None):
        texts = load_kind(f)
        t = teacher_vectors(st, f, texts, cache_dir(st), None, None)
        p = st.encode(texts, space="centred")
        pairs = neighbour_pairs(t, NEIGHBOURS)
        i, j = pairs
        row = [pair_fidelity(p, t, m, s, pairs) for s in SCALES]
        row.append(100 * spearman(cosines(p[i], p[j]), cosines(t[i] - m, t[j] - m)))
        row.append(pair_fidelity(t - m, t, m, 0.0, pairs))
        row.append(pair_fidelity(t - m, t, m, st.mean_scale, pairs))
        rows.append(row)
        print(f"| {f.stem} | " + " | ".join(f"{x:.1f}" for x in row) + " |")
    print("| mean | " + " | ".join(f"{x:.1f}" for x in np.mean(rows, 0)) + " |")


if __name__ == "__main__":
    main()
