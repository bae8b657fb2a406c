"""Numbers on the same rows: the plan's cells as per-row results over seeds, their 95 % intervals, and
paired verdicts between two cells (the statistics are :mod:`rdm.evaluation.stats`).

Every ``rdm-eval`` result carries ``per_row`` (:mod:`rdm.attacks.per_row`): the row of the clean set each
evaluated image came from, its label and the prediction. Here a cell becomes :class:`Rows`: the rows
of the WHOLE test set it covers (a cell run on the seeded subset ``test-sub.h5`` is mapped back
through the subset's provenance, :func:`rdm.pipeline.steps.subset_index`), their labels, and a
seeds × rows matrix of predictions, one line per seed of the cell (``ModalityPlan.seeds_of``),
aligned on the row index.

* :func:`acc_entry` — a cell's accuracy and balanced accuracy as mean ± 95 % CI (a bootstrap over rows,
  combined with t over seeds when there are at least two: :func:`rdm.evaluation.stats.interval`), and for a
  modality with a ``positive_class`` that class's recall (sensitivity).
* :func:`diff_entry` — A − B ON THE SAME ROWS AND SEEDS: when one cell ran on the subset and the other
  on the whole test set, the whole-test cell is restricted to the subset's rows (marked †); when rows
  cannot be matched (no per-row data, different sets) the entry reads ``n/a (rows differ)``. The
  difference is in the modality's deciding metric (grid: ``[modalities.<m>] decide_on``, accuracy
  or balanced accuracy), with its paired bootstrap interval and the verdict of
  :func:`rdm.evaluation.stats.paired_test` (↑ better, ↓ worse, ≈ within noise).
* :func:`compare` — the same comparison as an object, for the findings.
* :func:`method_compare` — A against B as a verdict between methods (the claims table): the hierarchical
  bootstrap over seeds and rows, the equivalence margin of the grid's ``[stats]``, and
  :func:`adjust_verdicts` to adjust a table's p-values together (:mod:`rdm.evaluation.stats`,
  ``docs/statistics.md``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rdm.evaluation import stats
from rdm.errors import RdmError
from rdm.pipeline.labels import pct
from rdm.pipeline.plan import SUBSET, set_path
from rdm.pipeline.tables import NA, Entry, Part, bounds, signed

if TYPE_CHECKING:
    from rdm.pipeline.results import Ref, View

from rdm.pipeline.config import DECIDE_ON as DECIDE
METRIC_WORDS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}
ROWS_DIFFER = "n/a (rows differ)"
SUBSET_MARK = "†"


def by_seed(per_seed) -> str:
    """``; by seed +4.3, +3.0, +5.0``: A − B with each seed, in points (nothing for one seed)."""
    return f"; by seed {', '.join(signed(v) for v in per_seed)}" if len(per_seed) > 1 else ""


def rule(x: "View") -> str:
    """The verdict rule, as printed under each table that carries verdicts."""
    d = decide_on(x)
    how = ("" if d == "accuracy" else
           " Rows are weighted 1/(classes × rows of their class), so the test decides on balanced accuracy.")
    return (f"Verdicts (↑ better, ↓ worse, ≈ within noise) on {METRIC_WORDS[d]}, A − B on the same rows and seeds "
            "[lo, hi: the 95 % bootstrap interval of the difference over rows]: A beats B when a paired sign-flip "
            "test over the rows (each row's result averaged over the seeds) gives p < 0.05, the difference is "
            "positive, its interval excludes 0 and, with two or more seeds, A is ahead with every seed; "
            "otherwise 'within noise'." + how)


# --------------------------------------------------------------------------- the grid's keys
def decide_on(x: "View") -> str:
    """The metric the modality's verdicts decide on (grid ``[modalities.<m>] decide_on``)."""
    return x.plan.modalities.get(x.m, {}).get("decide_on", "accuracy")     # checked by the grid's loader


def positive_class(x: "View") -> str | None:
    """The class whose recall (sensitivity) is shown beside the verdicts (grid ``positive_class``)."""
    return x.plan.modalities.get(x.m, {}).get("positive_class")


