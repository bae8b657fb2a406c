"""The paper's tables, ours beside the paper's numbers: Tables III–V (accuracy, no defence vs RDMAA),
VI–VIII (P/R/F1), IX–XI (adversarial training), and the ε scale (Fig. 9's sweep, the matched ε).

The paper's numbers are the grid's ``[paper.<modality>]`` (accuracy at ε = .005); each table's
number (III, VI, IX for lung …) is :data:`TABLE_NO`.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from rdm.pipeline.labels import attack_label, eps_physical, eps_txt, model_label, same_eps, short_attack
from rdm.attacks.registry import default_alpha
from rdm.pipeline.config import PAPER_EPS, Attack
from rdm.pipeline import verdicts as V
from rdm.pipeline.results import Ref, View
from rdm.pipeline.verdicts import ref_acc_entry as acc_entry, ref_diff_entry as diff_entry
from rdm.pipeline.tables import DASH, NA, Entry, Part, Table, words

TABLE_NO = {"lung": ("III", "VI", "IX"), "leukemia": ("IV", "VII", "X"), "brain": ("V", "VIII", "XI")}


def paper_key(a: Attack) -> str | None:
    """The paper's row for an attack kind: ``fgsm`` or ``pgd`` (BIM is the paper's PGD without a start)."""
    return "fgsm" if a.kind == "fgsm" else "pgd" if a.kind in ("pgd", "bim") else None


def paper_entry(paper: dict, key: str, idx: int | None = None) -> Entry:
    v = paper.get(key)
    if v is None:
        return DASH
    if idx is not None:
        v = v[idx]
    return Entry([Part("paper", float(v), paper=True)])


def paper_diff(paper: dict, a: str, b: str, printed: str | None = None) -> Entry:
    """The paper's difference of two of its numbers: the one its table PRINTS (``printed``, e.g.
    ``enh_pgd``) when the grid has it, else ``a − b``."""
    if printed is not None and printed in paper:
        return Entry([Part("paper", float(paper[printed]), paper=True)])
    if a not in paper or b not in paper:
        return DASH
    return Entry([Part("paper", float(paper[a]) - float(paper[b]), paper=True)])


def paper_contradictions(x: View) -> list[str]:
    """Notes where the paper's printed numbers disagree with each other (grid ``[paper.<m>]``)."""
    p, out = x.paper, []
    no = TABLE_NO.get(x.m, ("", "", ""))
    for pk in ("fgsm", "pgd"):
        other = (p.get("prf_acc") or {}).get(pk)
        if f"enh_{pk}" in p and f"rdmaa_{pk}" in p and pk in p:
            calc = float(p[f"rdmaa_{pk}"]) - float(p[pk])
            if abs(calc - float(p[f"enh_{pk}"])) > 0.005:
                why = (f"; {100 * float(p[f'rdmaa_{pk}']):.0f} − {100 * float(other):.0f} (Table {no[1]}'s no-defence "
                       f"number for the same cell) = {100 * (float(p[f'rdmaa_{pk}']) - float(other)):.0f}"
                       if other is not None else "")
                out.append(f"The paper's Table {no[0]} prints Enhancement {100 * float(p[f'enh_{pk}']):.0f} for "
                           f"{pk.upper()}, yet its own numbers give {100 * float(p[f'rdmaa_{pk}']):.0f} − "
                           f"{100 * float(p[pk]):.0f} = {100 * calc:.0f}{why}; the printed number is shown.")
        if other is not None and pk in p and abs(float(other) - float(p[pk])) > 0.005:
            out.append(f"The paper contradicts itself on the no-defence {pk.upper()} accuracy: Table {no[0]} prints "
                       f"{100 * float(p[pk]):.0f} %, Table {no[1]} {100 * float(other):.0f} % for the same cell; each "
                       "table here shows what that table prints.")
    for key, v in (p.get("text") or {}).items():
        if key in p and abs(float(v) - float(p[key])) > 0.005:
            out.append(f"The paper's text quotes {100 * float(v):.0f} % where its Table {no[0]} prints "
                       f"{100 * float(p[key]):.0f} % ({key.replace('_', ' ')}); the table's number is shown.")
    return out


