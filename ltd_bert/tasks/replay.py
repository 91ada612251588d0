"""The general replay sets that ship with the package, so that `ltd adapt` keeps what the
model knew:

- `ltd_bert/suites/replay.txt.gz`, sentences replayed beside the domain when no `--replay`
  is given. Their teacher vectors are made once per teacher setting, as many lines as an
  adapt needs, and kept under `LTD_HOME/replay/` (resumable, and extended when a later adapt
  needs more lines).
- `ltd_bert/suites/replay_docs.txt.gz`, documents. They are replayed as the windows the
  model reads them in (`runtime.base.windows`), with the model's own vectors of those
  windows before adapting as targets: no teacher time, and what is kept is exactly what the
  model did. Without them an adapt to short text forgets documents (their fidelity fell by
  0.010–0.021 on the suite)."""

from __future__ import annotations

import functools
import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path

from ltd_bert.suites import REPLAY, REPLAY_DOCS


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


def head_rows(path: Path, lines: int, out: Path, first: int = 0) -> tuple[str, int]:
    """(a teacher file, its rows) of the rows of `path` from its input lines `first` to
    `lines` (0-based, end excluded): `path` itself when that is all of it, else a copy of
    those rows at `out`, their lines counted from `first`."""
    import numpy as np

    from ltd_bert.teacher import store

    with store.TeacherFile(path) as tf:
        line = np.asarray(tf.f["line"][:])
        start, n = (int(i) for i in np.searchsorted(line, [first, lines]))  # input order
        if start == 0 and n == len(tf):
            return str(path), n
        sents, vecs, weights = tf.read(start, n)
        settings, dtype = tf.settings, str(tf.f["vectors"].dtype)
    write_rows(out, sents, vecs, weights, line[start:n] - first, lines - first, settings, dtype)
    return str(out), n - start


def write_rows(out: Path, sents, vecs, weights, line, lines: int, settings: dict, dtype: str):
    """A complete teacher file at `out` holding these rows (`line`: each row's input line,
    `lines` the input lines they came from), written under `.partial` and renamed."""
    from ltd_bert.teacher import store

    part = out.with_name(out.name + ".partial")
    f = store.create_store(part, vecs.shape[1], settings, dtype)
    try:
        store.append_rows(f, sents, vecs, weights, line, lines)
        store.finalize(f)
    finally:
        f.close()
    part.replace(out)


def replay_texts(path: str | Path, lines: int | None = None) -> list[str]:
    """The first `lines` (None: all) non-blank lines of a replay text (plain or .gz)."""
    import itertools

    from ltd_bert.common.textio import read_texts

    return list(itertools.islice(filter(str.strip, read_texts([str(path)])), lines))


@functools.cache
def replay_docs() -> list[str]:
    """The texts of the shipped document replay set."""
    return replay_texts(REPLAY_DOCS)


def own_replay(student, texts: list[str], settings: dict, out: Path) -> tuple[str, int]:
    """(a teacher file, its rows): the windows of `texts` as the model reads them, each with
    the model's own (uncentred) vector of it as the target, with teacher settings
    `settings` (those of the teacher files trained beside it)."""
    from ltd_bert.runtime.base import windows

    texts, weights = student.prepare(texts)
    win = windows(texts, weights, student.window, student.max_chars)
    vecs = student.encode_prepared(win.rows, win.weights) + student.mean
    write_rows(out, win.rows, vecs, win.weights, win.owner, len(texts), settings, "float32")
    return str(out), len(win.rows)
