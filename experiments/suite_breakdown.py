"""Two looks inside the fidelity suite for one model (docs/research-record-2026.md).

    .venv/bin/python experiments/suite_breakdown.py -m zh-small [--suite ltd_bert/suites/suite]
        [--resampled ltd_bert/suites/calib ltd_bert/suites/suite] [--scales 0.1,0.2,0.3,0.4]

- By length: each kind's centred fidelity in length bins (where along the length scale the
  student follows the teacher least).
- `--resampled FOLDER...`: per kind, the gain of the default vectors' share of the mean `s`
  (α 0) over the centred vectors in neighbour-pair agreement, ± its standard deviation
  over 200 resamples of the pairs: how much of a calibration's gain is the sample's noise;
  then the same for the row across kinds (each document with a near sentence, `cross_pairs`).

The teacher vectors come from the suite's cache (`ltd eval suite` makes them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ltd_bert.common.stats import cosines, spearman
from ltd_bert.student.calibrate import neighbour_pairs, pair_cosines
from ltd_bert.student.model import Student
from ltd_bert.tasks.suite import (
    CROSS,
    DEFAULT_SUITE,
    DOC_CHARS,
    cache_dir,
    cross_pairs,
    kind_groups,
    load_kind,
    suite_files,
    teacher_vectors,
)

BINS = (0, 17, 65, 200, 300, 400, 510, 700, 1000, 1500, 2500, 4001)


def kinds(student, folder):
    for f in suite_files(folder):
        texts = load_kind(f)
        yield f.stem, texts, teacher_vectors(student, f, texts, cache_dir(student), None, None)


def by_length(student, folder) -> None:
    for kind, texts, t in kinds(student, folder):
        fid = cosines(student.encode(texts, space="centred"), t - student.mean)
        n = np.array([len(x) for x in texts])
        cells = []
        for lo, hi in zip(BINS, BINS[1:], strict=False):
            inside = (n >= lo) & (n < hi)
            if inside.sum() >= 10:
                cells.append(f"{lo}-{hi - 1}: {fid[inside].mean():.3f} ({inside.sum()})")
        print(f"{kind:16s} " + ", ".join(cells))


def gains(student, p, t, pairs, scales, rng) -> str:
    """Per share of the mean, the pair agreement's gain over centred ± its resampled sd."""
    tc = cosines(t[pairs[0]], t[pairs[1]])
    c0 = pair_cosines(p, student.mean, 0.0, pairs)
    rows = [rng.integers(0, len(tc), len(tc)) for _ in range(200)]
    cells = []
    for s in scales:
        cs = pair_cosines(p, student.mean, s, pairs)
        gain = 100 * (spearman(cs, tc) - spearman(c0, tc))
        sd = np.std([100 * (spearman(cs[r], tc[r]) - spearman(c0[r], tc[r])) for r in rows])
        cells.append(f"s {s}: {gain:+.1f} ± {sd:.1f}")
    return f"centred {100 * spearman(c0, tc):.1f}; " + ", ".join(cells)


def resampled(student, folder, scales) -> None:
    rng = np.random.default_rng(0)
    print(f"{folder}: gain over centred ± sd over 200 resamples of the pairs")
    files = suite_files(folder)
    groups, _ = kind_groups(student, files)
    for kind, (p, t) in groups.items():
        print(f"  {kind:16s} " + gains(student, p, t, neighbour_pairs(t, 10), scales, rng))
    long = {f.stem: np.mean([len(x) for x in load_kind(f)]) >= DOC_CHARS for f in files}
    order = sorted(groups, key=lambda k: not long[k])  # documents first
    d = sum(len(groups[k][1]) for k in order if long[k])
    if 0 < d < sum(len(g[1]) for g in groups.values()):
        p = np.concatenate([groups[k][0] for k in order])
        t = np.concatenate([groups[k][1] for k in order])
        line = gains(student, p, t, cross_pairs(t[:d], t[d:]), scales, rng)
        print(f"  {CROSS}: {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default="zh-small")
    ap.add_argument("--suite", default=str(DEFAULT_SUITE))
    ap.add_argument("--resampled", nargs="*", default=[], metavar="FOLDER")
    ap.add_argument("--scales", default="0.1,0.2,0.3,0.4")
    args = ap.parse_args()
    student = Student.load(args.model)
    by_length(student, Path(args.suite))
    for folder in args.resampled:
        resampled(student, Path(folder), [float(x) for x in args.scales.split(",")])


if __name__ == "__main__":
    main()
