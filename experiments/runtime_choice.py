"""`ltd encode` (default workers) of the first N corpus lines with `--runtime numpy` and
`--runtime torch`: wall seconds, best of 2, interleaved; what `tasks.encode.SMALL_HIDDEN`
and `SMALL_NETWORK_BYTES` are chosen from (the numpy loop starts without torch's import but
is slower per line).

    .venv/bin/python experiments/runtime_choice.py [MODEL] [N ...]     # zh-tiny 40000 200000
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = "../shared/data/corpus/zh_big.txt"


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "zh-tiny"
    counts = [int(n) for n in sys.argv[2:]] or [40_000, 200_000]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"| lines | MB | numpy s | torch s | torch / numpy |  ({model})")
        print("|--:|--:|--:|--:|--:|")
        for n in counts:
            path = Path(tmp) / f"{n}.txt"
            with open(CORPUS, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
                for _ in range(n):
                    dst.write(next(src))
            best = {"numpy": float("inf"), "torch": float("inf")}
            for _ in range(2):
                for runtime in best:
                    cmd = [sys.executable, "-m", "ltd_bert", "encode", str(path), "-m", model]
                    cmd += ["-o", f"{tmp}/out.npy", "-q", "--runtime", runtime]
                    t = time.perf_counter()
                    subprocess.run(cmd, check=True, capture_output=True)
                    best[runtime] = min(best[runtime], time.perf_counter() - t)
            mb = path.stat().st_size / 2**20
            ratio = best["torch"] / best["numpy"]
            print(f"| {n:,} | {mb:.1f} | {best['numpy']:.2f} | {best['torch']:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
