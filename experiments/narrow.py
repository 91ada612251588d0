"""How much of a trained student survives keeping fewer LSTM units, before any training.

    .venv/bin/python experiments/narrow.py MODEL TEACHER.h5 [--sizes 128,160,256] [--save DIR]

Runs MODEL over the first --fit rows of TEACHER.h5 (texts and teacher vectors of the
model's kind), ranks each direction's units by how much their pooled state moves the
output (the spread of the unit's pooled state over the rows × the norm of its projection
column), keeps the top ones (`ltd_bert.student.model.narrow`), and prints, on the next
--eval rows, the mean cosine of the centred prediction to the centred teacher vector:
the model as it is, narrowed with its projection's columns, and narrowed with the
projection fitted again (ridge) to what is left. Also by random units, as a floor.
"""

from __future__ import annotations

import argparse

import h5py
import numpy as np
import torch

from ltd_bert.common.stats import cosines
from ltd_bert.student.model import (
    Student,
    fit_projection,
    narrow,
    pooled_states,
    unit_importance,
)
from ltd_bert.student.train import NARROW_RIDGE


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(cosines(a, b)))


def project(model, states: np.ndarray) -> np.ndarray:
    """The model's projection of pooled `states`: its network's predictions."""
    return states @ model.proj.weight.detach().numpy().T + model.proj.bias.detach().numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("teacher")
    ap.add_argument("--sizes", default="128,160,256")
    ap.add_argument("--fit", type=int, default=8192)
    ap.add_argument("--eval", type=int, default=4096)
    ap.add_argument("--save", help="write the first size's narrowed model, refitted, here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    student = Student.load(args.model, precision="fp32")
    torch.set_grad_enabled(False)
    with h5py.File(args.teacher, "r") as f:
        n = args.fit + args.eval
        texts = [s.decode() if isinstance(s, bytes) else s for s in f["sentences"][:n]]
        target = f["vectors"][:n].astype(np.float32) - student.mean
    fit, ev = slice(0, args.fit), slice(args.fit, n)
    prepared, weights = student.prepare(texts)
    lex = student.current_lexicon()
    word = (
        lex.pooled(prepared, weights, student.weighter.words, student.max_chars)
        if lex is not None
        else np.zeros_like(target)
    )
    model = student.model
    states = pooled_states(model, student.index, prepared, weights, student.max_chars)
    full = project(model, states)
    print(f"as it is: {cosine(full[ev] + word[ev], target[ev]):.4f}")
    importance = unit_importance(model, states[fit])
    rng = np.random.default_rng(0)
    h = model.config.hidden_size
    for size in (int(s) for s in args.sizes.split(",")):
        for how in ("importance", "random"):
            score = importance if how == "importance" else rng.random(importance.shape)
            small = narrow(model, size, score)
            st = pooled_states(small, student.index, prepared, weights, student.max_chars)
            pred = project(small, st)
            fit_projection(small, st[fit], target[fit] - word[fit], NARROW_RIDGE)
            refit = project(small, st)
            if args.save and how == "importance":
                student.model = small
                student.save(args.save)
                print(f"narrowed to {size} units → {args.save}")
                args.save = None
            print(
                f"{h} → {size} ({how}): columns {cosine(pred[ev] + word[ev], target[ev]):.4f}, "
                f"projection refitted {cosine(refit[ev] + word[ev], target[ev]):.4f}"
            )


if __name__ == "__main__":
    main()
