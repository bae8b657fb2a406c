"""Leakage audit and similarity groups: is the split sound enough to bear a verdict?

Two questions about a prepared split (``train.h5``/``val.h5``/``test.h5``), answered
with scikit-learn on the sets' own pixels:

* **Near-duplicates across splits.** For every test row, the RMS pixel distance to its
  nearest training row (``rms = ‖a − b‖₂ / √D`` on the [0, 1] pixels, D = C·H·W);
  counted for a few thresholds τ. Slices of one patient, or shifted shots of one
  microscope field, sit at small τ.
* **Shortcut baselines** beside the CNN: a 1-nearest-neighbour classifier on raw pixels
  (it wins where test images have training twins) and a logistic regression on six or
  fewer numbers per image, the per-channel mean and standard deviation (it wins where
  classes differ in staining or exposure rather than in what a clinician looks at).

:func:`similarity_groups` turns near-duplicate pairs into groups (connected components
of the graph "within τ of each other", joined with any existing patient groups), so a
grouped split keeps every cluster in one split. The radius graph is computed by
scikit-learn in chunks (``working_memory``), never as an N×N matrix.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rdm.errors import RdmError

DEFAULT_TAUS = (0.02, 0.05, 0.1)
_WORKING_MEMORY_MB = 256  # scikit-learn's chunk size for the distance computations


def flat(x: np.ndarray) -> np.ndarray:
    """N×C×H×W (or N×D) → N×D float32, C-contiguous."""
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(x.reshape(x.shape[0], -1))


def colour_stats(x: np.ndarray) -> np.ndarray:
    """Per-image, per-channel mean and standard deviation: N×2C (N×C×H×W input)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise RdmError(f"colour statistics need N×C×H×W images, got shape {x.shape}")
    v = x.reshape(x.shape[0], x.shape[1], -1)
    return np.concatenate([v.mean(2), v.std(2)], axis=1)