def verdict_notes(x: View, entries) -> list[str]:
    """The rows/seeds footnote, the subset mark and the verdict rule, for a table with verdicts."""
    out = [n for n in (V.rows_note(x, entries),) if n]
    out.append("†: on the rows of the seeded subset (test-sub.h5); a difference marked † compares both cells on "
               "those rows, the whole-test-set cell restricted to them through the per-row index.")
    out.append(V.rule(x))
    return out


def add_rows_note(t: Table, x: View) -> None:
    """The rows and seeds behind a table's cells, as its last footnote."""
    n = V.rows_note(x, [c for _, cells in t.rows for c in cells])
    if n:
        t.notes.append(n)


def cells_words(x: View) -> str:
    """What an accuracy cell shows, for a table's title."""
    pos = V.positive_class(x)
    return "accuracy ± CI / balanced accuracy ± CI" + (f" / {pos} recall ± CI" if pos else "") + ", %"


def conditions(x: View, eps_list: Iterable[float]) -> list[tuple[str, Attack, float, str | None]]:
    """(label, attack, ε, paper key) for every transfer attack on the test split at one of ``eps_list``."""
    out = []
    for a in x.plan.test_attacks:
        for e in a.eps:
            if not any(same_eps(e, p) for p in eps_list):
                continue
            pk = paper_key(a) if same_eps(e, PAPER_EPS) else None
            out.append((attack_label(a, e), a, float(e), pk))
    return out


def _twin_entry(x: View, model: str, a: Attack, e: float) -> Entry:
    ref, defined = x.twin(model, a, e)
    return acc_entry(ref) if defined else DASH


def subset_note(x: View) -> str:
    n = x.subset_n if x.subset_n is not None else "n/a"
    lim = [short_attack(w) for w in x.plan.whitebox if x.p.on_subset(w)]
    what = lim + (["the ε sweeps (so the FGSM white-box cells)", "PGD at the matched ε"] if x.plan.sweep_on_subset else [])
    what.append("APGD-CE at the matched ε")
    aa = x.plan.matched_attacks.get("aa")
    if aa is not None and x.p.on_subset(aa, 1):
        what.append(f"{short_attack(aa)} at the matched ε")
    if x.plan.steps_curve:
        what.append("the steps curve of the masking checks")
    auto = [short_attack(w) for w in x.plan.whitebox if w.auto_rows]
    why = (f" {', '.join(auto)} runs on the whole test set where the grid's cost estimate fits its budget "
           "(`python -m rdm.pipeline.plan --cost`)." if auto else "")
    return (f"Run on test-sub.h5, a seeded random subset of the test set (n = {n}), to keep the expensive "
            f"attacks affordable: {', '.join(dict.fromkeys(what))}. Everything else uses the whole test set.{why}")


