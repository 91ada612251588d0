"""Character weights with jieba itself, with `FastJieba` (rjieba's route, jieba's HMM: what
`jieba` runs where rjieba is installed) and with `RustJieba` (rjieba's own cut: segmenter
`rjieba`) on the same lines: sentences/s with a cold and a warm cache (median of interleaved
rounds), and how many lines are cut differently from jieba.

    .venv/bin/python benchmarks/segmenters.py [-m zh-small] [--sentences 2000] [--repeats 3]
    .venv/bin/python benchmarks/segmenters.py --compare-only --sentences 100000 \\
        [--file ../shared/data/corpus/zh_docs.txt] [--skip 100000] [--segmenter rjieba]
"""

from __future__ import annotations

import argparse
import itertools
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
    ap.add_argument("--file", help="lines from this file (default: the benchmark corpus)")
    ap.add_argument("--skip", type=int, default=0, help="lines skipped first")
    ap.add_argument(
        "--compare-only", action="store_true", help="only count the lines cut differently"
    )
    ap.add_argument(
        "--segmenter",
        choices=("fast", "rjieba"),
        default="fast",
        help="--compare-only: the segmenter compared with jieba",
    )
    args = ap.parse_args()

    import numpy as np
    from run import load_sentences

    from ltd_bert.models import model_path
    from ltd_bert.text import segment
    from ltd_bert.text.clean import clean_text
    from ltd_bert.text.idf import load_idf
    from ltd_bert.text.weights import Weighter

    if args.file:
        src = Path(args.file)
        with open(src, encoding="utf-8", errors="replace") as fh:
            rows = itertools.islice(fh, args.skip, args.skip + args.sentences)
            lines = [x.rstrip("\r\n") for x in rows]
    else:
        lines, src = load_sentences(args.skip + args.sentences)
        lines = lines[args.skip :]
    python = segment.get_segmenter(load=True)
    python = python.jieba if isinstance(python, segment.FastJieba) else python
    if args.compare_only:
        kind = segment.FastJieba if args.segmenter == "fast" else segment.RustJieba
        fast = kind(python)
        fast.JIEBA_FIRST = 0  # rjieba from the first line
        differ = 0
        for i, line in enumerate(lines):
            text = clean_text(line)
            a, b = python.lcut(text, HMM=True), fast.lcut(text, HMM=True)
            if a != b:
                differ += 1
                print(f"line {args.skip + i + 1}: jieba {'/'.join(a)[:200]}")
                pad = " " * (len(str(args.skip + i + 1)) + 7)
                print(f"{pad}{args.segmenter:<6}{'/'.join(b)[:200]}")
        where = f"{len(lines):,} lines of {src.name} from line {args.skip + 1:,}"
        print(f"{where}: {differ} cut differently by {args.segmenter}")
        return

    idf = load_idf(model_path(args.model) / "idf.tsv.gz")
    kinds = {"jieba": None, "FastJieba": segment.FastJieba, "RustJieba": segment.RustJieba}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    outputs = {}
    for _ in range(args.repeats):
        for kind in times:
            w = Weighter(idf, 1.0)
            w._seg = kinds[kind](python) if kinds[kind] else python  # cold caches
            w._seg.JIEBA_FIRST = 0
            t = time.perf_counter()
            outputs[kind] = [w(s)[1] for s in lines]
            cold = time.perf_counter() - t
            t = time.perf_counter()
            for s in lines:
                w(s)
            times[kind].append((cold, time.perf_counter() - t))
    print(f"{len(lines):,} lines of {src.name}; load avg {os.getloadavg()[0]:.2f}")
    for kind, v in times.items():
        cold = statistics.median(c for c, _ in v)
        warm = statistics.median(x for _, x in v)
        differ = sum(
            not np.array_equal(a, b) for a, b in zip(outputs["jieba"], outputs[kind], strict=True)
        )
        print(
            f"{kind}: cold {len(lines) / cold:,.0f}/s, warm {len(lines) / warm:,.0f}/s, "
            f"lines weighed differently from jieba: {differ}"
        )


if __name__ == "__main__":
    main()
