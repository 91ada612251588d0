import numpy as np
import pytest

from ltd_bert.student.calibrate import (
    ALPHAS,
    DEFAULT_SCALE,
    best_mean_scale,
    calibrate,
    neighbour_pairs,
    pair_fidelity,
    whitening,
)


def test_neighbour_pairs_hand_checked():
    # four unit vectors at 0°, 10°, 180°, 190°: their mean is zero, so centring changes
    # nothing, and each one's nearest neighbour is its 10° partner
    a = np.deg2rad([0.0, 10.0, 180.0, 190.0])
    t = np.stack([np.cos(a), np.sin(a)], 1)
    i, j = neighbour_pairs(t, neighbours=1)
    assert i.tolist() == [0, 1, 2, 3] and j.tolist() == [1, 0, 3, 2]
    # with three neighbours every row may pair with any other row, never itself
    i, j = neighbour_pairs(t, neighbours=3, seed=1)
    assert (i != j).all()


def _teacher(n=400, d=8, seed=0):
    rng = np.random.default_rng(seed)
    mean = np.full(d, 3.0)
    targets = mean + rng.normal(size=(n, d))
    return targets, targets.mean(0)


def test_exact_predictions_pick_the_teacher_space():
    targets, mean = _teacher()
    pred = targets - mean  # a perfect student
    pairs = neighbour_pairs(targets)
    assert pair_fidelity(pred, targets, mean, 1.0, pairs) == pytest.approx(100.0)
    assert pair_fidelity(pred, targets, mean, 0.0, pairs) < 99.0
    scale, table = best_mean_scale(pred, targets, mean)
    assert scale == 1.0 and table[1.0] == pytest.approx(100.0)
    assert len(table) == 41 and min(table) == 0.0 and max(table) == 2.0


def test_too_few_rows_keep_the_default():
    targets, mean = _teacher(n=50)
    assert best_mean_scale(targets - mean, targets, mean) == (DEFAULT_SCALE, {})


def test_whitening_hand_checked():
    # variances 16/3 and 4/3 along the axes (no covariance), mean variance 10/3
    pred = np.array([[2.0, 1.0], [-2.0, -1.0], [2.0, -1.0], [-2.0, 1.0]])
    np.testing.assert_array_equal(whitening(pred, 0.0), np.eye(2))
    np.testing.assert_allclose(
        whitening(pred, 1.0), np.diag([(10 / 16) ** 0.5, 2.5**0.5]), atol=1e-6
    )
    np.testing.assert_allclose(
        whitening(pred, 0.5), np.diag([(16 / 10) ** -0.25, 0.4**-0.25]), atol=1e-6
    )
    # full whitening leaves every direction with the mean variance
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    c = np.cov(x @ whitening(x, 1.0).T, rowvar=False)
    np.testing.assert_allclose(c, np.eye(4) * np.trace(np.cov(x, rowvar=False)) / 4, atol=1e-3)


def test_calibrate_whitens_a_direction_of_noise():
    targets, mean = _teacher(n=600)
    rng = np.random.default_rng(1)
    pred = targets - mean
    pred[:, 0] += rng.normal(scale=3.0, size=len(pred))  # a loud direction the teacher lacks
    cal = calibrate(pred, targets, mean)
    assert cal.whiten > 0
    assert cal.scores[cal.whiten][cal.mean_scale] > max(cal.scores[0.0].values())
    np.testing.assert_allclose(cal.map, whitening(pred, cal.whiten))
    entries = cal.config_entries()
    assert entries["whiten"] == cal.whiten and len(entries["whiten_scores"]) == len(ALPHAS)
    # a perfect student needs no whitening (ties go to less of it)
    exact = calibrate(targets - mean, targets, mean)
    assert (exact.whiten, exact.mean_scale) == (0.0, 1.0)
    np.testing.assert_array_equal(exact.map, np.eye(8))


