"""The fused loop's int8 recurrent products against fp32: speed of `encode` (one process,
best of 2) and the cosine of the vectors, on corpus lines and documents.

    FBGEMM_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        ATEN_CPU_CAPABILITY=avx2 .venv/bin/python experiments/int8_loop.py [MODEL]

Lines: the first 4,000 of zh_big.txt; documents: the first 200 texts of zh_docs.txt of
200-4,000 characters.
"""

from __future__ import annotations

import sys
import time

from ltd_bert.common.stats import cosines
from ltd_bert.student.model import Student

DATA = "../shared/data/corpus/"


def first(path: str, n: int, lo: int = 0, hi: int = 10**9) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if lo <= len(line) <= hi:
                out.append(line)
            if len(out) == n:
                break
    return out


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "zh-small"
    data = {
        "lines": first(DATA + "zh_big.txt", 4000),
        "documents": first(DATA + "zh_docs.txt", 200, 200, 4000),
    }
    vecs = {}
    for precision in ("fp32", "int8"):
        student = Student.load(model, precision=precision)
        student.encode(data["lines"][:100])  # warm-up
        for name, texts in data.items():
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                vecs[precision, name] = student.encode(texts, space="centred")
                best = min(best, time.perf_counter() - t0)
            chars = sum(map(len, texts))
            print(
                f"{precision} {name}: {chars / best:,.0f} chars/s, {len(texts) / best:,.0f} texts/s"
            )
    for name in data:
        c = cosines(vecs["fp32", name], vecs["int8", name])
        print(f"{name}: cosine int8 to fp32 mean {c.mean():.5f}, lowest {c.min():.5f}")


if __name__ == "__main__":
    main()
