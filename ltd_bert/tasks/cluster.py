"""`ltd cluster`: k-means over unit sentence vectors, in numpy.

k-means++ seeding (each new centre drawn with probability proportional to the squared
distance to the nearest centre already chosen), then Lloyd iterations until no assignment
changes. Everything random comes from `np.random.default_rng(seed)`, so a seed gives the
same clusters every time. On unit vectors the squared distance is 2 − 2·cosine, so this
groups sentences by cosine similarity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ltd_bert.common.errors import InputError
from ltd_bert.common.textio import LineReader
from ltd_bert.text.clean import clean_text

log = logging.getLogger(__name__)

ROWS = 65_536  # rows per distance computation, so memory is ROWS × k, not N × k


@dataclass
class KMeansResult:
    labels: np.ndarray  # (N,) cluster of each row
    centers: np.ndarray  # (k, D)
    inertia: float  # sum of squared distances to the assigned centre
    iterations: int
    converged: bool


def sq_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (N, k), never negative."""
    d = (x * x).sum(1)[:, None] - 2 * x @ centers.T + (centers * centers).sum(1)[None, :]
    return np.maximum(d, 0)


def assign(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row and the squared distance to it, in blocks of rows."""
    labels = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x), dtype=np.float64)
    for s in range(0, len(x), ROWS):
        d = sq_distances(x[s : s + ROWS], centers)
        labels[s : s + ROWS] = d.argmin(1)
        dist[s : s + ROWS] = d[np.arange(len(d)), labels[s : s + ROWS]]
    return labels, dist


def cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum of the rows of each cluster (k, D), in float64: rows sorted by cluster, then one
    `np.add.reduceat` over the runs."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=k)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    nonempty = counts > 0
    if nonempty.any():
        sums[nonempty] = np.add.reduceat(x[order], starts[nonempty], axis=0, dtype=np.float64)
    return sums


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: k rows of `x` as initial centres."""
    n = len(x)
    chosen = [int(rng.integers(n))]
    closest = sq_distances(x, x[chosen[0]][None]).ravel().astype(np.float64)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k: any unused row will do
            rest = np.setdiff1d(np.arange(n), chosen)
            nxt = int(rng.choice(rest))
        else:
            nxt = int(rng.choice(n, p=closest / total))
        chosen.append(nxt)
        closest = np.minimum(closest, sq_distances(x, x[nxt][None]).ravel())
    return x[chosen].astype(np.float64)


def kmeans(
    x: np.ndarray, k: int, seed: int = 0, max_iter: int = 100, tol: float = 1e-7
) -> KMeansResult:
    """Lloyd's k-means with k-means++ seeding; stops when no row changes cluster (or the
    centres move less than `tol`). An emptied cluster is re-seeded with the row farthest
    from its centre."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise InputError("k-means needs at least one vector")
    if not 1 <= k <= len(x):
        raise InputError(f"-k {k}: must be between 1 and the number of sentences ({len(x)})")
    rng = np.random.default_rng(seed)
    centers = kmeans_pp(x, k, rng)
    labels = np.full(len(x), -1, dtype=np.int64)
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        new, dist = assign(x, centers)
        counts = np.bincount(new, minlength=k)
        for c in np.flatnonzero(counts == 0):  # steal the worst-served row
            far = int(dist.argmax())
            new[far] = c
            dist[far] = 0.0
            counts = np.bincount(new, minlength=k)
        changed = int((new != labels).sum())
        labels = new
        sums = cluster_sums(x, labels, k)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        shift = float(((moved - centers) ** 2).sum())
        centers = moved
        if changed == 0 or shift <= tol:
            converged = True
            break
    labels, dist = assign(x, centers)
    return KMeansResult(labels, centers, float(dist.sum()), it, converged)


def relabel_by_size(result: KMeansResult) -> KMeansResult:
    """Number clusters by decreasing size (ties by first row), so cluster 0 is the largest."""
    k = len(result.centers)
    counts = np.bincount(result.labels, minlength=k)
    first = np.array(
        [
            np.flatnonzero(result.labels == c)[0] if counts[c] else len(result.labels)
            for c in range(k)
        ]
    )
    order = np.lexsort((first, -counts))  # new id i ← old id order[i]
    mapping = np.empty(k, dtype=np.int64)
    mapping[order] = np.arange(k)
    return KMeansResult(
        mapping[result.labels],
        result.centers[order],
        result.inertia,
        result.iterations,
        result.converged,
    )


@dataclass
class Cluster:
    id: int
    size: int
    central: list[str]  # the most central distinct sentences


@dataclass
class Clustering:
    sentences: list[str]  # every input line
    labels: np.ndarray  # cluster per input line; -1 for empty lines
    clusters: list[Cluster]
    result: KMeansResult


def cluster_file(
    student,
    source: str,
    k: int,
    seed: int = 0,
    max_iter: int = 100,
    n_central: int = 3,
    batch_size: int = 256,
    errors: str = "strict",
    progress=None,
) -> Clustering:
    """Cluster the non-empty lines of `source` by their unit vectors."""
    from ltd_bert.tasks.encode import encoded_blocks

    sentences: list[str] = []
    parts: list[np.ndarray] = []
    for sents, vecs in encoded_blocks(
        student, LineReader([source], errors=errors), batch_size, True, "similarity"
    ):
        sentences += sents
        parts.append(vecs)
        if progress is not None:
            progress(len(sents))
    vecs = np.concatenate(parts) if parts else np.zeros((0, student.dim), np.float32)
    keep = np.array([bool(clean_text(s)) for s in sentences], dtype=bool)  # as encode sees
    if not keep.any():
        raise InputError(f"{source}: no sentences to cluster")
    if k > int(keep.sum()):
        raise InputError(f"-k {k}: {source} has only {int(keep.sum())} non-empty lines")
    x = vecs[keep]
    result = relabel_by_size(kmeans(x, k, seed, max_iter))
    labels = np.full(len(sentences), -1, dtype=np.int64)
    labels[keep] = result.labels
    kept = [s for s, ok in zip(sentences, keep, strict=True) if ok]
    _, dist = assign(x, result.centers)
    clusters = []
    for c in range(k):
        members = np.flatnonzero(result.labels == c)
        central: list[str] = []
        for i in members[np.argsort(dist[members], kind="stable")]:
            if kept[i] not in central:
                central.append(kept[i])
            if len(central) == n_central:
                break
        clusters.append(Cluster(c, len(members), central))
    if not result.converged:
        log.warning("k-means stopped after %d iterations without converging", max_iter)
    return Clustering(sentences, labels, clusters, result)
