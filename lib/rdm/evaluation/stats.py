"""Statistics for verdicts: intervals for one cell and paired tests between two cells.

A cell is a matrix ``correct[s, i]``: whether row ``i`` was classified right (after the
attack) by the model trained with seed ``s``. Every function here takes such matrices,
so two cells are compared only on the same rows and seeds, paired.

* :func:`interval` — the cell's value with a 95 % interval. Two sources of noise: the test
  rows (a percentile bootstrap over rows of each row's correctness averaged over the seeds;
  the exact Clopper–Pearson bound when every row is right, or every row wrong: there the
  bootstrap would say ±0) and, with at least two seeds, the training seed (t·sd/√k of the
  per-seed values). Each side of the interval is the root sum of squares of the two
  half-widths: two seeds that happen to score the same do not make a cell exact, and seeds
  that disagree widen it however many rows there are.
* :func:`paired_test` — A against B on the same rows: each row's difference (averaged
  over seeds) is the unit; the two-sided p-value of a sign-flip permutation test
  (exact McNemar-like for one seed), a bootstrap interval of the difference, and the
  difference seed by seed.
* :func:`verdict` — "better" or "worse" when p < 0.05, that interval excludes 0 and, with two
  or more seeds, every seed's own difference has the same sign (a seed in which A loses
  forbids "A beats B"); else "within noise". The rule is spelled out by :data:`RULE` for the
  report to print under each table. (A t test over 2–3 seeds has almost no power, t(0.975)
  being 12.7 for two and 4.3 for three: the seeds' spread widens each cell's interval, and
  enters the verdict as the sign condition.)

Verdicts between methods (the claims table; ``docs/statistics.md``):

* :func:`hierarchical_bootstrap` — A − B over seeds and rows together: each replicate draws the seeds
  with replacement first, then the rows (the same rows for every drawn seed and both methods), ``N_BOOT``
  replicates, seeded and vectorised.
* :func:`method_test` — its 95 % interval, the two-sided bootstrap p of A − B = 0 and the two one-sided
  tests (TOST) of |A − B| ≥ the equivalence margin; :func:`adjust_family` adjusts a family's p-values
  (:func:`holm`, :func:`benjamini_hochberg`) and :func:`decide` turns them into better, worse,
  equivalent or cannot tell. Fewer than ``MIN_SEEDS`` seeds compare two networks, not two methods.

``weights`` turn accuracy into balanced accuracy: a row of class c weighs
``1 / (K · n_c)``, so the weighted mean of correctness is the balanced accuracy and the
same paired machinery decides on it (the verdicts for an imbalanced set such as lung).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
N_RESAMPLES = 10_000
RULE = ("A beats B when a paired sign-flip test over the rows (each row's result averaged over the "
        "seeds) gives p < 0.05, the difference is positive, its 95 % bootstrap interval over the rows "
        "excludes 0 and, with two or more seeds, A is ahead with every seed; otherwise 'within noise'.")


def _as2d(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"expected seeds × rows, got shape {a.shape}")
    return a


def balanced_weights(y) -> np.ndarray:
    """Row weights whose weighted mean of correctness is the balanced accuracy (sum to 1)."""
    y = np.asarray(y, dtype=np.int64)
    classes, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    return 1.0 / (len(classes) * counts[inv])


def _weights(n: int, weights) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{w.shape[0] if w.ndim else 0} weights for {n} rows")
    return w / w.sum()


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    n_seeds: int
    n_rows: int
    method: str          # "seeds (t)" or "rows (bootstrap)"

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _seed_half(per_seed: np.ndarray, level: float) -> float:
    """Half the t interval of the mean of ``per_seed`` (k ≥ 2 values)."""
    from scipy.stats import t

    k = per_seed.size
    return float(t.ppf(0.5 + level / 2, k - 1) * per_seed.std(ddof=1) / math.sqrt(k))


def _widen(mean: float, lo: float, hi: float, half: float) -> tuple[float, float]:
    """Each side of [lo, hi] around ``mean`` combined with ``half`` (root sum of squares)."""
    return mean - math.hypot(mean - lo, half), mean + math.hypot(hi - mean, half)


def interval(correct, *, weights=None, level: float = 0.95, seed: int = 0) -> Interval:
    """The cell's (weighted) accuracy with its interval (see the module notes)."""
    c = _as2d(correct)
    k, n = c.shape
    w = _weights(n, weights)
    per_seed = c @ w
    mean = float(per_seed.mean())
    cbar = c.mean(0)                      # each row's correctness averaged over the seeds
    used = cbar[w > 0]
    if used.size and np.all(used == used[0]) and used[0] in (0.0, 1.0):
        # every row right (or every row wrong) in every seed: the bootstrap has nothing to resample
        # and would say ±0; the exact (Clopper–Pearson) bound for 0 or n of n rows instead
        edge = (0.5 - level / 2) ** (1.0 / used.size)
        lo, hi = (edge, 1.0) if used[0] == 1.0 else (0.0, 1.0 - edge)
        method = "rows (exact, every row alike)"
    else:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(2000, n))
        boot = (cbar[idx] * w[idx]).sum(1) / w[idx].sum(1)
        lo, hi = (float(v) for v in np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2]))
        method = "rows (bootstrap)"
    if k >= 2:
        lo, hi = _widen(mean, lo, hi, _seed_half(per_seed, level))
        lo, hi = max(lo, 0.0), min(hi, 1.0)
        method = "seeds (t) and " + method
    return Interval(mean, float(lo), float(hi), k, n, method)


