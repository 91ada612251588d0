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