# --------------------------------------------------------------------------- one cell over its seeds
@dataclass
class Rows:
    """One cell on its rows: ``index`` (rows of the whole test set, sorted), ``y``, ``pred`` (seeds × rows)."""

    index: np.ndarray
    y: np.ndarray
    pred: np.ndarray
    seeds: tuple
    files: list[tuple[str, int]]
    classes: list[str]
    subset: bool = False          # the cell ran on the seeded subset
    restricted: bool = False      # a larger cell cut down to these rows
    refs: list = field(default_factory=list, repr=False)
    order: list = field(default_factory=list, repr=False)   # per seed: positions in its file's per-row lists

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.y[None, :]

    @property
    def n_rows(self) -> int:
        return int(self.index.size)

    @property
    def n_seeds(self) -> int:
        return int(self.pred.shape[0])

    @property
    def rows_id(self) -> str:
        return hashlib.sha1(np.ascontiguousarray(self.index, dtype=np.int64).tobytes()).hexdigest()[:12]

    def take(self, index: np.ndarray) -> "Rows":
        """These rows only (``index`` ⊂ self.index), marked restricted when fewer."""
        pos = np.searchsorted(self.index, index)
        return replace(self, index=self.index[pos], y=self.y[pos], pred=self.pred[:, pos],
                       restricted=self.restricted or len(pos) < self.n_rows, order=[o[pos] for o in self.order])

    def with_seeds(self, seeds: tuple) -> "Rows":
        pos = [self.seeds.index(s) for s in seeds]
        return replace(self, pred=self.pred[pos], seeds=tuple(seeds), files=[self.files[i] for i in pos],
                       refs=[self.refs[i] for i in pos] if self.refs else [],
                       order=[self.order[i] for i in pos] if self.order else [])

    def column(self, key: str) -> np.ndarray | None:
        """Another per-row list of the cell's files (``fooled_by``, ``pred_clean``) as seeds × rows
        (objects), aligned on these rows; None when a seed's file lacks it."""
        if not self.refs or len(self.order) != len(self.refs):
            return None
        out = []
        for r, o in zip(self.refs, self.order):
            pr = r.result.get("per_row") or {}
            col = pr.get(key)
            if not isinstance(col, list) or len(col) != len(pr.get("index", ())):
                return None
            out.append(np.asarray(col, dtype=object)[o])
        return np.stack(out)

    def correct_of(self, key: str) -> np.ndarray | None:
        """Correctness of another prediction column (``pred_clean``: the clean image's) as seeds × rows."""
        col = self.column(key)
        if col is None or any(v is None for v in col.flat):
            return None
        return col.astype(np.int64) == self.y[None, :]

    # ----- metrics
    def weights(self, metric: str) -> np.ndarray | None:
        """Row weights under which the mean of correctness is ``metric`` (None: plain accuracy)."""
        if metric == "accuracy":
            return None
        if metric == "balanced_accuracy":
            return stats.balanced_weights(self.y)
        if metric.startswith("recall:"):
            return (self.y == self.classes.index(metric[7:])).astype(np.float64)
        raise ValueError(f"no row weights for {metric}")

    def per_seed(self, metric: str) -> np.ndarray:
        """``metric`` for each seed on these rows."""
        if metric in ("precision_macro", "recall_macro", "f1_macro"):
            from rdm.evaluation.metrics import counts_from_predictions, summarize

            return np.array([summarize(counts_from_predictions(self.y, p, self.classes))[metric] for p in self.pred])
        w = self.weights(metric)
        c = self.correct.astype(np.float64)
        if w is not None and not w.sum():            # a class with no row here: no recall
            return np.full(self.n_seeds, np.nan)
        return c.mean(1) if w is None else (c @ w) / w.sum()

    def info(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "n_seeds": self.n_seeds, "seeds": list(self.seeds),
                "rows_id": self.rows_id, "subset": self.subset, "restricted": self.restricted,
                "files": [{"file": f, "index": i} for f, i in self.files]}


def _seed(cell) -> Any:
    s = getattr(cell, "seed", None)
    return 0 if s is None else s


def rows_of(x: "View", ref: "Ref | None") -> Rows | None:
    """The cell of ``ref`` over every seed the plan runs it with, aligned on the rows (None: no per-row data)."""
    if ref is None:
        return None
    cache = x.__dict__.setdefault("_rows_cache", {})
    key = (ref.file, ref.index)
    if key not in cache:
        cache[key] = _load_rows(x, ref)
    return cache[key]