@dataclass(frozen=True)
class Comparison:
    diff: float          # A − B, (weighted) mean over rows and seeds
    lo: float
    hi: float
    p: float
    n_seeds: int
    n_rows: int
    verdict: str         # "better", "worse", "within noise"
    per_seed: tuple = ()  # A − B seed by seed (weighted), in the cell's seed order

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def paired_test(a, b, *, weights=None, seed: int = 0, n_resamples: int = N_RESAMPLES,
                alpha: float = ALPHA) -> Comparison:
    """Cell A against cell B on the same rows and seeds (see the module notes)."""
    a, b = _as2d(a), _as2d(b)
    if a.shape != b.shape:
        raise ValueError(f"cells differ in seeds × rows: {a.shape} vs {b.shape} (compare only the same rows)")
    k, n = a.shape
    w = _weights(n, weights)
    d = (a - b).mean(0) * w * n                  # per-row contribution; its mean is the weighted diff
    diff = float(d.mean())
    rng = np.random.default_rng(seed)
    nz = d[d != 0]
    if len(nz) == 0:
        p = 1.0
    else:
        signs = rng.choice([-1.0, 1.0], size=(n_resamples, len(nz)))
        null = np.abs((signs * nz).sum(1))
        p = float((1 + np.sum(null >= abs(nz.sum()) - 1e-12)) / (1 + n_resamples))
    idx = rng.integers(0, n, size=(2000, n))
    boot = d[idx].mean(1)
    lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    per_seed = tuple(float(v) for v in (a - b) @ w)
    split = k >= 2 and not all(v * diff > 0 for v in per_seed)     # some seed has A behind (or level)
    v = "within noise" if p >= alpha or lo <= 0 <= hi or split else ("better" if diff > 0 else "worse")
    return Comparison(diff, lo, hi, p, k, n, v, per_seed)


def verdict(a, b, **kw) -> str:
    return paired_test(a, b, **kw).verdict


# --------------------------------------------------------------------------- verdicts between methods
#: resamples of the hierarchical bootstrap (its p-values are multiples of 1/(N_BOOT + 1))
N_BOOT = 10_000
#: seeds each method needs before a difference is a verdict between methods, not between networks
MIN_SEEDS = 3
#: the equivalence margin when the grid declares none (``[stats] equivalence_margin``), a fraction
MARGIN = 0.03
OUTCOMES = ("better", "worse", "equivalent", "cannot tell")
ADJUSTMENTS = ("holm", "bh")
TWO_NETWORKS = "one training run each: compares two networks, not two methods"
_CHUNK = 500          # bootstrap replicates per block (B × rows counts in memory at once)


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    """Each line of ``draws`` (indices in [0, size)) as counts per index: lines × size."""
    r = draws.shape[0]
    flat = (draws + (size * np.arange(r, dtype=np.int64))[:, None]).ravel()
    return np.bincount(flat, minlength=r * size).reshape(r, size)


@dataclass(frozen=True)
class Bootstrap:
    """The hierarchical bootstrap of A − B: the observed difference, the percentile interval and the
    replicates (``N_BOOT`` values, in draw order)."""

    diff: float
    lo: float
    hi: float
    replicates: np.ndarray


