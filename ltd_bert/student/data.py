"""The rows a training run reads: several teacher files as one row range, read in windows;
the validation split (the tail); and the deterministic plan of windows and length-sorted
batches of each epoch (from seed, epoch and window, so a resumed run sees the same batches)."""

from __future__ import annotations

import math

import numpy as np

from ltd_bert.common.errors import InputError, StoreError
from ltd_bert.student.config import TrainConfig
from ltd_bert.teacher.store import TARGET_KEYS, TeacherFile, same_setting, setting


class Data:
    """Several teacher files seen as one row range, read in contiguous windows."""

    def __init__(self, paths: list[str]):
        if not paths:
            raise InputError("no teacher file given")
        self.files = [TeacherFile(p) for p in paths]
        first = self.files[0]
        for tf in self.files[1:]:
            for k in (*TARGET_KEYS, "dim"):
                if not same_setting(k, setting(tf.settings, k), setting(first.settings, k)):
                    raise StoreError(
                        f"{tf.path} and {first.path} differ in {k}: "
                        f"{setting(tf.settings, k)!r} vs {setting(first.settings, k)!r}"
                    )
        self.settings = first.settings
        self.dim = first.dim
        self.offsets = np.cumsum([0] + [len(tf) for tf in self.files])
        self.n = int(self.offsets[-1])
        total = sum(tf.mean.astype(np.float64) * len(tf) for tf in self.files)
        self.mean = (total / max(self.n, 1)).astype(np.float32)

    def read(self, start: int, end: int):
        sents: list[str] = []
        vecs: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for i, tf in enumerate(self.files):
            lo, hi = max(start, self.offsets[i]), min(end, self.offsets[i + 1])
            if lo < hi:
                s, v, w = tf.read(int(lo - self.offsets[i]), int(hi - self.offsets[i]))
                sents += s
                vecs.append(v)
                weights += w
        return sents, np.concatenate(vecs) if vecs else np.zeros((0, self.dim), np.float32), weights

    def read_window(self, window: Window):
        """`read` of each range of a window, joined."""
        parts = [self.read(s, e) for s, e in window]
        if len(parts) == 1:
            return parts[0]
        sents = [t for p in parts for t in p[0]]
        weights = [w for p in parts for w in p[2]]
        return sents, np.concatenate([p[1] for p in parts]), weights

    def iter_sentences(self):
        for tf in self.files:
            yield from tf.iter_sentences()

    def close(self):
        for tf in self.files:
            tf.close()


def split(n: int, cfg: TrainConfig) -> tuple[int, int]:
    """(number of training rows, number of validation rows): validation is the tail."""
    n_val = min(int(math.ceil(n * cfg.val_fraction)), cfg.max_val) if cfg.val_fraction > 0 else 0
    n_val = min(n_val, n - 1)
    return n - n_val, n_val


def windows(n_train: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n_train)) for s in range(0, n_train, size)]


Window = tuple[tuple[int, int], ...]  # row ranges read together


def mixed_windows(n_train: int, offsets, size: int) -> list[Window]:
    """Windows of about `size` rows, the k-th of K taking the k-th K-th of every file's
    training rows (`offsets`: where each file starts, then the total): each window mixes the
    files as the whole does, so a run on sentences and documents does not spend a stretch on
    documents alone and end on whichever file its last window holds."""
    ends = [min(int(o), n_train) for o in offsets]
    spans = [(a, b) for a, b in zip(ends, ends[1:], strict=False) if b > a]
    k_all = max(1, math.ceil(n_train / size))
    out = []
    for k in range(k_all):
        w = tuple((a + (b - a) * k // k_all, a + (b - a) * (k + 1) // k_all) for a, b in spans)
        w = tuple(r for r in w if r[1] > r[0])
        if w:
            out.append(w)
    return out


def plan_windows(n_train: int, cfg: TrainConfig, offsets=None) -> list[Window]:
    """The windows of an epoch, in file order: mixed (`cfg.mix_files`, several files), else
    contiguous row ranges."""
    if cfg.mix_files and offsets is not None and len(offsets) > 2:
        return mixed_windows(n_train, offsets, cfg.window)
    return [(w,) for w in windows(n_train, cfg.window)]


def epoch_plan(n_train: int, cfg: TrainConfig, epoch: int, offsets=None) -> list[Window]:
    ws = plan_windows(n_train, cfg, offsets)
    order = np.random.default_rng([cfg.seed, epoch]).permutation(len(ws))
    return [ws[i] for i in order]


def window_batches(lengths: list[int], cfg: TrainConfig, epoch: int, w_start: int):
    """Length-bucketed batches (row indices within the window), in a shuffled order."""
    rng = np.random.default_rng([cfg.seed, epoch, w_start])
    jitter = rng.random(len(lengths))  # random order among equal lengths
    order = np.lexsort((jitter, np.asarray(lengths)))
    batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def steps_per_epoch(n_train: int, cfg: TrainConfig, offsets=None) -> int:
    return sum(
        math.ceil(sum(e - s for s, e in w) / cfg.batch_size)
        for w in plan_windows(n_train, cfg, offsets)
    )
