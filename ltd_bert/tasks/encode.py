"""`ltd encode`: sentences from a file or stdin → vectors in .npy, .h5, .jsonl or .tsv.

Input is read and encoded in blocks (sorted by length inside each block), so .h5, .jsonl
and .tsv outputs stream inputs larger than memory; .npy is written a block at a time at
its rows (`NpyRows`, by the workers themselves) when the line count is known (plain
files). Files are written under a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ltd_bert.common.cpu import hold_heap
from ltd_bert.common.errors import InputError
from ltd_bert.common.progress import bar
from ltd_bert.common.textio import LineReader, check_output_dir, count_lines, output_tempfile
from ltd_bert.runtime.base import Encoder

FORMATS = ("npy", "h5", "jsonl", "tsv")
#: lines a block (what one worker encodes at a time) holds at most...
BLOCK = 8192
#: ...and characters: a file of documents is several blocks too, for the workers to share
BLOCK_CHARS = 1 << 18
#: a file up to this size is encoded by default with the numpy runtime (its start-up is
#: shorter than torch's import; torch's loop is faster past ~1,000 sentences)
SMALL_BYTES = 1 << 16
#: ...and with a small LSTM (fewer units per direction than SMALL_HIDDEN: zh-tiny), a file
#: up to SMALL_NETWORK_BYTES, in workers too: its numpy loop is slower per line than
#: torch's, but starts without torch's import (zh-tiny, two workers: 40,000 corpus lines,
#: 2.9 MB, 1.15-1.4x faster through numpy; 100,000 lines, 7.4 MB, 0.91x:
#: `experiments/runtime_choice.py`)
SMALL_HIDDEN = 128
SMALL_NETWORK_BYTES = 4 << 20


def numpy_limit(path: str) -> int:
    """The largest input file `ltd encode --runtime auto` runs with numpy for the model
    folder `path` (SMALL_NETWORK_BYTES for a float32 model with a small LSTM)."""
    from ltd_bert.runtime.light import LightStudent

    try:
        meta = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
        hidden = int(meta["student"]["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return SMALL_BYTES  # loading reports what is wrong
    small = hidden < SMALL_HIDDEN and LightStudent.can_load(path)
    return SMALL_NETWORK_BYTES if small else SMALL_BYTES


def auto_runtime(path: str, sentences: str, workers: int) -> str:
    """The runtime `ltd encode --runtime auto` gives the model folder `path` on `sentences`
    (a file, or `-`) in `workers` processes: numpy for stdin and files up to `numpy_limit`
    (in one process, or in workers too for a small network), else torch."""
    limit = numpy_limit(path)
    size = os.path.getsize(sentences) if os.path.isfile(sentences) else 0
    one = workers == 1 or limit > SMALL_BYTES
    return "numpy" if size <= limit and one else "torch"


def pick_format(output: str | None, fmt: str | None) -> str:
    if fmt:
        return fmt
    if output and output != "-":
        ext = Path(output).suffix.lstrip(".").lower()
        if ext in ("hdf5", "h5"):
            return "h5"
        if ext in FORMATS:
            return ext
        raise InputError(
            f"-o {output}: unknown extension; use one of .npy .h5 .jsonl .tsv or --format"
        )
    return "jsonl"


def line_blocks(reader: LineReader) -> Iterator[list[str]]:
    """The lines in blocks of BLOCK lines or BLOCK_CHARS characters, whichever comes first."""
    block: list[str] = []
    chars = 0
    for _, _, line in reader:
        block.append(line)
        chars += len(line)
        if len(block) == BLOCK or chars >= BLOCK_CHARS:
            yield block
            block, chars = [], 0
    if block:
        yield block


def more_than_one_block(path: str) -> bool:
    """Whether the plain file `path` makes more than one block (stdin and gzip: False):
    `line_blocks` itself, read until its second block starts."""
    if path == "-" or path.endswith(".gz"):
        return False
    blocks = line_blocks(LineReader([path], errors="replace"))
    return next(blocks, None) is not None and next(blocks, None) is not None


def encoded_blocks(
    student: Encoder, reader: LineReader, batch_size: int, normalize: bool, space: str
) -> Iterator[tuple[list[str], np.ndarray]]:
    for block in line_blocks(reader):
        yield block, student.encode(block, batch_size, normalize, space)


@dataclass(frozen=True)
class Loader:
    """How `ltd encode` (and each of its worker processes) loads the model."""

    path: str
    runtime: str | None = None
    precision: str = "auto"
    segmenter: str | None = None  # None: the model's

    def load(self) -> Encoder:
        """`runtime="numpy"` runs a float32 folder without torch (`LightStudent`) and falls
        back to `Student.load` for what numpy does not run (an int8 folder)."""
        from ltd_bert.runtime.light import LightStudent

        if self.runtime == "numpy" and LightStudent.can_load(self.path):
            student = LightStudent.load(self.path)
        else:
            from ltd_bert.student.model import Student

            runtime = None if self.runtime == "numpy" else self.runtime
            student = Student.load(self.path, runtime=runtime, precision=self.precision)
        student.use_segmenter(self.segmenter)
        return student


#: thread settings a worker process starts with: one thread each, the processes share the cores
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_worker: Encoder | None = None
#: what a parent encodes once before forking, so that the workers share a warm model (the
#: segmenter's dictionary, the folded tables) instead of each making its own
WARM_UP = "今天天气很好。"


def _start_worker(loader: Loader) -> Encoder:
    """The model in `_worker`, for a worker of one thread (spawned: in each; forked: in the
    parent, before the workers are made)."""
    global _worker
    hold_heap()
    if loader.runtime != "numpy":
        import torch

        torch.set_num_threads(1)  # one OpenMP thread: the processes share the cores
    _worker = loader.load()
    if "torch" in sys.modules:  # also where numpy fell back to torch (an int8 folder)
        sys.modules["torch"].set_num_threads(1)
    return _worker


class NpyRows:
    """An .npy file of float32 rows written a block at a time with `pwrite` at the block's
    offset, by any process that opens it. `NpyRows(path, rows, dim)` makes the file (header
    and size; its pages are only written by the blocks), `NpyRows(path)` opens it.

    A streaming write: each block is dropped from the page cache once written to disk
    (`posix_fadvise` DONTNEED on the block, which starts its write-back, and again on the
    block before, written back by then, which frees its pages), so the cache does not grow
    by the whole output: the pages freed are reused for the next block. 200,000 rows of
    384 (307 MB) written 0.3 s apart on this machine: 0.12–0.14 s of system time against
    1.6–2.0 s without (memory new to the process costs ~5 µs a page here), and 0.2–2.5 s
    through a memory map, whose full disk is a SIGBUS where `pwrite`'s is an OSError."""

    def __init__(self, path: str, rows: int | None = None, dim: int | None = None):
        if rows is None:
            head = np.load(path, mmap_mode="r")  # the header: shape and data offset
        else:
            head = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
            head.flush()
        self.rows, self.dim = head.shape
        self.offset = head.offset
        del head
        self.fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
        self._last: tuple[int, int] | None = None  # the byte range written last

    def write(self, row: int, vecs: np.ndarray) -> None:
        """`vecs` at rows row, row+1, …; rows past the end are dropped (more lines than
        counted: `encode_file` stops with an error after the last block)."""
        vecs = np.ascontiguousarray(vecs[: max(0, self.rows - row)], dtype=np.float32)
        buf, start = memoryview(vecs).cast("B"), self.offset + row * self.dim * 4
        pos = start
        while buf:
            done = _pwrite(self.fd, buf, pos)
            buf, pos = buf[done:], pos + done
        self._drop((start, pos - start))

    def _drop(self, written: tuple[int, int] | None) -> None:
        """Start `written`'s write-back, free the range written before it (`posix_fadvise`
        where the system has it; a hint: nothing changes in the file)."""
        if hasattr(os, "posix_fadvise"):
            for where in (written, self._last):
                if where and where[1]:
                    # a file system that takes no advice is only slower
                    with contextlib.suppress(OSError):
                        os.posix_fadvise(self.fd, *where, os.POSIX_FADV_DONTNEED)
        self._last = written

    def close(self) -> None:
        try:
            self._drop(None)
        finally:
            os.close(self.fd)