def _seed_refs(x: "View", ref: "Ref") -> list[tuple[Any, "Ref"]]:
    cell = ref.cell
    if cell is None:
        return [(0, ref)]
    seeds_of = getattr(x.p, "seeds_of", None)
    cells = seeds_of(cell) if seeds_of is not None else [cell]
    out = []
    for c in cells:
        r = ref if c == cell else x.r.get(c)
        if r is not None:
            out.append((_seed(c), r))
    return out or [(_seed(cell), ref)]


def _subset_map(x: "View") -> np.ndarray | None:
    if "_subset_map" not in x.__dict__:
        from rdm.pipeline.steps import subset_index

        sub, full = x.r.path(set_path(x.m, SUBSET)), x.r.path(set_path(x.m, "test"))
        try:
            x.__dict__["_subset_map"] = subset_index(sub, full) if sub.exists() and full.exists() else None
        except (RdmError, OSError, ValueError, KeyError):
            x.__dict__["_subset_map"] = None
    return x.__dict__["_subset_map"]


def _one(x: "View", ref: "Ref") -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, np.ndarray] | None:
    pr = ref.result.get("per_row")
    if not isinstance(pr, dict) or not all(k in pr for k in ("index", "y", "pred")):
        return None
    idx, y, pred = (np.asarray(pr[k], dtype=np.int64) for k in ("index", "y", "pred"))
    if not (idx.size == y.size == pred.size) or idx.size == 0:
        return None
    res = ref.result
    on = Path(str(res.get("source") or res.get("set") or "")).name
    subset = on == Path(set_path(x.m, SUBSET)).name
    if subset:
        m = _subset_map(x)
        if m is None or idx.max() >= m.size:
            return None
        idx = m[idx]
    elif on != Path(set_path(x.m, "test")).name:
        return None                      # rows of some other set: they cannot be matched
    order = np.argsort(idx, kind="stable")
    idx, y, pred = idx[order], y[order], pred[order]
    if np.any(np.diff(idx) == 0):
        return None
    return idx, y, pred, subset, order


def _load_rows(x: "View", ref: "Ref") -> Rows | None:
    got = []
    for seed, r in _seed_refs(x, ref):
        one = _one(x, r)
        if one is None:
            if r is ref:
                return None
            continue                     # a seed without per-row data is left out
        got.append((seed, r, one))
    if not got:
        return None
    idx0, y0, _, sub0, _ = got[0][2]
    keep = [(s, r, o) for s, r, o in got if np.array_equal(o[0], idx0) and np.array_equal(o[1], y0) and o[3] == sub0]
    classes = list((ref.result.get("counts") or {}).get("classes") or
                   (ref.result.get("metrics") or {}).get("per_class", {}).keys())
    if not classes:
        classes = [str(i) for i in range(int(y0.max()) + 1)]
    return Rows(idx0, y0, np.stack([o[2] for _, _, o in keep]), tuple(s for s, _, _ in keep),
                [(r.file, r.index) for _, r, _ in keep], classes, subset=sub0, refs=[r for _, r, _ in keep],
                order=[o[4] for _, _, o in keep])


def pair(a: Rows | None, b: Rows | None, exact: bool = False) -> tuple[Rows, Rows] | None:
    """``a`` and ``b`` on their common seeds and rows: identical rows, or the larger cut down to the
    smaller's when one holds the other; None when they cannot be matched. ``exact``: only when both
    hold the same rows (nothing cut); their seeds are still the common ones (a partial grid where one
    cell has a seed the other lacks yet)."""
    if a is None or b is None:
        return None
    seeds = tuple(s for s in a.seeds if s in b.seeds)
    if not seeds:        # no seed in common: nothing to pair (never seed s of one with seed t of the other)
        return None
    if exact and not (np.array_equal(a.index, b.index) and np.array_equal(a.y, b.y)):
        return None
    a, b = a.with_seeds(seeds), b.with_seeds(seeds)
    if np.array_equal(a.index, b.index):
        pass
    elif np.isin(a.index, b.index).all():
        b = b.take(a.index)
    elif np.isin(b.index, a.index).all():
        a = a.take(b.index)
    else:
        return None
    if not np.array_equal(a.y, b.y):
        return None
    return a, b


# --------------------------------------------------------------------------- entries
def _label(metric: str, classes: list[str]) -> str:
    return {"accuracy": "acc", "balanced_accuracy": "bal"}.get(metric, metric.replace("recall:", "recall "))


