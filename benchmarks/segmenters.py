"""Character weights with jieba and with `--segmenter fast` (rjieba) on the same lines:
sentences/s with a cold and a warm cache (median of interleaved rounds), and how many
lines get different weights.

    .venv/bin/python benchmarks/segmenters.py [-m zh-small] [--sentences 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default="zh-small")
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    from run import load_sentences

    from ltd_bert.models import model_path
    from ltd_bert.text import segment
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    lines, src = load_sentences(args.sentences)
    idf = load_idf(model_path(args.model) / "idf.tsv.gz")
    segment.get_segmenter(load=True)
    times: dict[str, list[tuple[float, float]]] = {"jieba": [], "fast": []}
    outputs = {}
    for _ in range(args.repeats):
        for kind in times:
            segment._segmenters.pop((None, kind), None)  # a cold block cache for `fast`
            w = Weighter(idf, 1.0, segmenter=kind)
            t = time.perf_counter()
            outputs[kind] = [w(s)[1] for s in lines]
            cold = time.perf_counter() - t
            t = time.perf_counter()
            for s in lines:
                w(s)
            times[kind].append((cold, time.perf_counter() - t))
    differ = sum(not np.array_equal(a, b) for a, b in zip(*outputs.values(), strict=True))
    print(f"{len(lines):,} lines of {src.name}; load avg {os.getloadavg()[0]:.2f}")
    for kind, v in times.items():
        cold = statistics.median(c for c, _ in v)
        warm = statistics.median(x for _, x in v)
        print(f"{kind}: cold {len(lines) / cold:,.0f}/s, warm {len(lines) / warm:,.0f}/s")
    print(f"lines with different weights: {differ}")


if __name__ == "__main__":
    main()
