"""Grouped, stratified, seeded train/val/test split.

Split sizes follow scikit-learn's ``train_test_split`` rounding, which reproduces the
paper's Table I to the image: ``n_test = ceil(N * test)``, then
``n_val = ceil((N - n_test) * val / (train + val))``, the rest is train
(lung 5187/1297/1622, brain 2481/276/307, leukemia 2343/261/652).
Those totals are shared out among classes in proportion to each class's size
(controlled rounding, so every class row and every split column sums exactly).

Groups (patients, duplicate sets) are then assigned whole: largest groups first
(ties in seeded random order), each to the split where it lowers the total
per-class deficit the most (ties: the split with the largest relative deficit).
A local search then moves single groups and swaps pairs of groups between splits
while that lowers the L1 distance to the per-class targets; last, a split left
empty gets the group that is cheapest to move there (when some split has several). Singleton groups,
the common case, make the targets exact; large groups can leave a few images off.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def split_totals(n: int, ratios: Mapping[str, float]) -> np.ndarray:
    """Rows per split (train, val, test), rounded as scikit-learn's train_test_split does."""
    tr, va, te = (float(ratios[s]) for s in SPLITS)
    n_test = min(n, math.ceil(n * te / (tr + va + te) - 1e-9))
    rest = n - n_test
    n_val = min(rest, math.ceil(rest * va / (tr + va) - 1e-9)) if tr + va > 0 else rest
    return np.array([rest - n_val, n_val, n_test], dtype=np.int64)


def class_targets(class_counts: Sequence[int], totals: Sequence[int]) -> np.ndarray:
    """Per-class × per-split targets: rows sum to class counts, columns to ``totals``."""
    counts = np.asarray(class_counts, dtype=np.int64)
    totals = np.asarray(totals, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return np.zeros((len(counts), len(totals)), dtype=np.int64)
    exp = counts[:, None] * totals[None, :] / n
    t = np.floor(exp).astype(np.int64)
    frac = exp - t
    row_def = counts - t.sum(1)
    col_def = totals - t.sum(0)
    for flat in np.argsort(-frac, axis=None, kind="stable"):
        c, s = np.unravel_index(flat, frac.shape)
        if row_def[c] > 0 and col_def[s] > 0:
            t[c, s] += 1
            row_def[c] -= 1
            col_def[s] -= 1
    while row_def.sum() > 0:  # rare leftovers: any cell with both deficits
        c = int(np.argmax(row_def > 0))
        s = int(np.argmax(col_def > 0))
        t[c, s] += 1
        row_def[c] -= 1
        col_def[s] -= 1
    return t


def grouped_stratified_split(y: Sequence[int], groups: Sequence[str], ratios: Mapping[str, float],
                             num_classes: int, seed: int = 0) -> np.ndarray:
    """Split index per row (0 train, 1 val, 2 test); no group straddles two splits."""
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    gnames, ginv = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)
    ng = len(gnames)
    gvec = np.zeros((ng, num_classes), dtype=np.int64)
    np.add.at(gvec, (ginv, y), 1)
    target = class_targets(np.bincount(y, minlength=num_classes), split_totals(n, ratios))
    rng = np.random.default_rng(seed)
    sizes = gvec.sum(1)
    order = np.lexsort((rng.permutation(ng), -sizes))  # largest first, random among equals
    assigned = np.zeros_like(target)
    gsplit = np.empty(ng, dtype=np.int64)
    safe_t = np.maximum(target, 1)
    for g in order:
        v = gvec[g][:, None]
        before = np.abs(assigned - target).sum(0)
        after = np.abs(assigned + v - target).sum(0)
        delta = after - before
        rel = ((target - assigned) * v / safe_t).sum(0)  # relative deficit of this group's classes
        cand = np.flatnonzero(delta == delta.min())
        s = int(cand[np.argmax(rel[cand])])
        gsplit[g] = s
        assigned[:, s] += gvec[g]
    gsplit = _refine(gvec, gsplit, target, rng)
    gsplit = _fill_empty(gvec, gsplit, target)
    return gsplit[ginv]


