"""Verdicts between methods (rdm.evaluation.stats): the hierarchical bootstrap over seeds and rows, the
two one-sided tests at the equivalence margin, Holm and Benjamini–Hochberg, and the four outcomes, each
on toy cells whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from rdm.evaluation import stats as S


def _flip(b: np.ndarray, per_seed: list[int], rng, to: float) -> np.ndarray:
    """A copy of ``b`` (seeds × rows) with ``per_seed[s]`` rows of seed ``s`` that are ``1 − to``
    set to ``to``: A ahead of B by exactly per_seed[s] rows in seed s (``to = 1``), or behind."""
    a = b.copy()
    for s, k in enumerate(per_seed):
        where = rng.permutation(np.flatnonzero(b[s] != to))[:k]
        a[s, where] = to
    return a


def _mixed(b: np.ndarray, up: int, down: int, seed: int) -> np.ndarray:
    """A copy of ``b`` with, in every seed, ``up`` wrong rows made right and ``down`` right rows made
    wrong (other rows): A − B = (up − down) / rows in every seed."""
    rng = np.random.default_rng(seed)
    a = b.copy()
    for s in range(b.shape[0]):
        a[s, rng.permutation(np.flatnonzero(b[s] == 0))[:up]] = 1
        a[s, rng.permutation(np.flatnonzero(b[s] == 1))[:down]] = 0
    return a


def _cells(seeds: int, rows: int, p: float = 0.7, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((seeds, rows)) < p).astype(float)


# --------------------------------------------------------------------------- the four outcomes
def test_ten_points_ahead_in_every_seed_is_better_and_behind_is_worse():
    rng = np.random.default_rng(1)
    b = _cells(3, 400)
    a = _flip(b, [40, 36, 44], rng, 1.0)                 # +10, +9, +11 points
    c = S.method_test(a, b)
    assert c.diff == pytest.approx(0.10) and c.lo > 0.05 and c.p < 0.01
    assert c.outcome == "better" and not c.equivalent and c.methods
    assert c.per_seed == pytest.approx((0.10, 0.09, 0.11))
    w = S.method_test(b, a)
    assert w.outcome == "worse" and w.hi < -0.05 and w.diff == pytest.approx(-0.10)


def test_a_difference_within_the_margin_on_many_rows_is_equivalent():
    """A and B disagree on 4 % of 2,000 rows in each seed, half each way: the difference is 0, its
    interval well inside ±3 points; the test of 0 finds nothing, the TOST rejects a gap of 3 points."""
    b = _cells(3, 2000)
    a = _mixed(b, up=40, down=40, seed=2)
    c = S.method_test(a, b, margin=0.03)
    assert c.diff == pytest.approx(0.0, abs=1e-12) and -0.03 < c.lo and c.hi < 0.03
    assert c.p > 0.05 and c.p_tost < 0.01
    assert c.outcome == "equivalent" and c.equivalent
    # the same cells with a margin smaller than their interval: nothing is shown
    assert S.method_test(a, b, margin=0.002).outcome == "cannot tell"


def test_few_rows_and_no_difference_is_cannot_tell():
    """The same kind of cells on 30 rows: the interval is far wider than ±3 points, so neither a
    difference nor equivalence is shown."""
    b = _cells(3, 30)
    a = _mixed(b, up=3, down=2, seed=3)
    c = S.method_test(a, b, margin=0.03)
    assert c.lo < 0 < c.hi and c.hi - c.lo > 0.06
    assert c.p > 0.05 and c.p_tost > 0.05 and c.outcome == "cannot tell" and not c.equivalent


def test_decide_follows_the_documented_rule():
    assert S.decide(0.01, 0.08, 0.049, 0.9) == "better"
    assert S.decide(-0.08, -0.01, 0.049, 0.9) == "worse"
    assert S.decide(0.01, 0.08, 0.05, 0.9) == "cannot tell"       # p at α is not below α
    assert S.decide(0.01, 0.02, 0.01, 0.01) == "better"           # real and small: better (also equivalent)
    assert S.decide(-0.01, 0.02, 0.3, 0.01) == "equivalent"
    assert S.decide(-0.01, 0.02, 0.3, 0.05) == "cannot tell"
    assert S.decide(-0.01, 0.02, 0.01, 0.9) == "cannot tell"      # p and interval disagree: no direction


def test_a_real_difference_smaller_than_the_margin_is_better_and_said_equivalent():
    rng = np.random.default_rng(4)
    b = _cells(3, 6000)
    a = _flip(b, [60, 60, 60], rng, 1.0)                  # +1 point in every seed, on 6,000 rows
    c = S.method_test(a, b, margin=0.03)
    assert c.outcome == "better" and c.equivalent and 0 < c.lo and c.hi < 0.03


# --------------------------------------------------------------------------- the hierarchical bootstrap
def test_the_interval_widens_with_the_spread_between_seeds():
    """The same +5-point mean difference on the same rows: with every seed at +5 the interval is the
    rows'; with seeds at −5, +5, +15 it is wider (the seed-blind row bootstrap would not see it)."""
    rng = np.random.default_rng(5)
    b = _cells(3, 600)
    agree = _flip(b, [30, 30, 30], rng, 1.0)
    spread = b.copy()
    spread[0] = _flip(b[:1], [30], rng, 0.0)[0]           # −5
    spread[1] = agree[1]                                  # +5
    spread[2] = _flip(b[2:], [90], rng, 1.0)[0]           # +15
    ca, cs = S.method_test(agree, b), S.method_test(spread, b)
    assert ca.diff == pytest.approx(0.05) and cs.diff == pytest.approx(0.05)
    assert (cs.hi - cs.lo) > 2 * (ca.hi - ca.lo)
    assert ca.outcome == "better" and cs.outcome == "cannot tell"
    # the row-only paired test of the same cells averages the seeds first and calls it
    assert S.paired_test(spread, b).lo > 0


