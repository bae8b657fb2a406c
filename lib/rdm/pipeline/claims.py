"""Verdicts: the noise rule, the paper's claims checked, and the findings.

* a difference counts only **beyond noise**: more than 2 points AND two standard errors of the
  difference of two proportions (:func:`above_noise`), and only between results on the same rows.

The claims table and the findings compare models with the paired verdicts of
:mod:`rdm.pipeline.verdicts` (same rows and seeds, :func:`rdm.evaluation.stats.paired_test`, in the modality's
deciding metric), not with the noise rule above. The gradient-masking checks (and ``rdm-eval``'s
warnings, the same definitions) are in :mod:`rdm.pipeline.masking`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from rdm.evaluation.masking import MASK_TOL, above_noise  # noqa: F401
from rdm.pipeline.labels import attack_label, eps_txt, model_label, pct, same_eps, short_attack
from rdm.pipeline.paper import conditions
from rdm.pipeline.config import PAPER_EPS
from rdm.pipeline import verdicts as V
from rdm.pipeline.results import Ref, View
from rdm.pipeline.tables import DASH, NA, VERDICT_MARK, Entry, Table, bounds, signed



# --------------------------------------------------------------------------- the rules
def rows_of(r: Ref) -> str:
    """The clean rows a result was computed on (file name of the set, or of an adversarial set's source)."""
    res = r.result
    return Path(str(res.get("source") or res.get("set") or "")).name


def same_rows(a: Ref, b: Ref) -> bool:
    """Both results are on the same clean rows (the whole test set, or both on the seeded subset)."""
    return rows_of(a) == rows_of(b) and a.n == b.n


def beyond_noise(hi: Ref, lo: Ref) -> bool:
    a, b = hi.metric("accuracy"), lo.metric("accuracy")
    if a is None or b is None:
        return False
    return above_noise(a, hi.n, b, lo.n)


def claims_table(x: View) -> Table:
    """The paper's claims, checked at the paper's ε and at the matched ε, transfer and white-box."""
    cols = ["Claim", "ε=.005 transfer", "ε=.005 white-box", "matched ε transfer", "matched ε white-box"]
    t = Table(f"claims-{x.m}", f"The paper's claims, {x.m}: do they hold here? (paired verdicts on "
              f"{V.METRIC_WORDS[V.decide_on(x)]}, %)", cols)
    p, e = x.paper, PAPER_EPS
    conds = conditions(x, [e])
    first = {c[1].kind: c for c in reversed(conds)}   # first of each kind wins
    pg = next((c for c in conds if c[1].kind == "pgd" and x.plan.whitebox_twin(c[1]) is not None), first.get("pgd"))
    fg = first.get("fgsm")

    def verdict(ok: bool | str, txt: str) -> Entry:
        return Entry([], na=(ok if isinstance(ok, str) else ("yes" if ok else "no")) + f" ({txt})")

    def above(a: Ref | None, b: Ref | None, named: bool = False) -> Entry:
        """The paired verdict of A over B on the same rows, in the modality's deciding metric;
        ``named``: B's model is named (the best adversarial training)."""
        if a is None or b is None:
            return NA
        v = V.compare(x, a, b)
        if v is None:               # no per-row data, or rows that cannot be matched: nothing to say
            return Entry([], na=V.ROWS_DIFFER)
        who = f"B = {model_label(b.cell.model)}: " if named and b.cell is not None else ""
        return verdict(CLAIM_WORD[v.verdict], who + claim_numbers(x, v, a, b))

    for kind, c in (("fgsm", fg), ("pgd", pg)):
        if c is None:
            continue
        name, a = kind.upper(), c[1]
        b = x.transfer("baseline", a, e)
        if kind in p and b is not None:
            v, half = V.mean_and_half(x, b, "accuracy")
            entry = verdict(v <= p[kind] + 0.05, f"{pct(v)}{f' ± {100 * half:.1f}' if half else ''}; "
                                                 f"paper {100 * p[kind]:.0f}")
        else:
            entry = NA if b is None else DASH
        t.add(f"{name} at ε=.005 brings the baseline down to the paper's accuracy", [entry, DASH, DASH, DASH])
        rt = x.transfer("rdmaa", a, e)
        rw, rw_def = x.twin("rdmaa", a, e)
        bw, _ = x.twin("baseline", a, e)          # the baseline on the rows RDMAA's white-box cell used
        mb = x.matched_ref("baseline", kind, "white-box")
        mbt = x.matched_ref("baseline", kind, "transfer")   # its own attack, whole test set
        mrt, mrw = x.matched_ref("rdmaa", kind, "transfer"), x.matched_ref("rdmaa", kind, "white-box")
        t.add(f"RDMAA is more accurate than no defence under {name}",
              [above(rt, b), above(rw, bw) if rw_def else DASH, above(mrt, mbt), above(mrw, mb)])
        if x.advtrain:
            at = V.best_ref(x, [x.transfer(m, a, e) for m in x.advtrain])
            aw = V.best_ref(x, [x.twin(m, a, e)[0] for m in x.advtrain]) if rw_def else None
            mat = V.best_ref(x, [x.matched_ref(m, kind, "transfer") for m in x.advtrain])
            maw = V.best_ref(x, [x.matched_ref(m, kind, "white-box") for m in x.advtrain])
            t.add(f"RDMAA is more accurate than the best adversarial training under {name}",
                  [above(rt, at, True), above(rw, aw, True) if rw_def else DASH, above(mrt, mat, True),
                   above(mrw, maw, True)])
        for c in getattr(x.plan, "controls", []):
            # issue 16: does RDMAA resist the baseline's images better than ANY other network would?
            t.add(f"RDMAA is more accurate under {name} transfer than the seed control" +
                  (f" ({c})" if c != "control" else "") + " (the baseline's recipe, another seed: undefended)",
                  [above(rt, x.transfer(c, a, e)), DASH, above(mrt, x.matched_ref(c, kind, "transfer")), DASH])
    bc, rc = x.clean("baseline"), x.clean("rdmaa")
    if bc is not None and rc is not None:
        v = V.compare(x, rc, bc)
        entry = (Entry([], na=V.ROWS_DIFFER) if v is None else
                 verdict({"worse": "no", "better": "yes", "within noise": "within noise"}[v.verdict],
                         claim_numbers(x, v, rc, bc)))
    else:
        entry = NA
    t.add(f"RDMAA keeps the baseline's clean {V.METRIC_WORDS[V.decide_on(x)]} (not worse by the paired test)",
          [entry, DASH, DASH, DASH])
    t.notes += ["Our numbers (RDMAA first) against the comparison, in " + V.METRIC_WORDS[V.decide_on(x)] +
                (f" with {V.positive_class(x)} recall (sensitivity) beside" if V.positive_class(x) else "") +
                ": A vs B, A − B [95 % interval], the rows × seeds behind it. yes / no: A is more / less accurate "
                "by the paired test; \"within noise\": the test cannot tell them apart at this number of rows and "
                "seeds (neither claim is shown). \"The paper's accuracy\": our accuracy within 5 points of it or "
                "below.",
                "Each comparison is on the same rows and seeds (a whole-test-set cell is cut to the seeded subset's "
                "rows when the other cell ran there, †); at the matched ε the baseline is attacked by its own attack; "
                "best adversarial training: the most accurate of " +
                (", ".join(model_label(m) for m in x.advtrain) or "none") + " in that cell, in " +
                V.METRIC_WORDS[V.decide_on(x)] + " (named as B).",
                V.rule(x)]
    return t


CLAIM_WORD = {"better": "yes", "worse": "no", "within noise": "within noise"}


def claim_numbers(x: View, v: "V.Verdict", a: Ref, b: Ref) -> str:
    """``bal 80.1 vs 82.3, −2.2 [−6.0, +1.5]; nodule recall 72.6 vs 85.2; 100 rows × 1 seed †``."""
    txt = (f"{pct(v.va)} vs {pct(v.vb)}, {signed(v.cmp.diff)} {bounds(v.cmp.lo, v.cmp.hi)}"
           f"{v.noise_reason()}")
    pos = V.positive_class(x)
    if pos is not None:
        r = V.compare(x, a, b, "recall:" + pos)
        if r is not None:
            txt += f"; {pos} recall {pct(r.va)} vs {pct(r.vb)}"
    return txt + f"; {v.behind()}" + (" †" if v.restricted or v.a.subset else "")


def _said(x: View, a: Ref | None, b: Ref | None) -> tuple[str, list[dict]]:
    """``↓ 59.0 vs 80.0, −21.0 [−30.0, −12.5] (100 rows × 2 seeds)``: A vs B in the deciding metric on
    the same rows and seeds, from :func:`rdm.pipeline.verdicts.diff_entry` (its parts for report.json);
    ``n/a`` with the reason when either is missing or their rows differ."""
    if a is None or b is None:
        return "n/a (metrics file missing)", []
    e = V.diff_entry(x, a, b)
    if not e.parts:
        return e.text(), []
    d = e.parts[0]
    pa, pb = d.minus
    r = d.rows
    where = " of the seeded subset" if e.mark else ""
    pos = V.positive_class(x)
    rec = V.compare(x, a, b, "recall:" + pos) if pos is not None else None
    txt = (f"{VERDICT_MARK.get(d.verdict, '')} {pa.text()} vs {pb.text()}, {signed(d.value)} "
           f"{bounds(d.lo, d.hi)}{V.noise_reason(d.verdict, d.lo, d.hi, d.p)}" + (f"; {pos} recall {pct(rec.va)} vs {pct(rec.vb)}" if rec is not None else "") +
           f" ({r['n_rows']} rows{where} × {r['n_seeds']} seed{'s' if r['n_seeds'] != 1 else ''}"
           f"{V.by_seed(r.get('per_seed', ()))})")
    return txt, [d.to_json()]


SUMMARY_LETTERS = "abcdef"


def coverage(x: View, flagged: Sequence[str], ran: dict[str, tuple[int, int]] | None
             ) -> tuple[list[str], list[str]]:
    """The defended models with no flag, split into (checked, unchecked): a model none of whose checks
    ran (its metrics files missing) is unchecked, not clean. A checked model whose checks did not all
    run reads ``RDMAA (4 of 7 checks ran)``. Without ``ran`` every unflagged model counts as checked."""
    checked, unchecked = [], []
    for m in x.defended:
        if m in flagged:
            continue
        k, n = ran.get(m, (0, 0)) if ran is not None else (1, 1)
        if k == 0:
            unchecked.append(model_label(m))
        else:
            checked.append(model_label(m) + (f" ({k} of {n} checks ran)" if k < n else ""))
    return checked, unchecked



def summary(x: View, flags: list[dict], ran: dict[str, tuple[int, int]] | None = None) -> list[dict]:
    """The report's short list, one item per claim (clean, transfer, the white-box standard suite, the
    seed control, the best adversarial training, gradient masking): ``claim``, ``text`` (the line,
    verdict marks and numbers with their intervals and the rows × seeds behind them) and ``parts``
    (each shown difference with the files it came from). The explanations are in the sections below.
    ``ran`` (:func:`rdm.pipeline.masking.checks_ran`): "no sign" is said only of models whose checks ran."""
    out: list[dict] = []
    e = PAPER_EPS
    conds = conditions(x, [e])
    first = {c[1].kind: c for c in reversed(conds)}
    pg = next((c for c in conds if c[1].kind == "pgd" and x.plan.whitebox_twin(c[1]) is not None), first.get("pgd"))
    fg = first.get("fgsm")
    atks = [(k.upper(), c) for k, c in (("fgsm", fg), ("pgd", pg)) if c is not None]

    def item(claim: str, what: str, bits: list[tuple[str, tuple[str, list[dict]]]], tail: str = "") -> None:
        said = "; ".join((f"{lab} " if lab else "") + t for lab, (t, _) in bits)
        out.append({"claim": claim, "text": f"**{claim}** ({what}): {said}{tail}",
                    "parts": [p for _, (_, ps) in bits for p in ps]})

    bc, rc = x.clean("baseline"), x.clean("rdmaa")
    if bc is not None and rc is not None:
        acc = V.acc_entry(x, bc).parts[0]
        maj, paper_clean = bc.metric("majority_rate"), x.paper.get("clean")
        tail = (f"; no defence: accuracy {acc.text()} %" + (f" (paper {100 * paper_clean:.0f})" if paper_clean else "")
                + (f", majority class {pct(maj)} %" if maj is not None else ""))
        item("Clean", "RDMAA vs no defence", [("", _said(x, rc, bc))], tail)
        out[-1]["parts"].append(acc.to_json())
    if atks:
        p = x.paper
        enh = [(n, p.get(f"enh_{k}", p[f"rdmaa_{k}"] - p[k] if f"rdmaa_{k}" in p and k in p else None))
               for n, k in ((n, n.lower()) for n, _ in atks)]
        enh = [f"{v * 100:+.0f} ({n})" for n, v in enh if v is not None]
        item("Transfer", f"ε={eps_txt(e)}, crafted on the baseline; RDMAA vs no defence",
             [(n, _said(x, x.transfer("rdmaa", c[1], e), x.transfer("baseline", c[1], e))) for n, c in atks],
             f"; the paper prints {', '.join(enh)} points of accuracy" if enh else "")
    aa = [w for w in x.plan.whitebox if w.kind == "aa" and any(same_eps(e, v) for v in w.eps)]
    if aa:
        w = aa[0]
        item("White-box standard suite", f"{short_attack(w)} ε={eps_txt(e)} on each model itself; RDMAA vs no defence",
             [("", _said(x, x.whitebox("rdmaa", w, e), x.whitebox("baseline", w, e)))])
    for ctl in getattr(x.plan, "controls", []):
        if atks:
            item("Seed control", f"transfer ε={eps_txt(e)}; RDMAA vs {model_label(ctl)}",
                 [(n, _said(x, x.transfer("rdmaa", c[1], e), x.transfer(ctl, c[1], e))) for n, c in atks])
    if x.advtrain and pg is not None:
        bits = []
        at = V.best_ref(x, [x.transfer(m, pg[1], e) for m in x.advtrain])
        if at is not None:
            bits.append((f"transfer (vs {model_label(at.cell.model)})", _said(x, x.transfer("rdmaa", pg[1], e), at)))
        rw, rw_def = x.twin("rdmaa", pg[1], e)
        aw = V.best_ref(x, [x.twin(m, pg[1], e)[0] for m in x.advtrain]) if rw_def else None
        if aw is not None:
            bits.append((f"white-box (vs {model_label(aw.cell.model)})", _said(x, rw, aw)))
        if bits:
            item("Best adversarial training", f"{short_attack(pg[1])} ε={eps_txt(e)}; RDMAA vs the most accurate of "
                                              f"{len(x.advtrain)} adversarially trained models", bits)
    by: dict[str, list[str]] = {}
    for fl in flags:
        if fl.get("flag") and fl["model"] in x.defended:
            by.setdefault(fl["model"], []).append(fl.get("letter", "?"))
    if x.defended:
        checked, unchecked = coverage(x, list(by), ran)
        bits = (["⚠ signs for " + ", ".join(f"{model_label(m)} ({', '.join(sorted(set(v)))})" for m, v in by.items())]
                if by else [])
        every = not by and not unchecked and not any("checks ran" in c for c in checked)
        if checked:
            bits.append(("none for " if by else "✓ no sign for ") + ("any defended model" if every else ", ".join(checked)))
        if unchecked:
            bits.append("not checked for " + ", ".join(unchecked) + " (metrics files missing)")
        txt = "; ".join(bits)
        out.append({"claim": "Gradient masking", "text": "**Gradient masking** (checks (a)–(f) of the gradient-masking "
                    f"table, per defended model): {txt}", "parts": []})
    return out


def summary_lines(x: View, items: list[dict]) -> list[str]:
    """The short list as markdown, with its legend."""
    if not items:
        return []
    return ([f"- {it['text']}" for it in items] +
            ["", f"<sub>A vs B in {V.METRIC_WORDS[V.decide_on(x)]} (%), A − B [95 % interval] on the same rows and "
                 "seeds, ↑ better, ↓ worse, ≈ within noise (paired sign-flip test; the rule under each table). "
                 "Masking letters: the checks of the gradient-masking table.</sub>", ""])


def findings(x: View, flags: list[dict], ran: dict[str, tuple[int, int]] | None = None) -> list[str]:
    """Factual sentences, each with its numbers."""
    s: list[str] = []
    p = x.paper

    def a(r: Ref | None) -> float | None:      # the mean over the cell's seeds
        return None if r is None else V.mean_and_half(x, r, "accuracy", interval=False)[0]

    def f(v: float | None) -> str:
        return f"{pct(v)} %"

    bc = x.clean("baseline")
    if bc is None:
        return [f"{x.m}: the baseline's clean metrics are missing; nothing to say yet."]
    maj = bc.metric("majority_rate")
    acc, half = V.mean_and_half(x, bc, "accuracy")
    s.append(f"The baseline classifies {pct(acc)}{f' ± {100 * half:.1f}' if half is not None else ''} % of the {bc.n} "
             f"test images right (balanced accuracy {f(V.mean_and_half(x, bc, 'balanced_accuracy', interval=False)[0])}"
             f"; always answering the majority class would give {f(maj)}); "
             f"the paper reports {p['clean'] * 100:.0f} %." if "clean" in p else "")
    rc = x.clean("rdmaa")
    if rc is not None:
        s.append(f"RDMAA classifies {f(a(rc))} of the clean test images right (against the baseline: "
                 f"{V.said(x, rc, bc)}).")
    e = PAPER_EPS
    conds = conditions(x, [e])
    falls = []
    for lab, att, _, pk in conds:
        b = a(x.transfer("baseline", att, e))
        if b is None:
            continue
        what = lab.replace(" ε=.005", "").replace(",", "")
        falls.append(f"{f(b)} under {what}" + (f" (paper: {p[pk] * 100:.0f} %)" if pk in p else ""))
    if falls:
        s.append("At the paper's ε = .005 the baseline falls to " + ", ".join(falls[:-1]) +
                 (" and " if len(falls) > 1 else "") + falls[-1] + ".")
    fg = next((c for c in conds if c[1].kind == "fgsm"), None)
    pg = next((c for c in conds if c[1].kind in ("pgd", "bim") and x.plan.whitebox_twin(c[1]) is not None),
              next((c for c in conds if c[1].kind in ("pgd", "bim")), None))
    for c in (fg, pg):
        if c is None:
            continue
        rt = a(x.transfer("rdmaa", c[1], e))
        b = a(x.transfer("baseline", c[1], e))
        rw, rw_def = x.twin("rdmaa", c[1], e)
        if rt is None or b is None:
            continue
        pk = "fgsm" if c[1].kind == "fgsm" else "pgd"
        enh = p.get(f"enh_{pk}", p[f"rdmaa_{pk}"] - p[pk] if f"rdmaa_{pk}" in p and pk in p else None)
        paper_enh = f"; the paper prints {enh * 100:+.0f} points of accuracy" if enh is not None else ""
        txt = (f"Under {c[0]} crafted on the baseline (transfer), RDMAA keeps {f(rt)} against the baseline's {f(b)} "
               f"({V.said(x, x.transfer('rdmaa', c[1], e), x.transfer('baseline', c[1], e))}{paper_enh})")
        if rw_def and a(rw) is not None:
            bw = x.transfer("baseline", c[1], e)      # the baseline's own attack: its white-box
            txt += f"; attacked directly (white-box) it keeps {f(a(rw))} (against the baseline's own attack: {V.said(x, rw, bw)})"
        s.append(txt + ".")
    # stronger white-box
    for w in x.plan.whitebox_extra():
        if not any(same_eps(e, v) for v in w.eps):
            continue
        rr, br = x.whitebox("rdmaa", w, e), x.whitebox("baseline", w, e)
        r, b = a(rr), a(br)
        if r is not None and b is not None:
            where = f", subset of {x.subset_n} test images" if x.p.on_subset(w) else ""
            s.append(f"{attack_label(w, e)} (white-box{where}): RDMAA {f(r)}, baseline {f(b)} ({V.said(x, rr, br)}).")
    # RDMAA vs adversarial training
    if x.advtrain and pg is not None:
        rt = a(x.transfer("rdmaa", pg[1], e))
        top = V.best_ref(x, [x.transfer(m, pg[1], e) for m in x.advtrain])     # in the deciding metric
        if rt is not None and top is not None:
            v = V.compare(x, x.transfer("rdmaa", pg[1], e), top)
            verdict = ("not comparable on the same rows with" if v is None else
                       {"better": "above", "worse": "below", "within noise": "within noise of"}[v.verdict])
            s.append(f"Against {pg[0]} (transfer), RDMAA at {f(rt)} is {verdict} the best adversarially trained model "
                     f"({model_label(top.cell.model)}, {f(a(top))}"
                     f"{'; ' + V.said(x, x.transfer('rdmaa', pg[1], e), top) if v else ''}); "
                     "the paper claims RDMAA is above adversarial training.")
        w = x.plan.whitebox_twin(pg[1])
        if w is not None:
            rw = a(x.whitebox("rdmaa", w, e))
            top = V.best_ref(x, [x.whitebox(m, w, e) for m in x.advtrain])
            if rw is not None and top is not None:
                s.append(f"Attacked white-box with the same PGD, RDMAA keeps {f(rw)} and {model_label(top.cell.model)} "
                         f"{f(a(top))} ({V.said(x, x.whitebox('rdmaa', w, e), top)}).")
    # matched ε
    me = x.matched or {}
    for kind in ("fgsm", "pgd"):
        if me.get(kind) is None:
            continue
        det = me.get(f"{kind}_detail", {})
        ratio = me[kind] / PAPER_EPS
        reached = det.get("reached", True)
        base = a(x.matched_ref("baseline", kind, "white-box"))
        rd_t = a(x.matched_ref("rdmaa", kind, "transfer"))
        rd_w = a(x.matched_ref("rdmaa", kind, "white-box"))
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
    by = sorted({fl["model"] for fl in mine})
    checked, unchecked = coverage(x, by, ran)
    if mine:
        s.append("Signs of gradient masking (see the checks below) for: " + ", ".join(model_label(m) for m in by) + ".")
    elif not any(x.r.exists(x.p.clean(m)) for m in x.defended):
        s.append("No defended model has been evaluated yet, so nothing is checked for gradient masking.")
        unchecked = []
    elif checked:
        every = not unchecked and not any("checks ran" in c for c in checked)
        s.append(("None of the defended models shows" if every else
                  ", ".join(checked) + (" shows" if len(checked) == 1 else " show") + " none of") +
                 " the gradient-masking signs checked for (see the gradient-masking table: steps, restarts, "
                 "Square, transfer, large ε, the noise control).")
    if unchecked:
        s.append("Not checked for gradient masking: " + ", ".join(unchecked) + " (metrics files missing).")
    return [t for t in s if t]
