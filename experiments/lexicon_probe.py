"""How much of a student's error a linear map from a weighted bag of words (or characters)
explains: ridge regression of (centred teacher vector − prediction) on the bag, fitted on
80 % of a teacher file's rows, fidelity measured on the other 20 % (docs/research-record-2026.md,
"the word path"). Needs scipy (the test extra).

    .venv/bin/python experiments/lexicon_probe.py TEACHER.h5 [-m MODEL] [--rows N] [--words 16000]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import scipy.sparse as sp

from ltd_bert.student.data import Data
from ltd_bert.student.model import Student


def fidelity(p: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean((p * t).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(t, axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teacher_file")
    ap.add_argument("-m", "--model", default="zh-small")
    ap.add_argument("--rows", type=int, default=98304)
    ap.add_argument("--words", type=int, default=16000)
    args = ap.parse_args()
    student = Student.load(args.model, precision="fp32")
    data = Data([args.teacher_file])
    n = min(args.rows, data.n)
    sents, vecs, weights = data.read(0, n)
    pred = student.network_prepared(sents, weights)  # the network alone
    target = vecs - student.mean
    ntr = int(n * 0.8)
    print(f"{n:,} rows; held-out fidelity of the model: {fidelity(pred[ntr:], target[ntr:]):.4f}")
    words = [student.weighter.words(s) for s in sents]
    top = {
        w: k
        for k, (w, _) in enumerate(
            Counter(x for ws in words[:ntr] for x in ws).most_common(args.words)
        )
    }
    rows, cols, vals = [], [], []
    for i, (ws, w) in enumerate(zip(words, weights, strict=True)):
        pos = 0
        for x in ws:
            k = top.get(x)
            if k is not None:
                rows.append(i)
                cols.append(k)
                vals.append(float(w[pos : pos + len(x)].sum()))
            pos += len(x)
    bag = sp.csr_matrix((vals, (rows, cols)), shape=(n, len(top)))
    gram = (bag[:ntr].T @ bag[:ntr]).toarray()
    cross = bag[:ntr].T @ (target - pred)[:ntr]
    for ridge in (0.01, 0.1, 0.3):
        w = np.linalg.solve(gram + ridge * np.eye(len(top)), cross)
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        for rank in (64, 128, 384):
            fitted = pred + bag @ ((u[:, :rank] * s[:rank]) @ vt[:rank])
            print(
                f"words {len(top):,}, ridge {ridge}, rank {rank}: held-out fidelity "
                f"{fidelity(fitted[ntr:], target[ntr:]):.4f}"
            )


if __name__ == "__main__":
    main()
