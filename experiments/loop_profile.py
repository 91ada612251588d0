"""Where the fused loop's time goes: torch's profiler over `encode` of the first 2,000
corpus lines, one thread, each operation's share of the CPU time.

    FBGEMM_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        ATEN_CPU_CAPABILITY=avx2 .venv/bin/python experiments/loop_profile.py [MODEL]
"""

from __future__ import annotations

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from ltd_bert.student.model import Student

CORPUS = "../shared/data/corpus/zh_big.txt"


def main() -> None:
    torch.set_num_threads(1)
    student = Student.load(sys.argv[1] if len(sys.argv) > 1 else "zh-small")
    with open(CORPUS, encoding="utf-8") as fh:
        lines = [next(fh).rstrip("\r\n") for _ in range(2000)]
    texts, weights = student.prepare(lines)
    student.encode_prepared(texts[:200], weights[:200])  # warm
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        student.encode_prepared(texts, weights)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"precision {student.precision}; {total / 1e6:.2f} s of CPU time")
    print("| operation | calls | share |")
    print("|---|--:|--:|")
    for e in events[:10]:
        print(f"| {e.key} | {e.count} | {100 * e.self_cpu_time_total / total:.1f} % |")


if __name__ == "__main__":
    main()
