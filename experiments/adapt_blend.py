"""Where adapting costs the general kinds: an adapted model's weights blended with the
model's it started from, group by group, measured on the domain's held-out pairs and on the
calibration mix's kinds (never the suite). Each SPEC is a share of the adapted weights for
every group, optionally followed by `:prefix=share,...` for groups of another share
(prefixes of state names: `embedding`, `lstm`, `proj`, `lexicon`). The word path's new
words keep their adapted rows whatever the share (the model had none).

    .venv/bin/python experiments/adapt_blend.py MODEL ADAPTED WORK/domain.h5 HELD_OUT \\
        "0;1;1:lstm=0;1:lstm=0.5"

HELD_OUT is the number of held-out rows `ltd adapt` printed (the tail of the domain file).
Prints one line per SPEC: the domain's fidelity and pairs (matched, default), then each
calibration kind's pairs (matched / default) and the mean fidelity over the kinds.
"""

from __future__ import annotations

import sys

import numpy as np

from ltd_bert.student.model import Student
from ltd_bert.tasks.adapt import domain_fidelity, domain_pairs
from ltd_bert.tasks.suite import DEFAULT_CALIB, run_suite
from ltd_bert.teacher.store import TeacherFile


def blended_state(adapted: dict, original: dict, share: float, groups: dict, rows) -> dict:
    """`adapted` moved towards `original`: each state entry by its group's share (`groups`:
    {prefix: share}, else `share`); the word path's rows by word (`rows`: the adapted and the
    original row numbers of the words both have)."""
    out = {}
    for k, v in adapted.items():
        s = next((a for prefix, a in groups.items() if k.startswith(prefix)), share)
        if k == "lexicon.embedding.weight":
            x = v.clone()
            x[rows[0]] = s * v[rows[0]] + (1 - s) * original[k][rows[1]]
            out[k] = x
        elif k in original and original[k].shape == v.shape and v.is_floating_point():
            out[k] = s * v + (1 - s) * original[k]
        else:
            out[k] = v
    return out


def main() -> None:
    model, adapted_dir, domain, held_out, specs = sys.argv[1:6]
    before, after = Student.load(model), Student.load(adapted_dir)
    with TeacherFile(domain) as tf:
        texts, vecs, weights = tf.read(len(tf) - int(held_out), len(tf))
    original = dict(before.model.state_dict())
    adapted = {k: v.clone() for k, v in after.model.state_dict().items()}
    index = {w: i + 1 for i, w in enumerate(before.lexicon.words)} if before.lexicon else {}
    words = after.lexicon.words if after.lexicon else []
    rows = (
        [i + 1 for i, w in enumerate(words) if w in index],
        [index[w] for w in words if w in index],
    )
    for spec in specs.split(";"):
        head, _, rest = spec.partition(":")
        groups = {kv.split("=")[0]: float(kv.split("=")[1]) for kv in rest.split(",") if kv}
        after.model.load_state_dict(blended_state(adapted, original, float(head), groups, rows))
        pairs = domain_pairs(after, texts, weights, vecs)
        fid = domain_fidelity(after, texts, weights, vecs)
        kinds = run_suite(after, DEFAULT_CALIB)
        cells = " ".join(f"{r.kind} {r.pairs_matched:.1f}/{r.pairs_default:.1f}" for r in kinds)
        print(
            f"{spec}: domain fidelity {fid:.4f} pairs {pairs['matched']:.1f}/{pairs['default']:.1f}"
            f" | {cells} | mean fidelity {np.mean([r.fidelity for r in kinds]):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
