"""``python -m rdm.report``: REPORT.md, the paper's tables (CSV + LaTeX), figures and report.json.

Reads the experiment grid (``experiments/grid.toml``) and what the graph wrote under
``WORK/<modality>/`` (layout: :mod:`rdm.grid`): every metrics JSON, ``matched.json``,
checkpoint metadata, the sets' labels, and ``WORK/timings.jsonl``. It never runs a model.

Every number a table shows is a number from a metrics file (formatted as a percentage
with one decimal), or a difference of two such numbers, or the paper's number from the
grid's ``[paper.<modality>]``. ``report.json`` keeps each shown number with the file and
the result it came from, so a test can check them. A cell whose metrics file is missing
reads ``n/a`` and the file is listed at the end; ``—`` marks a cell the grid does not define.

Outputs (all written atomically) under RESULTS/::

    REPORT.md  report.json  tables/<name>.csv  tables/<name>.tex  figures/*.png|pdf
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .atomic import atomic_output
from .errors import RdmError
from .grid import fmt_eps, for_mode, load_grid, matched_apgd_steps

PAPER_EPS = 0.005  # the ε of the paper's Tables III–XI

LABELS = {
    "baseline": "No defence",
    "rdmaa": "RDMAA",
    "purified": "Purifier",
    "advtrain-fgsm": "AdvTrain-FGSM",
    "advtrain-pgd": "AdvTrain-PGD",
    "advtrain-online": "AdvTrain-online",
}
TABLE_NO = {"lung": ("III", "VI", "IX"), "leukemia": ("IV", "VII", "X"), "brain": ("V", "VIII", "XI")}
MODALITY_TITLE = {"lung": "Lung nodule (CT patches; the paper's \"X-ray\")", "leukemia": "Acute leukemia (microscopy)",
                  "brain": "Brain tumour (MRI)"}
DEFENDED_ORDER = ["rdmaa", "purified", "advtrain-fgsm", "advtrain-pgd", "advtrain-online"]
MASK_TOL = 0.02   # accuracy changes below 2 points are not called a rise or a fall


def beyond_noise(hi: "Ref", lo: "Ref") -> bool:
    """``hi``'s accuracy exceeds ``lo``'s by more than 2 points and two standard errors (the cells
    may be on different rows: the full test set and the seeded subset)."""
    a, b = hi.metric("accuracy"), lo.metric("accuracy")
    if a is None or b is None:
        return False
    se = math.sqrt(a * (1 - a) / max(hi.n, 1) + b * (1 - b) / max(lo.n, 1))
    return a - b > max(MASK_TOL, 2 * se)


def rows_of(r: "Ref") -> str:
    """The clean rows a result was computed on (file name of the set, or of an adversarial set's source)."""
    res = r.result
    return Path(str(res.get("source") or res.get("set") or "")).name


def same_rows(a: "Ref", b: "Ref") -> bool:
    """Both results are on the same clean rows (the whole test set, or both on the seeded subset)."""
    return rows_of(a) == rows_of(b) and a.n == b.n


def label(model: str) -> str:
    return LABELS.get(model, model)


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def same_eps(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-9 + 1e-6 * abs(float(b))


def eps_txt(e: float) -> str:
    s = fmt_eps(e)
    return s[1:] if s.startswith("0.") else s


# --------------------------------------------------------------------------- cells
@dataclass
class Part:
    """One shown number: from a metrics file (``file``, ``index``, ``key``), the paper, or a difference."""

    key: str
    value: float | None
    file: str | None = None
    index: int | None = None
    paper: bool = False
    minus: tuple["Part", "Part"] | None = None   # value = minus[0] − minus[1]
    count: bool = False                            # an integer (rows), not a rate
    metric: str | None = None                      # the key in the metrics file ("accuracy", ...)

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        if self.count:
            return f"{int(self.value)}"
        if self.paper:
            return f"{100 * self.value:.0f}"
        if self.minus is not None:
            return f"{100 * self.value:+.1f}"
        return pct(self.value)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "value": self.value, "text": self.text()}
        if self.paper:
            d["source"] = "paper"
        elif self.minus is not None:
            d["source"] = "difference"
            d["of"] = [self.minus[0].to_json(), self.minus[1].to_json()]
        elif self.file is not None:
            d.update(source="metrics", file=self.file, index=self.index, metric=self.metric)
        return d


@dataclass
class Cell:
    parts: list[Part] = field(default_factory=list)
    na: str = "—"          # text when there are no parts: "—" not in the grid, "n/a" missing

    def text(self) -> str:
        if not self.parts:
            return self.na
        return " / ".join(p.text() for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text(), "parts": [p.to_json() for p in self.parts]}


DASH = Cell()
NA = Cell(na="n/a")


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, lab: str, cells: list[Cell]) -> None:
        if len(cells) != len(self.columns) - 1:
            raise AssertionError(f"{self.name}: row {lab!r} has {len(cells)} cells for {len(self.columns) - 1} columns")
        self.rows.append((lab, cells))

    # ----- renderings
    def markdown(self) -> str:
        head = "| " + " | ".join(self.columns) + " |"
        sep = "|" + "|".join(["---"] + ["---:"] * (len(self.columns) - 1)) + "|"
        body = ["| " + " | ".join([lab] + [c.text() for c in cells]) + " |" for lab, cells in self.rows]
        out = [f"**{self.title}**", "", head, sep, *body]
        if self.notes:
            out += [""] + [f"<sub>{n}</sub>  " for n in self.notes]
        return "\n".join(out) + "\n"

    def csv(self) -> str:
        # one CSV column per shown number: "RDMAA transfer acc", "RDMAA transfer bal", ...
        width = [max((len(cells[i].parts) for _, cells in self.rows), default=1) for i in range(len(self.columns) - 1)]
        keys = []
        for i, col in enumerate(self.columns[1:]):
            ks = next((([p.key for p in cells[i].parts]) for _, cells in self.rows if len(cells[i].parts) == width[i]), [])
            keys.append([f"{col} {k}" if width[i] > 1 else col for k in ks] or [col])
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([self.columns[0]] + [k for ks in keys for k in ks])
        for lab, cells in self.rows:
            row = [lab]
            for i, c in enumerate(cells):
                n = len(keys[i])
                vals = [p.text() for p in c.parts] if c.parts else [c.na] * n
                row += (vals + [c.na] * n)[:n]
            w.writerow(row)
        return buf.getvalue()

    def latex(self) -> str:
        cols = "l" + "r" * (len(self.columns) - 1)
        lines = [f"% {self.title}", "% needs \\usepackage{booktabs}", "\\begin{tabular}{" + cols + "}", "\\toprule",
                 " & ".join(tex(c) for c in self.columns) + " \\\\", "\\midrule"]
        for lab, cells in self.rows:
            lines.append(" & ".join([tex(lab)] + [tex(c.text()) for c in cells]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "notes": self.notes,
                "rows": [{"label": lab, "cells": [c.to_json() for c in cells]} for lab, cells in self.rows]}


_TEX = [("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"),
        ("ε", "$\\varepsilon$"), ("α", "$\\alpha$"), ("×", "$\\times$"), ("—", "---"), ("→", "$\\to$"),
        ("−", "$-$"), ("≤", "$\\le$"), ("≥", "$\\ge$"), ("∞", "$\\infty$")]


def tex(s: str) -> str:
    for a, b in _TEX:
        s = s.replace(a, b)
    return s


# --------------------------------------------------------------------------- the store
@dataclass
class Ref:
    file: str
    index: int
    result: dict[str, Any]

    def metric(self, key: str) -> float | None:
        m = self.result.get("metrics") or {}
        if key in m:
            return m[key]
        return (m.get("adversarial") or {}).get(key)

    def part(self, key: str, short: str | None = None) -> Part:
        return Part(short or key, self.metric(key), self.file, self.index, metric=key)

    @property
    def n(self) -> int:
        return int((self.result.get("metrics") or {}).get("n", 0))


class Store:
    """Metrics files under WORK/<modality>/metrics, loaded once; missing ones remembered in order."""

    def __init__(self, work: Path):
        self.work = Path(work)
        self.docs: dict[Path, dict | None] = {}
        self.missing: list[str] = []
        self.problems: list[str] = []

    def path(self, m: str, model: str, cell: str) -> Path:
        return self.work / m / "metrics" / model / f"{cell}.json"

    def doc(self, m: str, model: str, cell: str) -> dict | None:
        p = self.path(m, model, cell)
        if p not in self.docs:
            d = None
            if not p.exists():
                self.missing.append(str(p))
            else:
                try:
                    d = json.loads(p.read_text())
                    if not isinstance(d.get("results"), list):
                        raise ValueError("no results list")
                except (ValueError, OSError, AttributeError) as e:
                    self.problems.append(f"{p}: unreadable ({e})")
                    d = None
            self.docs[p] = d
        return self.docs[p]

    def find(self, m: str, model: str, cell: str, pred: Callable[[dict], bool] = lambda r: True,
             what: str = "") -> Ref | None:
        d = self.doc(m, model, cell)
        if d is None:
            return None
        for i, r in enumerate(d["results"]):
            if pred(r):
                return Ref(str(self.path(m, model, cell)), i, r)
        self.problems.append(f"{self.path(m, model, cell)}: holds no result for {what or 'the cell asked'}")
        return None


def _set_is(name: str) -> Callable[[dict], bool]:
    return lambda r: Path(str(r.get("set", ""))).name == name


def _eps_is(eps: float) -> Callable[[dict], bool]:
    return lambda r: same_eps((r.get("attack") or {}).get("eps"), eps)


# --------------------------------------------------------------------------- the experiment
class Exp:
    """One modality's cells, looked up by meaning."""

    def __init__(self, grid: dict, store: Store, m: str):
        self.g, self.s, self.m = grid, store, m
        ev = grid["evaluate"]
        self.models: list[str] = list(ev["models"])
        self.defended = [x for x in DEFENDED_ORDER if x in self.models] + \
                        [x for x in self.models if x not in DEFENDED_ORDER and x != "baseline"]
        self.advtrain = [x for x in self.defended if x.startswith("advtrain")]
        self.paper_eps: list[float] = [float(e) for e in ev.get("paper_eps", [PAPER_EPS])]
        self.sweep: list[float] = [float(e) for e in ev.get("sweep_eps", [])]
        self.whitebox: list[dict] = list(ev.get("whitebox", []))
        self.apgd_steps = matched_apgd_steps(ev)
        self.test_attacks = [a for a in grid["attacks"] if "test" in a.get("splits", ["test"])]
        self.paper: dict[str, Any] = grid.get("paper", {}).get(m, {})
        mp = store.work / m / "matched.json"
        self.matched: dict | None = None
        if mp.exists():
            try:
                self.matched = json.loads(mp.read_text())
            except ValueError:
                store.problems.append(f"{mp}: not JSON")
        else:
            store.missing.append(str(mp))
        self.subset_n: int | None = None          # rows of test-sub.h5 (set by the report)
        self.sweep_on_subset = bool(ev.get("sweep_on_subset"))

    def wb_eps(self, w: dict) -> list[float]:
        return [float(e) for e in w.get("eps", self.paper_eps)]

    # ----- lookups (None: missing)
    def clean(self, model: str) -> Ref | None:
        return self.s.find(self.m, model, "clean", lambda r: r.get("protocol") == "clean", "the clean test set")

    def transfer(self, model: str, attack: str, eps: float) -> Ref | None:
        name = f"test-{attack}-{fmt_eps(eps)}.h5"
        return self.s.find(self.m, model, "transfer", _set_is(name), name)

    def wb(self, model: str, wbname: str, eps: float) -> Ref | None:
        return self.s.find(self.m, model, f"wb-{wbname}", _eps_is(eps), f"ε={fmt_eps(eps)}")

    def sweep_wb(self, model: str, kind: str, eps: float) -> Ref | None:
        return self.s.find(self.m, model, f"sweep-wb-{kind}", _eps_is(eps), f"ε={fmt_eps(eps)}")

    def sweep_clean(self, model: str, kind: str) -> Ref | None:
        """No attack, on the rows the white-box sweep ran on (the subset when ``sweep_on_subset``)."""
        if not self.sweep_on_subset:
            return self.clean(model)
        return self.s.find(self.m, model, f"sweep-wb-{kind}", lambda r: r.get("protocol") == "clean",
                           "the clean rows of the sweep")

    def sweep_tr(self, model: str, kind: str, eps: float) -> Ref | None:
        if model == "baseline":   # crafted on the baseline: for it the transfer sweep IS white-box
            return None
        name = f"test-sweep-{kind}-{fmt_eps(eps)}.h5"
        return self.s.find(self.m, model, "sweep-transfer", _set_is(name), name)

    def matched_cell(self, model: str, cell: str) -> Ref | None:
        if cell.startswith("matched-transfer-"):
            kind = cell.rsplit("-", 1)[1]
            return self.s.find(self.m, model, "matched-transfer", _set_is(f"test-matched-{kind}.h5"), kind)
        return self.s.find(self.m, model, cell, lambda r: r.get("protocol") == "white-box" and r.get("attack"),
                           "the white-box attack")

    # ----- attack matching
    def wb_for(self, a: dict) -> dict | None:
        """The white-box entry that is the same attack as the transfer attack ``a`` (same α, steps)."""
        for w in self.whitebox:
            if (w["attack"] == a["attack"] and w.get("restarts", 1) == 1 and not w.get("limit")
                    and w.get("steps") == a.get("steps") and _same_opt(w.get("alpha"), a.get("alpha"))):
                return w
        return None

    def wb_extra(self) -> list[dict]:
        """White-box attacks that have no transfer twin (PGD-50×5, APGD-CE): the stronger checks."""
        twins = {id(self.wb_for(a)) for a in self.test_attacks}
        return [w for w in self.whitebox if id(w) not in twins]


def _same_opt(a, b) -> bool:
    return (a is None and b is None) or same_eps(a, b)


def attack_label(a: dict, eps: float) -> str:
    n = a["attack"]
    if n == "fgsm":
        return f"FGSM ε={eps_txt(eps)}"
    if n == "apgd":
        s = f"APGD-CE ε={eps_txt(eps)}, {a.get('steps', 100)} steps"
    else:
        s = f"{n.upper()} ε={eps_txt(eps)}"
        if a.get("alpha") is not None:
            s += f", α={eps_txt(a['alpha'])}"
        s += f", {a.get('steps', 10)} steps"
    if a.get("restarts", 1) > 1:
        s += f" ×{a['restarts']} restarts"
    return s


def short_attack(a: dict) -> str:
    """PGD-50×5 restarts, APGD-CE-100, PGD-3 α=.002, FGSM."""
    n = a["attack"]
    if n == "fgsm":
        return "FGSM"
    s = ("APGD-CE" if n == "apgd" else n.upper()) + f"-{a.get('steps', 100 if n == 'apgd' else 10)}"
    if a.get("restarts", 1) > 1:
        s += f" ×{a['restarts']} restarts"
    return s


def acc_cell(ref: Ref | None) -> Cell:
    if ref is None:
        return NA
    return Cell([ref.part("accuracy", "acc"), ref.part("balanced_accuracy", "bal")])


def diff_cell(a: Ref | None, b: Ref | None, key: str = "accuracy") -> Cell:
    if a is None or b is None:
        return NA
    pa, pb = a.part(key), b.part(key)
    if pa.value is None or pb.value is None:
        return NA
    return Cell([Part("diff", pa.value - pb.value, minus=(pa, pb))])


def paper_cell(paper: dict, key: str, idx: int | None = None) -> Cell:
    v = paper.get(key)
    if v is None:
        return DASH
    if idx is not None:
        v = v[idx]
    return Cell([Part("paper", float(v), paper=True)])


def paper_diff(paper: dict, a: str, b: str) -> Cell:
    if a not in paper or b not in paper:
        return DASH
    return Cell([Part("paper", float(paper[a]) - float(paper[b]), paper=True)])


# --------------------------------------------------------------------------- tables
def _conditions(x: Exp, eps_list: Iterable[float]) -> list[tuple[str, dict, float, str | None]]:
    """(label, attack, ε, paper key) for every transfer attack on the test split."""
    out = []
    for a in x.test_attacks:
        for e in a["eps"]:
            if not any(same_eps(e, p) for p in eps_list):
                continue
            pk = None
            if same_eps(e, PAPER_EPS):
                pk = "fgsm" if a["attack"] == "fgsm" else "pgd" if a["attack"] in ("pgd", "bim") else None
            out.append((attack_label(a, e), a, float(e), pk))
    return out


def _wb_ref(x: Exp, model: str, a: dict, e: float) -> tuple[Ref | None, bool]:
    """White-box twin of transfer attack ``a`` at ε on ``model``; (ref, defined-in-grid)."""
    if a["attack"] == "fgsm":
        if any(same_eps(e, s) for s in x.sweep):
            return x.sweep_wb(model, "fgsm", e), True
        return None, False
    w = x.wb_for(a)
    if w is None or not any(same_eps(e, p) for p in x.wb_eps(w)):
        return None, False
    return x.wb(model, w["name"], e), True


def _wb_cell(x: Exp, model: str, a: dict, e: float) -> Cell:
    ref, defined = _wb_ref(x, model, a, e)
    return acc_cell(ref) if defined else DASH


def table_accuracy(x: Exp) -> Table:
    no = TABLE_NO.get(x.m, ("", "", ""))[0]
    has_pur = "purified" in x.models
    cols = ["Attack", "No defence", "paper", "RDMAA transfer", "RDMAA white-box", "paper RDMAA"]
    if has_pur:
        cols += ["Purifier transfer", "Purifier white-box"]
    cols += ["Enhancement transfer", "Enhancement white-box", "paper enh.",
             "Difference transfer", "Difference white-box", "paper diff."]
    t = Table(f"table-{no or x.m}-accuracy-{x.m}",
              f"Table {no} ({x.m}): accuracy, no defence vs RDMAA (cells: accuracy / balanced accuracy, %)", cols)
    p = x.paper
    base_c, rd_c = x.clean("baseline"), x.clean("rdmaa")
    row = [acc_cell(base_c), paper_cell(p, "clean"), acc_cell(rd_c), DASH, paper_cell(p, "rdmaa_clean")]
    if has_pur:
        row += [acc_cell(x.clean("purified")), DASH]
    row += [DASH] * 6
    t.add("No attack", row)
    for lab, a, e, pk in _conditions(x, x.paper_eps):
        b = x.transfer("baseline", a["name"], e)
        rt = x.transfer("rdmaa", a["name"], e)
        rw, rw_def = _wb_ref(x, "rdmaa", a, e)
        bw = b  # the baseline's own adversarial set: transfer and white-box are the same for it
        row = [acc_cell(b), paper_cell(p, pk) if pk else DASH, acc_cell(rt), acc_cell(rw) if rw_def else DASH,
               paper_cell(p, f"rdmaa_{pk}") if pk else DASH]
        if has_pur:
            row += [acc_cell(x.transfer("purified", a["name"], e)), _wb_cell(x, "purified", a, e)]
        row += [diff_cell(rt, b), diff_cell(rw, bw) if rw_def else DASH,
                paper_diff(p, f"rdmaa_{pk}", pk) if pk else DASH,
                diff_cell(rd_c, rt), diff_cell(rd_c, rw) if rw_def else DASH,
                paper_diff(p, "rdmaa_clean", f"rdmaa_{pk}") if pk else DASH]
        t.add(lab, row)
    # the stronger white-box attacks (no transfer twin), on the seeded subset
    for w in x.wb_extra():
        for e in x.wb_eps(w):
            b, r = x.wb("baseline", w["name"], e), x.wb("rdmaa", w["name"], e)
            row = [acc_cell(b), DASH, DASH, acc_cell(r), DASH]
            if has_pur:
                row += [DASH, acc_cell(x.wb("purified", w["name"], e))]
            row += [DASH, diff_cell(r, b), DASH, DASH, DASH, DASH]
            sub = " (white-box only, subset)" if w.get("limit") else " (white-box only)"
            t.add(attack_label(w, e) + sub, row)
    if base_c is not None:
        t.add("Majority-class rate (test set)", [Cell([base_c.part("majority_rate", "majority")])] +
              [DASH] * (len(cols) - 2))
    t.notes += [
        "transfer: adversarial images crafted on the undefended baseline (the paper's protocol); white-box: "
        "crafted on the model itself. For the baseline both are the same.",
        "Enhancement = RDMAA − no defence under the same attack; Difference = RDMAA clean − RDMAA attacked "
        "(percentage points, from accuracy).",
        "paper: Tables III–V, ε=.005. The paper's tables print α=.02 for PGD, its Table II says α=.002: "
        "both are run and the paper's number is shown beside both.",
    ]
    t.notes.append(_subset_note(x))
    if x.m == "leukemia":
        t.notes.append("Paper: Table IV gives 36 % for leukemia under PGD, Table VII 47 % for the same cell; "
                       "36 % is shown.")
    return t


def _subset_note(x: Exp) -> str:
    n = x.subset_n if x.subset_n is not None else "n/a"
    lim = [short_attack(w) for w in x.whitebox if w.get("limit")]
    what = lim + (["the ε sweeps (so the FGSM white-box cells)", "PGD at the matched ε"] if x.sweep_on_subset else [])
    what.append("APGD-CE at the matched ε")
    return (f"Run on test-sub.h5, a seeded random subset of the test set (n = {n}), to keep the expensive "
            f"attacks affordable: {', '.join(dict.fromkeys(what))}. Everything else uses the whole test set.")


def table_prf(x: Exp) -> Table:
    no = TABLE_NO.get(x.m, ("", "", ""))[1]
    models = [m for m in ("baseline", "rdmaa", "purified") if m in x.models or m == "baseline"]
    keys = [("accuracy", "ACC"), ("balanced_accuracy", "BAcc"), ("precision_macro", "P"),
            ("recall_macro", "R"), ("f1_macro", "F1")]
    cols = ["Condition"] + [f"{label(m)} {k}" for m in models for _, k in keys]
    t = Table(f"table-{no or x.m}-prf-{x.m}",
              f"Table {no} ({x.m}): accuracy, balanced accuracy, macro precision, recall, F1 (%)", cols)
    p = x.paper

    def metric_cells(ref: Ref | None) -> list[Cell]:
        if ref is None:
            return [NA] * len(keys)
        return [Cell([ref.part(k, short)]) for k, short in keys]

    def paper_cells(pk: str | None, model: str) -> list[Cell]:
        if pk is None or model == "purified":
            return [DASH] * len(keys)
        pre = "" if model == "baseline" else "rdmaa_"
        acc = paper_cell(p, pre + ("clean" if pk == "clean" else pk))
        prf = [paper_cell(p, f"{pre}prf_{pk}", i) if f"{pre}prf_{pk}" in p else DASH for i in range(3)]
        return [acc, DASH] + prf

    t.add("No attack", [c for m in models for c in metric_cells(x.clean(m))])
    t.add("No attack — paper", [c for m in models for c in paper_cells("clean", m)])
    for lab, a, e, pk in _conditions(x, [PAPER_EPS]):
        t.add(f"{lab} — transfer", [c for m in models for c in metric_cells(x.transfer(m, a["name"], e))])
        wb = []
        for m in models:
            ref, defined = _wb_ref(x, m, a, e)
            if m == "baseline":   # its own adversarial set is already white-box
                ref, defined = x.transfer(m, a["name"], e), True
            wb += metric_cells(ref) if defined else [DASH] * len(keys)
        t.add(f"{lab} — white-box", wb)
        t.add(f"{lab} — paper", [c for m in models for c in paper_cells(pk, m)])
    t.notes += ["P, R, F1: macro averages over the classes (scikit-learn, zero_division=0).",
                "For the baseline the transfer and white-box rows are the same images (crafted on it)."]
    return t


def table_advtrain(x: Exp) -> Table:
    no = TABLE_NO.get(x.m, ("", "", ""))[2]
    models = x.advtrain + [m for m in ("rdmaa", "purified") if m in x.models]
    cols = ["Attack"] + [f"{label(m)} {proto}" for m in models for proto in ("transfer", "white-box")] + \
        ["paper AdvTrain", "paper RDMAA"]
    t = Table(f"table-{no or x.m}-advtrain-{x.m}",
              f"Table {no} ({x.m}): adversarial training vs RDMAA (cells: accuracy / balanced accuracy, %)", cols)
    p = x.paper
    t.add("No attack", [c for m in models for c in (acc_cell(x.clean(m)), DASH)] + [DASH, paper_cell(p, "rdmaa_clean")])
    for lab, a, e, pk in _conditions(x, x.paper_eps):
        row = [c for m in models for c in (acc_cell(x.transfer(m, a["name"], e)), _wb_cell(x, m, a, e))]
        row += [paper_cell(p, f"advtrain_{pk}") if pk else DASH, paper_cell(p, f"rdmaa_{pk}") if pk else DASH]
        t.add(lab, row)
    for w in x.wb_extra():
        for e in x.wb_eps(w):
            row = [c for m in models for c in (DASH, acc_cell(x.wb(m, w["name"], e)))] + [DASH, DASH]
            t.add(attack_label(w, e) + (" (subset)" if w.get("limit") else ""), row)
    t.notes += ["AdvTrain-FGSM / -PGD: the paper's recipe (clean ∪ adversarial train set crafted on the baseline, "
                "ε=.005); AdvTrain-online: PGD adversarial training (Madry et al.), each batch attacked.",
                "paper AdvTrain: Tables IX–XI (the paper does not say which adversarial set trained the model "
                "of each row)."]
    t.notes.append(_subset_note(x))
    return t


def table_sweep(x: Exp, kind: str) -> Table:
    cols = ["ε", "No defence white-box"] + [f"{label(m)} {proto}" for m in x.defended
                                           for proto in ("white-box", "transfer")]
    steps = int(x.g["evaluate"].get("sweep_pgd", {}).get("steps", 10))
    desc = "FGSM" if kind == "fgsm" else f"PGD ({steps} steps, α = {2.5 / steps:.3g}·ε)"
    t = Table(f"sweep-{kind}-{x.m}", f"ε sweep, {desc}, {x.m} (cells: accuracy / balanced accuracy, %)", cols)
    t.add("0 (clean)", [acc_cell(x.sweep_clean("baseline", kind))] +
          [c for m in x.defended for c in (acc_cell(x.sweep_clean(m, kind)), acc_cell(x.clean(m)))])
    for e in x.sweep:
        t.add(eps_txt(e), [acc_cell(x.sweep_wb("baseline", kind, e))] +
              [c for m in x.defended for c in (acc_cell(x.sweep_wb(m, kind, e)), acc_cell(x.sweep_tr(m, kind, e)))])
    t.notes.append("white-box: the attack run on each model itself; transfer: the baseline's adversarial images"
                   " (whole test set).")
    if x.sweep_on_subset:
        t.notes.append(f"The white-box sweep runs on the seeded subset test-sub.h5 (n = {x.subset_n}), and so does"
                       " its clean row; the transfer columns, clean row included, are on the whole test set.")
    return t


def table_matched(x: Exp) -> Table:
    me = x.matched or {}
    fe, pe = me.get("fgsm"), me.get("pgd")
    fs = f"FGSM ε={eps_txt(fe)}" if fe is not None else "FGSM matched ε"
    ps = f"PGD ε={eps_txt(pe)}" if pe is not None else "PGD matched ε"
    cols = ["Model", f"{fs} transfer", f"{fs} white-box", f"{ps} transfer", f"{ps} white-box",
            f"APGD-CE-{x.apgd_steps} ε={eps_txt(pe) if pe is not None else 'matched'} white-box (subset)"]
    t = Table(f"matched-{x.m}", f"Every model at the matched ε, {x.m} (cells: accuracy / balanced accuracy, %)", cols)
    for m in ["baseline"] + x.defended:
        t.add(label(m), [acc_cell(x.matched_cell(m, "matched-transfer-fgsm")), acc_cell(x.matched_cell(m, "matched-wb-fgsm")),
                         acc_cell(x.matched_cell(m, "matched-transfer-pgd")), acc_cell(x.matched_cell(m, "matched-wb-pgd")),
                         acc_cell(x.matched_cell(m, "matched-wb-apgd"))])
    t.notes.append("For the baseline the transfer column is its own (white-box) attack.")
    t.notes.append(_subset_note(x))
    return t


# --------------------------------------------------------------------------- checks in words
def masking_checks(x: Exp) -> list[dict[str, Any]]:
    """Signs of gradient masking, per defended model, computed from the numbers.

    A rise counts only beyond 2 points and two standard errors, and only between cells on the same
    rows (the seeded subset is not the whole test set: its accuracy differs by itself)."""
    out: list[dict[str, Any]] = []
    strength = [w for w in x.whitebox if w["attack"] in ("pgd", "bim", "apgd")]
    for m in x.defended:
        # 1. white-box accuracy must not rise with more steps / restarts / a stronger attack
        for e in x.paper_eps:
            seq = [(w, x.wb(m, w["name"], e)) for w in strength if any(same_eps(e, v) for v in x.wb_eps(w))]
            seq = [(w, r) for w, r in seq if r is not None and r.metric("accuracy") is not None]
            for (w0, r0), (w1, r1) in zip(seq, seq[1:]):
                if same_rows(r0, r1) and beyond_noise(r1, r0):
                    out.append({"model": m, "check": "stronger-attack", "eps": e,
                                "text": f"{label(m)}: white-box accuracy RISES from {pct(r0.metric('accuracy'))} % "
                                        f"({attack_label(w0, e)}, n = {r0.n}) to {pct(r1.metric('accuracy'))} % "
                                        f"({attack_label(w1, e)}, n = {r1.n})."})
        # 2. accuracy must fall as ε grows, and be near zero at a large ε
        for kind in ("fgsm", "pgd"):
            curve = [(e, x.sweep_wb(m, kind, e)) for e in x.sweep]
            curve = [(e, r) for e, r in curve if r is not None and r.metric("accuracy") is not None]
            if not curve:
                continue
            for (e0, r0), (e1, r1) in zip(curve, curve[1:]):
                if beyond_noise(r1, r0):
                    out.append({"model": m, "check": "non-monotone", "kind": kind,
                                "text": f"{label(m)}: white-box {kind.upper()} accuracy RISES from "
                                        f"{pct(r0.metric('accuracy'))} % at ε={eps_txt(e0)} to "
                                        f"{pct(r1.metric('accuracy'))} % at ε={eps_txt(e1)}."})
            e_hi, r_hi = curve[-1]
            a_hi = r_hi.metric("accuracy")
            if e_hi >= 0.1 and a_hi > 0.1 + 2 * math.sqrt(0.09 / max(r_hi.n, 1)):
                out.append({"model": m, "check": "high-at-large-eps", "kind": kind,
                            "text": f"{label(m)}: white-box {kind.upper()} leaves {pct(a_hi)} % accuracy at "
                                    f"ε={eps_txt(e_hi)}, where an attack that follows true gradients can "
                                    f"change an image outright."})
        # 3. white-box must be at least as strong as transfer
        pairs: list[tuple[str, Ref | None, Ref | None]] = []
        for lab, a, e, _ in _conditions(x, x.paper_eps):
            ref, defined = _wb_ref(x, m, a, e)
            if defined:
                pairs.append((lab, x.transfer(m, a["name"], e), ref))
        for kind in ("fgsm", "pgd"):
            for e in x.sweep:
                pairs.append((f"{kind.upper()} sweep ε={eps_txt(e)}", x.sweep_tr(m, kind, e), x.sweep_wb(m, kind, e)))
        for lab, tr, wb in pairs:
            if tr is not None and wb is not None and same_rows(tr, wb) and beyond_noise(wb, tr):
                out.append({"model": m, "check": "transfer-stronger",
                            "text": f"{label(m)}: transfer accuracy {pct(tr.metric('accuracy'))} % is BELOW white-box "
                                    f"{pct(wb.metric('accuracy'))} % ({lab}); the white-box attack should be the "
                                    f"stronger one."})
    for f in out:
        f["flag"] = True
    return out


# --------------------------------------------------------------------------- data, models, time
def data_table(work: Path, m: str, grid: dict) -> tuple[Table | None, dict]:
    from .sets import SetReader

    info: dict[str, Any] = {}
    rows = []
    classes: list[str] = []
    for split in ("train", "val", "test", "test-sub"):
        p = work / m / f"{split}.h5"
        if not p.exists():
            continue
        try:
            with SetReader(p) as r:
                classes = r.info.classes
                y = r.column("y")
                counts = [int((y == i).sum()) for i in range(len(classes))]
                prov = r.info.provenance
        except RdmError as e:
            info.setdefault("problems", []).append(str(e))
            continue
        rows.append((split, counts))
        info[split] = {"n": int(sum(counts)), "per_class": dict(zip(classes, counts))}
        if split == "train":
            info["provenance"] = {k: prov.get(k) for k in ("command", "arguments", "seed") if k in prov}
    if not rows:
        return None, info
    info["classes"] = classes
    t = Table(f"data-{m}", f"Data used, {m} (rows per class and split)", ["Split"] + classes + ["total"])
    for split, counts in rows:
        t.add(split, [Cell([Part(c, v, count=True)]) for c, v in zip(classes, counts)] +
              [Cell([Part("total", sum(counts), count=True)])])
    return t, info


def models_table(work: Path, m: str, models: Iterable[str]) -> tuple[Table | None, dict]:
    from .checkpoint import read_raw

    info: dict[str, Any] = {}
    t = Table(f"models-{m}", f"Models trained, {m}", ["Model", "kind", "recipe", "epochs", "best epoch",
                                                       "val accuracy", "val bal. acc", "val reconstruction",
                                                       "training wall time (s)"])
    for name in models:
        p = work / m / "models" / f"{name}.ckpt"
        if not p.exists():
            continue
        try:
            meta = read_raw(p)["meta"]
        except RdmError as e:
            info[name] = {"problem": str(e)}
            continue
        rec = meta.get("recipe") or {}
        val = meta.get("val") or {}
        hist = meta.get("history") or []
        info[name] = {"kind": meta.get("kind"), "recipe": rec, "epochs_run": meta.get("epochs_run", len(hist)),
                      "best_epoch": meta.get("best_epoch"), "val": val, "wall_time_s": meta.get("wall_time_s")}
        txt = lambda s: Cell([], na=str(s))  # noqa: E731
        wt = meta.get("wall_time_s")
        recon = "—"
        if val.get("mse") is not None:
            recon, info[name]["mse_mean_image"] = _reconstruction(work, m, val)
        t.add(name, [txt(meta.get("kind", "?")), txt(rec.get("name", "?") if isinstance(rec, dict) else rec),
                     txt(meta.get("epochs_run", len(hist)) if hist or "epochs_run" in meta else "—"),
                     txt(meta.get("best_epoch") if meta.get("best_epoch") and hist else "—"),
                     txt(pct(val["accuracy"]) if val.get("accuracy") is not None else "—"),
                     txt(pct(val["balanced_accuracy"]) if val.get("balanced_accuracy") is not None else "—"),
                     txt(recon),
                     txt(f"{wt:.1f}" if isinstance(wt, (int, float)) and hist else "—")])
    if any(i.get("kind") == "dcae" for i in info.values()):
        t.notes.append("val reconstruction: the DCAE's MSE on the validation set against the MSE of answering the "
                       "training set's mean colour everywhere; a DCAE near that floor has learnt little, and its "
                       "encoder is no better a start for RDMAA than a random one.")
    return (t if t.rows else None), info


def _reconstruction(work: Path, m: str, val: dict) -> tuple[str, float | None]:
    """('MSE a (mean image b), PSNR c dB', b) for a DCAE; b is recomputed from the sets for
    checkpoints written before validation reported it."""
    ref = val.get("mse_mean_image")
    tr, va = work / m / "train.h5", work / m / "val.h5"
    if ref is None and tr.exists() and va.exists():
        from .sets import channel_mean, mse_to_constant

        ref = mse_to_constant(va, channel_mean(tr))
    txt = f"MSE {val['mse']:.4f}" + (f" (mean image {ref:.4f})" if ref is not None else "")
    return txt + (f", PSNR {val['psnr']:.1f} dB" if val.get("psnr") is not None else ""), ref


def stage_kind(stage: str, model_names: Iterable[str]) -> tuple[str, str]:
    """('lung', 'train') from 'lung/baseline'; ('', 'report') from 'report'."""
    if "/" not in stage:
        return "", stage
    m, s = stage.split("/", 1)
    if s in ("prep", "subset"):
        return m, "prep"
    if s.startswith("attack-"):
        return m, "attack"
    if s.startswith("eval-"):
        return m, "eval"
    if s in model_names:
        return m, "train"
    return m, "other"


def timings(work: Path, grid: dict) -> tuple[list[Table], dict]:
    p = work / "timings.jsonl"
    if not p.exists():
        return [], {"missing": str(p)}
    last: "OrderedDict[str, float]" = OrderedDict()
    failed = 0
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("rc", 0) != 0:
            failed += 1
            continue
        last[rec["stage"]] = float(rec["seconds"])   # a re-run stage counts once, its latest run
    models = list(grid["models"])
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    detail: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for stage, sec in last.items():
        m, kind = stage_kind(stage, models)
        per[m or "(all)"][kind] += sec
        s = stage.split("/", 1)[1] if "/" in stage else stage
        if s.startswith("eval-"):
            body = s[5:]
            s = "eval-" + next((n for n in sorted(models, key=len, reverse=True) if body.startswith(n + "-")), body)
        detail[m or "(all)"][s] += sec
    kinds = ["prep", "train", "attack", "eval", "other", "report"]
    kinds = [k for k in kinds if any(k in d for d in per.values())]
    t = Table("wall-time", "Wall time per modality and stage kind (seconds, latest successful run of each stage)",
              ["Modality"] + kinds + ["total"])
    total = 0.0
    for m, d in per.items():
        s = sum(d.values())
        total += s
        t.add(m, [Cell([], na=f"{d[k]:.0f}") if k in d else DASH for k in kinds] + [Cell([], na=f"{s:.0f}")])
    t.add("total", [Cell([], na=f"{sum(d.get(k, 0) for d in per.values()):.0f}") for k in kinds] +
          [Cell([], na=f"{total:.0f}")])
    t.notes.append(f"{len(last)} stages; total {total / 60:.1f} min" + (f"; {failed} failed runs not counted" if failed else ""))
    t2 = Table("wall-time-stages", "Wall time of each stage (seconds; evaluation summed per model)",
               ["Modality / stage", "seconds"])
    for m, d in detail.items():
        for s, sec in d.items():
            t2.add(f"{m} / {s}", [Cell([], na=f"{sec:.1f}")])
    return [t, t2], {"per_modality": {m: dict(d) for m, d in per.items()}, "stages": dict(last),
                     "total_s": total, "failed_runs": failed}


# --------------------------------------------------------------------------- words
def claims_table(x: Exp) -> Table:
    """The paper's claims, checked at the paper's ε and at the matched ε, transfer and white-box."""
    cols = ["Claim", "ε=.005 transfer", "ε=.005 white-box", "matched ε transfer", "matched ε white-box"]
    t = Table(f"claims-{x.m}", f"The paper's claims, {x.m}: do they hold here? (accuracy, %)", cols)
    p, e = x.paper, PAPER_EPS
    conds = {c[1]["attack"]: c for c in reversed(_conditions(x, [e]))}   # first of each kind wins
    pg = next((c for c in _conditions(x, [e]) if c[1]["attack"] == "pgd" and x.wb_for(c[1]) is not None),
              conds.get("pgd"))
    fg = conds.get("fgsm")

    def verdict(ok: bool | str, txt: str) -> Cell:
        return Cell([], na=(ok if isinstance(ok, str) else ("yes" if ok else "no")) + f" ({txt})")

    def above(a: Ref | None, b: Ref | None) -> Cell:
        if a is None or b is None or a.metric("accuracy") is None or b.metric("accuracy") is None:
            return NA
        if not same_rows(a, b):     # a subset cell against a whole-test-set cell says nothing
            return Cell([], na=f"n/a (rows differ: {rows_of(a)} vs {rows_of(b)})")
        ok = True if beyond_noise(a, b) else False if beyond_noise(b, a) else "within noise"
        return verdict(ok, f"{pct(a.metric('accuracy'))} vs {pct(b.metric('accuracy'))}")

    def best(refs: list[Ref | None]) -> Ref | None:
        refs = [r for r in refs if r is not None and r.metric("accuracy") is not None]
        return max(refs, key=lambda r: r.metric("accuracy")) if refs else None

    for kind, c in (("fgsm", fg), ("pgd", pg)):
        if c is None:
            continue
        name = kind.upper()
        b = x.transfer("baseline", c[1]["name"], e)
        if kind in p and b is not None:
            v = b.metric("accuracy")
            cell = verdict(v <= p[kind] + 0.05, f"{pct(v)}; paper {100 * p[kind]:.0f}")
        else:
            cell = NA if b is None else DASH
        t.add(f"{name} at ε=.005 brings the baseline down to the paper's accuracy", [cell, DASH, DASH, DASH])
        rt = x.transfer("rdmaa", c[1]["name"], e)
        rw, rw_def = _wb_ref(x, "rdmaa", c[1], e)
        bw, _ = _wb_ref(x, "baseline", c[1], e)          # the baseline on the rows RDMAA's white-box cell used
        mb = x.matched_cell("baseline", f"matched-wb-{kind}")
        mbt = x.matched_cell("baseline", f"matched-transfer-{kind}")   # its own attack, whole test set
        mrt, mrw = x.matched_cell("rdmaa", f"matched-transfer-{kind}"), x.matched_cell("rdmaa", f"matched-wb-{kind}")
        t.add(f"RDMAA is more accurate than no defence under {name}",
              [above(rt, b), above(rw, bw) if rw_def else DASH, above(mrt, mbt), above(mrw, mb)])
        if x.advtrain:
            at = best([x.transfer(m, c[1]["name"], e) for m in x.advtrain])
            aw = best([_wb_ref(x, m, c[1], e)[0] for m in x.advtrain]) if rw_def else None
            mat = best([x.matched_cell(m, f"matched-transfer-{kind}") for m in x.advtrain])
            maw = best([x.matched_cell(m, f"matched-wb-{kind}") for m in x.advtrain])
            t.add(f"RDMAA is more accurate than the best adversarial training under {name}",
                  [above(rt, at), above(rw, aw) if rw_def else DASH, above(mrt, mat), above(mrw, maw)])
    bc, rc = x.clean("baseline"), x.clean("rdmaa")
    if bc is not None and rc is not None:
        cell = verdict(not beyond_noise(bc, rc), f"{pct(rc.metric('accuracy'))} vs {pct(bc.metric('accuracy'))}")
    else:
        cell = NA
    t.add("RDMAA keeps the baseline's clean accuracy (no significant loss)", [cell, DASH, DASH, DASH])
    t.notes += ["Our numbers (RDMAA first) against the comparison. yes / no: more / less accurate by more than "
                "2 points and two standard errors, else \"within noise\"; \"the paper's accuracy\": within 5 "
                "points of it or below.",
                "Each comparison is on the same rows (whole test set, or the seeded subset for the white-box cells "
                "run there); at the matched ε the baseline is attacked by its own attack; best adversarial training: "
                "the most accurate of " + (", ".join(label(m) for m in x.advtrain) or "none") + " in that cell."]
    return t


def findings(x: Exp, flags: list[dict]) -> list[str]:
    """Factual sentences, each with its numbers."""
    s: list[str] = []
    p = x.paper

    def a(r: Ref | None) -> float | None:
        return None if r is None else r.metric("accuracy")

    def f(v: float | None) -> str:
        return f"{pct(v)} %"

    bc = x.clean("baseline")
    if bc is None:
        return [f"{x.m}: the baseline's clean metrics are missing; nothing to say yet."]
    maj = bc.metric("majority_rate")
    s.append(f"The baseline classifies {f(a(bc))} of the {bc.n} test images right (balanced accuracy "
             f"{f(bc.metric('balanced_accuracy'))}; always answering the majority class would give {f(maj)}); "
             f"the paper reports {p['clean'] * 100:.0f} %." if "clean" in p else "")
    e = PAPER_EPS
    conds = _conditions(x, [e])
    falls = []
    for lab, att, _, pk in conds:
        b = a(x.transfer("baseline", att["name"], e))
        if b is None:
            continue
        what = lab.replace(" ε=.005", "").replace(",", "")
        falls.append(f"{f(b)} under {what}" + (f" (paper: {p[pk] * 100:.0f} %)" if pk in p else ""))
    if falls:
        s.append("At the paper's ε = .005 the baseline falls to " + ", ".join(falls[:-1]) +
                 (" and " if len(falls) > 1 else "") + falls[-1] + ".")
    fg = next((c for c in conds if c[1]["attack"] == "fgsm"), None)
    pg = next((c for c in conds if c[1]["attack"] in ("pgd", "bim") and x.wb_for(c[1]) is not None),
              next((c for c in conds if c[1]["attack"] in ("pgd", "bim")), None))
    for c in (fg, pg):
        if c is None:
            continue
        rt = a(x.transfer("rdmaa", c[1]["name"], e))
        b = a(x.transfer("baseline", c[1]["name"], e))
        rw, rw_def = _wb_ref(x, "rdmaa", c[1], e)
        if rt is None or b is None:
            continue
        pk = "fgsm" if c[1]["attack"] == "fgsm" else "pgd"
        paper_enh = (f" (paper: {(p['rdmaa_' + pk] - p[pk]) * 100:+.0f} points)" if f"rdmaa_{pk}" in p and pk in p else "")
        txt = (f"Under {c[0]} crafted on the baseline (transfer), RDMAA keeps {f(rt)} against the baseline's {f(b)}, "
               f"{(rt - b) * 100:+.1f} points{paper_enh}")
        if rw_def and a(rw) is not None:
            txt += f"; attacked directly (white-box) it keeps {f(a(rw))}"
        s.append(txt + ".")
    # stronger white-box
    for w in x.wb_extra():
        if not any(same_eps(e, v) for v in x.wb_eps(w)):
            continue
        r, b = a(x.wb("rdmaa", w["name"], e)), a(x.wb("baseline", w["name"], e))
        if r is not None and b is not None:
            where = f", subset of {x.subset_n} test images" if w.get("limit") else ""
            s.append(f"{attack_label(w, e)} (white-box{where}): RDMAA {f(r)}, baseline {f(b)}.")
    # RDMAA vs adversarial training
    if x.advtrain and pg is not None:
        rt = a(x.transfer("rdmaa", pg[1]["name"], e))
        ats = [(m, a(x.transfer(m, pg[1]["name"], e))) for m in x.advtrain]
        ats = [(m, v) for m, v in ats if v is not None]
        if rt is not None and ats:
            best = max(ats, key=lambda t: t[1])
            verdict = "above" if rt > best[1] + MASK_TOL else "below" if rt < best[1] - MASK_TOL else "level with"
            s.append(f"Against {pg[0]} (transfer), RDMAA at {f(rt)} is {verdict} the best adversarially trained model "
                     f"({label(best[0])}, {f(best[1])}); the paper claims RDMAA is above adversarial training.")
        w = x.wb_for(pg[1])
        if w is not None:
            rw = a(x.wb("rdmaa", w["name"], e))
            aws = [(m, a(x.wb(m, w["name"], e))) for m in x.advtrain]
            aws = [(m, v) for m, v in aws if v is not None]
            if rw is not None and aws:
                best = max(aws, key=lambda t: t[1])
                s.append(f"Attacked white-box with the same PGD, RDMAA keeps {f(rw)} and {label(best[0])} {f(best[1])}.")
    # matched ε
    me = x.matched or {}
    for kind in ("fgsm", "pgd"):
        if me.get(kind) is None:
            continue
        det = me.get(f"{kind}_detail", {})
        ratio = me[kind] / PAPER_EPS
        reached = det.get("reached", True)
        base = a(x.matched_cell("baseline", f"matched-wb-{kind}"))
        rd_t = a(x.matched_cell("rdmaa", f"matched-transfer-{kind}"))
        rd_w = a(x.matched_cell("rdmaa", f"matched-wb-{kind}"))
        head = (f"Our baseline falls to the paper's {kind.upper()} accuracy ({det.get('paper_accuracy', 0) * 100:.0f} %) "
                f"at ε = {eps_txt(me[kind])}, {ratio:.1f}× the paper's ε" if reached else
                f"Even at the largest ε swept ({eps_txt(me[kind])}), our baseline stays above the paper's "
                f"{kind.upper()} accuracy ({det.get('paper_accuracy', 0) * 100:.0f} %)")
        tail = []
        if base is not None:
            tail.append(f"there the baseline is at {f(base)} (white-box)")
        if rd_t is not None:
            tail.append(f"RDMAA at {f(rd_t)} under transfer")
        if rd_w is not None:
            tail.append(f"{f(rd_w)} white-box")
        s.append(head + ("; " + ", ".join(tail) if tail else "") + ".")
    mine = [fl for fl in flags if fl.get("flag")]
    if mine:
        by = sorted({fl["model"] for fl in mine})
        s.append("Signs of gradient masking (see the checks below) for: " + ", ".join(label(m) for m in by) + ".")
    elif not any(x.s.path(x.m, m, "clean").exists() for m in x.defended):
        s.append("No defended model has been evaluated yet, so nothing is checked for gradient masking.")
    else:
        s.append("None of the defended models shows the gradient-masking signs checked for (accuracy rising with attack strength, "
                 "staying above chance at large ε, transfer beating white-box).")
    return [t for t in s if t]


# --------------------------------------------------------------------------- assembling
def modalities_present(grid: dict, work: Path) -> tuple[list[str], list[str]]:
    ms = list(grid["modalities"])
    return [m for m in ms if (work / m).is_dir()], [m for m in ms if not (work / m).is_dir()]


def build(grid_path: str | Path, work: str | Path, results: str | Path, mode: str = "tables",
          figures: bool = True) -> dict[str, Any]:
    grid = for_mode(load_grid(grid_path), mode)
    work, results = Path(work), Path(results)
    store = Store(work)
    present, absent = modalities_present(grid, work)
    if not present:
        raise RdmError(f"{work}: no modality folder ({', '.join(grid['modalities'])}); run the graph first")
    md: list[str] = []
    tables: list[Table] = []
    rep: dict[str, Any] = {"grid": str(grid_path), "work": str(work), "mode": mode, "modalities": {}, "tables": {}}
    title = "rdm report — the RDMAA paper's tables, reproduced and tested white-box"
    md += [f"# {title}", ""]
    if mode == "demo":
        md += ["> **Demo run on synthetic phantoms.** The numbers below test the pipeline; they say nothing "
               "about the paper's claims. Run `make tables` on the real data for those.", ""]
    md += [f"Grid: `{grid_path}`; outputs: `{work}`. Cells read *accuracy / balanced accuracy* in %; "
           "`paper` columns hold the paper's numbers; `n/a` marks a missing metrics file (listed at the end), "
           "`—` a cell the grid does not define. *transfer*: adversarial images crafted on the undefended baseline "
           "(the paper's protocol); *white-box*: crafted on the evaluated model itself.", ""]
    if absent:
        md += [f"Modalities in the grid but not run: {', '.join(absent)}.", ""]

    exps: dict[str, Exp] = {}
    sections: dict[str, list[str]] = defaultdict(list)
    all_flags: dict[str, list[dict]] = {}
    data_info: dict[str, Any] = {}
    for m in present:
        x = Exp(grid, store, m)
        dt, dinfo = data_table(work, m, grid)
        data_info[m] = dinfo
        x.subset_n = (dinfo.get("test-sub") or {}).get("n")
        exps[m] = x
        t3, t6, t9 = table_accuracy(x), table_prf(x), table_advtrain(x)
        ts, tp, tm = table_sweep(x, "fgsm"), table_sweep(x, "pgd"), table_matched(x)
        flags = masking_checks(x)
        all_flags[m] = flags
        tc = claims_table(x)
        tables += [tc, t3, t6, t9, ts, tp, tm]
        sections["paper"].append(f"## {MODALITY_TITLE.get(m, m)}\n")
        sections["paper"] += [t3.markdown(), t6.markdown(), t9.markdown()]
        me = x.matched or {}
        eps_lines = []
        for kind in ("fgsm", "pgd"):
            if me.get(kind) is not None:
                det = me.get(f"{kind}_detail", {})
                eps_lines.append(f"- matched ε for {kind.upper()}: **{eps_txt(me[kind])}** "
                                 f"({me[kind] / PAPER_EPS:.1f}× the paper's .005), where the baseline falls to the paper's "
                                 f"{det.get('paper_accuracy', 0) * 100:.0f} %" +
                                 ("" if det.get("reached", True) else " — NOT reached within the sweep; the largest ε is used"))
        rep["modalities"][m] = {"matched": me, "masking": flags, "subset_n": x.subset_n, "data": dinfo}
        sec = [f"### {m}\n", ts.markdown(), tp.markdown()] + (eps_lines + [""] if eps_lines else
                                                              ["- matched ε: n/a (matched.json missing)", ""])
        sec.append(tm.markdown())
        sec.append(f"**Gradient-masking check, {m}.** " + _masking_words(x, flags) + "\n")
        sections["eps"] += sec
        sections["words"].append(f"**{m}.** " + " ".join(findings(x, flags)) + "\n")
        sections["words"].append(tc.markdown())
        if dt is not None:
            tables.append(dt)
            src = grid["modalities"][m].get("source", "?")
            prov = dinfo.get("provenance", {})
            how = ("synthetic phantoms (`rdm-prep synthetic`)" if mode == "demo" else
                   f"`$(DATA_ROOT)/{src}` via `rdm-prep`")
            sections["data"] += [f"### {m}\n", f"Source: {how}; preset `{grid['modalities'][m].get('preset')}`; "
                                 f"seed {prov.get('seed', '?')}.\n", dt.markdown()]
        mt, minfo = models_table(work, m, grid["models"])
        rep["modalities"][m]["models"] = minfo
        if mt is not None:
            tables.append(mt)
            sections["data"].append(mt.markdown())
    tt, tinfo = timings(work, grid)
    rep["timings"] = tinfo
    tables += tt

    md += ["## What the numbers say", ""] + sections["words"]
    md += ["## The paper's tables (III–XI), ours beside the paper's", ""] + sections["paper"]
    md += ["## The ε scale", "",
           "The paper's ε = .002 and .005 are measured on inputs in [0, 1] here (ε = .002 is half a grey level). "
           "Each model is swept over ε white-box (FGSM, and PGD with α = 2.5·ε/steps) and under transfer from the baseline; "
           "the *matched ε* is the ε at which our baseline falls to the paper's attacked accuracy (white-box sweep, "
           "log-linear interpolation), and every model is evaluated there too.", ""] + sections["eps"]
    md += ["## Data used and wall time", ""] + sections["data"] + [t.markdown() for t in tt]

    figs: list[str] = []
    if figures:
        try:
            from . import figures as F
            figs = F.make_all(grid, work, results / "figures", exps, store)
        except ImportError as e:
            store.problems.append(f"figures skipped: {e}")
    if figs:
        md += ["## Figures", ""] + [f"![{Path(f).stem}](figures/{Path(f).name})\n" for f in figs if f.endswith(".png")]
    rep["figures"] = figs

    missing = list(dict.fromkeys(store.missing))
    md += ["## Missing files and problems", ""]
    if missing or store.problems:
        md += [f"- missing: `{p}`" for p in missing] + [f"- {p}" for p in dict.fromkeys(store.problems)]
    else:
        md.append("None: every cell of the grid has its metrics file.")
    md.append("")
    rep["missing"] = missing
    rep["problems"] = list(dict.fromkeys(store.problems))
    for t in tables:
        rep["tables"][t.name] = t.to_json()
    md += ["## Tables as files", "", "Each table above is also in `tables/<name>.csv` and `tables/<name>.tex`: " +
           ", ".join(f"`{t.name}`" for t in tables) + ".", ""]

    (results / "tables").mkdir(parents=True, exist_ok=True)
    for t in tables:
        _write(results / "tables" / f"{t.name}.csv", t.csv())
        _write(results / "tables" / f"{t.name}.tex", t.latex())
    _write(results / "report.json", json.dumps(rep, indent=1, default=_json_default) + "\n")
    _write(results / "REPORT.md", "\n".join(md))
    return rep


def _masking_words(x: Exp, flags: list[dict]) -> str:
    if not x.defended:
        return "No defended model in the grid."
    if not flags:
        parts = []
        for m in x.defended:
            vals = []
            for w in x.whitebox:
                if not any(same_eps(x.paper_eps[-1], v) for v in x.wb_eps(w)):
                    continue
                r = x.wb(m, w["name"], x.paper_eps[-1])
                if r is not None and r.metric("accuracy") is not None:
                    vals.append(f"{short_attack(w)} {pct(r.metric('accuracy'))} %")
            if vals:
                parts.append(f"{label(m)}: " + ", ".join(vals))
        return ("No sign found: white-box accuracy does not rise with more steps or restarts, falls with ε, "
                "and transfer is never below white-box (beyond 2 points and two standard errors). " +
                ("White-box at ε=" + eps_txt(x.paper_eps[-1]) + ": " + "; ".join(parts) + "." if parts else ""))
    by: dict[str, list[str]] = defaultdict(list)
    for f in flags:
        t = f["text"].split(": ", 1)[1]
        by[f["model"]].append(t[:1].upper() + t[1:])
    clean = [label(m) for m in x.defended if m not in by]
    out = ["Flagged:", ""] + [f"- **{label(m)}**: " + " ".join(v) for m, v in by.items()]
    if clean:
        out += ["", "No sign found for: " + ", ".join(clean) + "."]
    return "\n".join(out)


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _write(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rdm.report", description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=None, help="the grid TOML (default: experiments/grid.toml)")
    ap.add_argument("--work", required=True, help="the graph's output folder (OUT)")
    ap.add_argument("--results", required=True, help="where REPORT.md, tables/ and figures/ go")
    ap.add_argument("--mode", choices=["tables", "demo"], default="tables")
    ap.add_argument("--no-figures", action="store_true", help="tables only")
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args(argv)
    try:
        from .grid import DEFAULT_GRID
        rep = build(a.grid or DEFAULT_GRID, a.work, a.results, a.mode, figures=not a.no_figures)
    except RdmError as e:
        if a.debug:
            raise
        sys.stderr.write(f"error: {e}\n")
        return 1
    n_missing = len(rep["missing"])
    if n_missing:
        sys.stderr.write(f"report: {n_missing} metrics files missing (listed at the end of REPORT.md)\n")
    print(Path(a.results) / "REPORT.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
