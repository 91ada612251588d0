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

from ltd_bert.student.model import Student, narrow, pooled_states, unit_importance


def cosines(a: np.ndarray, b: np.ndarray) -> float:
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean((a * b).sum(1) / np.maximum(na, 1e-9)))


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
    full = states @ model.proj.weight.detach().numpy().T + model.proj.bias.detach().numpy()
    print(f"as it is: {cosines(full[ev] + word[ev], target[ev]):.4f}")
    importance = unit_importance(model, states[fit])
    rng = np.random.default_rng(0)
    h = model.config.hidden_size
    for size in (int(s) for s in args.sizes.split(",")):
        for how in ("importance", "random"):
            score = importance if how == "importance" else rng.random(importance.shape)
            small = narrow(model, size, score)
            st = pooled_states(small, student.index, prepared, weights, student.max_chars)
            kept = small.proj.weight.detach().numpy()
            pred = st @ kept.T + small.proj.bias.detach().numpy()
            x = np.hstack([st, np.ones((len(st), 1), np.float32)])
            lam = 1.0 * np.eye(x.shape[1], dtype=np.float64)
            w = np.linalg.solve(
                x[fit].T.astype(np.float64) @ x[fit] + lam,
                x[fit].T.astype(np.float64) @ (target[fit] - word[fit]),
            )
            refit = x @ w.astype(np.float32)
            if args.save and how == "importance":
                small.proj.weight.copy_(torch.from_numpy(w[:-1].T.astype(np.float32)))
                small.proj.bias.copy_(torch.from_numpy(w[-1].astype(np.float32)))
                student.model = small
                student.save(args.save)
                print(f"narrowed to {size} units → {args.save}")
                args.save = None
            print(
                f"{h} → {size} ({how}): columns {cosines(pred[ev] + word[ev], target[ev]):.4f}, "
                f"projection refitted {cosines(refit[ev] + word[ev], target[ev]):.4f}"
            )


if __name__ == "__main__":
    main()