# --------------------------------------------------------------------------- Tables III–V
def table_accuracy(x: View) -> Table:
    no = TABLE_NO.get(x.m, ("", "", ""))[0]
    has_pur = "purified" in x.models
    cols = ["Attack", "No defence", "paper", "RDMAA transfer", "RDMAA white-box", "paper RDMAA"]
    if has_pur:
        cols += ["Purifier transfer", "Purifier white-box"]
    cols += ["Enhancement transfer", "Enhancement white-box", "paper enh.",
             "Difference transfer", "Difference white-box", "paper diff."]
    t = Table(f"table-{no or x.m}-accuracy-{x.m}",
              f"Table {no} ({x.m}): accuracy, no defence vs RDMAA (cells: {cells_words(x)}; differences in "
              f"{V.METRIC_WORDS[V.decide_on(x)]}, points)", cols)
    p = x.paper
    base_c, rd_c = x.clean("baseline"), x.clean("rdmaa")
    row = [acc_entry(base_c), paper_entry(p, "clean"), acc_entry(rd_c), DASH, paper_entry(p, "rdmaa_clean")]
    if has_pur:
        row += [acc_entry(x.clean("purified")), DASH]
    row += [DASH] * 6
    t.add("No attack", row)
    for lab, a, e, pk in conditions(x, x.paper_eps):
        b = x.transfer("baseline", a, e)
        rt = x.transfer("rdmaa", a, e)
        rw, rw_def = x.twin("rdmaa", a, e)
        bw = b  # the baseline's own adversarial set: transfer and white-box are the same for it
        row = [acc_entry(b), paper_entry(p, pk) if pk else DASH, acc_entry(rt), acc_entry(rw) if rw_def else DASH,
               paper_entry(p, f"rdmaa_{pk}") if pk else DASH]
        if has_pur:
            row += [acc_entry(x.transfer("purified", a, e)), _twin_entry(x, "purified", a, e)]
        row += [diff_entry(rt, b), diff_entry(rw, bw) if rw_def else DASH,
                paper_diff(p, f"rdmaa_{pk}", pk, f"enh_{pk}") if pk else DASH,
                diff_entry(rd_c, rt), diff_entry(rd_c, rw) if rw_def else DASH,
                paper_diff(p, "rdmaa_clean", f"rdmaa_{pk}", f"diff_{pk}") if pk else DASH]
        t.add(lab, row)
    # the stronger white-box attacks (no transfer twin), on the seeded subset
    for w in x.plan.whitebox_extra():
        for e in w.eps:
            b, r = x.whitebox("baseline", w, e), x.whitebox("rdmaa", w, e)
            row = [acc_entry(b), DASH, DASH, acc_entry(r), DASH]
            if has_pur:
                row += [DASH, acc_entry(x.whitebox("purified", w, e))]
            row += [DASH, diff_entry(r, b), DASH, DASH, DASH, DASH]
            sub = " (white-box only, subset)" if x.p.on_subset(w) else " (white-box only)"
            t.add(attack_label(w, e) + sub, row)
    if base_c is not None:
        t.add("Majority-class rate (test set)", [Entry([base_c.part("majority_rate", "majority")])] +
              [DASH] * (len(cols) - 2))
    t.notes += [
        "transfer: adversarial images crafted on the undefended baseline (the paper's protocol); white-box: "
        "crafted on the model itself. For the baseline both are the same.",
        f"Enhancement = RDMAA − no defence under the same attack; Difference = RDMAA clean − RDMAA attacked "
        f"(percentage points of {V.METRIC_WORDS[V.decide_on(x)]}, on the rows both cells share; the paper's "
        "columns are accuracy, as its tables print them).",
        "paper: Tables III–V, ε=.005. The paper's tables print α=.02 for PGD, its Table II says α=.002: "
        "both are run and the paper's number is shown beside both.",
    ]
    t.notes.append(subset_note(x))
    t.notes += paper_contradictions(x)
    t.notes += verdict_notes(x, [c for _, cells in t.rows for c in cells])
    return t


# --------------------------------------------------------------------------- Tables VI–VIII
def table_prf(x: View) -> Table:
    no = TABLE_NO.get(x.m, ("", "", ""))[1]
    models = [m for m in ("baseline", "rdmaa", "purified") if m in x.models or m == "baseline"]
    keys = [("accuracy", "ACC"), ("balanced_accuracy", "BAcc"), ("precision_macro", "P"),
            ("recall_macro", "R"), ("f1_macro", "F1")]
    cols = ["Condition"] + [f"{model_label(m)} {k}" for m in models for _, k in keys]
    t = Table(f"table-{no or x.m}-prf-{x.m}",
              f"Table {no} ({x.m}): accuracy, balanced accuracy, macro precision, recall, F1 (%)", cols)
    p = x.paper

    def metric_entries(ref: Ref | None, rows=None) -> list[Entry]:
        return V.metric_entries(x, ref, keys, rows)

    def side_by_side(refs: list) -> list[Entry]:
        """The row's cells on the same rows: cut to the subset's when one of them ran there."""
        cut = V.side_by_side(x, [r for r, d in refs if d])
        it = iter(cut or [])
        return [c for r, d in refs for c in (metric_entries(r, next(it) if cut else None) if d
                                             else [DASH] * len(keys))]

    def paper_entries(pk: str | None, model: str) -> list[Entry]:
        if pk is None or model == "purified":
            return [DASH] * len(keys)
        pre = "" if model == "baseline" else "rdmaa_"
        acc_key = pre + ("clean" if pk == "clean" else pk)
        other = (p.get("prf_acc") or {}).get(pk) if pre == "" else None    # what Tables VI–VIII print, if other
        acc = Entry([Part("paper", float(other), paper=True)]) if other is not None else paper_entry(p, acc_key)
        prf = [paper_entry(p, f"{pre}prf_{pk}", i) if f"{pre}prf_{pk}" in p else DASH for i in range(3)]
        return [acc, DASH] + prf

    t.add("No attack", side_by_side([(x.clean(m), True) for m in models]))
    t.add("No attack — paper", [c for m in models for c in paper_entries("clean", m)])
    for lab, a, e, pk in conditions(x, [PAPER_EPS]):
        t.add(f"{lab} — transfer", side_by_side([(x.transfer(m, a, e), True) for m in models]))
        wb = []
        for m in models:
            ref, defined = x.twin(m, a, e)
            if m == "baseline":   # its own adversarial set is already white-box
                ref, defined = x.transfer(m, a, e), True
            wb.append((ref, defined))
        t.add(f"{lab} — white-box", side_by_side(wb))
        t.add(f"{lab} — paper", [c for m in models for c in paper_entries(pk, m)])
    t.notes += ["P, R, F1: macro averages over the classes (scikit-learn, zero_division=0); ACC and BAcc: mean ± "
                "half the 95 % interval.",
                "For the baseline the transfer and white-box rows are the same images (crafted on it).",
                "A row whose models ran on different rows (a white-box cell on the seeded subset beside whole-test "
                "cells) shows every model on the subset's rows (†), cut from the per-row results."]
    t.notes += [n for n in paper_contradictions(x) if "contradicts itself" in n]
    rn = V.rows_note(x, [c for _, cells in t.rows for c in cells])
    if rn:
        t.notes.append(rn)
    return t