def value_part(rows: Rows, metric: str, ref: "Ref | None" = None, interval: bool = True) -> Part:
    """``metric`` of the cell on these rows: the mean over seeds, with its 95 % interval."""
    vals = rows.per_seed(metric)
    mean = None if np.isnan(vals).any() else float(vals.mean())
    if (ref is not None and rows.n_seeds == 1 and not rows.restricted and rows.files[0] == (ref.file, ref.index)
            and ref.metric(metric) is not None):
        mean = float(ref.metric(metric))          # the file's own number (the same, to the last bit)
    lo = hi = None
    w = rows.weights(metric) if metric in DECIDE or metric.startswith("recall:") else None
    if interval and mean is not None and (w is None or np.count_nonzero(w) >= 2) and metric not in ("precision_macro", "recall_macro",
                                                                                "f1_macro"):
        iv = stats.interval(rows.correct, weights=w)
        lo, hi = iv.lo, iv.hi
        info = dict(rows.info(), method=iv.method)
    else:
        info = rows.info()
    f, i = rows.files[0]
    return Part(_label(metric, rows.classes), mean, f, i, metric=metric, lo=lo, hi=hi, rows=info)


def acc_entry(x: "View", ref: "Ref | None") -> Entry:
    """``accuracy ± CI / balanced accuracy ± CI`` (``/ recall of the positive class``) of a cell;
    computed once per View and result (the report shows one cell in several tables), each call
    handing back its own copy."""
    if ref is None:
        return NA
    cache = x.__dict__.setdefault("_acc_cache", {})
    key = (ref.file, ref.index)
    if key not in cache:
        cache[key] = _acc_entry(x, ref)
    e = cache[key]
    return replace(e, parts=[replace(p) for p in e.parts])


def _acc_entry(x: "View", ref: "Ref") -> Entry:
    rows = rows_of(x, ref)
    if rows is None:                     # no per-row data: the file's numbers, without interval
        return Entry([ref.part("accuracy", "acc"), ref.part("balanced_accuracy", "bal")])
    return _rows_entry(x, rows, ref)


def _rows_entry(x: "View", rows: Rows, ref: "Ref") -> Entry:
    """``accuracy / balanced accuracy (/ recall of the positive class)`` of a cell on these rows and seeds."""
    metrics = ["accuracy", "balanced_accuracy"]
    pos = positive_class(x)
    if pos is not None and pos in rows.classes:
        metrics.append("recall:" + pos)
    return Entry([value_part(rows, k, ref) for k in metrics],
                 mark=SUBSET_MARK if rows.subset or rows.restricted else "")


def paired_entries(x: "View", refs: "list[Ref | None]") -> list[Entry]:
    """The cells of a table row whose differences pair them, each on the seeds (and rows) common to all
    of them, so that the row's value columns subtract to its differences. In a partial grid a cell can
    have a seed the others lack yet; :func:`acc_entry` would average it in, and "A 87.0, B 87.2,
    B − A +2.6" would follow. Cells already on the same seeds and rows, or that cannot be matched,
    read as :func:`acc_entry` gives them."""
    rows = [rows_of(x, r) for r in refs]
    have = [r for r in rows if r is not None]
    if len(have) < 2 or len(have) < sum(r is not None for r in refs):
        return [acc_entry(x, r) for r in refs]
    seeds = tuple(s for s in have[0].seeds if all(s in r.seeds for r in have[1:]))
    small = min(have, key=lambda r: r.n_rows)
    same = all(r.seeds == seeds and np.array_equal(r.index, small.index) for r in have)
    if same or not seeds or not all(np.isin(small.index, r.index).all() for r in have):
        return [acc_entry(x, r) for r in refs]
    out = []
    for ref, r in zip(refs, rows):
        if r is None:
            out.append(acc_entry(x, ref))
            continue
        cut = r.with_seeds(seeds)
        out.append(_rows_entry(x, cut.take(small.index) if cut.n_rows > small.n_rows else cut, ref))
    return out


