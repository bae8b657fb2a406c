"""Verdicts: noise is called noise, a real difference is found, intervals cover."""

from __future__ import annotations

import numpy as np
import pytest

from rdm.evaluation.stats import balanced_weights, interval, paired_test, verdict


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


def test_seed_interval_uses_the_spread_of_the_seeds_and_the_rows():
    c = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=float)   # 0.75, 0.5, 1.0
    i = interval(c)
    from scipy.stats import t

    half = t.ppf(0.975, 2) * np.std([0.75, 0.5, 1.0], ddof=1) / np.sqrt(3)
    rows = interval(c.mean(0)[None, :])               # the rows' own interval, of the seed-averaged rows
    assert i.mean == pytest.approx(0.75)
    assert i.lo == pytest.approx(max(0.0, 0.75 - np.hypot(0.75 - rows.lo, half)), abs=1e-12)
    assert i.hi == pytest.approx(min(1.0, 0.75 + np.hypot(rows.hi - 0.75, half)), abs=1e-12)
    assert i.method == "seeds (t) and rows (bootstrap)" and i.n_seeds == 3


def test_seeds_that_agree_do_not_make_a_cell_exact():
    """Two seeds that score the same on 300 rows (different rows wrong): the seeds' spread is 0, the
    interval is still the rows' (as wide as one seed's, about ±4 points), never ±0."""
    rng = np.random.default_rng(5)
    a = np.ones((2, 300))
    a[0, rng.permutation(300)[:45]] = 0
    a[1, rng.permutation(300)[:45]] = 0                # 85 % each
    i = interval(a)
    assert i.mean == pytest.approx(0.85) and i.hi - i.lo > 0.05
    one = interval(a[:1])
    assert 0.6 < (i.hi - i.lo) / (one.hi - one.lo) <= 1.0   # averaging seeds narrows the rows' part only a little


def test_a_seed_in_which_a_loses_keeps_the_difference_within_noise_however_many_rows():
    """A beats B by 20 points with seed 0 and loses by 4 with seed 1, on 2,000 rows: the rows alone
    would call it (p < .05, the interval above 0); the seed in which A loses does not let it through."""
    rng = np.random.default_rng(6)
    b = (rng.random((2, 2000)) < 0.7).astype(float)
    a = b.copy()
    up = np.flatnonzero(b[0] == 0)[:400]                # seed 0: +20 points
    a[0, up] = 1
    down = np.flatnonzero(b[1] == 1)[:80]               # seed 1: −4 points
    a[1, down] = 0
    c = paired_test(a, b, n_resamples=2000)
    assert c.p < 0.01 and c.diff == pytest.approx(0.08) and c.lo > 0
    assert c.per_seed == pytest.approx((0.20, -0.04)) and c.verdict == "within noise" and c.n_seeds == 2
    # the same +8 points in both seeds: better
    a2 = b.copy()
    for s in (0, 1):
        a2[s, np.flatnonzero(b[s] == 0)[:160]] = 1
    c2 = paired_test(a2, b, n_resamples=2000)
    assert c2.verdict == "better" and c2.lo > 0 and c2.per_seed == pytest.approx((0.08, 0.08))
    assert paired_test(b, a2, n_resamples=2000).verdict == "worse"


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