# --------------------------------------------------------------------------- Tables IX–XI
def table_advtrain(x: View) -> Table:
    no = TABLE_NO.get(x.m, ("", "", ""))[2]
    models = x.advtrain + [m for m in ("rdmaa", "purified") if m in x.models]
    cols = ["Attack"] + [f"{model_label(m)} {proto}" for m in models for proto in ("transfer", "white-box")] + \
        ["best AdvTrain transfer", "best AdvTrain white-box", "paper AdvTrain", "paper RDMAA"]
    t = Table(f"table-{no or x.m}-advtrain-{x.m}",
              f"Table {no} ({x.m}): adversarial training vs RDMAA (cells: {cells_words(x)})", cols)
    p = x.paper

    def best(refs) -> Entry:
        """The best adversarially trained model of the row (:func:`rdm.pipeline.verdicts.best_ref`: the
        metric the verdicts decide on, mean over the cell's seeds), its cell as the other columns show
        it, named: the model the claims table compares RDMAA with."""
        r = V.best_ref(x, [r for _, r in refs])
        if r is None:
            return NA if x.advtrain else DASH
        return dataclasses.replace(acc_entry(r), label=model_label(next(m for m, q in refs if q is r)))

    t.add("No attack", [c for m in models for c in (acc_entry(x.clean(m)), DASH)] +
          [best([(m, x.clean(m)) for m in x.advtrain]), DASH, DASH, paper_entry(p, "rdmaa_clean")])
    for lab, a, e, pk in conditions(x, x.paper_eps):
        row = [c for m in models for c in (acc_entry(x.transfer(m, a, e)), _twin_entry(x, m, a, e))]
        twins = [(m, *x.twin(m, a, e)) for m in x.advtrain]
        row += [best([(m, x.transfer(m, a, e)) for m in x.advtrain]),
                best([(m, r) for m, r, defined in twins if defined]) if any(d for *_, d in twins) else DASH]
        row += [paper_entry(p, f"advtrain_{pk}") if pk else DASH, paper_entry(p, f"rdmaa_{pk}") if pk else DASH]
        t.add(lab, row)
    for w in x.plan.whitebox_extra():
        for e in w.eps:
            row = [c for m in models for c in (DASH, acc_entry(x.whitebox(m, w, e)))]
            row += [DASH, best([(m, x.whitebox(m, w, e)) for m in x.advtrain]), DASH, DASH]
            t.add(attack_label(w, e) + (" (subset)" if x.p.on_subset(w) else ""), row)
    t.notes += ["AdvTrain-FGSM / -PGD: the paper's recipe (clean ∪ adversarial train set crafted on the baseline, "
                "ε=.005); AdvTrain-online: PGD adversarial training (Madry et al.), each batch attacked; "
                "AdvTrain-TRADES (Zhang et al. 2019) and AdvTrain-fast (FGSM from a random start, Wong et al. "
                "2020): `rdm-advtrain --recipe trades|fast` (settings in the grid and the models table).",
                "best AdvTrain: the most accurate of " + (", ".join(model_label(m) for m in x.advtrain) or "none") +
                f" in that row ({V.METRIC_WORDS[V.decide_on(x)]}, the metric of the verdicts), named.",
                "paper AdvTrain: Tables IX–XI (the paper does not say which adversarial set trained the model "
                "of each row)."]
    t.notes.append(subset_note(x))
    add_rows_note(t, x)
    return t