def hierarchical_bootstrap(a, b, *, weights=None, n_resamples: int = N_BOOT, seed: int = 0,
                           level: float = 0.95) -> Bootstrap:
    """A − B over seeds and rows together, paired: each replicate first draws ``k`` seeds with
    replacement, then ``n`` rows with replacement; the drawn rows are the same for every drawn seed
    and for both methods (the test rows are one set, crossed with the seeds, and A and B are judged
    on the same rows). The replicate is the (weighted) mean over the drawn seeds and rows of
    A's correctness minus B's. Vectorised: the draws are multinomial counts, so a replicate is two
    dot products; ``seed`` fixes every draw."""
    a, b = _as2d(a), _as2d(b)
    if a.shape != b.shape:
        raise ValueError(f"cells differ in seeds × rows: {a.shape} vs {b.shape} (compare only the same rows)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    k, n = a.shape
    w = _weights(n, weights)
    d = (a - b) * w[None, :]                       # seeds × rows, weighted per-row differences
    diff = float(d.sum(1).mean())
    rng = np.random.default_rng(seed)
    # first level: how often each seed is drawn (B × k, as a share of the k draws)
    seeds = _counts(rng.integers(0, k, size=(n_resamples, k), dtype=np.int64), k) / k
    dw = np.column_stack([d.T, w])                 # rows × (k + 1): the differences and the row weights
    reps = np.empty(n_resamples)
    for s in range(0, n_resamples, _CHUNK):
        r = min(_CHUNK, n_resamples - s)
        # second level: n rows drawn with replacement, as counts per row (r × n)
        rows = _counts(rng.integers(0, n, size=(r, n), dtype=np.int64), n).astype(np.float64)
        sums = rows @ dw                           # r × (k + 1): each seed's weighted sum, the weights' sum
        reps[s:s + r] = (sums[:, :k] * seeds[s:s + r]).sum(1) / sums[:, k]
    # a replicate is a ratio of sums: rounding off the last bits keeps an exact 0 at 0 (not ±1e-17),
    # so the p-values count it on both sides and no interval bound reads as a hair off 0
    reps = np.round(reps, 12)
    lo, hi = (float(v) for v in np.quantile(reps, [0.5 - level / 2, 0.5 + level / 2]))
    return Bootstrap(diff, lo, hi, reps)


def bootstrap_p(reps: np.ndarray) -> float:
    """Two-sided p of "A − B = 0": twice the smaller share of replicates on either side of 0 (each
    share counted as (1 + count)/(1 + B)); below α exactly when the (1 − α) percentile interval
    excludes 0."""
    b = reps.size
    below, above = np.count_nonzero(reps <= 0), np.count_nonzero(reps >= 0)
    return float(min(1.0, 2 * (1 + min(below, above)) / (1 + b)))


def tost_p(reps: np.ndarray, margin: float) -> float:
    """Two one-sided tests of "|A − B| ≥ margin": the larger of the shares of replicates at or below
    −margin and at or above +margin (as (1 + count)/(1 + B)); below α exactly when the (1 − 2α)
    percentile interval lies inside (−margin, +margin)."""
    b = reps.size
    low = (1 + np.count_nonzero(reps <= -margin)) / (1 + b)
    high = (1 + np.count_nonzero(reps >= margin)) / (1 + b)
    return float(min(1.0, max(low, high)))


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m − i + 1), made
    non-decreasing in that order, capped at 1 (controls the family-wise error rate)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adj
    return out


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini–Hochberg's step-up adjustment: the i-th smallest of m p-values times m / i, made
    non-increasing from the largest down, capped at 1 (controls the false discovery rate)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adj
    return out


def adjust(p, method: str = "holm") -> np.ndarray:
    """``p`` adjusted for multiplicity across one family: ``holm`` or ``bh``."""
    if method == "holm":
        return holm(p)
    if method == "bh":
        return benjamini_hochberg(p)
    raise ValueError(f"adjustment {method!r}: expected one of {', '.join(ADJUSTMENTS)}")