def noise_reason(verdict: str | None, lo: float | None, hi: float | None, p: float | None) -> str:
    """Why a difference whose interval excludes 0 is still "within noise" (the other conditions of
    the rule: the sign-flip test's p, the seeds' signs), as `` (p = .07)``; empty otherwise, when the
    interval itself says so."""
    if verdict != "within noise" or lo is None or hi is None or lo <= 0 <= hi:
        return ""
    if p is not None and p >= stats.ALPHA:
        return f" (p = {p:.2f}".replace("0.", ".", 1) + ")"
    return " (a seed disagrees in sign)"


@dataclass
class Verdict:
    """A − B on the same rows and seeds in ``metric``, with the rows behind it."""

    a: Rows
    b: Rows
    metric: str
    cmp: stats.Comparison
    va: float
    vb: float

    @property
    def verdict(self) -> str:
        """The paired test's verdict, kept only when the difference's interval also excludes 0 (on few
        rows the percentile interval and the sign-flip test can disagree at the margin)."""
        v = self.cmp.verdict
        if v != "within noise" and (self.cmp.lo <= 0 <= self.cmp.hi):
            return "within noise"
        return v

    def noise_reason(self) -> str:
        """:func:`noise_reason` of this verdict."""
        return noise_reason(self.verdict, self.cmp.lo, self.cmp.hi, self.cmp.p)

    @property
    def restricted(self) -> bool:
        return self.a.restricted or self.b.restricted

    def behind(self) -> str:
        """``100 rows of the seeded subset × 1 seed``."""
        where = "the seeded subset" if self.a.subset or self.b.subset else "the test set"
        return (f"{self.a.n_rows} rows of {where} × {self.a.n_seeds} seed{'s' if self.a.n_seeds != 1 else ''}"
                + by_seed(self.cmp.per_seed))

    def words(self) -> str:
        """``bal 80.1 vs 82.3, −2.2 [−6.0, +1.5], within noise``."""
        return (f"{_label(self.metric, self.a.classes)} {pct(self.va)} vs {pct(self.vb)}, {signed(self.cmp.diff)} "
                f"{bounds(self.cmp.lo, self.cmp.hi)}, {self.verdict}")


def compare(x: "View", a: "Ref | None", b: "Ref | None", metric: str | None = None) -> Verdict | None:
    """A against B (paired, :func:`rdm.evaluation.stats.paired_test`) on their common rows and seeds; None when
    either is missing or their rows cannot be matched."""
    metric = metric or decide_on(x)
    pr = pair(rows_of(x, a), rows_of(x, b))
    if pr is None:
        return None
    ra, rb = pr
    cache = x.__dict__.setdefault("_cmp_cache", {})
    key = (ra.files[0], rb.files[0], ra.rows_id, ra.seeds, metric)
    if key not in cache:
        w = ra.weights(metric)
        if w is not None and not np.count_nonzero(w):
            return None
        cmp = stats.paired_test(ra.correct, rb.correct, weights=w)
        cache[key] = Verdict(ra, rb, metric, cmp, float(ra.per_seed(metric).mean()), float(rb.per_seed(metric).mean()))
    return cache[key]


# --------------------------------------------------------------------------- verdicts between methods
def stats_rule(x: "View") -> tuple[float, str]:
    """The grid's equivalence margin (a fraction) and multiplicity adjustment (``[stats]``)."""
    rule_ = getattr(x.plan, "stats", None)
    return (float(getattr(rule_, "equivalence_margin", stats.MARGIN)), str(getattr(rule_, "adjust", "holm")))


ADJUST_WORDS = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "unadjusted"}
ADJUST_SHORT = {"holm": "Holm", "bh": "BH", "none": "unadjusted"}      # beside each adjusted p


def p_txt(p: float) -> str:
    """A p-value as a table prints it: ``.031``, ``.42``, ``<.001``, ``1``."""
    if p < 0.001:
        return "<.001"
    if p >= 0.995:
        return "1"
    return (f"{p:.3f}" if p < 0.1 else f"{p:.2f}").lstrip("0")


def p_is(p: float) -> str:
    """``p = .031``, ``p < .001``: the p-value after its name."""
    t = p_txt(p)
    return f"p < {t[1:]}" if t.startswith("<") else f"p = {t}"


def points(margin: float) -> str:
    """A margin in points: ``3``, ``2.5``."""
    return f"{100 * margin:.1f}".rstrip("0").rstrip(".")