def test_seeds_are_resampled_first_then_rows():
    """Rows alike within a seed (each seed's difference constant over its rows): every replicate is the
    mean of k seeds drawn with replacement, and each multiset comes with its multinomial probability;
    the rows drawn after it cannot move it."""
    per = np.array([0.0, 0.1, 0.4])              # every multiset of three has its own mean
    a = np.repeat(per[:, None], 50, axis=1)
    b = np.zeros_like(a)
    boot = S.hierarchical_bootstrap(a, b, n_resamples=27_000, seed=7)
    means = {round(float(np.mean(per[list(t)])), 9) for t in np.ndindex(3, 3, 3)}
    got = np.round(boot.replicates, 9)
    assert set(got.tolist()) <= means and len(set(got.tolist())) == len(means) == 10
    # all three draws the same seed: probability 1/27 each
    for v in per:
        assert np.mean(np.isclose(got, v)) == pytest.approx(1 / 27, abs=0.004)
    assert np.mean(np.isclose(got, per.mean())) == pytest.approx(6 / 27, abs=0.01)    # one of each


def test_one_seed_is_the_row_bootstrap_and_pairs_the_rows():
    rng = np.random.default_rng(8)
    b = _cells(1, 300)
    same = S.hierarchical_bootstrap(b, b.copy(), n_resamples=2000)
    assert np.all(same.replicates == 0)                   # paired: the same rows for both, no spread
    a = _flip(b, [15], rng, 1.0)
    boot = S.hierarchical_bootstrap(a, b, n_resamples=4000, seed=1)
    # a row bootstrap of the per-row difference (15 rows of +1, 285 of 0): sd = sqrt(p(1−p)/n)
    p = 15 / 300
    assert boot.replicates.std() == pytest.approx(np.sqrt(p * (1 - p) / 300), rel=0.08)
    assert boot.diff == pytest.approx(0.05)


