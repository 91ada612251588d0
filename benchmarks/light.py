"""The float32 network three ways on the same batches: PyTorch's packed nn.LSTM (`Student`),
the numpy recurrence (`LightStudent`) from embedding products, and the same with the first
layer folded into a per-character gate table. Network only (character weights prepared
beforehand), runs interleaved so each sees the same machine load; prints the median of
each and its ratio to PyTorch, and the largest difference to PyTorch's vectors.

    .venv/bin/python benchmarks/light.py [-m zh-small] [--sentences 2000] [--repeats 5]
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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()

    import numpy as np
    import torch
    from run import load_sentences

    from ltd_bert.runtime.light import LightStudent
    from ltd_bert.student.model import Student

    torch.set_num_threads(args.threads)
    sents, src = load_sentences(args.sentences)
    student, light = Student.load(args.model), LightStudent.load(args.model)
    folded = LightStudent.load(args.model)
    t0 = time.perf_counter()
    folded.fold()
    fold_s = time.perf_counter() - t0
    texts, weights = student.prepare(sents)

    import ltd_bert.runtime.light as light_module

    light_module.FOLD_AFTER = float("inf")  # `light` never folds by itself here
    ways = {
        "torch nn.LSTM (packed)": student.encode_prepared,
        "numpy, embedding products": light.encode_prepared,
        "numpy, folded gate table": folded.encode_prepared,
    }
    ref = student.encode_prepared(texts, weights, args.batch_size)
    diffs = {
        k: float(np.abs(f(texts, weights, args.batch_size) - ref).max()) for k, f in ways.items()
    }
    times: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(args.repeats):
        for k, f in ways.items():
            t = time.perf_counter()
            f(texts, weights, args.batch_size)
            times[k].append(time.perf_counter() - t)
    base = statistics.median(times["torch nn.LSTM (packed)"])
    print(
        f"{len(sents):,} lines of {src.name}, model {args.model}, {args.threads} threads, "
        f"batch {args.batch_size}, median of {args.repeats}; load avg {os.getloadavg()[0]:.2f}; "
        f"building the gate table: {fold_s:.2f} s"
    )
    print("| network | sentences/s | × torch | max |diff| to torch |\n|---|--:|--:|--:|")
    for k, v in times.items():
        med = statistics.median(v)
        print(f"| {k} | {len(sents) / med:,.0f} | {base / med:.2f}× | {diffs[k]:.1e} |")


if __name__ == "__main__":
    main()
