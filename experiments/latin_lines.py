"""Fidelity per line against the Latin words a model's word path lacks
(docs/research-record-2026.md, "pieces of the English words the path never saw"): the lines
whose Latin words are all in the path, those holding one outside it (cut to pieces where the
path has them), and the correlation of a line's fidelity with the
mass of such words in it; the worst lines.

    .venv/bin/python experiments/latin_lines.py MODEL ltd_bert/suites/suite/latin.txt
    .venv/bin/python experiments/latin_lines.py MODEL TEACHER.h5 --from 19147

A text file is a suite kind (its teacher vectors from the suite's cache, made if missing);
a teacher file (.h5, made with the model's teacher settings) is read from row --from on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ltd_bert.common.stats import cosines
from ltd_bert.runtime.lexicon import spelled
from ltd_bert.student.model import Student


def rows_of(model, path: Path, first: int):
    """(texts, teacher vectors, character weights) of a kind file or a teacher file."""
    if path.suffix in (".h5", ".hdf5"):
        from ltd_bert.teacher.store import TeacherFile

        with TeacherFile(path) as tf:
            texts, vecs, weights = tf.read(first, len(tf))
        return texts, vecs, weights
    from ltd_bert.tasks.suite import cache_dir, load_kind, teacher_vectors

    texts = load_kind(path)
    vecs = teacher_vectors(model, path, texts, cache_dir(model), None, print)
    texts, weights = model.prepare(texts)
    return texts, vecs, weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("rows", type=Path, help="a suite kind (.txt) or a teacher file (.h5)")
    ap.add_argument("--from", dest="first", type=int, default=0, help="first row of a .h5")
    ap.add_argument("--worst", type=int, default=10)
    args = ap.parse_args()
    model = Student.load(args.model)
    texts, vecs, weights = rows_of(model, args.rows, args.first)
    fid = cosines(model.encode_prepared(texts, weights), vecs - model.mean)
    index = model.lexicon.index if model.lexicon is not None else {}
    outside = np.zeros(len(texts))  # mass of Latin words outside the path
    latin = np.zeros(len(texts), dtype=bool)
    for i, (text, w) in enumerate(zip(texts, weights, strict=True)):
        pos = 0
        for word in model.weighter.words(text):
            mass = float(w[pos : pos + len(word)].sum())
            pos += len(word)
            if spelled(word):
                latin[i] = True
                outside[i] += 0.0 if word in index else mass
    print(f"{len(texts)} lines: fidelity {fid.mean():.4f}")
    groups = {
        "no Latin word": ~latin,
        "Latin words all in the path": latin & (outside == 0),
        "a Latin word outside the path": outside > 0,
    }
    for name, sel in groups.items():
        if sel.any():
            print(f"{name}: {sel.sum()} lines, fidelity {fid[sel].mean():.4f}")
    if outside.std() > 0:
        r = np.corrcoef(fid, outside)[0, 1]
        print(f"correlation of fidelity with the mass of Latin words outside the path: {r:+.2f}")
    for i in np.argsort(fid)[: args.worst]:
        print(f"{fid[i]:.3f}  {texts[i][:80]}")


if __name__ == "__main__":
    main()
