"""How much of the teacher's mean vector the student's similarity vectors keep.

The student predicts the teacher vector minus the training mean `m` (`p ≈ t - m`). Which
vectors to compare by cosine is a choice: `p` alone (centred) treats every sentence's
residual as equally sure; `p + m` (the teacher's own space) turns cosine into something
close to the Euclidean distance of the residuals, so a short, weak prediction counts for
less. In between, `p + s·m`, is best in practice: on the STS-B and LCQMC validation
splits, over seven students, adding the mean gains 2-4 Spearman points and `s ≈ 0.5`
another 0.2-0.6 over `s = 1` (docs/research-record-2026.md).

`s` is chosen without labels, on the training run's own validation rows: pair each row
with one of its nearest teacher neighbours (the pairs a similarity search has to order),
and keep the `s` whose student cosines rank those pairs most like the teacher's own
cosines do (Spearman).

The same criterion also picks a partial whitening `W` applied before the mean is added
(`W·p + s·m`): the predictions' principal axes rescaled by `(λ / mean λ)^(-α/2)`, `α` from
0 (none) to 0.6, with the covariance of the held-out predictions. It evens out a few
dominant directions that otherwise decide most of every cosine; on the validation splits it
adds ~0.4 points on top of `s` (docs/research-record-2026.md). `α` and `s` are chosen
together; `W` is stored with the weights (`similarity`), `α` in config.json (`whiten`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ltd_bert.common.stats import cosines, rankdata, spearman
from ltd_bert.runtime.base import DEFAULT_SCALE  # noqa: F401  (re-exported)

#: candidate scales, from centred (0) past the teacher's space (1)
SCALES = tuple(round(0.05 * i, 2) for i in range(0, 41))
#: a calibration needs at least this many validation rows; below it, `DEFAULT_SCALE`
MIN_ROWS = 200
#: neighbours a text is paired among in a set of hundreds (the suite's kinds, the
#: calibration mix, a training run's validation rows), not thousands
NEIGHBOURS = 10
#: candidate whitening strengths (0 = none)
ALPHAS = tuple(round(0.05 * i, 2) for i in range(0, 13))


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
        j[start : start + block] = pick_near(sim, k, pick[start : start + block])
    return np.arange(n), j


def pick_near(sim: np.ndarray, k: int, pick: np.ndarray) -> np.ndarray:
    """Per row of the similarities `sim`, the column of its `pick[row]`-th nearest (0: the
    nearest), `pick` < k."""
    rows = np.arange(sim.shape[0])
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    order = np.argsort(-sim[rows[:, None], top], axis=1, kind="stable")
    return top[rows[:, None], order][rows, pick]


def pair_cosines(
    pred: np.ndarray, mean: np.ndarray, scale: float, pairs, whiten: np.ndarray | None = None
) -> np.ndarray:
    """The student's cosines of `pairs` with vectors `W·pred + scale·mean` (`W` = `whiten`,
    the identity when None)."""
    i, j = pairs
    v = (pred if whiten is None else pred @ whiten.T) + scale * mean
    return cosines(v[i], v[j])


def pair_fidelity(
    pred: np.ndarray,
    targets: np.ndarray,
    mean: np.ndarray,
    scale: float,
    pairs,
    whiten: np.ndarray | None = None,
) -> float:
    """Spearman × 100 between student cosines of `W·pred + scale·mean` and teacher cosines
    (`W` = `whiten`, the identity when None)."""
    i, j = pairs
    sc = pair_cosines(pred, mean, scale, pairs, whiten)
    return 100 * spearman(sc, cosines(targets[i], targets[j]))


def principal_axes(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The variances of `pred` along its principal axes relative to their mean, and the
    axes (columns)."""
    lam, u = np.linalg.eigh(np.cov(pred.astype(np.float64), rowvar=False))
    lam = np.maximum(lam, 1e-12 * max(lam.max(), 1e-30))
    return lam / lam.mean(), u


def whitening(pred: np.ndarray, alpha: float, axes=None) -> np.ndarray:
    """The (D, D) symmetric map that rescales the principal axes of `pred` by
    `(λ / mean λ)^(-α/2)`: α = 0 is the identity, α = 1 full whitening (to the mean
    variance, so vectors keep their overall size). `axes`: `principal_axes(pred)`, when
    already computed."""
    d = pred.shape[1]
    if alpha == 0 or len(pred) < 2:
        return np.eye(d, dtype=np.float32)
    rel, u = principal_axes(pred) if axes is None else axes
    return ((u * rel ** (-alpha / 2)) @ u.T).astype(np.float32)