def test_norm_features_and_map_hand_checked():
    from ltd_bert.runtime.base import NORM_EXTRA, apply_norm_map, norm_features

    pred = np.array([[3.0, 4.0], [0.0, 0.0]])
    f = norm_features(pred, np.array([np.e, 5]))
    a, b = np.log(5.0), 1.0  # log |pred| and log chars of the first row
    np.testing.assert_allclose(f[0], [0.6, 0.8, a, b, a * a, b * b, a * b, 1.0], rtol=1e-6)
    assert f.shape == (2, 2 + NORM_EXTRA)
    # a map of log 2 on the constant: every length becomes 2, directions kept, zeros stay
    # (the map: the weights, then the range of characters it was fitted on)
    norm = np.zeros(2 + NORM_EXTRA + 2, np.float32)
    norm[2 + NORM_EXTRA - 1] = np.log(2.0)
    norm[-2:] = 1, 100
    out = apply_norm_map(pred, np.array([3, 0]), norm)
    np.testing.assert_allclose(out, [[1.2, 1.6], [0.0, 0.0]], rtol=1e-6)
    # the length's own log with weight 1: the prediction keeps its length
    norm[2 + NORM_EXTRA - 1] = 0
    norm[2] = 1.0
    np.testing.assert_allclose(apply_norm_map(pred[:1], np.array([7]), norm), pred[:1], rtol=1e-6)
    # log chars with weight 1: the length is the characters, clipped to the fitted range
    norm[2], norm[3] = 0, 1.0
    got = np.linalg.norm(apply_norm_map(pred[[0, 0, 0]], np.array([7, 100, 5000]), norm), axis=1)
    np.testing.assert_allclose(got, [7, 100, 100], rtol=1e-5)


def _lengths_matter(n=600, d=8, seed=0):
    """Teacher residuals whose lengths follow the texts' characters, a student whose
    directions are right but whose lengths are noise."""
    rng = np.random.default_rng(seed)
    mean = np.zeros(d)
    mean[0] = 4.0
    chars = rng.integers(5, 400, n)
    unit = rng.normal(size=(n, d))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    targets = mean + unit * (chars**0.3)[:, None]  # log length 0.3 × log chars
    pred = unit * rng.uniform(0.5, 2.0, (n, 1))
    return pred, targets, mean, chars


def test_fit_norm_map_recovers_the_teachers_lengths():
    from ltd_bert.runtime.base import apply_norm_map
    from ltd_bert.student.calibrate import fit_norm_map

    pred, targets, mean, chars = _lengths_matter()
    w = fit_norm_map(pred, targets, mean, chars, ridge=1e-6)
    assert w[-2:].tolist() == [chars.min(), chars.max()]  # the range it was fitted on
    mapped = apply_norm_map(pred, chars, w)
    np.testing.assert_allclose(
        np.linalg.norm(mapped, axis=1), np.linalg.norm(targets - mean, axis=1), rtol=1e-3
    )
    np.testing.assert_allclose(  # directions untouched
        mapped / np.linalg.norm(mapped, axis=1, keepdims=True),
        pred / np.linalg.norm(pred, axis=1, keepdims=True),
        atol=1e-5,
    )


def test_calibrate_keeps_a_norm_map_only_where_it_helps():
    pred, targets, mean, chars = _lengths_matter()
    cal = calibrate(pred, targets, mean, chars=chars)
    assert cal.norm is not None and cal.config_entries()["norm_map"] == [float(v) for v in cal.norm]
    assert cal.score > calibrate(pred, targets, mean).score + 5
    # predictions with the teacher's own lengths: nothing to mend, so none is kept
    exact = calibrate(targets - mean, targets, mean, chars=chars)
    assert exact.norm is None and exact.config_entries()["norm_map"] is None


def test_calibrate_mix_weighs_a_norm_map():
    from ltd_bert.student.calibrate import calibrate_mix

    groups, chars = {}, {}
    for name, seed in (("a", 0), ("b", 1)):
        pred, targets, mean, c = _lengths_matter(seed=seed)
        groups[name], chars[name] = (pred, targets), c
    with_map = calibrate_mix(groups, mean, scales=(0.0, 0.5, 1.0), alphas=(0.0,), chars=chars)
    without = calibrate_mix(groups, mean, scales=(0.0, 0.5, 1.0), alphas=(0.0,))
    assert with_map.norm is not None and without.norm is None
    assert with_map.score > without.score + 5
    for k, s in with_map.kinds.items():
        assert s["chosen"] >= s["centred"], k