# --------------------------------------------------------------------------- the ε scale
def table_sweep(x: View, kind: str) -> Table:
    # the models the plan sweeps (the core tier sweeps the baseline alone: the matched ε)
    swept = [m for m in x.defended if any(x.p.sweep(m, kind, e) or x.p.sweep_transfer(m, kind, e) for e in x.sweep_eps)]
    cols = ["ε", "No defence white-box"] + [f"{model_label(m)} {proto}" for m in swept
                                           for proto in ("white-box", "transfer")]
    steps = x.plan.sweep_pgd_steps
    desc = "FGSM" if kind == "fgsm" else f"PGD ({steps} steps, α = {default_alpha(1.0, steps):.3g}·ε)"
    t = Table(f"sweep-{kind}-{x.m}", f"ε sweep, {desc}, {x.m} (cells: {cells_words(x)})", cols)
    t.add("0 (clean)", [acc_entry(x.sweep_clean("baseline", kind))] +
          [c for m in swept for c in (acc_entry(x.sweep_clean(m, kind)), acc_entry(x.clean(m)))])
    for e in x.sweep_eps:
        t.add(eps_txt(e), [acc_entry(x.sweep("baseline", kind, e))] +
              [c for m in swept for c in (acc_entry(x.sweep(m, kind, e)), acc_entry(x.sweep_transfer(m, kind, e)))])
    t.notes.append("white-box: the attack run on each model itself; transfer: the baseline's adversarial images"
                   " (whole test set).")
    if x.plan.sweep_on_subset:
        t.notes.append(f"The white-box sweep runs on the seeded subset test-sub.h5 (n = {x.subset_n}), and so does"
                       " its clean row; the transfer columns, clean row included, are on the whole test set.")
    add_rows_note(t, x)
    return t


def table_matched(x: View) -> Table:
    me = x.matched or {}
    fe, pe = me.get("fgsm"), me.get("pgd")
    fs = f"FGSM ε={eps_txt(fe)}" if fe is not None else "FGSM matched ε"
    ps = f"PGD ε={eps_txt(pe)}" if pe is not None else "PGD matched ε"
    cols = ["Model", f"{fs} transfer", f"{fs} white-box", f"{ps} transfer", f"{ps} white-box"]
    apgd = "apgd" in x.plan.matched_attacks       # the core tier runs the standard suite there, not APGD-CE alone
    if apgd:
        cols.append(f"APGD-CE-{x.plan.apgd_steps} ε={eps_txt(pe) if pe is not None else 'matched'} white-box (subset)")
    aa = x.plan.matched_attacks.get("aa")
    if aa is not None:
        cols.append(f"{short_attack(aa)} ε={eps_txt(pe) if pe is not None else 'matched'} white-box"
                    f"{' (subset)' if x.p.on_subset(aa, 1) else ''}")
    t = Table(f"matched-{x.m}", f"Every model at the matched ε, {x.m} (cells: {cells_words(x)})", cols)
    for m in ["baseline"] + x.defended:
        t.add(model_label(m), [acc_entry(x.matched_ref(m, "fgsm", "transfer")),
                               acc_entry(x.matched_ref(m, "fgsm", "white-box")),
                               acc_entry(x.matched_ref(m, "pgd", "transfer")),
                               acc_entry(x.matched_ref(m, "pgd", "white-box")),
                               *([acc_entry(x.matched_ref(m, "apgd", "white-box"))] if apgd else []),
                               *([acc_entry(x.matched_ref(m, "aa", "white-box"))] if aa is not None else [])])
    t.notes.append("For the baseline the transfer column is its own (white-box) attack.")
    t.notes.append(subset_note(x))
    add_rows_note(t, x)
    return t


