import numpy as np
import pytest

from ltd_bert.calibrate import DEFAULT_SCALE, best_mean_scale, neighbour_pairs, pair_fidelity


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
