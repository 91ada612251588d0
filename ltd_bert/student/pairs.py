"""The relational term of training: the student's cosines between near texts should order
them as the teacher's do.

Fitting each vector closely is not enough for ranking: near-paraphrases differ by a few
hundredths of cosine, and an error that is small on average is as large as the differences
that decide their order. So, beside the vector-distance loss, training can look at pairs:

- `mine_pairs` finds each training row's nearest rows by the teacher's centred cosine, over
  every row of the training files (an exact search in blocks), plus its nearest rows of the
  other length class (sentences for a document, documents for a sentence: the pairs a
  search of documents by short text orders). The table is stored beside the first teacher
  file (`<name>.pairs.h5`), written block by block and resumable like the teacher file.
- `PairSampler` draws, at each step, groups of a row and some of its neighbours (seeded by
  the step, so a resumed run sees the same groups); the step's pair batch is the groups.
- `pair_loss` compares the student's cosine matrix of the pair batch with the teacher's:
  `mse` (squared differences of the cosines, near pairs weighted up), `corr` (one minus the
  Pearson correlation of the two cosines over the near pairs of the batch: what a Spearman
  over neighbour pairs rewards) or `list` (per row, the KL divergence between softmaxes of
  the two rows of cosines at a low temperature: the order of each text's neighbours).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ltd_bert.common.errors import InputError, StoreError
from ltd_bert.student.config import PAIR_LOSSES

#: texts of at least this many characters are documents (the suite's `DOC_CHARS`)
LONG_CHARS = 200
#: the temperature of `list`
TEMPERATURE = 0.05
#: how much more a near pair (same group) counts than any other pair of the batch in `mse`
NEAR_WEIGHT = 4.0
SUFFIX = ".pairs.h5"


def default_path(data_paths: Sequence[str | os.PathLike]) -> Path:
    """Beside the first teacher file: `<stem>.pairs.h5` (several files: a hash of the set)."""
    first = Path(data_paths[0])
    if len(data_paths) == 1:
        return first.with_name(first.stem + SUFFIX)
    key = "|".join(str(Path(p).resolve()) for p in data_paths)
    return first.with_name(f"{first.stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}{SUFFIX}")


def signature(data, n_rows: int, k: int, k_cross: int) -> str:
    """What a pair table was mined from: the files (names, rows), the rows searched, k."""
    files = [(Path(tf.path).name, len(tf)) for tf in data.files]
    return json.dumps({"files": files, "rows": n_rows, "k": k, "k_cross": k_cross})


def _unit(x: np.ndarray, mean: np.ndarray) -> torch.Tensor:
    c = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) - torch.from_numpy(mean)
    return F.normalize(c, dim=-1)


def mine_pairs(
    data,
    out: str | os.PathLike,
    n_rows: int,
    k: int = 12,
    k_cross: int = 4,
    mean: np.ndarray | None = None,
    block: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Each of the first `n_rows` rows of `data` (a `Data`): its `k` nearest rows among them
    by the teacher's centred cosine, then its `k_cross` nearest of the other length class
    (`LONG_CHARS`), into `out` (HDF5: `idx` int32 and `cos` float16, (n_rows, k + k_cross);
    -1 where a class has too few rows). Resumable: a `.partial` file keeps the blocks done."""
    import h5py

    out = Path(out)
    sig = signature(data, n_rows, k, k_cross)
    if out.is_file():
        with h5py.File(out, "r") as f:
            if f.attrs.get("signature") == sig:
                return out
        raise StoreError(
            f"{out}: pairs mined from other rows or settings (delete it to mine again)"
        )
    if n_rows < 2:
        raise InputError("pairs: at least 2 training rows are needed")
    mean = data.mean if mean is None else mean
    sents, vecs, _ = data.read(0, n_rows)
    long = torch.from_numpy(np.array([len(s) >= LONG_CHARS for s in sents]))
    unit = _unit(vecs, mean)
    del vecs
    k = min(k, n_rows - 1)
    width = k + k_cross
    partial = out.with_name(out.name + ".partial")
    if partial.is_file():  # a partial table of other rows or settings: mined again
        with h5py.File(partial, "r") as f:
            stale = f.attrs.get("signature") != sig
        if stale:
            partial.unlink()
    mode = "a" if partial.is_file() else "w"
    with h5py.File(partial, mode) as f:
        if mode == "w":
            f.attrs["signature"] = sig
            f.attrs["done"] = 0
            f.create_dataset("idx", (n_rows, width), dtype="int32")
            f.create_dataset("cos", (n_rows, width), dtype="float16")
        start = int(f.attrs["done"])
        while start < n_rows:
            end = min(start + block, n_rows)
            sim = unit[start:end] @ unit.T
            rows = torch.arange(end - start)
            sim[rows, rows + start] = -2.0  # not itself
            top = sim.topk(k, dim=1)
            idx, cos = [top.indices], [top.values]
            if k_cross:
                other = long[None, :] != long[start:end, None]
                crossed = sim.masked_fill(~other, -3.0).topk(k_cross, dim=1)
                ci = crossed.indices.masked_fill(crossed.values < -1.5, -1)
                idx.append(ci)
                cos.append(crossed.values.clamp(min=-1.0))
            f["idx"][start:end] = torch.cat(idx, 1).numpy().astype(np.int32)
            f["cos"][start:end] = torch.cat(cos, 1).numpy().astype(np.float16)
            f.attrs["done"] = end
            f.flush()
            start = end
            if progress:
                progress(end, n_rows)
    os.replace(partial, out)
    return out


