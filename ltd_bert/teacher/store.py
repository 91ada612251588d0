"""The HDF5 teacher file: sentences, vectors, character weights and the settings that made them.

Layout (all datasets chunked and resizable, so the file is read in batches and appended to):
    sentences  (N,)    variable-length UTF-8: the cleaned texts
    vectors    (N, D)  float32 or float16: the pooled teacher vectors
    weights    (N,)    variable-length float32: each character's weight (training needs no jieba)
    line       (N,)    int64: the 0-based line number in the input stream (all inputs in order)
    attrs: format, settings (JSON: teacher id and config hash, pooling, layer, prefix, IDF file
           hash, eps, dimension, tool version, creation time, ...), lines_done (input lines
           fully processed), complete, mean (the mean vector, once complete)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ltd_bert.common.errors import StoreError
from ltd_bert.common.version import __version__

FORMAT = "ltd-bert-teacher-v1"
ROW_CHUNK = 1024

# Settings that decide what a teacher vector means: files joined for training, and a model
# and the file its fidelity is measured on, must agree on all of them.
TARGET_KEYS = (
    "teacher",
    "teacher_config",
    "pooling",
    "layer",
    "prefix",
    "idf_sha256",
    "eps",
    "segmenter",
)
# Values of keys that files written before the key existed do not have.
SETTING_DEFAULTS = {"segmenter": "jieba", "precision": "fp32", "long": "truncate"}


def setting(settings: dict[str, Any], key: str) -> Any:
    """A file's (or model's) setting, with the default older files imply."""
    return settings.get(key, SETTING_DEFAULTS.get(key))


#: segmenters whose weights (and so teacher vectors) agree: all three cut with jieba's
#: dictionary and HMM, `fast` word for word, `rjieba` all but runs joined by symbols
#: (`24-25`), HMM near-ties and rare characters (~1 line in 100: text/segment.py), so a
#: model may encode with another segmenter than its teacher files'
SAME_WORDS = {"fast": "jieba", "rjieba": "jieba"}


def same_setting(key: str, ours: Any, theirs: Any) -> bool:
    """Whether two values of a TARGET_KEYS setting mean the same targets."""
    if key == "segmenter":
        return SAME_WORDS.get(ours, ours) == SAME_WORDS.get(theirs, theirs)
    return ours == theirs


_STR = h5py.string_dtype("utf-8")
_VLEN_F32 = h5py.vlen_dtype(np.float32)


def create_store(path: str | Path, dim: int, settings: dict[str, Any], dtype: str = "float32"):
    """A new, empty teacher file opened for appending."""
    try:
        f = h5py.File(path, "w")
    except OSError as exc:  # h5py's message holds the OS one: "error message = '...'"
        reason = re.search(r"error message = '([^']*)'", str(exc))
        raise StoreError(
            f"{path}: cannot create ({reason.group(1) if reason else str(exc).splitlines()[0]})"
        ) from None
    f.attrs["format"] = FORMAT
    f.attrs["settings"] = json.dumps(settings, ensure_ascii=False, sort_keys=True)
    f.attrs["tool_version"] = __version__
    f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    f.attrs["lines_done"] = 0
    f.attrs["complete"] = False
    f.create_dataset("sentences", (0,), maxshape=(None,), dtype=_STR, chunks=(ROW_CHUNK,))
    f.create_dataset(
        "vectors", (0, dim), maxshape=(None, dim), dtype=dtype, chunks=(ROW_CHUNK, dim)
    )
    f.create_dataset("weights", (0,), maxshape=(None,), dtype=_VLEN_F32, chunks=(ROW_CHUNK,))
    f.create_dataset("line", (0,), maxshape=(None,), dtype=np.int64, chunks=(ROW_CHUNK * 4,))
    return f


def open_store(path: str | Path, mode: str = "r") -> h5py.File:
    """Open a teacher file, with a clear error for what is not one."""
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"{p}: no such teacher file")
    try:
        f = h5py.File(p, mode)
    except OSError as exc:
        raise StoreError(
            f"{p}: not a readable HDF5 file (truncated or corrupt?): {str(exc).splitlines()[0]}"
        ) from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise StoreError(f"{p}: not an ltd-bert teacher file (format {FORMAT} expected)")
    for name in ("sentences", "vectors", "weights", "line"):
        if name not in f:
            f.close()
            raise StoreError(f"{p}: dataset '{name}' is missing")
    return f


def settings_of(f: h5py.File) -> dict[str, Any]:
    return json.loads(f.attrs["settings"])


def append_rows(
    f: h5py.File,
    sentences: Sequence[str],
    vectors: np.ndarray,
    weights: Sequence[np.ndarray],
    lines: Sequence[int],
    lines_done: int,
) -> None:
    """Append rows and move the resume point, then flush: the file is consistent after this."""
    n = f["vectors"].shape[0]
    k = len(sentences)
    if k:
        for name in ("sentences", "vectors", "weights", "line"):
            f[name].resize(n + k, axis=0)
        f["sentences"][n:] = list(sentences)
        f["vectors"][n:] = vectors
        w = np.empty(k, dtype=object)
        w[:] = [np.asarray(x, dtype=np.float32) for x in weights]
        # write_direct: `ds[n:] = w` fails when all rows have the same length (h5py then
        # reads the arrays as one 2-D block), e.g. a block with one non-empty line
        f["weights"].write_direct(w, dest_sel=np.s_[n : n + k])
        f["line"][n:] = np.asarray(lines, dtype=np.int64)
    f.attrs["rows_done"] = n + k
    f.attrs["lines_done"] = lines_done
    f.flush()


def truncate_to_resume_point(f: h5py.File) -> None:
    """Drop rows written after the last complete chunk (a run killed mid-append)."""
    rows = int(f.attrs.get("rows_done", 0))
    for name in ("sentences", "vectors", "weights", "line"):
        if f[name].shape[0] != rows:
            f[name].resize(rows, axis=0)


def finalize(f: h5py.File, batch: int = 65536) -> None:
    """Compute the mean vector (streaming) and mark the file complete."""
    vec = f["vectors"]
    total = np.zeros(vec.shape[1], dtype=np.float64)
    for start in range(0, vec.shape[0], batch):
        total += vec[start : start + batch].astype(np.float64).sum(0)
    f.attrs["mean"] = (total / max(vec.shape[0], 1)).astype(np.float32)
    f.attrs["complete"] = True
    f.flush()


class TeacherFile:
    """Read access in batches: `len`, `dim`, `settings`, `mean`, `read(start, end)`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.f = open_store(self.path)
        if not self.f.attrs.get("complete", False):
            self.f.close()
            raise StoreError(
                f"{self.path}: incomplete (a run was interrupted); rerun `ltd teacher-embed` "
                "with the same settings to finish it"
            )
        self.settings = settings_of(self.f)
        self.dim = int(self.f["vectors"].shape[1])
        self.n = int(self.f["vectors"].shape[0])
        self.mean = np.asarray(self.f.attrs["mean"], dtype=np.float32)

    def __len__(self) -> int:
        return self.n

    def read(self, start: int, end: int) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
        sents = [
            s.decode("utf-8") if isinstance(s, bytes) else s for s in self.f["sentences"][start:end]
        ]
        vecs = np.asarray(self.f["vectors"][start:end], dtype=np.float32)
        weights = list(self.f["weights"][start:end])
        return sents, vecs, weights

    def iter_sentences(self, batch: int = 65536) -> Iterator[str]:
        for start in range(0, self.n, batch):
            for s in self.f["sentences"][start : start + batch]:
                yield s.decode("utf-8") if isinstance(s, bytes) else s

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
