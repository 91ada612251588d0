"""How well a model's vector lengths follow the teacher's, and what the norm map buys
(student/calibrate.py, docs/quality.md "The default vectors").

    .venv/bin/python experiments/norm_map.py -m zh-small [--calib ltd_bert/suites/calib]

On the calibration mix only (the suite is not read), for each kind: the Spearman between
the lengths of the student's centred predictions and of the teacher's residuals `t - m`;
the same for the lengths a norm map gives when fitted on the *other* kinds (leave one kind
out), with the logs of the prediction's length and of the text's characters alone, and with
their squares and product too (the shipped features, `runtime.base.norm_features`); then,
with maps fitted on all the kinds, the default pair agreement at shares of the mean 0.75 and
1 (α 0), per kind, their mean and documents × sentences, beside the same with the
teacher's own residual lengths put on the student's directions (the most a norm map could
give). The teacher vectors come from the suite cache (`ltd eval suite --suite
ltd_bert/suites/calib` makes them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ltd_bert.common.stats import cosines, spearman
from ltd_bert.runtime.base import norm_features
from ltd_bert.student.calibrate import NEIGHBOURS, NORM_RIDGE, neighbour_pairs
from ltd_bert.student.model import Student
from ltd_bert.tasks.suite import DEFAULT_CALIB, DOC_CHARS, cross_pairs, kind_groups, suite_files

#: the columns of `norm_features` each variant keeps (d = the vectors' dimension)
VARIANTS = {
    "logs": lambda d: [*range(d), d, d + 1, d + 5],
    "logs, squares, product": lambda d: list(range(d + 6)),
}


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.solve(x.T @ x + NORM_RIDGE * np.eye(x.shape[1]), x.T @ y)


def lengths(pred, chars, cols, w) -> np.ndarray:
    return np.exp(norm_features(pred, chars)[:, cols].astype(np.float64) @ w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default="zh-small")
    ap.add_argument("--calib", default=str(DEFAULT_CALIB))
    args = ap.parse_args()
    student = Student.load(args.model)
    mean = student.mean
    groups, chars = kind_groups(student, suite_files(Path(args.calib)))
    kinds = list(groups)
    d = student.dim
    resid = {k: np.linalg.norm(t - mean, axis=1) for k, (_, t) in groups.items()}
    x = {
        v: {k: norm_features(p, chars[k])[:, f(d)] for k, (p, _) in groups.items()}
        for v, f in VARIANTS.items()
    }
    y = {k: np.log(r) for k, r in resid.items()}
    lens = ", ".join(f"{k} {r.mean():.2f}" for k, r in resid.items())
    print(f"length of the mean {np.linalg.norm(mean):.2f}; of the residuals, mean: {lens}\n")

    print(
        "| kind | own lengths | " + " | ".join(f"map ({v}), other kinds" for v in VARIANTS) + " |"
    )
    print("|---|--:|" + "--:|" * len(VARIANTS))
    rows = {v: [] for v in VARIANTS}
    for k in kinds:
        own = spearman(np.linalg.norm(groups[k][0], axis=1), resid[k])
        cells = []
        for v in VARIANTS:
            others = [o for o in kinds if o != k]
            w = fit(np.vstack([x[v][o] for o in others]), np.concatenate([y[o] for o in others]))
            rows[v].append(spearman(np.exp(x[v][k] @ w), resid[k]))
            cells.append(f"{rows[v][-1]:.3f}")
        print(f"| {k} | {own:.3f} | " + " | ".join(cells) + " |")
    print("| mean | | " + " | ".join(f"{np.mean(r):.3f}" for r in rows.values()) + " |")

    docs = [k for k in kinds if chars[k].mean() >= DOC_CHARS]
    sents = [k for k in kinds if chars[k].mean() < DOC_CHARS]
    order = docs + sents
    n_docs = sum(len(groups[k][0]) for k in docs)
    t_all = np.concatenate([groups[k][1] for k in order])
    cross = cross_pairs(t_all[:n_docs], t_all[n_docs:])
    print("\n| vectors | s | " + " | ".join(kinds) + " | mean | documents × sentences |")
    print("|---|--:|" + "--:|" * (len(kinds) + 2))
    for v in [None, *VARIANTS, "teacher"]:
        if v in VARIANTS:
            w = fit(np.vstack([x[v][k] for k in kinds]), np.concatenate([y[k] for k in kinds]))
        for s in (0.75, 1.0):
            sim = {}
            for k, (p, _) in groups.items():
                q = p
                unit = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
                if v == "teacher":
                    q = unit * resid[k][:, None]
                elif v is not None:
                    q = unit * lengths(p, chars[k], VARIANTS[v](d), w)[:, None]
                sim[k] = q + s * mean
            scores = []
            for k, (_, t) in groups.items():
                i, j = neighbour_pairs(t, NEIGHBOURS)
                scores.append(100 * spearman(cosines(sim[k][i], sim[k][j]), cosines(t[i], t[j])))
            v_all = np.concatenate([sim[k] for k in order])
            i, j = cross
            xs = 100 * spearman(cosines(v_all[i], v_all[j]), cosines(t_all[i], t_all[j]))
            name = {None: "own lengths", "teacher": "the teacher's lengths"}.get(v, f"map ({v})")
            cells = " | ".join(f"{c:.1f}" for c in scores)
            print(f"| {name} | {s} | {cells} | {np.mean(scores):.1f} | {xs:.1f} |")


if __name__ == "__main__":
    main()