@dataclass
class Calibration:
    """What the neighbour pairs chose: the share of the mean, the whitening and its map,
    and the score of every candidate (`scores[alpha][scale]`)."""

    mean_scale: float
    whiten: float
    map: np.ndarray
    scores: dict[float, dict[float, float]] = field(default_factory=dict)
    pairs: tuple[np.ndarray, np.ndarray] | None = None  # the neighbour pairs scored

    @property
    def score(self) -> float | None:
        """The neighbour-pair Spearman of the choice (None with too few rows)."""
        return self.scores[self.whiten][self.mean_scale] if self.scores else None

    def config_entries(self) -> dict:
        """What a model's config.json records of it (the map goes with the weights)."""
        table = self.scores.get(self.whiten, {})
        return {
            "mean_scale": self.mean_scale,
            "mean_scale_scores": {f"{k:.2f}": round(v, 3) for k, v in table.items()},
            "whiten": self.whiten,
            "whiten_scores": {
                f"{a:.2f}": round(max(t.values()), 3) for a, t in self.scores.items() if t
            },
        }


def calibrate(
    pred: np.ndarray,
    targets: np.ndarray,
    mean: np.ndarray,
    scales=SCALES,
    alphas=ALPHAS,
    neighbours: int = 50,
    seed: int = 0,
) -> Calibration:
    """The whitening and scale whose cosines order neighbour pairs most like the
    teacher's (ties: less whitening, then a scale nearer 1). `pred` are centred
    predictions, `targets` raw teacher vectors of the same rows; fewer than MIN_ROWS rows
    keep the defaults (no whitening, the teacher's space)."""
    d = pred.shape[1]
    if len(pred) < MIN_ROWS:
        return Calibration(DEFAULT_SCALE, 0.0, np.eye(d, dtype=np.float32))
    pairs = neighbour_pairs(targets, neighbours, seed)
    axes = principal_axes(pred)
    scores, maps = {}, {}
    for a in alphas:
        maps[float(a)] = w = whitening(pred, float(a), axes)
        scores[float(a)] = {
            float(s): pair_fidelity(pred, targets, mean, s, pairs, w) for s in scales
        }
    best = max(
        ((a, s) for a, t in scores.items() for s in t),
        key=lambda k: (scores[k[0]][k[1]], -k[0], -abs(k[1] - DEFAULT_SCALE)),
    )
    return Calibration(best[1], best[0], maps[best[0]], scores, pairs)