@dataclass
class MethodVerdict:
    """A − B over seeds and rows together in ``metric`` (:func:`rdm.evaluation.stats.method_test`), with
    the rows behind it; ``cmp`` carries the adjusted p-values once its family is adjusted."""

    a: Rows
    b: Rows
    metric: str
    cmp: stats.MethodComparison
    va: float
    vb: float

    @property
    def outcome(self) -> str:
        return self.cmp.outcome

    @property
    def restricted(self) -> bool:
        return self.a.restricted or self.b.restricted

    def behind(self) -> str:
        """``300 rows of the test set × 3 seeds; by seed +4.3, +3.0, +5.0``."""
        where = "the seeded subset" if self.a.subset or self.b.subset else "the test set"
        return (f"{self.a.n_rows} rows of {where} × {self.a.n_seeds} seed{'s' if self.a.n_seeds != 1 else ''}"
                + by_seed(self.cmp.per_seed))

    def part(self, a: "Ref", b: "Ref") -> Part:
        """The difference as report.json keeps it: both sides (their files), the interval, raw p and
        outcome, and under ``test`` the adjusted p, the two one-sided tests, margin and scope."""
        pa = value_part(self.a, self.metric, a, interval=False)
        pb = value_part(self.b, self.metric, b, interval=False)
        c = self.cmp
        rows = dict(self.a.info(), subset=self.a.subset or self.b.subset, restricted=self.restricted,
                    method=f"hierarchical bootstrap, {stats.N_BOOT} resamples: seeds, then rows (paired)",
                    per_seed=list(c.per_seed))
        test = {"p_adj": c.p_adj, "p_tost": c.p_tost, "p_tost_adj": c.p_tost_adj, "margin": c.margin,
                "equivalent": c.equivalent, "adjustment": c.adjustment, "alpha": c.alpha,
                "scope": "methods" if c.methods else "networks", "min_seeds": stats.MIN_SEEDS}
        return Part("diff", pa.value - pb.value, minus=(pa, pb), metric=self.metric, lo=c.lo, hi=c.hi, p=c.p,
                    verdict=self.outcome, rows=rows, test=test)


def method_compare(x: "View", a: "Ref | None", b: "Ref | None", metric: str | None = None) -> MethodVerdict | None:
    """A against B over their common seeds and rows, as a verdict between methods (unadjusted: see
    :func:`adjust_verdicts`); None when either is missing or their rows cannot be matched."""
    metric = metric or decide_on(x)
    pr = pair(rows_of(x, a), rows_of(x, b))
    if pr is None:
        return None
    ra, rb = pr
    margin, _ = stats_rule(x)
    cache = x.__dict__.setdefault("_method_cache", {})
    key = (ra.files[0], rb.files[0], ra.rows_id, ra.seeds, metric, margin)
    if key not in cache:
        w = ra.weights(metric)
        if w is not None and not np.count_nonzero(w):
            return None
        cmp = stats.method_test(ra.correct, rb.correct, weights=w, margin=margin)
        cache[key] = MethodVerdict(ra, rb, metric, cmp, float(ra.per_seed(metric).mean()),
                                   float(rb.per_seed(metric).mean()))
    return cache[key]


def adjust_verdicts(x: "View", verdicts: list[MethodVerdict]) -> list[MethodVerdict]:
    """One family's verdicts (a claims table) with their p-values adjusted together by the grid's rule."""
    _, how = stats_rule(x)
    adjusted = stats.adjust_family([v.cmp for v in verdicts], how)
    return [replace(v, cmp=c) for v, c in zip(verdicts, adjusted)]


def method_rule(x: "View") -> str:
    """The rule of the verdicts between methods, as printed under the claims table."""
    margin, how = stats_rule(x)
    m = points(margin)
    w = ("" if decide_on(x) == "accuracy" else
         " Rows are weighted 1/(classes × rows of their class), so the verdicts are on balanced accuracy.")
    return (f"Verdicts between methods on {METRIC_WORDS[decide_on(x)]}: A − B over seeds and rows together "
            f"[95 % interval of a hierarchical bootstrap, {stats.N_BOOT} resamples: seeds drawn first, then rows, "
            "the same rows for A and B]. p: two-sided bootstrap p of A − B = 0; TOST: two one-sided tests of "
            f"|A − B| ≥ {m} points (the grid's equivalence margin); both adjusted across this table by "
            f"{ADJUST_WORDS[how]} (raw, then adjusted). better / worse: adjusted p < {stats.ALPHA:g} and the "
            f"interval above / below 0; equivalent within {m} points: otherwise, adjusted TOST p < "
            f"{stats.ALPHA:g}; otherwise cannot tell. A verdict between two methods needs each model trained "
            f"with ≥ {stats.MIN_SEEDS} seeds; with fewer it compares two networks ({stats.TWO_NETWORKS})." + w)


