"""A model whose weights are a mix of two models of one lineage (the same sizes, vocabulary
and word list, e.g. a run and the run continued from it): (1 - alpha) · A + alpha · B, the
network's weights and the word path's rows alike; the rest of the folder is B's. Calibrate
the result again before measuring it (`ltd eval suite -m OUT --calibrate-on ...`).

    .venv/bin/python experiments/soup.py A B OUT --alpha 0.5
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ltd_bert.runtime.lexicon import Lexicon

MODEL = "model.safetensors"
SAME = ("mean", "similarity")  # B's calibration, chosen again afterwards


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--alpha", type=float, default=0.5, help="B's share")
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out}: exists")
    sizes = [
        json.loads((m / "config.json").read_text("utf-8"))["student"] for m in (args.a, args.b)
    ]
    vocab = [(m / "vocab.json").read_bytes() for m in (args.a, args.b)]
    if sizes[0] != sizes[1] or vocab[0] != vocab[1]:
        raise SystemExit(f"{args.a} and {args.b}: not one lineage (sizes or vocabulary differ)")

    def mix(x, y):  # (1 - alpha) · x + alpha · y, in float32, kept in y's type
        return ((1 - args.alpha) * x.astype(np.float32) + args.alpha * y.astype(np.float32)).astype(
            y.dtype
        )

    wa, wb = load_file(str(args.a / MODEL)), load_file(str(args.b / MODEL))
    mixed = {k: v if k in SAME else mix(wa[k], v) for k, v in wb.items()}
    la, lb = Lexicon.load(args.a), Lexicon.load(args.b)
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.b, tmp)
    save_file(mixed, str(tmp / MODEL))
    if lb is not None:
        if la is None or la.words != lb.words:
            raise SystemExit(f"{args.a} and {args.b}: their word paths differ")
        Lexicon(lb.words, mix(la.embedding, lb.embedding), mix(la.proj_t.T, lb.proj_t.T)).save(tmp)
    tmp.rename(args.out)
    print(f"{args.out}: {1 - args.alpha:g} × {args.a} + {args.alpha:g} × {args.b}")


if __name__ == "__main__":
    main()