def _fill_empty(gvec: np.ndarray, gsplit: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Give every split with a non-zero target at least one group, when there are groups to spare:
    move the group whose move costs least from a split that holds several."""
    k = target.shape[1]
    for s in range(k):
        if target[:, s].sum() == 0 or (gsplit == s).any():
            continue
        assigned = np.stack([gvec[gsplit == j].sum(0) for j in range(k)], axis=1)
        best = None
        for a in range(k):
            idx = np.flatnonzero(gsplit == a)
            if len(idx) < 2:
                continue
            for g in idx:
                new = assigned.copy()
                new[:, a] -= gvec[g]
                new[:, s] += gvec[g]
                cost = _err(new, target)
                if best is None or cost < best[0]:
                    best = (cost, g)
        if best is not None:
            gsplit[best[1]] = s
    return gsplit


def _err(assigned: np.ndarray, target: np.ndarray) -> int:
    return int(np.abs(assigned - target).sum())


def _refine(gvec: np.ndarray, gsplit: np.ndarray, target: np.ndarray, rng, max_iter: int = 2000) -> np.ndarray:
    """Local search: single-group moves, then pair swaps, while the L1 error drops."""
    k = target.shape[1]
    assigned = np.stack([gvec[gsplit == s].sum(0) for s in range(k)], axis=1)
    for _ in range(max_iter):
        err = _err(assigned, target)
        if err == 0:
            break
        best = (0, None)
        # single moves: group g from its split a to split b
        for a in range(k):
            idx = np.flatnonzero(gsplit == a)
            if len(idx) == 0:
                continue
            V = gvec[idx]  # G×C
            for b in range(k):
                if a == b:
                    continue
                da = np.abs(assigned[:, a][None] - V - target[:, a][None]).sum(1) - np.abs(assigned[:, a] - target[:, a]).sum()
                db = np.abs(assigned[:, b][None] + V - target[:, b][None]).sum(1) - np.abs(assigned[:, b] - target[:, b]).sum()
                d = da + db
                i = int(np.argmin(d))
                if d[i] < best[0]:
                    best = (int(d[i]), ("move", idx[i], a, b))
        if best[1] is None:
            # pair swaps between splits a and b (distinct vectors only, to stay cheap)
            for a in range(k):
                for b in range(a + 1, k):
                    ia = np.flatnonzero(gsplit == a)
                    ib = np.flatnonzero(gsplit == b)
                    if len(ia) == 0 or len(ib) == 0:
                        continue
                    ua, ra = np.unique(gvec[ia], axis=0, return_index=True)
                    ub, rb = np.unique(gvec[ib], axis=0, return_index=True)
                    D = ua[:, None, :] - ub[None, :, :]  # moving ua out of a, ub into a
                    ea = np.abs(assigned[:, a][None, None] - D - target[:, a][None, None]).sum(2)
                    eb = np.abs(assigned[:, b][None, None] + D - target[:, b][None, None]).sum(2)
                    d = ea + eb - np.abs(assigned[:, a] - target[:, a]).sum() - np.abs(assigned[:, b] - target[:, b]).sum()
                    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
                    if d[i, j] < best[0]:
                        best = (int(d[i, j]), ("swap", ia[ra[i]], ib[rb[j]], a, b))
        if best[1] is None:
            break
        op = best[1]
        if op[0] == "move":
            _, g, a, b = op
            gsplit[g] = b
            assigned[:, a] -= gvec[g]
            assigned[:, b] += gvec[g]
        else:
            _, ga, gb, a, b = op
            gsplit[ga], gsplit[gb] = b, a
            assigned[:, a] += gvec[gb] - gvec[ga]
            assigned[:, b] += gvec[ga] - gvec[gb]
    return gsplit


def split_table(y: Sequence[int], split: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts per class × split."""
    t = np.zeros((num_classes, len(SPLITS)), dtype=np.int64)
    np.add.at(t, (np.asarray(y, dtype=np.int64), np.asarray(split, dtype=np.int64)), 1)
    return t
