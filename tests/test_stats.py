"""Verdicts: noise is called noise, a real difference is found, intervals cover."""

from __future__ import annotations

import numpy as np
import pytest

from rdm.stats import balanced_weights, interval, paired_test, verdict


def _cell(rng, p, seeds=3, rows=300):
    return (rng.random((seeds, rows)) < p).astype(float)


def test_two_models_that_differ_by_noise_are_called_within_noise():
    rng = np.random.default_rng(0)
    calls = [verdict(_cell(rng, 0.8), _cell(rng, 0.8), n_resamples=2000, seed=i) for i in range(60)]
    false_positive = sum(c != "within noise" for c in calls) / len(calls)
    assert false_positive <= 0.12                 # nominal 5 %


def test_a_real_difference_is_found_with_its_sign():
    rng = np.random.default_rng(1)
    calls = [verdict(_cell(rng, 0.88), _cell(rng, 0.75), n_resamples=2000, seed=i) for i in range(40)]
    assert sum(c == "better" for c in calls) / len(calls) >= 0.9
    assert verdict(_cell(rng, 0.7), _cell(rng, 0.9), n_resamples=2000) == "worse"


def test_pairing_finds_a_small_difference_that_unpaired_intervals_cannot():
    # B is A with 12 of 300 right rows flipped to wrong: the intervals overlap, the paired test is sure
    rng = np.random.default_rng(2)
    a = _cell(rng, 0.8, seeds=1)
    b = a.copy()
    b[0, np.flatnonzero(a[0])[:12]] = 0
    ia, ib = interval(a), interval(b)
    assert ia.lo < ib.hi                          # unpaired: overlapping
    c = paired_test(a, b, n_resamples=5000)
    assert c.verdict == "better" and c.p < 0.01 and c.diff == pytest.approx(12 / 300)


def test_bootstrap_interval_covers_the_truth():
    rng = np.random.default_rng(3)
    cover = [(lambda i: i.lo <= 0.8 <= i.hi)(interval(_cell(rng, 0.8, seeds=1, rows=200), seed=k))
             for k in range(100)]
    assert np.mean(cover) >= 0.88
    i = interval(_cell(rng, 0.8, seeds=1, rows=200))
    assert i.method == "rows (bootstrap)" and i.n_seeds == 1 and i.n_rows == 200


def test_seed_interval_uses_the_spread_of_the_seeds():
    c = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=float)   # 0.75, 0.5, 1.0
    i = interval(c)
    from scipy.stats import t

    half = t.ppf(0.975, 2) * np.std([0.75, 0.5, 1.0], ddof=1) / np.sqrt(3)
    assert (i.mean, i.lo, i.hi) == pytest.approx((0.75, 0.75 - half, 0.75 + half), abs=1e-12)
    assert i.method == "seeds (t)" and i.n_seeds == 3


def test_balanced_weights_give_balanced_accuracy_and_decide_on_it():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(250, int), np.ones(50, int)]          # 83 % majority, as lung
    pred = np.where(rng.random(300) < 0.9, y, 1 - y)
    w = balanced_weights(y)
    assert interval((pred == y)[None, :].astype(float), weights=w).mean == pytest.approx(
        balanced_accuracy_score(y, pred))
    # A says "majority" always (accuracy 83 %, balanced 50 %); B finds most nodules
    a = (y == 0).astype(float)[None, :]
    b = (np.where(rng.random(300) < 0.8, y, 1 - y) == y).astype(float)[None, :]
    assert paired_test(a, b, n_resamples=2000).verdict in ("better", "within noise")   # accuracy flatters A
    assert paired_test(a, b, weights=w, n_resamples=2000).verdict == "worse"


def test_cells_on_different_rows_are_refused():
    with pytest.raises(ValueError, match="same rows"):
        paired_test(np.ones((1, 10)), np.ones((1, 12)))


def test_one_seed_with_every_row_right_is_not_called_exact():
    """The bootstrap of 24 right rows out of 24 has no spread; the interval is the exact bound."""
    i = interval(np.ones((1, 24)))
    assert i.mean == pytest.approx(1.0) and i.hi == 1.0 and i.lo == pytest.approx(0.025 ** (1 / 24))
    assert i.method.startswith("rows (exact")
    y = np.r_[np.zeros(20, int), np.ones(4, int)]
    j = interval(np.r_[np.ones(20), np.zeros(4)][None, :], weights=(y == 1).astype(float))   # recall 0 of 4
    assert j.mean == 0.0 and j.lo == 0.0 and j.hi == pytest.approx(1 - 0.025 ** (1 / 4))