def test_the_bootstrap_is_seeded_and_weighted():
    a, b = _cells(3, 200, seed=1), _cells(3, 200, seed=2)
    one = S.hierarchical_bootstrap(a, b, seed=3, n_resamples=1000)
    assert np.array_equal(one.replicates, S.hierarchical_bootstrap(a, b, seed=3, n_resamples=1000).replicates)
    assert not np.array_equal(one.replicates, S.hierarchical_bootstrap(a, b, seed=4, n_resamples=1000).replicates)
    y = np.r_[np.zeros(150, int), np.ones(50, int)]
    w = S.balanced_weights(y)
    wb = S.hierarchical_bootstrap(a, b, weights=w, n_resamples=1000)
    bal = lambda c: np.mean([(c[s][y == 0].mean() + c[s][y == 1].mean()) / 2 for s in range(3)])   # noqa: E731
    assert wb.diff == pytest.approx(bal(a) - bal(b))
    assert wb.lo <= wb.diff <= wb.hi
    with pytest.raises(ValueError, match="same rows"):
        S.hierarchical_bootstrap(np.ones((3, 10)), np.ones((3, 12)))


def test_fewer_than_three_seeds_compare_two_networks():
    rng = np.random.default_rng(9)
    for k, methods in ((1, False), (2, False), (3, True), (5, True)):
        b = _cells(k, 200)
        c = S.method_test(_flip(b, [20] * k, rng, 1.0), b)
        assert c.methods is methods and c.n_seeds == k
        assert c.to_dict()["scope"] == ("methods" if methods else "networks")
    assert "two networks, not two methods" in S.TWO_NETWORKS


# --------------------------------------------------------------------------- multiplicity
def test_holm_and_bh_against_a_hand_computed_example():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005 ×4 = .02, .01 ×3 = .03, .03 ×2 = .06, .04 ×1 = .04 → running max .06
    assert S.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted .005 ×4/1 = .02, .01 ×4/2 = .02, .03 ×4/3 = .04, .04 ×4/4 = .04
    assert S.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])                   # capped at 1
    assert S.holm([]).size == 0 and S.adjust([0.2], "bh") == pytest.approx([0.2])
    with pytest.raises(ValueError, match="holm"):
        S.adjust([0.1], "bonferroni")


def test_holm_and_bh_match_statsmodels():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(10)
    for m in (1, 2, 7, 30):
        p = np.r_[rng.random(m - m // 3) ** 3, np.full(m // 3, 0.02)]      # ties included
        assert S.holm(p) == pytest.approx(multipletests(p, method="holm")[1])
        assert S.benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])


def test_the_verdict_uses_the_adjusted_p():
    """Five comparisons each 'better' on their own (p = .02): adjusted together by Holm (×5 = .10) none
    is; a family of one keeps it. The TOST p's are adjusted as their own family."""
    one = S.MethodComparison(0.05, 0.01, 0.09, 0.02, 0.9, 0.03, 3, 300, (0.05, 0.05, 0.05))
    assert one.outcome == "better"
    five = S.adjust_family([one] * 5, "holm")
    assert [c.p_adj for c in five] == pytest.approx([0.1] * 5) and all(c.outcome == "cannot tell" for c in five)
    assert all(c.p == 0.02 and c.adjustment == "holm" for c in five)               # the raw p is kept
    assert S.adjust_family([one], "holm")[0].outcome == "better"
    eq = S.MethodComparison(0.0, -0.01, 0.01, 0.9, 0.012, 0.03, 3, 300)
    fam = S.adjust_family([eq, eq, eq, eq, eq], "holm")
    assert fam[0].p_tost_adj == pytest.approx(0.06) and fam[0].outcome == "cannot tell"
    assert S.adjust_family([eq, eq, eq, eq, eq], "bh")[0].outcome == "equivalent"    # BH: .012 each