def diff_entry(x: "View", a: "Ref | None", b: "Ref | None", metric: str | None = None) -> Entry:
    """A − B in the deciding metric on the same rows, its interval and verdict (n/a when rows differ)."""
    if a is None or b is None:
        return NA
    v = compare(x, a, b, metric)
    if v is None:
        return Entry([], na=ROWS_DIFFER)
    pa, pb = value_part(v.a, v.metric, a, interval=False), value_part(v.b, v.metric, b, interval=False)
    d = Part("diff", pa.value - pb.value, minus=(pa, pb), metric=v.metric, lo=v.cmp.lo, hi=v.cmp.hi, p=v.cmp.p,
             verdict=v.verdict, rows=dict(v.a.info(), subset=v.a.subset or v.b.subset, restricted=v.restricted,
                                          method="paired sign-flip test, bootstrap over rows" +
                                          (", every seed's sign" if v.a.n_seeds > 1 else ""),
                                          **({"per_seed": list(v.cmp.per_seed)} if v.a.n_seeds > 1 else {})))
    return Entry([d], mark=SUBSET_MARK if v.a.subset or v.b.subset or v.restricted else "")


def rows_note(x: "View", entries) -> str:
    """The rows and seeds behind a table's cells (for its footnote)."""
    seen: dict[tuple, int] = {}
    for e in entries:
        for p in getattr(e, "parts", []):
            r = p.rows
            if r:
                k = (r["n_rows"], r["n_seeds"], r["subset"], r.get("restricted", False))
                seen[k] = seen.get(k, 0) + 1
    if not seen:
        return ""
    bits = []
    for (n, k, sub, res), _ in sorted(seen.items(), key=lambda t: (-t[0][0], t[0][1])):
        where = "seeded subset (†)" if sub else ("whole test set cut to the subset's rows (†)" if res else "whole test set")
        bits.append(f"{n} rows × {k} seed{'s' if k != 1 else ''} ({where})")
    return ("Rows × seeds behind the cells: " + "; ".join(dict.fromkeys(bits)) +
            ". ±: half the 95 % interval (a bootstrap over rows, combined with t over seeds when there are "
            "two or more).")


def side_by_side(x: "View", refs: list["Ref | None"]) -> list[Rows | None] | None:
    """The cells of one table row on the same rows: each cut to the smallest cell's rows when that one
    is held by all; None when the row's cells already share their rows (nothing to cut) or cannot be
    matched (then each cell is shown on its own rows)."""
    rows = [rows_of(x, r) for r in refs]
    have = [r for r in rows if r is not None]
    if len(have) < 2 or all(np.array_equal(r.index, have[0].index) for r in have):
        return None
    small = min(have, key=lambda r: r.n_rows)
    if not all(np.isin(small.index, r.index).all() for r in have) or len(have) < sum(r is not None for r in refs):
        return None
    return [None if r is None else (r.take(small.index) if r.n_rows > small.n_rows else r) for r in rows]


def metric_entries(x: "View", ref: "Ref | None", keys: list[tuple[str, str]], rows: Rows | None = None) -> list[Entry]:
    """One entry per (metric, short name) of a cell; ``rows``: the cell cut to a row's common rows."""
    if ref is None:
        return [NA] * len(keys)
    rows = rows or rows_of(x, ref)
    if rows is None:
        return [Entry([ref.part(k, short)]) for k, short in keys]
    mark = SUBSET_MARK if rows.subset or rows.restricted else ""
    out = []
    for k, short in keys:
        p = value_part(rows, k, ref, interval=k in DECIDE)
        p.key = short
        out.append(Entry([p], mark=mark))
    return out


def mean_and_half(x: "View", ref: "Ref", metric: str = "accuracy",
                  interval: bool = True) -> tuple[float | None, float | None]:
    """A cell's ``metric`` (mean over its seeds) and half its 95 % interval (None without per-row
    data, or when ``interval`` is False)."""
    rows = rows_of(x, ref)
    if rows is None:
        return ref.metric(metric), None
    p = value_part(rows, metric, ref, interval=interval)
    return p.value, (None if p.lo is None else (p.hi - p.lo) / 2)