def _pwrite(fd: int, buf, pos: int) -> int:
    """`os.pwrite`, or where there is none (Windows) a seek and a write: each process has
    its own descriptor, so its position is its own."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, buf, pos)
    os.lseek(fd, pos, os.SEEK_SET)
    return os.write(fd, buf)


_outputs: dict[str, NpyRows] = {}  # a worker's open .npy outputs, by path


def _encode_block(
    block: list[str],
    batch_size: int,
    normalize: bool,
    space: str,
    into: tuple[str, int] | None = None,
) -> np.ndarray | None:
    """The block's vectors; with `into` (an .npy file, a row) written there instead, so that
    they do not travel back through a pipe (12.6 MB a block of 8,192 at 384 dimensions)."""
    vecs = _worker.encode(block, batch_size, normalize, space)
    if into is None:
        return vecs
    path, row = into
    if path not in _outputs:
        for old in _outputs.values():
            old.close()
        _outputs.clear()
        _outputs[path] = NpyRows(path)
    _outputs[path].write(row, vecs)
    return None


def can_fork() -> bool:
    """Whether the workers can be forked from this process with the model loaded here:
    on Linux, and only while torch has not run here yet (a process whose OpenMP threads
    have started must not fork; `ltd encode` imports torch only to load the model)."""
    import multiprocessing

    return (
        sys.platform == "linux"
        and "fork" in multiprocessing.get_all_start_methods()
        and "torch" not in sys.modules
    )


def load_parent(loader: Loader) -> Encoder | None:
    """With `can_fork`: the model loaded here (torch at one thread: the parent only reads and
    writes) and warmed, for the forked workers to share; else None."""
    if not can_fork():
        return None
    student = _start_worker(loader)  # the forked workers keep its settings
    student.encode([WARM_UP])
    return student


def _forked_start() -> None:
    """A forked worker drops the handlers it inherited (`ltd`'s SIGTERM → KeyboardInterrupt):
    the pool ends its workers with SIGTERM, and the parent handles Ctrl-C for them."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool(loader: Loader, workers: int):
    """`workers` processes of one thread each with the model in `_worker`: forked from this
    one after loading it once (`load_parent`: ~1.5 s of start-up once instead of in every
    worker, torch's import included), else spawned, each loading its own."""
    import multiprocessing

    if _worker is not None or load_parent(loader) is not None:
        import gc

        # what the parent holds (the IDF table, the model) is not scanned by the workers'
        # collections: fewer pages copied on write (~20,000 of ~410,000 minor faults for
        # 200,000 lines with zh-tiny)
        gc.freeze()
        try:
            return multiprocessing.get_context("fork").Pool(workers, _forked_start)
        finally:
            gc.unfreeze()
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch state
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update(dict.fromkeys(THREAD_VARS, "1"))
    try:
        return ctx.Pool(workers, _start_worker, (loader,))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parallel_blocks(
    loader: Loader,
    workers: int,
    reader: LineReader,
    batch_size: int,
    normalize: bool,
    space: str,
    into: str | None = None,
) -> Iterator[tuple[list[str], np.ndarray | None]]:
    """As `encoded_blocks`, with `workers` processes of one thread each encoding blocks in
    turn (segmentation included); blocks come back in input order, and at most two per
    worker are read ahead, so memory stays bounded on any input size. With `into` (an .npy
    file of enough rows) the workers write the vectors there, in input order, and None
    comes back for them."""
    global _worker
    pool = _pool(loader, workers)
    try:
        with pool:
            pending: deque = deque()
            row = 0
            for block in line_blocks(reader):
                args = (block, batch_size, normalize, space, into and (into, row))
                row += len(block)
                pending.append((block, pool.apply_async(_encode_block, args)))
                if len(pending) >= 2 * workers:
                    done, result = pending.popleft()
                    yield done, result.get()
            while pending:
                done, result = pending.popleft()
                yield done, result.get()
    finally:
        _worker = None


def encode_file(
    student: Encoder,
    source: str,
    output: str | None,
    fmt: str | None = None,
    normalize: bool = False,
    space: str = "similarity",
    batch_size: int = 256,
    errors: str = "strict",
    quiet: bool = False,
    workers: int = 1,
    loader: Loader | None = None,
) -> tuple[int, str]:
    """Encode the lines of `source` into `output`. With `workers` > 1, `loader` loads the
    model for the worker processes (`_pool`: once here, or in each; `student` then only
    gives the output's dimension and settings)."""
    if workers > 1 and loader is None:
        raise ValueError("encode_file: workers > 1 needs a loader")
    fmt = pick_format(output, fmt)
    reader = LineReader([source], errors=errors)
    total = count_lines([source])
    to_stdout = not output or output == "-"
    if not to_stdout:
        check_output_dir(output)
    if to_stdout and fmt in ("npy", "h5"):
        raise InputError(f"--format {fmt} needs -o FILE")
    pbar = bar(total=total, unit="sent", desc="encode", quiet=quiet)

    def encoded(into: str | None = None):
        if workers > 1:
            return parallel_blocks(loader, workers, reader, batch_size, normalize, space, into)
        return encoded_blocks(student, reader, batch_size, normalize, space)

    blocks = encoded()
    if to_stdout:
        n = 0
        for sents, vecs in blocks:
            _write_text(sys.stdout, fmt, sents, vecs)
            n += len(sents)
            pbar.update(len(sents))
        pbar.close()
        sys.stdout.flush()
        return n, "-"
    out = Path(output)
    fd, tmp = output_tempfile(out)
    os.close(fd)
    n = 0
    try:
        if fmt in ("jsonl", "tsv"):
            with open(tmp, "w", encoding="utf-8") as fh:
                for sents, vecs in blocks:
                    _write_text(fh, fmt, sents, vecs)
                    n += len(sents)
                    pbar.update(len(sents))
        elif fmt == "h5":
            import h5py

            with h5py.File(tmp, "w") as f:
                d = student.dim
                ds = f.create_dataset(
                    "vectors", (0, d), maxshape=(None, d), dtype="float32", chunks=(1024, d)
                )
                ss = f.create_dataset(
                    "sentences",
                    (0,),
                    maxshape=(None,),
                    dtype=h5py.string_dtype("utf-8"),
                    chunks=(1024,),
                )
                f.attrs["model"] = json.dumps(
                    {k: student.meta.get(k) for k in ("teacher", "pooling", "eps")}
                )
                f.attrs["normalized"] = normalize
                f.attrs["space"] = space
                f.attrs["mean_scale"] = student.space_scale(space)
                f.attrs["whiten"] = student.whiten * (space == "similarity")
                f.attrs["norm_map"] = space == "similarity" and student.norm_map is not None
                for sents, vecs in blocks:
                    ds.resize(n + len(sents), axis=0)
                    ss.resize(n + len(sents), axis=0)
                    ds[n:] = vecs
                    ss[n:] = sents
                    n += len(sents)
                    pbar.update(len(sents))
        else:  # npy
            if total is None:
                parts = []
                for sents, vecs in blocks:
                    parts.append(vecs)
                    pbar.update(len(sents))
                arr = np.concatenate(parts) if parts else np.zeros((0, student.dim), np.float32)
                n = len(arr)
                with open(tmp, "wb") as fh:
                    np.save(fh, arr)
            else:
                rows = NpyRows(tmp, total, student.dim)  # workers write their rows themselves
                try:
                    for sents, vecs in encoded(into=tmp):
                        if vecs is not None:
                            rows.write(n, vecs)
                        n += len(sents)
                        pbar.update(len(sents))
                finally:
                    rows.close()
                if n != total:  # a last line without a newline, or skipped lines
                    arr = np.load(tmp, mmap_mode="r")[:n] if n < total else None
                    if arr is None:
                        raise InputError(f"{source}: changed while being read")
                    np.save(tmp + ".trim.npy", np.asarray(arr))
                    os.replace(tmp + ".trim.npy", tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        pbar.close()
    return n, str(out)


def _write_text(fh, fmt: str, sents: list[str], vecs: np.ndarray) -> None:
    if fmt == "jsonl":
        for s, v in zip(sents, vecs, strict=True):
            fh.write(
                json.dumps(
                    {"sentence": s, "vector": [round(float(x), 6) for x in v]}, ensure_ascii=False
                )
                + "\n"
            )
    else:
        for s, v in zip(sents, vecs, strict=True):
            clean = s.replace("\t", " ")
            fh.write(clean + "\t" + "\t".join(f"{x:.6g}" for x in v) + "\n")
