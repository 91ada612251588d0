"""The fused loop's speed by LSTM size and precision: random students of 64-384 units per
direction (embedding 256, output 384), one thread, the first 4,000 corpus lines' lengths in
length-sorted batches of 256, best of 3; each low precision as a multiple of fp32. What
`fused.AUTO_MIN_HIDDEN` is chosen from.

    .venv/bin/python experiments/precision_grid.py                  # native (bf16 on AMX)
    FBGEMM_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        ATEN_CPU_CAPABILITY=avx2 .venv/bin/python experiments/precision_grid.py   # as AVX2
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ltd_bert.common.cpu import has_amx
from ltd_bert.runtime.base import StudentConfig
from ltd_bert.student.fused import FusedBiLSTM, has_int8
from ltd_bert.student.model import BiLSTMStudent

CORPUS = "../shared/data/corpus/zh_big.txt"
LINES, BATCH, VOCAB = 4000, 256, 6000


def batches(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    with open(CORPUS, encoding="utf-8") as fh:
        lengths = np.array([min(max(len(next(fh).strip()), 1), 384) for _ in range(LINES)])
    lengths = np.sort(lengths)[::-1]
    out = []
    for a in range(0, LINES, BATCH):
        n = lengths[a : a + BATCH]
        ids = rng.integers(1, VOCAB, size=(len(n), int(n.max())))
        out.append((ids, n, rng.random(ids.shape, dtype=np.float32)))
    return out


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = batches(np.random.default_rng(0))
    low = [p for p, ok in (("bf16", has_amx()), ("int8", has_int8())) if ok]
    print(f"AMX: {has_amx()}; lines/s of the loop, one thread")
    print("| units | fp32 | " + " | ".join(low) + " |")
    print("|--:|--:|" + "--:|" * len(low))
    for hidden in (64, 128, 192, 256, 384):
        model = BiLSTMStudent(StudentConfig(VOCAB, 256, hidden, output_dim=384)).eval()
        speed = {}
        for p in ["fp32", *low]:
            loop = FusedBiLSTM(model, p)
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                for b in data:
                    loop.forward(*b)
                best = min(best, time.perf_counter() - t)
            speed[p] = LINES / best
        cells = [f"{speed[p]:,.0f} ({speed[p] / speed['fp32']:.2f}×)" for p in low]
        print(f"| {hidden} | {speed['fp32']:,.0f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
