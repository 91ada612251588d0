"""The general replay set that ships with the package (`ltd_bert/suites/replay.txt.gz`):
what `ltd adapt` replays beside the domain when no `--replay` is given, so that the model
keeps what it knew. Its teacher vectors are made once per teacher setting, as many lines as
an adapt needs, and kept under `LTD_HOME/replay/` (resumable, and extended when a later
adapt needs more lines)."""

from __future__ import annotations

import functools
import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path

from ltd_bert.suites import REPLAY


@functools.cache
def replay_lines(path: Path = REPLAY) -> int:
    """The lines of the shipped replay set."""
    with gzip.open(path, "rb") as fh:
        return sum(1 for _ in fh)


def shipped_replay(
    student,
    teacher,
    lines: int,
    work: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """(a teacher file, its rows) of the shipped set's first `lines` lines (at most all of
    them), embedded with the model's teacher settings: the cached file itself, or, when it
    holds more lines than asked for, a copy of their rows in `work`."""
    from ltd_bert.tasks.suite import cache_dir, model_pooling
    from ltd_bert.teacher.embed import teacher_embed_cached

    lines = max(1, min(lines, replay_lines()))
    digest = hashlib.sha256(REPLAY.read_bytes()).hexdigest()[:12]
    cache = cache_dir(student, "replay")
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"replay-{digest}.h5"

    def step(done, stats):
        if progress:
            progress(done + stats.resumed_from)

    # (a file of other settings, say of another version: made again)
    teacher_embed_cached(
        [str(REPLAY)],
        cached,
        teacher,
        student.weighter,
        model_pooling(student),
        limit=lines,
        progress=step,
    )
    return head_rows(cached, lines, work / "replay-shipped.h5")


def head_rows(path: Path, lines: int, out: Path) -> tuple[str, int]:
    """(a teacher file, its rows) of the rows of `path` from its first `lines` input lines:
    `path` itself when that is all of it, else a copy of those rows at `out`."""
    import numpy as np

    from ltd_bert.teacher import store

    with store.TeacherFile(path) as tf:
        line = np.asarray(tf.f["line"][:])
        n = int(np.searchsorted(line, lines))  # rows come in input order
        if n == len(tf):
            return str(path), n
        sents, vecs, weights = tf.read(0, n)
        settings, dtype = tf.settings, str(tf.f["vectors"].dtype)
    part = out.with_name(out.name + ".partial")
    f = store.create_store(part, vecs.shape[1], settings, dtype)
    try:
        store.append_rows(f, sents, vecs, weights, line[:n], lines)
        store.finalize(f)
    finally:
        f.close()
    part.replace(out)
    return str(out), n
