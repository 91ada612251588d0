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

The teacher's own cosines are mostly a matter of lengths: its mean is twice as long as a
residual `t - m`, so how long each residual is decides much of every cosine, and the
student's lengths follow the teacher's poorly (below), its directions well (centred cosine
~0.87). A norm map gives each prediction the length a ridge regression
estimates for the teacher's residual, `exp(f · w)` with `f` the prediction's direction, the
logs of its length and of its text's characters with their squares and product, and 1
(`runtime.base.norm_features`), fitted to `log |t - m|` on the same rows. On the
calibration mix a map fitted on the other kinds orders each kind's residual lengths at
Spearman 0.77 on average (0.65-0.89), the predictions' own at 0.54-0.89; fitted on all the
kinds, it takes the default vectors' pair agreement from 65.9 to 73.4 over the kinds and
documents × sentences from 58.8 to 72.3 (s 0.75; with the logs alone, no squares or
product, 68.7: `experiments/norm_map.py`, 2026-12-07). Where the calibration has the
texts' lengths it weighs the map against none, with the predictions mapped out of sample
(each half of the rows by a map fitted on the other half; the map kept is fitted on all),
and keeps it when its choice of `α` and `s` wins; stored in config.json (`norm_map`: the
weights, then the range of characters fitted, outside which texts are read as its ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ltd_bert.common.stats import cosines, rankdata, spearman
from ltd_bert.runtime.base import (
    DEFAULT_SCALE,  # noqa: F401  (re-exported)
    apply_norm_map,
    norm_features,
)

#: candidate scales, from centred (0) past the teacher's space (1)
SCALES = tuple(round(0.05 * i, 2) for i in range(0, 41))
#: a calibration needs at least this many validation rows; below it, `DEFAULT_SCALE`
MIN_ROWS = 200
#: neighbours a text is paired among in a set of hundreds (the suite's kinds, the
#: calibration mix, a training run's validation rows), not thousands
NEIGHBOURS = 10
#: candidate whitening strengths (0 = none)
ALPHAS = tuple(round(0.05 * i, 2) for i in range(0, 13))
#: the ridge of the norm map's regression (chosen on the calibration mix, each kind
#: predicted by a map fitted on the others: 1 and 3 alike, 10 worse)
NORM_RIDGE = 1.0


def fit_norm_map(
    pred: np.ndarray,
    targets: np.ndarray,
    mean: np.ndarray,
    chars: np.ndarray,
    ridge: float = NORM_RIDGE,
) -> np.ndarray:
    """The norm map whose `apply_norm_map` estimates the length of each teacher residual
    `targets - mean` from the centred prediction `pred` of a text of `chars` characters:
    ridge regression of the log length on `norm_features` (rows of zeros or of empty texts
    left out), then the fewest and the most characters of the rows fitted (NORM_EXTRA)."""
    keep = (np.linalg.norm(pred, axis=1) > 0) & (np.asarray(chars) > 0)
    x = norm_features(pred[keep], np.asarray(chars)[keep]).astype(np.float64)
    y = np.log(np.maximum(np.linalg.norm(targets[keep] - mean, axis=1), 1e-6))
    w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
    fitted = np.asarray(chars)[keep]
    return np.concatenate([w, [fitted.min(), fitted.max()]]).astype(np.float32)


def cross_fitted(
    pred: np.ndarray, targets: np.ndarray, mean: np.ndarray, chars: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(`pred` mapped out of sample, the norm map fitted on all rows): the even rows mapped
    by a map fitted on the odd ones and the other way round, so that choosing with them
    does not reward a map for fitting the rows it is scored on."""
    out = np.empty_like(pred, dtype=np.float32)
    rows = np.arange(len(pred))
    for part in (rows % 2 == 0, rows % 2 == 1):
        w = fit_norm_map(pred[~part], targets[~part], mean, chars[~part])
        out[part] = apply_norm_map(pred[part], chars[part], w)
    return out, fit_norm_map(pred, targets, mean, chars)


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
    #: the norm map (`fit_norm_map`), None when the predictions keep their lengths
    norm: np.ndarray | None = None

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
            "norm_map": None if self.norm is None else [float(v) for v in self.norm],
        }


def calibrate(
    pred: np.ndarray,
    targets: np.ndarray,
    mean: np.ndarray,
    scales=SCALES,
    alphas=ALPHAS,
    neighbours: int = 50,
    seed: int = 0,
    chars: np.ndarray | None = None,
) -> Calibration:
    """The whitening and scale whose cosines order neighbour pairs most like the
    teacher's (ties: less whitening, then a scale nearer 1). `pred` are centred
    predictions, `targets` raw teacher vectors of the same rows; fewer than MIN_ROWS rows
    keep the defaults (no whitening, the teacher's space). With `chars` (the texts'
    lengths in characters) a norm map is weighed against none (module docstring)."""
    d = pred.shape[1]
    if len(pred) < MIN_ROWS:
        return Calibration(DEFAULT_SCALE, 0.0, np.eye(d, dtype=np.float32))
    pairs = neighbour_pairs(targets, neighbours, seed)
    best = None
    for norm, mapped in norm_options(pred, targets, mean, chars):
        axes = principal_axes(mapped)
        scores, maps = {}, {}
        for a in alphas:
            maps[float(a)] = w = whitening(mapped, float(a), axes)
            scores[float(a)] = {
                float(s): pair_fidelity(mapped, targets, mean, s, pairs, w) for s in scales
            }
        a, s = max(
            ((a, s) for a, t in scores.items() for s in t),
            key=lambda k: (scores[k[0]][k[1]], -k[0], -abs(k[1] - DEFAULT_SCALE)),
        )
        if best is None or scores[a][s] > best.score:
            best = Calibration(s, a, maps[a], scores, pairs, norm)
    return best


def norm_options(pred, targets, mean, chars) -> list[tuple[np.ndarray | None, np.ndarray]]:
    """What a calibration weighs: (None, `pred`), and with `chars` (norm map, `pred` mapped
    out of sample: `cross_fitted`)."""
    options = [(None, pred)]
    if chars is not None:
        mapped, norm = cross_fitted(pred, targets, mean, np.asarray(chars))
        options.append((norm, mapped))
    return options


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
    """The (α, s) of `calibrate_mix`: the largest gain its worst kind keeps (`kept`, to a
    tenth of a point: finer differences are the resampling's own noise), then the best mean
    score, then the least whitening, then s nearest DEFAULT_SCALE."""
    return max(
        ((a, s) for a, t in scores.items() for s in t),
        key=lambda k: (round(kept[k], 1), scores[k[0]][k[1]], -k[0], -abs(k[1] - DEFAULT_SCALE)),
    )


def calibrate_mix(
    groups: dict[str, tuple[np.ndarray, np.ndarray]],
    mean: np.ndarray,
    scales=SCALES,
    alphas=ALPHAS,
    neighbours: int = NEIGHBOURS,
    seed: int = 0,
    chars: dict[str, np.ndarray] | None = None,
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
    hurts some kind keeps less of it, or none. With `chars` (kind → the texts' lengths in
    characters) the same choice is made with a norm map fitted over all the kinds' rows,
    which is kept when its choice wins by the same order."""
    kinds_ = list(groups)
    sizes = np.cumsum([0] + [len(groups[k][0]) for k in kinds_])
    pairs = {k: neighbour_pairs(t, neighbours, seed) for k, (_, t) in groups.items()}
    teacher = {k: cosines(t[i], t[j]) for k, (_, t) in groups.items() for i, j in [pairs[k]]}
    centred = {k: pair_cosines(p, mean, 0.0, pairs[k]) for k, (p, _) in groups.items()}
    floor = {k: 100 * spearman(c, teacher[k]) for k, c in centred.items()}
    resampled = {k: _Resampled(teacher[k], centred[k], seed + n) for n, k in enumerate(groups)}
    pred_all = np.concatenate([p for p, _ in groups.values()])
    joined = None
    if chars is not None:
        joined = np.concatenate([np.asarray(chars[k]) for k in kinds_])
    targets_all = np.concatenate([t for _, t in groups.values()])
    best = None
    for norm, mapped_all in norm_options(pred_all, targets_all, mean, joined):
        d = mapped_all.shape[1]
        axes = principal_axes(mapped_all)
        parts = {k: mapped_all[sizes[n] : sizes[n + 1]] for n, k in enumerate(kinds_)}
        maps, per_kind = {}, {}
        scores: dict[float, dict[float, float]] = {}
        kept: dict[tuple[float, float], float] = {}  # the worst kind's quantile gain
        for a in alphas:
            maps[float(a)] = w = (
                whitening(mapped_all, float(a), axes) if a else np.eye(d, dtype=np.float32)
            )
            mapped = {k: p @ w.T if a else p for k, p in parts.items()}  # once per α
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
        if not scores:  # a norm map's rounding can cost even s = 0 a tie: none qualify
            continue
        a, s = pick_choice(scores, kept)
        rank = (round(kept[a, s], 1), scores[a][s])
        if best is None or rank > best[0]:
            kinds = {
                k: {"centred": round(floor[k], 3), "chosen": round(per_kind[a, s][k], 3)}
                for k in groups
            }
            best = rank, MixCalibration(s, a, maps[a], scores, None, norm, kinds=kinds)
    return best[1]
