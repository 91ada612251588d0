"""How much of the teacher's mean vector the student's similarity vectors keep.

The student predicts the teacher vector minus the training mean `m` (`p ≈ t - m`). Which
vectors to compare by cosine is a choice: `p` alone (centred) treats every sentence's
residual as equally sure; `p + m` (the teacher's own space) turns cosine into something
close to the Euclidean distance of the residuals, so a short, weak prediction counts for
less. In between, `p + s·m`, is best in practice: on the STS-B and LCQMC validation
splits, over seven students, adding the mean gains 2-4 Spearman points and `s ≈ 0.5`
another 0.2-0.6 over `s = 1` (docs/quality.md).

`s` is chosen without labels, on the training run's own validation rows: pair each row
with one of its nearest teacher neighbours (the pairs a similarity search has to order),
and keep the `s` whose student cosines rank those pairs most like the teacher's own
cosines do (Spearman).
"""

from __future__ import annotations

import numpy as np

from ltd_bert.evaluate import cosines, spearman

#: candidate scales, from centred (0) past the teacher's space (1)
SCALES = tuple(round(0.05 * i, 2) for i in range(0, 41))
#: a calibration needs at least this many validation rows; below it, `DEFAULT_SCALE`
MIN_ROWS = 200
#: for models that were never calibrated: the teacher's own space
DEFAULT_SCALE = 1.0


def neighbour_pairs(
    targets: np.ndarray, neighbours: int = 50, seed: int = 0, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Row i paired with one of its `neighbours` nearest rows by the teacher's centred
    cosine, drawn at random (seeded): (i, j) index arrays, memory O(block × rows)."""
    n = len(targets)
    k = min(neighbours, n - 1)
    c = targets - targets.mean(0)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, k, n)
    j = np.empty(n, dtype=np.int64)
    for start in range(0, n, block):
        sim = c[start : start + block] @ c.T
        rows = np.arange(sim.shape[0])
        sim[rows, rows + start] = -np.inf  # not itself
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-sim[rows[:, None], top], axis=1, kind="stable")
        top = top[rows[:, None], order]
        j[start : start + block] = top[rows, pick[start : start + block]]
    return np.arange(n), j


def pair_fidelity(
    pred: np.ndarray, targets: np.ndarray, mean: np.ndarray, scale: float, pairs
) -> float:
    """Spearman × 100 between student cosines of `pred + scale·mean` and teacher cosines."""
    i, j = pairs
    v = pred + scale * mean
    return 100 * spearman(cosines(v[i], v[j]), cosines(targets[i], targets[j]))


def best_mean_scale(
    pred: np.ndarray,
    targets: np.ndarray,
    mean: np.ndarray,
    scales=SCALES,
    neighbours: int = 50,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """The scale whose cosines order neighbour pairs most like the teacher's, and the
    score of every candidate. `pred` are centred predictions, `targets` raw teacher
    vectors of the same rows."""
    if len(pred) < MIN_ROWS:
        return DEFAULT_SCALE, {}
    pairs = neighbour_pairs(targets, neighbours, seed)
    table = {float(s): pair_fidelity(pred, targets, mean, s, pairs) for s in scales}
    return max(table, key=lambda s: (table[s], -abs(s - DEFAULT_SCALE))), table


def config_entries(scale: float, table: dict[float, float]) -> dict:
    """What a model's config.json records of a calibration."""
    return {
        "mean_scale": scale,
        "mean_scale_scores": {f"{k:.2f}": round(v, 3) for k, v in table.items()},
    }
