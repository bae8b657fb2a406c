"""Statistics for verdicts: intervals for one cell and paired tests between two cells.

A cell is a matrix ``correct[s, i]``: whether row ``i`` was classified right (after the
attack) by the model trained with seed ``s``. Every function here takes such matrices,
so two cells are compared only on the same rows and seeds, paired.

* :func:`interval` — the cell's value with a 95 % interval: over seeds (mean ± t·sd/√k
  of the per-seed values) when there are at least two seeds, else a percentile
  bootstrap over rows (the exact Clopper–Pearson bound when every row is right, or every row
  wrong: there the bootstrap would say ±0).
* :func:`paired_test` — A against B on the same rows: each row's difference (averaged
  over seeds) is the unit; the two-sided p-value of a sign-flip permutation test
  (exact McNemar-like for one seed) and a bootstrap interval of the difference.
* :func:`verdict` — "better", "worse" or "within noise" from that test, with the rule
  spelled out by :data:`RULE` for the report to print under each table.

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
        "seeds) gives p < 0.05 and the difference is positive; p ≥ 0.05 is 'within noise'.")


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


def interval(correct, *, weights=None, level: float = 0.95, seed: int = 0) -> Interval:
    """The cell's (weighted) accuracy with its interval (see the module notes)."""
    c = _as2d(correct)
    k, n = c.shape
    w = _weights(n, weights)
    per_seed = c @ w
    mean = float(per_seed.mean())
    if k >= 2:
        from scipy.stats import t

        half = float(t.ppf(0.5 + level / 2, k - 1) * per_seed.std(ddof=1) / math.sqrt(k))
        return Interval(mean, mean - half, mean + half, k, n, "seeds (t)")
    used = c[0][w > 0]
    if used.size and np.all(used == used[0]) and used[0] in (0.0, 1.0):
        # every row right (or every row wrong): the bootstrap has nothing to resample and would say
        # ±0; the exact (Clopper–Pearson) bound for 0 or n of n rows instead
        edge = (0.5 - level / 2) ** (1.0 / used.size)
        lo, hi = (edge, 1.0) if used[0] == 1.0 else (0.0, 1.0 - edge)
        return Interval(mean, float(lo), float(hi), k, n, "rows (exact, every row alike)")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(2000, n))
    boot = (c[0][idx] * w[idx]).sum(1) / w[idx].sum(1)
    lo, hi = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(mean, float(lo), float(hi), k, n, "rows (bootstrap)")


@dataclass(frozen=True)
class Comparison:
    diff: float          # A − B, (weighted) mean over rows and seeds
    lo: float
    hi: float
    p: float
    n_seeds: int
    n_rows: int
    verdict: str         # "better", "worse", "within noise"

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
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    v = "within noise" if p >= alpha else ("better" if diff > 0 else "worse")
    return Comparison(diff, float(lo), float(hi), p, k, n, v)


def verdict(a, b, **kw) -> str:
    return paired_test(a, b, **kw).verdict
