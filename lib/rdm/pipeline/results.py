"""Metrics looked up by cell: the plan's :class:`~rdm.pipeline.plan.Cell` says which file and which
result of it; this module reads the files once, remembers what is missing or unreadable, and hands
back a :class:`Ref` (the result and where it came from). It never builds a file name itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rdm.pipeline.labels import fmt_eps, same_eps
from rdm.pipeline.config import Attack
from rdm.pipeline.plan import Cell, ModalityPlan, Pick, Plan, matched_path
from rdm.pipeline.tables import Part


@dataclass
class Ref:
    """One result of a metrics file: the file, its index there, the result, and the cell it is."""

    file: str
    index: int
    result: dict[str, Any]
    cell: Cell | None = None
    view: Any = None          # the View that looked it up (its rows and seeds: rdm.pipeline.verdicts)

    def metric(self, key: str) -> float | None:
        m = self.result.get("metrics") or {}
        if key in m:
            return m[key]
        if key.startswith("recall:"):          # one class's recall (sensitivity): recall:nodule
            return ((m.get("per_class") or {}).get(key[7:]) or {}).get("recall")
        return (m.get("adversarial") or {}).get(key)

    def part(self, key: str, short: str | None = None) -> Part:
        return Part(short or key, self.metric(key), self.file, self.index, metric=key)

    @property
    def n(self) -> int:
        return int((self.result.get("metrics") or {}).get("n", 0))


def _matches(pick: Pick) -> tuple[Callable[[dict], bool], str]:
    """The result a pick names, and words for it when absent."""
    if pick.by == "set":
        return (lambda r: Path(str(r.get("set", ""))).name == pick.value), str(pick.value)
    if pick.by == "eps":
        return (lambda r: same_eps((r.get("attack") or {}).get("eps"), pick.value)), f"ε={fmt_eps(pick.value)}"
    if pick.by == "clean":
        return (lambda r: r.get("protocol") == "clean"), "the clean rows"
    if pick.by == "attacked":
        return (lambda r: r.get("protocol") == "white-box" and bool(r.get("attack"))), "the white-box attack"
    raise ValueError(f"unknown pick {pick.by!r}")


class Results:
    """The metrics files under WORK, loaded once; missing and unreadable ones remembered in order, by
    their path relative to WORK. ``shipped``: the metrics files by that path
    (:func:`rdm.pipeline.shipped.load`), read instead of WORK's files."""

    def __init__(self, work: str | Path, shipped: dict[str, Any] | None = None):
        self.work = Path(work)
        self.shipped = shipped
        self.docs: dict[Path, dict | None] = {}
        self.missing: list[str] = []
        self.problems: list[str] = []

    def path(self, rel: str) -> Path:
        return self.work / rel

    def has(self, rel: str) -> bool:
        return rel in self.shipped if self.shipped is not None else self.path(rel).exists()

    def exists(self, cell: Cell | None) -> bool:
        return cell is not None and self.has(cell.output)

    def json(self, rel: str) -> Any:
        """The JSON file ``rel`` (None, and remembered, when missing or not JSON)."""
        if not self.has(rel):
            self.missing.append(rel)
            return None
        if self.shipped is not None:
            return self.shipped[rel]
        try:
            return json.loads(self.path(rel).read_text())
        except (ValueError, OSError) as e:
            self.problems.append(f"{rel}: unreadable ({e})")
            return None

    def doc(self, rel: str) -> dict | None:
        p = self.path(rel)
        if p not in self.docs:
            d = self.json(rel)
            if d is not None and not (isinstance(d, dict) and isinstance(d.get("results"), list)):
                self.problems.append(f"{rel}: unreadable (no results list)")
                d = None
            self.docs[p] = d
        return self.docs[p]

    def get(self, cell: Cell | None) -> Ref | None:
        """The cell's result; None when the grid has no such cell or its file is missing or lacks it."""
        if cell is None:
            return None
        d = self.doc(cell.output)
        if d is None:
            return None
        pred, what = _matches(cell.pick)
        for i, r in enumerate(d["results"]):
            if pred(r):
                return Ref(str(self.path(cell.output)), i, r, cell)
        self.problems.append(f"{cell.output}: holds no result for {what}")
        return None

    def matched(self, m: str, seed: int) -> dict | None:
        """``matched.json`` of a modality and seed (None, and remembered, when missing or unreadable)."""
        d = self.json(matched_path(m, seed))
        return d if isinstance(d, dict) else None


