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