def decide(lo: float, hi: float, p_adj: float, p_tost_adj: float, alpha: float = ALPHA) -> str:
    """The outcome of A against B (the rule of ``docs/statistics.md``):

    * ``better`` — the adjusted p of "A − B = 0" is below α and the interval's lower bound is above 0;
    * ``worse`` — that adjusted p is below α and the interval's upper bound is below 0;
    * ``equivalent`` — otherwise, when the adjusted p of the two one-sided tests is below α (the
      difference lies within ± the margin);
    * ``cannot tell`` — otherwise.
    """
    if p_adj < alpha and lo > 0:
        return "better"
    if p_adj < alpha and hi < 0:
        return "worse"
    if p_tost_adj < alpha:
        return "equivalent"
    return "cannot tell"


def scope_words(n_seeds: int) -> str:
    """Why a difference on fewer than ``MIN_SEEDS`` seeds is no verdict between methods (empty at or
    above it)."""
    if n_seeds >= MIN_SEEDS:
        return ""
    if n_seeds == 1:
        return TWO_NETWORKS
    return (f"{n_seeds} training runs each, fewer than {MIN_SEEDS}: compares these networks, "
            "not two methods")


@dataclass(frozen=True)
class MethodComparison:
    """A against B over seeds and rows (:func:`method_test`); ``p_adj`` and ``p_tost_adj`` are the
    p-values adjusted across the comparison's family (:func:`adjust_family`; the raw ones until then)."""

    diff: float
    lo: float
    hi: float
    p: float                 # two-sided, "A − B = 0" (raw)
    p_tost: float            # two one-sided tests, "|A − B| ≥ margin" (raw)
    margin: float
    n_seeds: int
    n_rows: int
    per_seed: tuple = ()
    p_adj: float | None = None
    p_tost_adj: float | None = None
    adjustment: str = "none"
    alpha: float = ALPHA

    @property
    def outcome(self) -> str:
        """better, worse, equivalent or cannot tell, on the adjusted p-values (:func:`decide`)."""
        p = self.p if self.p_adj is None else self.p_adj
        q = self.p_tost if self.p_tost_adj is None else self.p_tost_adj
        return decide(self.lo, self.hi, p, q, self.alpha)

    @property
    def equivalent(self) -> bool:
        """The two one-sided tests put the difference within ± the margin (adjusted p below α), whatever
        the outcome (a difference can be both real and smaller than the margin)."""
        return (self.p_tost if self.p_tost_adj is None else self.p_tost_adj) < self.alpha

    @property
    def methods(self) -> bool:
        """Enough seeds (``MIN_SEEDS``) for a verdict between two methods; else it compares two networks."""
        return self.n_seeds >= MIN_SEEDS

    def to_dict(self) -> dict:
        return {**self.__dict__, "per_seed": list(self.per_seed), "outcome": self.outcome,
                "equivalent": self.equivalent, "scope": "methods" if self.methods else "networks"}


def method_test(a, b, *, margin: float = MARGIN, weights=None, seed: int = 0, n_resamples: int = N_BOOT,
                alpha: float = ALPHA) -> MethodComparison:
    """Cell A against cell B (seeds × rows each, paired): the hierarchical bootstrap's difference and
    (1 − α) interval, the two-sided bootstrap p and the two one-sided tests at ± ``margin``."""
    if not 0 < margin < 1:
        raise ValueError(f"equivalence margin must be in (0, 1), got {margin}")
    boot = hierarchical_bootstrap(a, b, weights=weights, n_resamples=n_resamples, seed=seed, level=1 - alpha)
    a, b = _as2d(a), _as2d(b)
    w = _weights(a.shape[1], weights)
    per_seed = tuple(float(v) for v in (a - b) @ w)
    return MethodComparison(boot.diff, boot.lo, boot.hi, bootstrap_p(boot.replicates),
                            tost_p(boot.replicates, margin), float(margin), a.shape[0], a.shape[1], per_seed,
                            alpha=alpha)


def adjust_family(comparisons, method: str = "holm") -> list[MethodComparison]:
    """The comparisons of one family (one claims table) with their p-values adjusted together: the
    tests of "A − B = 0" as one family, the two one-sided tests as another."""
    from dataclasses import replace

    cs = list(comparisons)
    if not cs:
        return []
    p = adjust([c.p for c in cs], method)
    q = adjust([c.p_tost for c in cs], method)
    return [replace(c, p_adj=float(pi), p_tost_adj=float(qi), adjustment=method) for c, pi, qi in zip(cs, p, q)]
