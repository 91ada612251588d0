"""Exact search latency over a synthetic index of 1 M × 384 float32 unit vectors.

    python benchmarks/search_1m.py [--rows 1000000] [--dim 384] [--queries 1 8 128]

Writes the index once (same layout as `ltd index`: chunked `vectors`, `sentences`, `line`)
into a temporary folder, then times `Index.search` for each query batch size: a cold-ish
first pass and the best of three warm passes (the file in the OS page cache).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from ltd_bert.tasks.search import CHUNK_ROWS, INDEX_FORMAT, INDEX_VERSION, Index


def write_index(path: Path, rows: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        vs = f.create_dataset("vectors", (rows, dim), dtype="float32", chunks=(CHUNK_ROWS, dim))
        for s in range(0, rows, 100_000):
            e = min(s + 100_000, rows)
            v = rng.standard_normal((e - s, dim), dtype=np.float32)
            vs[s:e] = v / np.linalg.norm(v, axis=1, keepdims=True)
        f.create_dataset(
            "sentences", data=[f"s{i}" for i in range(rows)], dtype=h5py.string_dtype("utf-8")
        )
        f.create_dataset("line", data=np.arange(1, rows + 1))
        f.attrs.update(
            format=INDEX_FORMAT,
            format_version=INDEX_VERSION,
            dim=dim,
            count=rows,
            model=json.dumps({"path": "synthetic", "dim": dim}),
        )


def timed(idx: Index, nq: int, k: int, rng: np.random.Generator) -> None:
    q = rng.standard_normal((nq, idx.dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    walls, cpus = [], []
    for _ in range(4):
        t, c = time.perf_counter(), time.process_time()
        _, rows = idx.search(q, k)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    # brute force agrees on the first query (torch: numpy's BLAS threads keep spinning
    # after a call and would slow down the next timing)
    full = (torch.from_numpy(idx.vectors[:]) @ torch.from_numpy(q[0])).numpy()
    assert set(np.argsort(-full)[:k].tolist()) == set(rows[0].tolist())
    warm = min(walls[1:])
    print(
        f"{nq:>4} queries: first {walls[0]:.3f} s, warm best {warm:.3f} s wall "
        f"({warm / nq * 1000:.1f} ms/query), {min(cpus[1:]):.3f} s CPU"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, nargs="+", default=[1, 8, 128])
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--index", type=Path, help="Reuse (or create) this synthetic index file.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.index or Path(tmp) / "index.h5"
        if not path.exists():
            t = time.perf_counter()
            write_index(path, args.rows, args.dim)
            print(f"wrote {args.rows:,} × {args.dim} in {time.perf_counter() - t:.1f} s")
        for how in ("direct chunk reads", "h5py blocks"):
            print(f"-- {how}")
            with Index(path) as idx:
                if how == "h5py blocks":
                    idx._chunk_offsets = lambda: None  # force the read_direct fallback
                rng = np.random.default_rng(1)
                for nq in args.queries:
                    timed(idx, nq, args.k, rng)


if __name__ == "__main__":
    main()