class PairSampler:
    """Groups of a training row and `group - 1` of its mined neighbours, drawn per step."""

    def __init__(
        self,
        data,
        pairs_path: str | os.PathLike,
        n_rows: int,
        seed: int,
        k: int,
        anchors_from: int = 0,
    ):
        import h5py

        with h5py.File(pairs_path, "r") as f:
            self.idx = f["idx"][:]
        if len(self.idx) != n_rows:
            raise StoreError(f"{pairs_path}: {len(self.idx)} rows, the training has {n_rows}")
        self.sents, self.vecs, self.weights = data.read(0, n_rows)
        self.valid = self.idx >= 0
        # a sentence's group takes its neighbours of its own length class (the first k
        # columns); a document's, its sentences too: the pairs across lengths, at the cost of
        # a long recurrence only in the groups of documents
        long = np.array([len(t) >= LONG_CHARS for t in self.sents])
        self.valid[~long, k:] = False
        self.seed = seed
        if not 0 <= anchors_from < n_rows:
            raise InputError(f"pairs: anchors from row {anchors_from}, of {n_rows} training rows")
        self.anchors_from = anchors_from

    def draw(self, step: int, anchors: int, group: int, rank: int = 0) -> np.ndarray:
        """(anchors, group) row indices: each row a random anchor (a row from `anchors_from`
        on) and `group - 1` distinct neighbours of it (seeded by seed, step and rank)."""
        rng = np.random.default_rng((self.seed, step, rank))
        a = rng.integers(self.anchors_from, len(self.idx), anchors)
        out = np.empty((anchors, group), dtype=np.int64)
        out[:, 0] = a
        for r, i in enumerate(a):
            cand = np.unique(self.idx[i][self.valid[i]])  # a near text may be both kinds
            pick = rng.choice(len(cand), size=min(group - 1, len(cand)), replace=False)
            chosen = cand[pick]
            if len(chosen) < group - 1:  # too few neighbours: random rows fill the group
                chosen = np.concatenate(
                    [chosen, rng.integers(0, len(self.idx), group - 1 - len(chosen))]
                )
            out[r, 1:] = chosen
        return out


def near_mask(groups: int, group: int) -> torch.Tensor:
    """(B, B) True where two rows of the pair batch are in the same group (not the diagonal)."""
    g = torch.arange(groups * group) // group
    same = g[:, None] == g[None, :]
    return same & ~torch.eye(len(g), dtype=torch.bool)


def pair_loss(
    pred: torch.Tensor, target: torch.Tensor, kind: str, groups: int, group: int
) -> torch.Tensor:
    """The relational term of a pair batch: `pred` the student's (centred) vectors, `target`
    the teacher's centred vectors, rows in groups of `group` (a row and its neighbours)."""
    if kind not in PAIR_LOSSES or kind == "none":
        raise InputError(f"--pair-loss must be one of {', '.join(PAIR_LOSSES[1:])}")
    p, t = F.normalize(pred, dim=-1), F.normalize(target, dim=-1)
    s, c = p @ p.T, t @ t.T
    near = near_mask(groups, group).to(s.device)
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    if kind == "mse":
        w = off.float() + (NEAR_WEIGHT - 1) * near.float()
        return ((s - c) ** 2 * w).sum() / w.sum()
    if kind == "corr":
        a, b = s[near], c[near]
        a, b = a - a.mean(), b - b.mean()
        return 1 - (a * b).sum() / (a.norm() * b.norm()).clamp(min=1e-8)
    # list: each row's cosines to the others, as distributions at a low temperature
    big = torch.finfo(s.dtype).max / 4
    ls = F.log_softmax((s / TEMPERATURE).masked_fill(~off, -big), dim=1)
    lt = F.log_softmax((c / TEMPERATURE).masked_fill(~off, -big), dim=1)
    return (lt.exp() * (lt - ls)).masked_fill(~off, 0).sum(1).mean()
