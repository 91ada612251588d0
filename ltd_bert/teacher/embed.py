"""`ltd teacher-embed`: run the teacher once over a corpus into the HDF5 teacher file.

The input is processed in blocks of `chunk_size` lines. Within a block, sentences are sorted
by length into batches (little padding); the block's rows are then appended in input order
and the resume point moves, so a killed run restarts from the last complete block and the
final file equals an uninterrupted run's. `--shard I/N` takes every N-th block only.
The file is written under `NAME.partial` and renamed into place when complete.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltd_bert.common.errors import InputError, StoreError
from ltd_bert.common.textio import LineReader, check_output_dir, count_lines
from ltd_bert.common.version import __version__
from ltd_bert.teacher import store
from ltd_bert.teacher.model import PoolingSettings, Teacher
from ltd_bert.text.clean import clean_text
from ltd_bert.text.weights import Weighter

log = logging.getLogger(__name__)


# Settings that change the vectors: a file made with others is refused (or --overwrite).
MATCH_KEYS = (
    "teacher",
    "teacher_config",
    "pooling",
    "layer",
    "prefix",
    "max_length",
    "long",
    "idf_sha256",
    "eps",
    "segmenter",
    "dim",
    "dtype",
    "precision",
    "chunk_size",
    "shard",
    "inputs",
)


# Teacher compute precisions (`--precision`) and the torch types they stand for.
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class EmbedStats:
    lines: int = 0
    rows: int = 0
    empty: int = 0
    truncated: int = 0
    bad_lines: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    already_complete: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def parse_shard(shard: str | None) -> tuple[int, int]:
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise InputError(f"--shard {shard!r}: expected I/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise InputError(f"--shard {shard!r}: need 0 <= I < N")
    return i, n


def partial_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def _check_settings(path: Path, found: dict, wanted: dict) -> None:
    get = store.setting
    diff = [k for k in MATCH_KEYS if get(found, k) != get(wanted, k)]
    if diff:
        k = diff[0]
        raise StoreError(
            f"{path} was made with other settings ({k}: {get(found, k)!r}, now "
            f"{get(wanted, k)!r}); "
            "use --overwrite to start over or -o for another file"
        )


def _open_earlier(path: Path, mode: str = "r"):
    """The output (or `.partial`) of an earlier run; an unusable one is refused with the way
    out, as resuming or extending it is impossible."""
    try:
        return store.open_store(path, mode)
    except StoreError as exc:
        raise StoreError(f"{exc}; use --overwrite to start over") from None


def earlier_precision(output: str | Path) -> str | None:
    """The compute type an earlier run of `output` (complete or `.partial`) recorded, so
    that resuming or extending it keeps it; None when there is none."""
    for path in (partial_path(Path(output)), Path(output)):
        if path.is_file():
            try:
                with store.open_store(path) as f:
                    return store.setting(store.settings_of(f), "precision")
            except (StoreError, OSError):
                return None
    return None


def precision_of(teacher: Teacher) -> str:
    """`fp32`, `bf16` or `fp16`: the type the teacher computes in."""
    model = getattr(teacher, "model", None)
    param = next(model.parameters(), None) if model is not None else None
    if param is None:
        return "fp32"
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(param.dtype, "fp32")


def embed_settings(
    inputs: list[str],
    teacher: Teacher,
    weighter: Weighter,
    pooling: PoolingSettings,
    dtype: str = "float32",
    chunk_size: int = 2048,
    shard: str | None = None,
) -> dict[str, Any]:
    """The settings a teacher file records (and a resumed or merged one must match)."""
    shard_i, shard_n = parse_shard(shard)
    settings = {
        "teacher": teacher.id,
        "teacher_config": teacher.config_hash,
        "teacher_path": teacher.path,
        "pooling": pooling.pooling,
        "layer": pooling.layer,
        "prefix": pooling.prefix,
        "max_length": pooling.max_length,
        "long": pooling.long,
        **weighter.settings(),
        "dim": teacher.dim,
        "dtype": dtype,
        "precision": precision_of(teacher),
        "chunk_size": chunk_size,
        "shard": [shard_i, shard_n],
        "inputs": [os.path.abspath(p) if p != "-" else "-" for p in inputs],
        "tool_version": __version__,
    }
    return settings


def teacher_embed(
    inputs: list[str],
    output: str | Path,
    teacher: Teacher,
    weighter: Weighter,
    pooling: PoolingSettings,
    batch_size: int = 64,
    chunk_size: int = 2048,
    dtype: str = "float32",
    shard: str | None = None,
    limit: int | None = None,
    errors: str = "strict",
    overwrite: bool = False,
    progress=None,
    fail_after_chunks: int | None = None,
    allow_empty: bool = False,
) -> EmbedStats:
    """Embed `inputs` into `output`; resumes a `.partial` file made with the same settings.

    `limit` caps the input lines read; rerunning with a larger limit extends a complete file.
    `fail_after_chunks` (tests) raises after that many chunks, as a kill would.
    `allow_empty` (a torchrun rank's part): a shard without any sentence is a valid file.
    """
    output = Path(output)
    check_output_dir(output)
    shard_i, shard_n = parse_shard(shard)
    reader = LineReader(inputs, errors=errors)
    settings = embed_settings(inputs, teacher, weighter, pooling, dtype, chunk_size, shard)
    part = partial_path(output)
    stats = EmbedStats()
    f = None
    if overwrite:
        part.unlink(missing_ok=True)
    elif output.exists():
        with _open_earlier(output) as old:
            _check_settings(output, store.settings_of(old), settings)
            done = int(old.attrs["lines_done"])
        total = count_lines(inputs)
        wanted = total if limit is None else min(limit, total or limit)
        if wanted is not None and done >= wanted:
            stats.already_complete = True
            stats.rows = store.TeacherFile(output).n
            return stats
        os.replace(output, part)  # extend a complete file: continue where it stopped
    if part.exists() and not overwrite:
        f = _open_earlier(part, "r+")
        try:
            _check_settings(part, store.settings_of(f), settings)
        except StoreError:
            f.close()
            raise
        store.truncate_to_resume_point(f)
        f.attrs["complete"] = False
    if f is None:
        f = store.create_store(part, teacher.dim, settings, dtype)
    lines_done = int(f.attrs["lines_done"])
    stats.resumed_from = lines_done
    t0 = time.perf_counter()
    try:
        chunks = 0
        block: list[tuple[int, str]] = []

        def flush(first: int, end: int) -> None:
            """Embed the block (if its shard is ours) and move the resume point to `end`."""
            if (first // chunk_size) % shard_n == shard_i:
                _embed_block(f, block, end, teacher, weighter, pooling, batch_size, stats)
            else:
                store.append_rows(f, [], np.zeros((0, teacher.dim)), [], [], end)
            if progress is not None:
                progress(end - lines_done, stats)

        for _, _, raw in reader:
            # the input line number, counting lines `--errors skip` dropped
            line_no = reader.lines_read - 1
            if limit is not None and line_no >= limit:
                break
            if line_no < lines_done:
                continue
            if block and line_no // chunk_size != block[0][0] // chunk_size:
                flush(block[0][0], (block[0][0] // chunk_size + 1) * chunk_size)  # last skipped
                block = []
            block.append((line_no, raw))
            if (line_no + 1) % chunk_size == 0:  # blocks align to absolute line numbers
                flush(line_no, line_no + 1)
                block = []
                chunks += 1
                if fail_after_chunks is not None and chunks >= fail_after_chunks:
                    raise KeyboardInterrupt("simulated kill")
        end = reader.lines_read if limit is None else min(reader.lines_read, limit)
        if block or end > int(f.attrs["lines_done"]):
            flush(block[0][0] if block else end - 1, end)
        if end == 0:
            raise InputError(f"{', '.join(inputs)}: no lines to embed")
        stats.lines = max(end, lines_done)
        stats.bad_lines = reader.bad_lines
        stats.rows = int(f["vectors"].shape[0])
        if stats.rows == 0 and not allow_empty:
            raise InputError(f"{', '.join(inputs)}: no non-empty sentences to embed")
        store.finalize(f)
        f.close()
        f = None
        os.replace(part, output)
    finally:
        if f is not None:
            f.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def teacher_embed_cached(*args, overwrite: bool = False, **kwargs) -> EmbedStats:
    """`teacher_embed` into a cache file the program owns: a file (or `.partial`) made with
    other settings is made again instead of refused."""
    try:
        return teacher_embed(*args, overwrite=overwrite, **kwargs)
    except StoreError:
        if overwrite:
            raise
        return teacher_embed(*args, overwrite=True, **kwargs)


def teacher_embed_distributed(
    inputs: list[str],
    output: str | Path,
    teacher: Teacher,
    weighter: Weighter,
    pooling: PoolingSettings,
    batch_size: int = 64,
    chunk_size: int = 2048,
    dtype: str = "float32",
    limit: int | None = None,
    errors: str = "strict",
    overwrite: bool = False,
    progress=None,
    fail_after_chunks: int | None = None,
) -> EmbedStats:
    """`teacher_embed` split across the ranks of a torchrun job (inside a process group).

    Rank R of N embeds every N-th block (`--shard R/N`) into its own part file,
    `OUTPUT.rankR-of-N.h5`, resumable like any teacher file. The ranks then wait for each
    other (one gather of their stats: no rank polls the file system), and rank 0 merges the
    parts into OUTPUT with `merge_parts`: the same vectors, in the same order, as a
    single-process run. The parts are kept (they are what a rerun resumes or extends).
    Rank 0 returns the run's totals; the other ranks their own share.
    """
    from ltd_bert.teacher import distributed

    output = Path(output)
    check_output_dir(output)
    if "-" in inputs:
        raise InputError("torchrun ranks cannot share stdin: give the input as files")
    r, n = distributed.rank(), distributed.world_size()
    mine = distributed.part_path(output, r, n)
    # Rank 0 alone decides whether OUTPUT is already complete, so that every rank takes the
    # same path through the collectives (a rank on another machine may not see OUTPUT).
    verdict: tuple[str, Any] = ("go", None)
    if r == 0 and not overwrite and output.exists():
        try:
            verdict = _complete_output(
                inputs, output, teacher, weighter, pooling, dtype, chunk_size, limit
            )
        except (InputError, StoreError) as exc:
            verdict = ("error", str(exc))
    verdict = distributed.broadcast(verdict)
    if verdict[0] == "error":
        raise StoreError(verdict[1])
    if verdict[0] == "complete":
        return EmbedStats(rows=verdict[1], already_complete=True)

    stats = teacher_embed(
        inputs,
        mine,
        teacher,
        weighter,
        pooling,
        batch_size,
        chunk_size,
        dtype,
        f"{r}/{n}",
        limit,
        errors,
        overwrite,
        progress,
        fail_after_chunks,
        allow_empty=True,  # a small input may leave a rank no block
    )
    everyone: list[EmbedStats] = distributed.gather(stats)  # waits for the slowest rank
    if r != 0:
        return stats
    if sum(s.rows for s in everyone) == 0:
        raise InputError(f"{', '.join(inputs)}: no non-empty sentences to embed")
    parts = [distributed.part_path(output, i, n) for i in range(n)]
    unseen = [str(p) for p in parts if not p.exists()]
    if unseen:
        raise StoreError(
            f"{', '.join(unseen)}: not visible from rank 0; put -o on a file system all "
            "machines share, or copy the parts here and run `ltd teacher-embed merge`"
        )
    t0 = time.perf_counter()
    rows = merge_parts([str(p) for p in parts], output)
    with _open_earlier(output) as f:
        lines = int(f.attrs["lines_done"])
    working = [s for s in everyone if not s.already_complete]  # the others had no new lines
    return EmbedStats(
        lines=lines,
        rows=rows,
        empty=sum(s.empty for s in everyone),
        truncated=sum(s.truncated for s in everyone),
        bad_lines=max(s.bad_lines for s in everyone),
        seconds=max(s.seconds for s in everyone) + time.perf_counter() - t0,
        resumed_from=min((s.resumed_from for s in working), default=lines),
        extra={"parts": [str(p) for p in parts], "ranks": n},
    )


def _complete_output(inputs, output, teacher, weighter, pooling, dtype, chunk_size, limit):
    """`("complete", rows)` when OUTPUT already holds every wanted line with these settings,
    else `("go", None)`; other settings raise, as for a single-process run."""
    with _open_earlier(output) as old:
        wanted = embed_settings(inputs, teacher, weighter, pooling, dtype, chunk_size)
        _check_settings(output, store.settings_of(old), wanted)
        done = int(old.attrs["lines_done"])
        complete = bool(old.attrs["complete"])
    total = count_lines(inputs)
    want = total if limit is None else min(limit, total or limit)
    if complete and want is not None and done >= want:
        with store.TeacherFile(output) as tf:
            return "complete", tf.n
    return "go", None


def _embed_block(f, block, lines_done, teacher, weighter, pooling, batch_size, stats) -> None:
    rows: list[tuple[int, str, np.ndarray]] = []
    for line_no, raw in block:
        text = clean_text(raw)
        if not text:
            stats.empty += 1
            continue
        rows.append((line_no, text, weighter.char_weights(text)))
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][1]))
    vectors = np.zeros((len(rows), teacher.dim), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        vec, truncated = teacher.embed(
            [rows[i][1] for i in idx], [rows[i][2] for i in idx], pooling
        )
        vectors[idx] = vec
        stats.truncated += truncated
    store.append_rows(
        f,
        [r[1] for r in rows],
        vectors,
        [r[2] for r in rows],
        [r[0] for r in rows],
        lines_done,
    )


def merge_parts(parts: list[str], output: str | Path, batch: int = 8192) -> int:
    """Join shard files into one, in input order; their settings must agree."""
    if not parts:
        raise InputError("no part files given")
    files = [store.TeacherFile(p) for p in parts]
    try:
        base = {k: v for k, v in files[0].settings.items() if k != "shard"}
        shards = set()
        for tf in files:
            other = {k: v for k, v in tf.settings.items() if k != "shard"}
            _check_settings(tf.path, other, base)
            i, n = tf.settings["shard"]
            if n != files[0].settings["shard"][1]:
                raise StoreError(
                    f"{tf.path}: shard of {n}, others of {files[0].settings['shard'][1]}"
                )
            shards.add(i)
        n_shards = files[0].settings["shard"][1]
        if shards != set(range(n_shards)):
            missing = sorted(set(range(n_shards)) - shards)
            raise StoreError(f"shards {missing} of {n_shards} are missing")
        keys = np.concatenate([np.asarray(tf.f["line"][:]) for tf in files])
        src = np.concatenate([np.full(len(tf), i) for i, tf in enumerate(files)])
        row = np.concatenate([np.arange(len(tf)) for tf in files])
        order = np.argsort(keys, kind="stable")
        output = Path(output)
        part = partial_path(output)
        settings = dict(base, shard=[0, 1])
        out = store.create_store(part, files[0].dim, settings, str(files[0].f["vectors"].dtype))
        try:
            lines_done = max(int(tf.f.attrs["lines_done"]) for tf in files)
            for start in range(0, len(order), batch):
                sel = order[start : start + batch]
                sents, vecs, ws, lines = [], [], [], []
                for i, tf in enumerate(files):
                    rows = np.sort(row[sel][src[sel] == i])
                    if len(rows) == 0:
                        continue
                    lo, hi = int(rows[0]), int(rows[-1]) + 1
                    s, v, w = tf.read(lo, hi)
                    ln = tf.f["line"][lo:hi]
                    keep = rows - lo
                    sents += [s[k] for k in keep]
                    vecs.append(v[keep])
                    ws += [w[k] for k in keep]
                    lines.append(ln[keep])
                lines_arr = np.concatenate(lines)
                o = np.argsort(lines_arr, kind="stable")
                store.append_rows(
                    out,
                    [sents[k] for k in o],
                    np.concatenate(vecs)[o],
                    [ws[k] for k in o],
                    lines_arr[o],
                    lines_done,
                )
            store.finalize(out)
        finally:
            out.close()
        os.replace(part, output)
        return len(order)
    finally:
        for tf in files:
            tf.close()
