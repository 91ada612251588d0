"""Put the vectors to work: pair similarity, an exact nearest-neighbour index, and search.

The index is an HDF5 file:
    vectors    N × D float32, L2-normalised, chunked by rows
    sentences  UTF-8 strings, the indexed lines (empty lines are not indexed)
    line       int64, each row's line number in the input
and attributes `format`, `format_version`, `dim`, `count`, `model` (JSON: the model folder,
a hash of its config and weights, the teacher, the dimension), `source`, `tool_version`
and `created`.

Search is exact: the matrix is read chunk by chunk (4096 rows, straight from the chunks'
file offsets when they are uncompressed, else through h5py), scored against a batch of
queries with a matrix product, and, per block of about 100 k rows, the running top k kept
with a threshold test and `np.argpartition`; nothing is ever fully sorted, and memory stays
at one block of scores. 1 M × 384: about 0.2 s per query on one busy core
(`benchmarks/search_1m.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ltd_bert.common.errors import InputError, ModelError
from ltd_bert.common.textio import LineReader, check_output_dir, output_tempfile
from ltd_bert.common.version import __version__

log = logging.getLogger(__name__)

INDEX_FORMAT = "ltd-index"
INDEX_VERSION = 1
CHUNK_ROWS = 4096  # HDF5 chunk: 4096 rows × D float32 (6 MB at D = 384)
BLOCK_ROWS = 24 * CHUNK_ROWS  # rows scored at once: ~100 k, whole chunks only
QUERY_BATCH = 128  # queries scored per pass over the index


# --- the model an index was built with --------------------------------------------------


def model_info(model_dir: str | os.PathLike, student) -> dict[str, Any]:
    """What identifies a model: its folder, a hash of config.json + model.safetensors, the
    teacher and the dimension."""
    p = Path(model_dir)
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(p / name, "rb") as fh:
            for buf in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(buf)
    return {
        "path": str(p.resolve()),
        "sha256": h.hexdigest(),
        "teacher": student.meta.get("teacher"),
        "dim": int(student.dim),
    }


# --- similarity ---------------------------------------------------------------------------


def similarity(student, a: str, b: str) -> float:
    """Cosine of the two sentences' vectors (0 when either is empty)."""
    v = student.encode([a, b], normalize=True)
    return float(v[0] @ v[1])


@dataclass
class PairLine:
    lineno: int
    s1: str
    s2: str
    label: float | None


def read_pair_lines(path: str, errors: str = "strict") -> Iterator[PairLine]:
    """Stream `s1<TAB>s2[<TAB>label]` lines (or JSON lines with sentence1, sentence2 and an
    optional label); blank lines are skipped; `-` is stdin."""
    from ltd_bert.text.clean import clean_text

    for _, lineno, line in LineReader([path], errors=errors):
        if not clean_text(line):  # blank, also once zero-width characters are dropped
            continue
        # JSON escapes tabs, so a line with a literal tab is always TSV
        if "\t" not in line and line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
                a, b, y = row["sentence1"], row["sentence2"], row.get("label")
            except (ValueError, KeyError, TypeError, AttributeError):
                raise InputError(
                    f"{path}:{lineno}: expected a JSON object with sentence1, sentence2 "
                    "and optionally label"
                ) from None
        else:
            parts = line.split("\t")
            if len(parts) not in (2, 3):
                raise InputError(
                    f"{path}:{lineno}: expected sentence1<TAB>sentence2[<TAB>label], got "
                    f"{len(parts)} field(s)"
                )
            a, b = parts[0], parts[1]
            y = parts[2] if len(parts) == 3 and parts[2].strip() else None
        if y is not None:
            try:
                y = float(y)
            except (TypeError, ValueError):
                raise InputError(f"{path}:{lineno}: label {y!r} is not a number") from None
        yield PairLine(lineno, str(a), str(b), y)


def pair_scores(
    student, path: str, batch_size: int = 256, block: int = 4096, errors: str = "strict"
) -> Iterator[tuple[PairLine, float]]:
    """Each pair of the file with its cosine, in file order; streamed in blocks of pairs,
    each distinct sentence of a block encoded once."""
    buf: list[PairLine] = []

    def flush():
        uniq = sorted({p.s1 for p in buf} | {p.s2 for p in buf})
        pos = {s: i for i, s in enumerate(uniq)}
        vecs = student.encode(uniq, batch_size, normalize=True)
        a = vecs[[pos[p.s1] for p in buf]]
        b = vecs[[pos[p.s2] for p in buf]]
        return zip(buf, (a * b).sum(1).tolist(), strict=True)

    for pair in read_pair_lines(path, errors):
        buf.append(pair)
        if len(buf) == block:
            yield from flush()
            buf = []
    if buf:
        yield from flush()


# --- building an index ------------------------------------------------------------------


