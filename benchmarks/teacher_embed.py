"""`ltd teacher-embed` with the built-in teacher: fp32 against bf16, one process of two
threads against two one-thread shards at once (then merged), and how close bf16 vectors
are to fp32 ones.

    .venv/bin/python benchmarks/teacher_embed.py [--lines 4096] [--skip 200000]

Lines from `zh_big.txt` (else data/corpus_sample.txt), wall time of the whole command
(process start, teacher load, HDF5 writes). Prints a table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "zh_big.txt"
FALLBACK = ROOT / "data" / "corpus_sample.txt"
LTD = [sys.executable, "-m", "ltd_bert"]


def run(args: list[str], parallel: list[list[str]] | None = None) -> float:
    t0 = time.perf_counter()
    if parallel:
        procs = [subprocess.Popen([*LTD, *a], stderr=subprocess.PIPE) for a in parallel]
        for p in procs:
            if p.wait():
                raise SystemExit(p.stderr.read().decode()[-2000:])
    if args:
        subprocess.run([*LTD, *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def vectors(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path) as f:
        return f["vectors"][:]


def main() -> None:
    from ltd_bert.common.cpu import features_line, native_bf16

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=4096)
    ap.add_argument("--skip", type=int, default=200_000, help="corpus lines skipped first")
    args = ap.parse_args()
    print(features_line())
    if not native_bf16():  # each row but fp32 would time an emulation, slower than fp32
        print("skipped: bf16 against fp32 needs a CPU that multiplies bf16 natively")
        return
    src = CORPUS if CORPUS.is_file() else FALLBACK
    with open(src, encoding="utf-8") as fh:
        lines = list(islice(fh, args.skip if src == CORPUS else 0, None))[: args.lines]
    with tempfile.TemporaryDirectory(prefix="ltd-bench-te-") as tmp:
        d = Path(tmp)
        inp = d / "in.txt"
        inp.write_text("".join(lines), encoding="utf-8")
        base = ["teacher-embed", "-i", str(inp), "--idf", "jieba", "-q"]
        run([*base, "-o", str(d / "warm.h5"), "--limit", "64"])  # caches, page cache
        rows = []
        t = run([*base, "-o", str(d / "fp32.h5"), "--precision", "fp32", "--threads", "2"])
        rows.append(("fp32, 1 process × 2 threads", t))
        t = run([*base, "-o", str(d / "bf16.h5"), "--precision", "bf16", "--threads", "2"])
        rows.append(("bf16, 1 process × 2 threads", t))
        shards = [
            [*base, "-o", str(d / f"s{i}.h5"), "--precision", "bf16", "--threads", "1"]
            + ["--shard", f"{i}/2"]
            for i in range(2)
        ]
        merge = ["teacher-embed", "merge", str(d / "s0.h5"), str(d / "s1.h5")]
        t = run([*merge, "-o", str(d / "sharded.h5")], parallel=shards)
        rows.append(("bf16, 2 shards × 1 thread at once, then merge", t))
        a, b, c = vectors(d / "fp32.h5"), vectors(d / "bf16.h5"), vectors(d / "sharded.h5")
    mean = a.mean(0)

    def cos(x, y):
        x, y = x - mean, y - mean
        return (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)

    print(f"\n`ltd teacher-embed`, {len(a):,} lines of {src.name} from line {args.skip + 1:,}\n")
    print("| how | wall s | lines/s | × fp32 |")
    print("|---|--:|--:|--:|")
    for what, t in rows:
        print(f"| {what} | {t:.1f} | {len(a) / t:,.1f} | {rows[0][1] / t:.2f}× |")
    cb, cc = cos(a, b), cos(a, c)
    print(
        f"\nbf16 vs fp32 vectors, centred cosine: mean {cb.mean():.6f}, min {cb.min():.6f}; "
        f"sharded bf16: mean {cc.mean():.6f}, min {cc.min():.6f}"
    )


if __name__ == "__main__":
    main()