def matched_lines(x: View, units: dict | None = None) -> list[str]:
    """One line per matched ε (the ε-scale section), or a line saying matched.json is missing;
    ``units`` (:func:`~rdm.pipeline.labels.units_of`): the ε in grey levels and physical units too."""
    me = x.matched or {}
    lines = []
    for kind in ("fgsm", "pgd"):
        if me.get(kind) is not None:
            det = me.get(f"{kind}_detail", {})
            phys = eps_physical(float(me[kind]), units, ", ") + "; " if units else ""
            lines.append(f"- matched ε for {kind.upper()}: **{eps_txt(me[kind])}** "
                         f"({phys}{me[kind] / PAPER_EPS:.1f}× the paper's .005), where the baseline falls to the paper's "
                         f"{det.get('paper_accuracy', 0) * 100:.0f} %" +
                         ("" if det.get("reached", True) else " — NOT reached within the sweep; the largest ε is used"))
    return lines + [""] if lines else ["- matched ε: n/a (matched.json missing)", ""]


# --------------------------------------------------------------------------- Tables I and II
TABLE1_KEYS = {"train": "train", "val": "val", "test": "test"}


def add_table1(t: Table | None, x: View) -> None:
    """Table I's numbers beside ours: a ``paper (Table I)`` column on the data table (rows per split)."""
    t1 = x.paper.get("table1")
    if t is None or not isinstance(t1, dict):
        return
    t.columns.append("paper (Table I)")
    for lab, cells in t.rows:
        key = TABLE1_KEYS.get(lab)
        cells.append(Entry([Part("paper", t1[key], count=True)]) if key in t1 else DASH)
    t.notes.append("paper (Table I): the paper's rows per split as printed (its adversarial test set: "
                   f"{t1.get('adv_test', '—')} rows).")
    if x.m == "brain":
        t.notes.append("The paper's Table I row for MRI reads 276 / 307 / 307 / 2481 under Train / Validate / Test / "
                       "AdversTest; 2481 + 276 + 307 = 3064, the data set's size, and its text says 80/10/10, so "
                       "the row reads as train 2481, validation 276, test 307 with the columns out of order in print.")
    if x.m == "leukemia":
        t.notes.append("The paper's text says 71 % for testing and 20 % for training and validation; its Table I "
                       "gives 652 of 3256 rows (20 %) to the test set.")


def table_attacks(plan) -> Table:
    """Table II: the attacks the grid runs, each beside the paper's settings (its Table II)."""
    t = Table("table-II-attacks", "Table II: attack settings, ours beside the paper's",
              ["Attack", "role", "ε", "α", "steps", "restarts", "rows", "paper (Table II)"])
    paper = {"fgsm": "FGSM, ε .002 and .005", "pgd": "PGD, ε .002 and .005, α .002, 3 steps "
                                                       "(Tables III–XI print α .02)"}

    def row(a, role: str, eps, rows: str) -> None:
        alpha = a.alpha if a.alpha is not None else ("2.5·ε/steps" if a.kind in ("pgd", "bim") else None)
        same = paper.get(a.kind) if role != "ε sweep" and (a.kind == "fgsm" or a.steps == 3) else None
        t.add(f"{short_attack(a)} ({a.name})", [words(role), words(", ".join(eps_txt(e) for e in eps) if eps else "matched"),
                                words(eps_txt(alpha) if isinstance(alpha, float) else (alpha or "—")),
                                words(a.steps or "—"), words(a.restarts if a.restarts and a.restarts > 1 else 1),
                                words(rows), words(same or "—")])

    for a in plan.test_attacks:
        row(a, "transfer (crafted on the baseline)", a.eps_for("test"), "test set")
    for w in plan.whitebox:
        rows = "seeded subset" if w.subset else "test set"
        if w.auto_rows:         # by the cost estimate, per modality (python -m rdm.pipeline.plan --cost)
            rows = "by cost: " + ", ".join(f"{m} {'subset' if mp.on_subset(w) else 'test set'}"
                                           for m, mp in plan.run.items())
        row(w, "white-box", w.eps, rows)
    for w in plan.steps_curve:
        row(w, "white-box (masking check (a))", w.eps, "seeded subset")
    for k, a in plan.sweep_attacks.items():
        row(a, "ε sweep", plan.sweep_eps, "seeded subset" if plan.sweep_on_subset else "test set")
    t.notes.append("ε: L∞ on pixels in [0, 1]. The ε sweep's PGD uses α = 2.5·ε/steps; the sweep's transfer sets "
                   "are on the whole test set.")
    return t