def build_index(
    student,
    info: dict[str, Any],
    source: str,
    output: str | os.PathLike,
    batch_size: int = 256,
    errors: str = "strict",
    progress=None,
) -> int:
    """Encode every non-empty line of `source` (unit vectors) into an index file; written
    under a temporary name and renamed into place. Returns the number of rows."""
    import h5py

    from ltd_bert.tasks.encode import encoded_blocks
    from ltd_bert.text.clean import clean_text

    out = Path(output)
    check_output_dir(out)
    reader = LineReader([source], errors=errors)
    lines: list[int] = []

    def non_empty():  # encoded_blocks takes (source, lineno, text) triples
        for src, lineno, text in reader:
            if clean_text(text):  # empty once cleaned: a zero vector, not indexed
                lines.append(lineno)
                yield src, lineno, text

    d = int(student.dim)
    fd, tmp = output_tempfile(out)
    os.close(fd)
    n = 0
    try:
        with h5py.File(tmp, "w") as f:
            vs = f.create_dataset(
                "vectors", (0, d), maxshape=(None, d), dtype="float32", chunks=(CHUNK_ROWS, d)
            )
            ss = f.create_dataset(
                "sentences",
                (0,),
                maxshape=(None,),
                dtype=h5py.string_dtype("utf-8"),
                chunks=(CHUNK_ROWS,),
            )
            ls = f.create_dataset(
                "line", (0,), maxshape=(None,), dtype="int64", chunks=(CHUNK_ROWS,)
            )
            for sents, vecs in encoded_blocks(student, non_empty(), batch_size, True, "similarity"):
                m = n + len(sents)
                for ds in (vs, ss, ls):
                    ds.resize(m, axis=0)
                vs[n:m] = vecs
                ss[n:m] = sents
                ls[n:m] = lines[n:m]
                n = m
                if progress is not None:
                    progress(len(sents))
            f.attrs.update(
                {
                    "format": INDEX_FORMAT,
                    "format_version": INDEX_VERSION,
                    "dim": d,
                    "count": n,
                    "model": json.dumps(info, ensure_ascii=False),
                    "source": str(Path(source).resolve()) if source != "-" else "-",
                    "lines_read": reader.lines_read,
                    "tool_version": __version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


# --- searching ----------------------------------------------------------------------------


@dataclass
class Hit:
    row: int
    score: float
    sentence: str
    line: int


class Index:
    """An index file opened for search: `Index(path).search(query_vectors, k)`."""

    def __init__(self, path: str | os.PathLike):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such index (build one with `ltd index`)")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(f"{self.path}: not an HDF5 index file ({exc})") from None
        a = self.file.attrs
        if a.get("format") != INDEX_FORMAT or "vectors" not in self.file:
            self.close()
            raise InputError(f"{self.path}: not an ltd index (build one with `ltd index`)")
        if int(a.get("format_version", 0)) > INDEX_VERSION:
            self.close()
            raise InputError(f"{self.path}: written by a newer ltd-bert; upgrade ltd-bert")
        self.vectors = self.file["vectors"]
        self.count, self.dim = self.vectors.shape
        self.model = json.loads(a.get("model", "{}"))

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def check_model(self, info: dict[str, Any]) -> str | None:
        """Raise if the model's vectors cannot be compared with the index's; return a warning
        when they can but come from another model."""
        built = self.model.get("path", "?")
        if int(info["dim"]) != self.dim:
            raise ModelError(
                f"{self.path}: built with model {built} (dimension {self.dim}); model "
                f"{info['path']} gives dimension {info['dim']}: search with -m {built}"
            )
        if self.model.get("sha256") and info.get("sha256") != self.model["sha256"]:
            if info.get("path") == built:
                return f"model {built} has changed since {self.path} was built: rebuild it"
            return (
                f"{self.path} was built with model {built}, not {info['path']}: scores "
                "compare vectors of two different models"
            )
        return None

    def search(
        self, queries: np.ndarray, k: int = 10, block_rows: int = BLOCK_ROWS, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top k by cosine for unit query vectors (Q, D): (scores, rows), each (Q, k),
        best first; ties go to the earlier row.

        `threads` for the products (torch's, restored after): 1 by default, as the products
        of one chunk are small and BLAS threads spin on busy cores (measured on 2 shared
        cores: a batch of 8 queries 25 × slower with 2 threads than with 1).
        """
        import torch

        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ModelError(f"{self.path}: queries of shape {q.shape}, index dimension {self.dim}")
        k = max(0, min(k, self.count))
        best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        best_i = np.full((len(q), k), -1, dtype=np.int64)
        if k == 0 or len(q) == 0:
            return best_s, best_i
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            best_s, best_i = self._top_k(q, k, block_rows, best_s, best_i)
        finally:
            torch.set_num_threads(prev_threads)
        order = np.lexsort((best_i, -best_s), axis=1)  # k items per query: score, then row
        return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)

    def _top_k(self, q, k, block_rows, best_s, best_i):
        for start, scores in self.scored_blocks(q, block_rows):  # scores: (Q, B)
            for qi in range(len(q)):
                row = scores[qi]
                # only rows beating the k-th best so far can enter: after the first block
                # this is a cheap comparison that leaves a handful of candidates
                cand = np.flatnonzero(row > best_s[qi].min())
                if len(cand) == 0:
                    continue
                if len(cand) > k:
                    cand = cand[np.argpartition(row[cand], -k)[-k:]]
                cs = np.concatenate([best_s[qi], row[cand]])
                ci = np.concatenate([best_i[qi], cand + start])
                keep = np.argpartition(cs, -k)[-k:]
                best_s[qi], best_i[qi] = cs[keep], ci[keep]
        return best_s, best_i

    def scored_blocks(
        self, q: np.ndarray, block_rows: int = BLOCK_ROWS
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, scores (Q, B)) for consecutive blocks of about `block_rows` rows; the
        scores array is reused, valid until the next block.

        Uncompressed chunks are read straight from their file offsets into one reused
        chunk-sized buffer (a plain read from the page cache, then the product while the
        chunk is still in the CPU cache); any other layout through h5py, a block at a time.
        The products run in torch, whose thread count `search` sets.
        """
        import torch

        qt = torch.from_numpy(q)
        chunks = self._chunk_offsets()
        per = self.vectors.chunks[0] if chunks is not None else block_rows
        per_block = max(1, block_rows // per)
        span = min(per * per_block, self.count)
        scores = np.empty((len(q), span), dtype=np.float32)
        buf = np.empty((min(per, self.count), self.dim), dtype=np.float32)
        raw = memoryview(buf).cast("B")
        with contextlib.ExitStack() as stack:
            fh = None
            if chunks is not None:
                fh = stack.enter_context(open(self.path, "rb", buffering=0))
            for start in range(0, self.count, span):
                end = min(start + span, self.count)
                for r0 in range(start, end, per):
                    n = min(per, end - r0)
                    if fh is not None:
                        fh.seek(chunks[r0 // per])
                        if fh.readinto(raw[: n * self.dim * 4]) != n * self.dim * 4:
                            raise InputError(f"{self.path}: truncated at row {r0}")
                    else:
                        self.vectors.read_direct(buf, np.s_[r0 : r0 + n], np.s_[0:n])
                    prod = torch.matmul(qt, torch.from_numpy(buf[:n]).T)  # (Q, n)
                    scores[:, r0 - start : r0 - start + n] = prod.numpy()
                yield start, scores[:, : end - start]

    def _chunk_offsets(self) -> list[int] | None:
        """File offsets of the row chunks, in row order, when they can be read as raw bytes:
        little-endian float32, chunks of whole rows, no filters, every chunk allocated;
        else None (read through h5py)."""
        ds = self.vectors
        try:
            if (
                ds.dtype != np.dtype("<f4")
                or ds.chunks is None
                or ds.chunks[1] != self.dim
                or ds.compression is not None
                or self.file.driver != "sec2"
                or self.count == 0
            ):
                return None
            per = ds.chunks[0]
            n_chunks = -(-self.count // per)
            if ds.id.get_num_chunks() != n_chunks:
                return None
            offsets: list[int | None] = [None] * n_chunks
            for i in range(n_chunks):
                info = ds.id.get_chunk_info(i)
                row = info.chunk_offset[0]
                if info.filter_mask or info.size != per * self.dim * 4 or row % per:
                    return None
                offsets[row // per] = int(info.byte_offset)
            if None in offsets or os.path.getsize(self.path) < max(offsets) + per * self.dim * 4:
                return None
            return offsets  # type: ignore[return-value]
        except (AttributeError, RuntimeError, ValueError, OSError):  # old HDF5: no chunk info
            return None

    def rows(self, rows: np.ndarray) -> tuple[list[str], list[int]]:
        """Sentences and input line numbers of the given rows (any order)."""
        flat = np.asarray(rows).ravel()
        uniq = np.unique(flat[flat >= 0])
        if len(uniq) == 0:
            return [], []
        sents = self.file["sentences"][uniq]
        lines = self.file["line"][uniq]
        pos = {int(r): i for i, r in enumerate(uniq)}
        texts = [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in sents]
        return [texts[pos[int(r)]] for r in flat], [int(lines[pos[int(r)]]) for r in flat]


def search(
    index: Index,
    student,
    queries: list[str],
    k: int = 10,
    batch_size: int = 256,
    threads: int = 1,
) -> list[list[Hit]]:
    """The top k hits for each query (queries are encoded as unit vectors)."""
    results: list[list[Hit]] = []
    for start in range(0, len(queries), QUERY_BATCH):
        batch = queries[start : start + QUERY_BATCH]
        vecs = student.encode(batch, batch_size, normalize=True)
        scores, rows = index.search(vecs, k, threads=threads)
        sents, lines = index.rows(rows)
        for qi in range(len(batch)):
            hits = []
            for j in range(rows.shape[1]):
                at = qi * rows.shape[1] + j
                hits.append(Hit(int(rows[qi, j]), float(scores[qi, j]), sents[at], lines[at]))
            results.append(hits)
    return results