class View:
    """One modality as the tables read it: the plan's cells and their results side by side."""

    def __init__(self, plan: Plan, results: Results, m: str, facts: dict[str, Any] | None = None):
        self.plan, self.r, self.m = plan, results, m
        #: what the sets, checkpoints and audit say (:func:`rdm.pipeline.shipped.collect`)
        self.facts: dict[str, Any] = facts or {}
        if facts is not None:
            # the seeded subset's rows in the test set, as rdm.pipeline.verdicts would read them from the sets
            sm = facts.get("subset_map")
            import numpy as np

            self.__dict__["_subset_map"] = None if sm is None else np.asarray(sm, dtype=np.int64)
        self.p: ModalityPlan = plan.modality(m)
        self.paper: dict[str, Any] = plan.paper.get(m, {})
        self.matched: dict | None = results.matched(m, plan.seeds[0])   # the first seed's matched ε
        self.subset_n: int | None = None          # rows of the seeded subset (set by the report)

    # ----- the grid
    @property
    def models(self) -> list[str]:
        return self.plan.eval_models

    @property
    def defended(self) -> list[str]:
        return self.plan.defended

    @property
    def advtrain(self) -> list[str]:
        return self.plan.advtrain

    def matched_pair(self) -> tuple[str, list[str]] | None:
        """Both sides trained at the matched ε: the RDMAA fine-tuned from a matched-ε DCAE and the
        adversarial training at the matched ε (None unless the grid trains both)."""
        ms = self.plan.matched_trained
        r = next((m for m in ms if self.plan.models[m].recipe == "finetune"), None)
        at = [m for m in ms if m.startswith("advtrain")]
        return (r, at) if r is not None and at else None

    @property
    def paper_eps(self) -> list[float]:
        return self.plan.paper_eps

    @property
    def sweep_eps(self) -> list[float]:
        return self.plan.sweep_eps

    # ----- results by meaning (None: missing, or not in the grid)
    def get(self, cell: Cell | None) -> Ref | None:
        ref = self.r.get(cell)
        if ref is not None:
            ref.view = self
        return ref

    def clean(self, model: str) -> Ref | None:
        return self.get(self.p.clean(model))

    def transfer(self, model: str, a: Attack, eps: float) -> Ref | None:
        return self.get(self.p.transfer(model, a, eps))

    def whitebox(self, model: str, a: Attack, eps: float) -> Ref | None:
        return self.get(self.p.whitebox(model, a, eps))

    def sweep(self, model: str, kind: str, eps: float) -> Ref | None:
        return self.get(self.p.sweep(model, kind, eps))

    def sweep_clean(self, model: str, kind: str) -> Ref | None:
        return self.get(self.p.sweep_clean(model, kind))

    def sweep_transfer(self, model: str, kind: str, eps: float) -> Ref | None:
        return self.get(self.p.sweep_transfer(model, kind, eps))

    def matched_ref(self, model: str, kind: str, protocol: str) -> Ref | None:
        return self.get(self.p.matched(model, kind, protocol))

    def twin(self, model: str, a: Attack, eps: float) -> tuple[Ref | None, bool]:
        """The white-box twin of transfer attack ``a`` at ε on ``model``: (result, defined in the grid)."""
        cell = self.p.whitebox_of(model, a, eps)
        return self.get(cell), cell is not None


# --------------------------------------------------------------------------- entries from results