def nearest_rms(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the RMS distance to its nearest ``ref`` row and that row's index."""
    from sklearn.neighbors import NearestNeighbors

    q, r = flat(query), flat(ref)
    if q.shape[1] != r.shape[1]:
        raise RdmError(f"images of {q.shape[1]} and {r.shape[1]} values cannot be compared")
    if len(r) == 0:
        raise RdmError("the reference set is empty")
    import sklearn

    with sklearn.config_context(working_memory=_WORKING_MEMORY_MB):
        nn = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(r)
        d, i = nn.kneighbors(q)
    return d[:, 0] / math.sqrt(q.shape[1]), i[:, 0]


def near_pairs(x: np.ndarray, tau: float, *, distances: bool = False):
    """Pairs ``(i, j)``, i < j, of rows within RMS distance ``tau`` of each other (k×2); with
    ``distances``, also their RMS distances (``(pairs, d)``)."""
    from sklearn.neighbors import NearestNeighbors
    import sklearn

    if not tau >= 0:
        raise RdmError(f"the similarity threshold must be ≥ 0, got {tau}")
    f = flat(x)
    if len(f) < 2:
        none = np.zeros((0, 2), dtype=np.int64)
        return (none, np.zeros(0)) if distances else none
    radius = float(tau) * math.sqrt(f.shape[1])
    with sklearn.config_context(working_memory=_WORKING_MEMORY_MB):
        g = NearestNeighbors(radius=radius, algorithm="brute").fit(f).radius_neighbors_graph(
            f, mode="distance" if distances else "connectivity").tocoo()
    keep = g.row < g.col
    pairs = np.stack([g.row[keep], g.col[keep]], axis=1).astype(np.int64)
    return (pairs, g.data[keep] / math.sqrt(f.shape[1])) if distances else pairs


def _capped_linkage(n: int, pairs: np.ndarray, d: np.ndarray, cap: int, labels: np.ndarray | None,
                    start: np.ndarray) -> np.ndarray:
    """Single linkage over ``pairs`` in order of distance, refusing a merge that would make a group of
    more than ``cap`` rows or join two classes; ``start``: the component of each row before (rows that
    share a group label are merged first, whatever their size). Returns a root per row."""
    parent = start.copy()
    size = np.bincount(start, minlength=n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    order = np.lexsort((pairs[:, 1], pairs[:, 0], d))            # by distance, ties by row: deterministic
    for i, j in pairs[order]:
        if labels is not None and labels[i] != labels[j]:
            continue
        a, b = find(int(i)), find(int(j))
        if a == b or size[a] + size[b] > cap:
            continue
        if b < a:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
    return np.asarray([find(i) for i in range(n)])


def similarity_groups(x: np.ndarray, tau: float, groups: Sequence[Any] | None = None, *,
                      cap: int | None = None, labels: Sequence[int] | None = None) -> np.ndarray:
    """Group label per row: rows within ``tau`` of each other, transitively, share one group,
    and so do rows that share a label in ``groups`` (patient ids, duplicate groups).

    ``cap``: no group grows past ``cap`` rows by similarity (single linkage in order of distance, a
    merge that would pass the cap refused) and, with ``labels``, no similarity merge joins two
    classes. Without it, transitive chaining at a τ large enough to join one patient's neighbouring
    slices joins most of a data set into one group (brain at RMS .1: 1,451 of 3,064 images).

    Labels are ``"sim-<k>"`` with k the component number in order of first row, so the
    same images give the same labels.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(x)
    if cap is not None and int(cap) < 1:
        raise RdmError(f"the group size cap must be ≥ 1, got {cap}")
    if labels is not None and len(labels) != n:
        raise RdmError(f"{len(labels)} class labels for {n} images")
    pairs, dist = near_pairs(x, tau, distances=True)
    rows, cols = ([pairs[:, 0]], [pairs[:, 1]]) if cap is None else ([], [])
    if groups is not None:
        if len(groups) != n:
            raise RdmError(f"{len(groups)} group labels for {n} images")
        _, inv = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)
        order = np.argsort(inv, kind="stable")
        same = inv[order][1:] == inv[order][:-1]          # chain the members of each group
        rows.append(order[:-1][same])
        cols.append(order[1:][same])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    if cap is not None:
        _, first = np.unique(comp, return_index=True)    # each given group's root: its first row
        start = first[comp]
        roots = _capped_linkage(n, pairs, dist, int(cap), None if labels is None else np.asarray(labels), start)
        comp = np.unique(roots, return_inverse=True)[1].reshape(-1)     # roots (row numbers) → 0..k−1
    _, first = np.unique(comp, return_index=True)          # renumber by first row: stable labels
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return np.asarray([f"sim-{k}" for k in rank[comp]], dtype=object)


def shortcut_baselines(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                       test_y: np.ndarray, *, seed: int = 0, nearest: np.ndarray | None = None
                       ) -> dict[str, float]:
    """Test accuracy of 1-NN on raw pixels and of a logistic regression on colour statistics,
    with the majority-class rate and balanced accuracies beside them. ``nearest`` (each test
    row's nearest training row, from :func:`nearest_rms`) saves searching the neighbours again."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if nearest is None:
        _, nearest = nearest_rms(test_x, train_x)
    p_knn = train_y[nearest]                       # 1-NN: the label of the nearest training image
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    p_lr = lr.fit(colour_stats(train_x), train_y).predict(colour_stats(test_x))
    majority = np.bincount(train_y).argmax()
    return {
        "knn1_pixels": float(np.mean(p_knn == test_y)),
        "knn1_pixels_balanced": float(balanced_accuracy_score(test_y, p_knn)),
        "colour_logreg": float(np.mean(p_lr == test_y)),
        "colour_logreg_balanced": float(balanced_accuracy_score(test_y, p_lr)),
        "majority": float(np.mean(test_y == majority)),
    }


@dataclass
class Audit:
    """What :func:`audit_split` found; ``to_dict`` is the JSON the report and ``rdm-prep --audit`` use."""

    n_train: int
    n_test: int
    near_train: dict[str, int]            # τ → test rows with a training row within τ
    nearest_rms_quantiles: dict[str, float]
    baselines: dict[str, float]
    shared_groups: int                    # groups present in both train and test (0 for a sound split)
    taus: list[float] = field(default_factory=list)
    # distinct groups in train and test: as many as images means the source had no patient ids (each
    # image its own group), and shared_groups = 0 then says nothing about patients
    groups_train: int | None = None
    groups_test: int | None = None

    @property
    def per_image_groups(self) -> bool:
        return self.groups_train == self.n_train and self.groups_test == self.n_test

    def lines(self) -> list[str]:
        """The audit in a few plain lines (what ``rdm-prep --audit`` prints)."""
        b = self.baselines
        near = ", ".join(f"{n} within {t}" for t, n in self.near_train.items())
        groups = ("n/a (no patient ids: every image is its own group)" if self.per_image_groups
                  else f"{self.shared_groups}")
        return [f"audit: {self.n_test} test images; with a training image at RMS distance ≤ τ: {near}; "
                f"nearest median {self.nearest_rms_quantiles['median']:.3f}; groups in both train and test: "
                f"{groups}",
                f"audit: shortcut baselines on the test split: 1-NN on pixels {b['knn1_pixels']:.1%} "
                f"(balanced {b['knn1_pixels_balanced']:.1%}), logistic regression on colour statistics "
                f"{b['colour_logreg']:.1%} (balanced {b['colour_logreg_balanced']:.1%}), majority class "
                f"{b['majority']:.1%}"]

    def to_dict(self) -> dict[str, Any]:
        return {"n_train": self.n_train, "n_test": self.n_test, "taus": self.taus,
                "near_train": self.near_train, "nearest_rms_quantiles": self.nearest_rms_quantiles,
                "baselines": self.baselines, "shared_groups": self.shared_groups,
                "groups_train": self.groups_train, "groups_test": self.groups_test}


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The whole set in memory, read in batches: the neighbour search needs every training image
    at once (lung's 5,187 training patches are 56 MB, brain's 2,481 images 122 MB)."""
    from rdm.data.sets import SetReader

    with SetReader(path) as r:
        parts = [r.read(s, min(s + 2048, r.n), ["x", "y"]) for s in range(0, r.n, 2048)]
        groups = r.column("group") if r.has("group") else None
    if not parts:
        raise RdmError(f"{path}: the set is empty")
    x = np.concatenate([p["x"] for p in parts])
    y = np.concatenate([p["y"] for p in parts])
    return x, y, groups


def audit_split(train: os.PathLike | str, test: os.PathLike | str, *,
                taus: Sequence[float] = DEFAULT_TAUS, seed: int = 0) -> Audit:
    """Near-duplicates of the test rows in the training set, and the shortcut baselines."""
    tx, ty, tg = _read(Path(train))
    sx, sy, sg = _read(Path(test))
    if tx.shape[1:] != sx.shape[1:]:
        raise RdmError(f"{train} holds {tx.shape[1:]} images, {test} {sx.shape[1:]}")
    d, nearest = nearest_rms(sx, tx)
    shared, n_groups = 0, (None, None)
    if tg is not None and sg is not None:
        a, b = set(map(str, tg)), set(map(str, sg))
        shared, n_groups = len(a & b), (len(a), len(b))
    q = np.quantile(d, [0.0, 0.1, 0.5]) if len(d) else np.zeros(3)
    return Audit(
        n_train=len(ty), n_test=len(sy), taus=[float(t) for t in taus],
        near_train={f"{t:g}": int(np.sum(d <= t)) for t in taus},
        nearest_rms_quantiles={"min": float(q[0]), "p10": float(q[1]), "median": float(q[2])},
        baselines=shortcut_baselines(tx, ty, sx, sy, seed=seed, nearest=nearest),
        shared_groups=shared, groups_train=n_groups[0], groups_test=n_groups[1],
    )


def write_audit(folder: os.PathLike | str, *, taus: Sequence[float] = DEFAULT_TAUS, seed: int = 0
                ) -> tuple[Path, Audit]:
    """Audit ``folder``/train.h5 against ``folder``/test.h5 into ``folder``/audit.json (atomic)."""
    import json

    from rdm.data.atomic import atomic_output

    folder = Path(folder)
    a = audit_split(folder / "train.h5", folder / "test.h5", taus=taus, seed=seed)
    out = folder / "audit.json"
    with atomic_output(out) as tmp:
        Path(tmp).write_text(json.dumps(a.to_dict(), indent=1) + "\n")
    return out, a
