"""How students order labelled pairs against how the teacher orders them, on the valid sets
(never the test sets): per set, the teacher's own Spearman against the labels (IDF pooling,
the students' target), then per model its Spearman against the labels, its agreement with the
teacher (Spearman of its cosines against the teacher's: default vectors against the teacher's
raw vectors, centred against centred over the pairs' texts) and its mean absolute cosine error.
A model can fit the cosines more closely and still order the pairs less like the teacher.
Each model after the first also gets its labels' Spearman minus the first model's, ± the
spread of that difference over resamplings of the pairs (paired bootstrap, `--resamples`):
how far two models' label scores can part by the draw of pairs alone, on sets the size of
the test sets.

    .venv/bin/python experiments/pair_agreement.py MODEL [MODEL ...] [--max-pairs 3000]
        [--resamples 500]

The teacher's vectors are cached under LTD_HOME/eval_cache, as `ltd eval --teacher` caches them.
"""

from __future__ import annotations

import argparse

import numpy as np

from ltd_bert.common.cache import eval_cache
from ltd_bert.common.stats import cosines, spearman
from ltd_bert.student.model import Student
from ltd_bert.tasks.evaluate import TeacherVectors, read_pairs
from ltd_bert.teacher.model import Teacher, default_prefix

SETS = (
    "../shared/data/eval/LCQMC/LCQMC.valid.data",
    "../shared/data/eval/STS-B/STS-B.valid.data",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--max-pairs", type=int, default=3000)
    ap.add_argument("--resamples", type=int, default=500)
    args = ap.parse_args()
    students = {m: Student.load(m) for m in args.models}
    first = students[args.models[0]]
    teacher = Teacher(first.meta.get("teacher") or "builtin")
    prefix = first.meta.get("prefix", default_prefix(teacher.id))
    tv = TeacherVectors(teacher, first.weighter, prefix, cache_dir=eval_cache())
    for path in SETS:
        pairs = read_pairs(path, args.max_pairs)
        texts = sorted(set(pairs.s1) | set(pairs.s2))
        pos = {s: i for i, s in enumerate(texts)}
        a = [pos[s] for s in pairs.s1]
        b = [pos[s] for s in pairs.s2]
        t = tv.vectors(texts, "idf")
        t_cos = cosines(t[a], t[b])
        t_cen = t - t.mean(0)
        t_cen_cos = cosines(t_cen[a], t_cen[b])
        print(
            f"{pairs.name} ({len(pairs.labels)} pairs): teacher, IDF pooling, "
            f"{100 * spearman(t_cos, pairs.labels):.2f}"
        )
        print(
            f"  {'model':32s} {'labels':>7s} {'agreement':>10s} {'centred':>8s} {'|error|':>8s}"
            f"  {'labels - first':>15s}"
        )
        labels = np.asarray(pairs.labels, dtype=np.float64)
        draws = np.random.default_rng(0).integers(0, len(labels), (args.resamples, len(labels)))
        base = None  # the first model's cosines, and its label score on each resampling
        for name, st in students.items():
            v = st.encode(texts)
            s_cos = cosines(v[a], v[b])
            c = st.encode(texts, space="centred")
            s_cen_cos = cosines(c[a], c[b])
            gap = ""
            if base is None:
                base = s_cos, np.array([spearman(s_cos[d], labels[d]) for d in draws])
            else:
                drawn = np.array([spearman(s_cos[d], labels[d]) for d in draws])
                gap = f"  {100 * (spearman(s_cos, labels) - spearman(base[0], labels)):+7.2f}"
                gap += f" ± {100 * np.std(drawn - base[1]):4.2f}"
            print(
                f"  {name[-32:]:32s} {100 * spearman(s_cos, labels):7.2f}"
                f" {100 * spearman(s_cos, t_cos):10.2f} {100 * spearman(s_cen_cos, t_cen_cos):8.2f}"
                f" {np.abs(s_cos - t_cos).mean():8.4f}{gap}"
            )


if __name__ == "__main__":
    main()
