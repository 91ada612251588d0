"""The student's network alone (character weights prepared beforehand) through the fused
loop (student/fused.py) in fp32 and bf16, and nn.LSTM, at several batch sizes.

    .venv/bin/python benchmarks/fused.py [--model zh-small] [--lines 8192] [--threads 1]

The first `--lines` lines of zh_big.txt (else data/corpus_sample.txt); sentences/s, best of
2 rounds after a warm-up. Prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import time
from functools import partial
from pathlib import Path

import torch
from train_lstm import packed_states

from ltd_bert.common.cpu import features_line, native_bf16
from ltd_bert.student.model import Student

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "zh_big.txt"
FALLBACK = ROOT / "data" / "corpus_sample.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zh-small")
    ap.add_argument("--lines", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    src = CORPUS if CORPUS.is_file() else FALLBACK
    with open(src, encoding="utf-8") as fh:
        lines = [x.rstrip("\n") for x in itertools.islice(fh, args.lines)]
    rows = []
    for name, precision, fused in (
        ("nn.LSTM, packed (encode before)", "fp32", "packed"),
        ("torch.lstm per direction, padded (the model's forward)", "fp32", False),
        ("fused fp32", "fp32", True),
        ("fused bf16", "bf16", True),
    ):
        if precision == "bf16" and not native_bf16():
            continue  # the row would time an emulation, slower than fp32
        student = Student.load(args.model, precision=precision)
        student.fused = bool(fused)
        if fused == "packed":
            student.model.token_states = partial(packed_states, student.model)
        texts, weights = student.prepare(lines)
        student.encode_prepared(texts[:300], weights[:300])  # warm-up
        for batch in (128, 256, 512, 1024):
            best = 0.0
            for _ in range(2):
                t0 = time.perf_counter()
                student.encode_prepared(texts, weights, batch)
                best = max(best, len(texts) / (time.perf_counter() - t0))
            rows.append((name, batch, best))
    t0 = time.perf_counter()
    student.prepare(lines)
    prep = len(lines) / (time.perf_counter() - t0)
    base = {b: r for n, b, r in rows if n.startswith("nn.")}
    print(
        f"\n`{args.model}` network only, {len(lines):,} lines of {src.name}, "
        f"{args.threads} thread(s); {features_line()}"
        f"{'' if native_bf16() else ' (no native bf16: the bf16 row is skipped)'}\n"
    )
    print("| runtime | batch | sentences/s | × nn.LSTM |")
    print("|---|--:|--:|--:|")
    for name, batch, rate in rows:
        print(f"| {name} | {batch} | {rate:,.0f} | {rate / base[batch]:.2f}× |")
    print(f"\ncharacter weights (`prepare`, jieba, warm word cache): {prep:,.0f} sentences/s")


if __name__ == "__main__":
    main()
