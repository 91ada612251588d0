"""Print the most similar pairs among sentences, from their vectors (used by `make demo`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(sentences_path: str, vectors_path: str, top: int = 6) -> None:
    sents = Path(sentences_path).read_text(encoding="utf-8").splitlines()
    v = np.load(vectors_path)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    sim = v @ v.T
    pairs = sorted(
        ((sim[i, j], i, j) for i in range(len(sents)) for j in range(i + 1, len(sents))),
        reverse=True,
    )
    print(f"most similar pairs among {len(sents)} sentences:")
    for s, i, j in pairs[:top]:
        print(f"  {s:.3f}  {sents[i]}  ↔  {sents[j]}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