def seed_coverage(x: "View") -> dict[str, int]:
    """How many of the plan's result cells have their metrics file for k of the seeds they are planned
    for (``"3"``, ``"2"``, … ``"0"``: cells planned for every seed of the run), and the cells the plan
    runs on the first seed only (certificates, the noise-trained models): ``"once"`` of them, ``"once_present"``
    there. A partial grid says here which cells have fewer seeds than planned."""
    k_all = len(x.plan.seeds)
    out = {str(k): 0 for k in range(k_all, -1, -1)}
    out.update(once=0, once_present=0)
    first = x.plan.seeds[0]
    for c in x.p.cells:
        if c.seed != first:
            continue
        cells = x.p.seeds_of(c)
        have = sum(x.r.exists(s) for s in cells)
        if len(cells) < k_all:
            out["once"] += 1
            out["once_present"] += have > 0
        else:
            out[str(have)] += 1
    return out


def coverage_words(m: str, counts: dict[str, int]) -> str:
    """``lung: 3 seeds 0, 2 seeds 16, 1 seed 305, none 298 (of 619 cells); 16 on the first seed only
    by design, 10 of them present``."""
    ks = sorted((int(k) for k in counts if k.isdigit()), reverse=True)
    bits = [f"{j} seed{'s' if j != 1 else ''} {counts[str(j)]}" for j in ks if j > 0]
    txt = f"{m}: " + ", ".join(bits) + f", none {counts['0']} (of {sum(counts[str(j)] for j in ks)} cells)"
    if counts.get("once"):
        txt += f"; {counts['once']} on the first seed only by design, {counts['once_present']} of them present"
    return txt


def best_ref(x: "View", refs: "list[Ref | None]") -> "Ref | None":
    """The most accurate of ``refs`` (the best adversarial training of a cell) in the metric the
    modality's verdicts decide on, mean over the cell's seeds: lung's best is the one with the best
    balanced accuracy, the metric it is then compared in."""
    metric = decide_on(x)
    scored = [(mean_and_half(x, r, metric, interval=False)[0], i, r) for i, r in enumerate(refs) if r is not None]
    scored = [(v, i, r) for v, i, r in scored if v is not None]
    return max(scored, key=lambda t: (t[0], -t[1]))[2] if scored else None


def said(x: "View", a: "Ref | None", b: "Ref | None") -> str:
    """The verdict of A over B as a clause for the findings: ``balanced accuracy 80.1 % vs 78.7 %, +1.4
    points [−2.6, +5.4]: within noise on 1622 rows of the test set × 1 seed``; or why there is none."""
    if a is None or b is None:
        return ""
    v = compare(x, a, b)
    if v is None:
        return "no verdict: their rows cannot be matched"
    txt = (f"{METRIC_WORDS[v.metric]} {pct(v.va)} % vs {pct(v.vb)} %, {signed(v.cmp.diff)} points "
           f"{bounds(v.cmp.lo, v.cmp.hi)}: {v.verdict}{v.noise_reason()} on {v.behind()}")
    pos = positive_class(x)
    if pos is not None:
        r = compare(x, a, b, "recall:" + pos)
        if r is not None:
            txt += f"; {pos} recall {pct(r.va)} % vs {pct(r.vb)} %"
    return txt


# --------------------------------------------------------------------------- entries from a result alone
def ref_acc_entry(ref: Ref | None) -> Entry:
    """``accuracy ± CI / balanced accuracy ± CI`` of a result over its seeds (``n/a`` when missing);
    see :func:`acc_entry`."""
    if ref is None:
        return NA
    if ref.view is None:
        return Entry([ref.part("accuracy", "acc"), ref.part("balanced_accuracy", "bal")])
    return acc_entry(ref.view, ref)


def ref_diff_entry(a: Ref | None, b: Ref | None, key: str | None = None) -> Entry:
    """A − B on the same rows and seeds with its verdict (:func:`diff_entry`)."""
    if a is None or b is None:
        return NA
    view = a.view or b.view
    if view is None:
        return Entry([], na=ROWS_DIFFER)
    return diff_entry(view, a, b, key)
