"""The white-box cost estimate: which rows an expensive attack can afford (``limit = "auto"``).

An attack's cost per row is its forward+backward passes (:meth:`rdm.attacks.registry.Attack.passes`:
PGD steps × restarts, APGD-T steps × targets, Square queries × a forward's share, the ``aa`` cascade
every row through every stage — an upper bound on the passes, since each stage runs only on the rows
left; the seconds are not bounded, since the throughput is one machine's under one load), plus
the evaluation's own two forwards (clean and attacked image). A job (one model, one attack, its ε)
costs that per ε × rows; at the grid's ``throughput`` (forward+backward passes of one row per
second, on the machine that runs the grid) it takes ``passes × rows / throughput`` seconds. An
attack with ``limit = "auto"`` runs on the whole test set when that fits ``budget_hours``, else on
the seeded subset — decided per modality, the same rows for every model, and the cell says which.

``[evaluate] cost`` in the grid::

    cost = { throughput = 100, budget_hours = 1.0, subset_rows = 300,
             test_rows = { lung = 1622, brain = 307, leukemia = 652 } }

``test_rows`` (a number, or one per modality) and ``subset_rows`` are the rows the estimate assumes:
the plan is written before the data are prepared, so it cannot count them. ``throughput`` too may be
one per modality (``{ lung = 650, brain = 240 }``; a modality it does not name gets 100): a pass of a
1×52×52 lung patch costs a fraction of a 3×64×64 brain slice's.
``python -m rdm.pipeline.plan --cost`` prints every white-box job's estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from rdm.errors import RdmError

#: what the estimate assumes when the grid has no ``[evaluate] cost``
DEFAULTS = {"throughput": 100.0, "budget_hours": 1.0, "subset_rows": 300, "test_rows": 1000,
            "train_rows": 3000, "train_epochs": 25, "train_pass": 2.0}


@dataclass(frozen=True)
class Estimate:
    """One job's estimate: passes per row (all its ε), rows, hours, and whether it fits."""

    passes: float | None         # None: the attack does not state its cost
    rows: int
    hours: float | None
    fits: bool


@dataclass(frozen=True)
class Cost:
    throughput: float
    budget_hours: float
    subset_rows: int
    test_rows: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    default_rows: int = DEFAULTS["test_rows"]
    throughputs: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    train_rows: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    default_train_rows: int = DEFAULTS["train_rows"]
    train_epochs: int = DEFAULTS["train_epochs"]
    train_pass: float = DEFAULTS["train_pass"]

    @classmethod
    def from_grid(cls, d: dict[str, Any] | None, where: str = "grid") -> "Cost":
        d = {**DEFAULTS, **(d or {})}
        unknown = sorted(set(d) - set(DEFAULTS))
        if unknown:
            raise RdmError(f"{where}: [evaluate] cost has no key {', '.join(unknown)} "
                           f"(it takes {', '.join(DEFAULTS)})")
        try:
            budget, sub = float(d["budget_hours"]), int(d["subset_rows"])
            t = d["throughput"]
            thrs = {str(k): float(v) for k, v in t.items()} if isinstance(t, dict) else {}
            thr = float(DEFAULTS["throughput"] if isinstance(t, dict) else t)
            rows = d["test_rows"]
            per = {str(k): int(v) for k, v in rows.items()} if isinstance(rows, dict) else {}
            default = int(DEFAULTS["test_rows"] if isinstance(rows, dict) else rows)
            trows = d["train_rows"]
            tper = {str(k): int(v) for k, v in trows.items()} if isinstance(trows, dict) else {}
            tdefault = int(DEFAULTS["train_rows"] if isinstance(trows, dict) else trows)
            epochs, tpass = int(d["train_epochs"]), float(d["train_pass"])
        except (TypeError, ValueError, AttributeError):
            raise RdmError(f"{where}: [evaluate] cost: throughput, budget_hours, subset_rows, test_rows, train_rows, "
                           "train_epochs and train_pass must be numbers (throughput, test_rows and train_rows may be "
                           "one per modality)") from None
        if not thr > 0 or not all(v > 0 for v in thrs.values()) or budget < 0 or sub < 1 or default < 1 \
                or any(v < 1 for v in (*per.values(), *tper.values(), tdefault, epochs)) or not tpass > 0:
            raise RdmError(f"{where}: [evaluate] cost: throughput must be > 0, train_pass > 0, budget_hours ≥ 0, "
                           "rows and epochs ≥ 1")
        return cls(thr, budget, sub, per, default, thrs, tper, tdefault, epochs, tpass)

    def rows_of(self, m: str, split: str) -> int:
        """The rows the estimate assumes for a split (train, val: a quarter of the train rows, an upper bound, test, test-sub)."""
        if split == "test-sub":
            return self.subset_rows
        if split == "train":
            return self.train_rows.get(m, self.default_train_rows)
        if split == "val":
            return max(1, self.train_rows.get(m, self.default_train_rows) // 4)
        return self.test_rows.get(m, self.default_rows)

    def hours(self, passes: float, m: str | None) -> float:
        """Hours of ``passes`` forward+backward passes of one row at modality ``m``'s throughput."""
        return passes / self.throughput_of(m) / 3600

    def rows(self, m: str, subset: bool) -> int:
        return self.subset_rows if subset else self.test_rows.get(m, self.default_rows)

    def throughput_of(self, m: str | None) -> float:
        """Forward+backward passes of one row per second for modality ``m``."""
        return self.throughputs.get(m, self.throughput) if m is not None else self.throughput

    def estimate(self, attack: Any, eps: Sequence[float], classes: int, rows: int, m: str | None = None) -> Estimate:
        """The job that runs plan attack ``attack`` (a :class:`~rdm.pipeline.config.Attack`) at each ε
        on ``rows`` rows of a ``classes``-class model of modality ``m`` (its throughput)."""
        p = passes(attack, classes)
        if p is None:
            return Estimate(None, rows, None, True)
        total = (p + 2 * forward()) * max(1, len(eps))
        hours = total * rows / self.throughput_of(m) / 3600
        return Estimate(total, rows, hours, hours <= self.budget_hours)

    def on_subset(self, attack: Any, eps: Sequence[float], classes: int, m: str) -> tuple[bool, Estimate]:
        """Whether a ``limit = "auto"`` attack runs on the subset in modality ``m``, and the whole
        test set's estimate that decided it."""
        est = self.estimate(attack, eps, classes, self.rows(m, False), m)
        return not est.fits, est


def forward() -> float:
    from rdm.attacks.registry import FORWARD

    return FORWARD


def passes(attack: Any, classes: int) -> float | None:
    """Forward+backward passes of one row for a plan attack (the registry's own count)."""
    from rdm.attacks.registry import get
    from rdm.pipeline.labels import PAPER_EPS

    spec = get(attack.kind).make((attack.eps or (PAPER_EPS,))[0], **dict(attack.params))
    return spec.attack().passes(classes)