def best_mean_scale(
    pred: np.ndarray,
    targets: np.ndarray,
    mean: np.ndarray,
    scales=SCALES,
    neighbours: int = 50,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """The scale alone (no whitening), and the score of every candidate."""
    c = calibrate(pred, targets, mean, scales, (0.0,), neighbours, seed)
    return c.mean_scale, c.scores.get(0.0, {})


@dataclass
class MixCalibration(Calibration):
    """A calibration chosen over several kinds of text: per kind, the plain centred score
    (the floor it must not fall under) and the chosen map's score."""

    kinds: dict[str, dict[str, float]] = field(default_factory=dict)

    def config_entries(self) -> dict:
        return {**super().config_entries(), "calibration_kinds": self.kinds}


#: resamples of a kind's pairs `calibrate_mix` checks a choice on, and the share of them in
#: which it may order that kind's pairs worse than the centred vectors do
RESAMPLES = 200
WORSE_SHARE = 0.05


class _Resampled:
    """One kind's pairs resampled with replacement (RESAMPLES times, seeded): the gain of a
    choice over the centred vectors on each resample, as the correlation of the full
    sample's ranks over the resampled pairs (Spearman's, without ranking each resample)."""

    def __init__(self, teacher_cos: np.ndarray, centred_cos: np.ndarray, seed: int):
        n = len(teacher_cos)
        self.rows = np.random.default_rng(seed).integers(0, n, (RESAMPLES, n))
        y = rankdata(teacher_cos)[self.rows]
        self.teacher = y - y.mean(1, keepdims=True)  # centred per resample, once
        self.teacher_ss = (self.teacher**2).sum(1)
        self.centred = self._corr(rankdata(centred_cos))

    def _corr(self, ranks: np.ndarray) -> np.ndarray:
        x = ranks[self.rows]
        x = x - x.mean(1, keepdims=True)
        denom = np.sqrt((x**2).sum(1) * self.teacher_ss)
        return (x * self.teacher).sum(1) / np.where(denom > 0, denom, 1.0)

    def gains(self, cos: np.ndarray) -> np.ndarray:
        """The gain of `cos` over the centred vectors on each resample (Spearman × 100)."""
        return 100 * (self._corr(rankdata(cos)) - self.centred)

    def worse_share(self, cos: np.ndarray) -> float:
        """The share of resamples on which `cos` orders the pairs worse than centred."""
        return worse_share(self.gains(cos))


def worse_share(gains: np.ndarray) -> float:
    """The share of resamples whose gain (`_Resampled.gains`) is below 0."""
    return float((gains < 0).mean())


def spread(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """The standard deviation × 100 of the Spearman of `a` and `b` over the RESAMPLES
    resamplings of their pairs that `_Resampled` draws (the whole sample's ranks,
    resampled: ties are rare)."""
    return float(100 * _Resampled(b, a, seed).centred.std())


def pick_choice(
    scores: dict[float, dict[float, float]], kept: dict[tuple[float, float], float]
) -> tuple[float, float]:
    """The (α, s) of `calibrate_mix`: the largest gain its worst kind keeps (`kept`), then
    the best mean score, then the least whitening, then s nearest DEFAULT_SCALE."""
    return max(
        ((a, s) for a, t in scores.items() for s in t),
        key=lambda k: (round(kept[k], 6), scores[k[0]][k[1]], -k[0], -abs(k[1] - DEFAULT_SCALE)),
    )


def calibrate_mix(
    groups: dict[str, tuple[np.ndarray, np.ndarray]],
    mean: np.ndarray,
    scales=SCALES,
    alphas=ALPHAS,
    neighbours: int = NEIGHBOURS,
    seed: int = 0,
) -> MixCalibration:
    """One whitening and share of the mean for several kinds of text (`groups`: kind →
    (centred predictions, raw teacher vectors)): the best mean neighbour-pair score over
    the kinds among the choices that order no kind's pairs worse than its plain centred
    vectors (α = 0, s = 0) do, on its pairs and on all but WORSE_SHARE of their resamples
    (a choice that beats the centred vectors on one sample of a kind by less than that
    sample's noise may lose on another: model 14's first choice gained 1.9 points on the
    calibration's 262 statutes and lost 0.4 on the suite's 600). Among those, the one whose
    worst kind gains most at the WORSE_SHARE quantile of its resamples (the gain it keeps
    on another sample of that kind, not the mean over kinds: model 19's best mean, s 0.25,
    gained 2.3 ± 1.3 on the calibration's statutes and lost 0.2 on the suite's), then the
    best mean. The centred vectors themselves always qualify, so a mix where adding the mean
    hurts some kind keeps less of it, or none."""
    pred_all = np.concatenate([p for p, _ in groups.values()])
    d = pred_all.shape[1]
    axes = principal_axes(pred_all)
    pairs = {k: neighbour_pairs(t, neighbours, seed) for k, (_, t) in groups.items()}
    teacher = {k: cosines(t[i], t[j]) for k, (_, t) in groups.items() for i, j in [pairs[k]]}
    centred = {k: pair_cosines(p, mean, 0.0, pairs[k]) for k, (p, _) in groups.items()}
    floor = {k: 100 * spearman(c, teacher[k]) for k, c in centred.items()}
    resampled = {k: _Resampled(teacher[k], centred[k], seed + n) for n, k in enumerate(groups)}
    maps, per_kind = {}, {}
    scores: dict[float, dict[float, float]] = {}
    kept: dict[tuple[float, float], float] = {}  # the worst kind's quantile gain
    for a in alphas:
        maps[float(a)] = w = (
            whitening(pred_all, float(a), axes) if a else np.eye(d, dtype=np.float32)
        )
        mapped = {k: p @ w.T if a else p for k, (p, _) in groups.items()}  # once per α
        for s in scales:
            key = float(a), float(s)
            cos = {k: pair_cosines(mapped[k], mean, float(s), pairs[k]) for k in groups}
            per_kind[key] = by_kind = {k: 100 * spearman(c, teacher[k]) for k, c in cos.items()}
            gains = {k: resampled[k].gains(cos[k]) for k in by_kind}
            if all(
                by_kind[k] >= floor[k] and worse_share(gains[k]) <= WORSE_SHARE for k in by_kind
            ):
                scores.setdefault(key[0], {})[key[1]] = float(np.mean(list(by_kind.values())))
                kept[key] = min(float(np.quantile(g, WORSE_SHARE)) for g in gains.values())
    best = pick_choice(scores, kept)
    kinds = {
        k: {"centred": round(floor[k], 3), "chosen": round(per_kind[best][k], 3)} for k in groups
    }
    return MixCalibration(best[1], best[0], maps[best[0]], scores, None, kinds)
