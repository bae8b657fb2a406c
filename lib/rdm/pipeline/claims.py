"""Verdicts: the noise rule, the paper's claims checked, and the findings.

* a difference counts only **beyond noise**: more than 2 points AND two standard errors of the
  difference of two proportions (:func:`above_noise`), and only between results on the same rows.

The claims table decides each claim by a verdict between methods (:func:`rdm.pipeline.verdicts.method_compare`:
a hierarchical bootstrap over seeds and rows, an equivalence margin, p-values adjusted across the table;
``docs/statistics.md``). The findings compare models with the paired verdicts of
:mod:`rdm.pipeline.verdicts` (same rows and seeds, :func:`rdm.evaluation.stats.paired_test`, in the modality's
deciding metric), not with the noise rule above. The gradient-masking checks (and ``rdm-eval``'s
warnings, the same definitions) are in :mod:`rdm.pipeline.masking`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rdm.evaluation import stats
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


#: the answer to "RDMAA is more accurate than B" for each outcome of the verdict between methods
MORE_ACCURATE = {"better": "yes", "worse": "no", "equivalent": "no", "cannot tell": "cannot tell"}
#: the answer to "RDMAA keeps B's accuracy (not worse)"
KEEPS = {"better": "yes", "equivalent": "yes", "worse": "no", "cannot tell": "cannot tell"}


@dataclass
class Pending:
    """A claims cell whose verdict waits for the table's other verdicts (their p-values are adjusted
    together): the entry to fill, the verdict, the two results, how its outcome answers the claim and
    the words before its numbers."""

    entry: Entry
    verdict: "V.MethodVerdict"
    a: Ref
    b: Ref
    answers: dict[str, str]
    who: str = ""


def claims_table(x: View) -> Table:
    """The paper's claims, checked at the paper's ε and at the matched ε, transfer and white-box; every
    RDMAA-versus-B cell is a verdict between methods (:func:`rdm.pipeline.verdicts.method_compare`),
    its p-values adjusted across the table."""
    cols = ["Claim", "ε=.005 transfer", "ε=.005 white-box", "matched ε transfer", "matched ε white-box"]
    t = Table(f"claims-{x.m}", f"The paper's claims, {x.m}: do they hold here? (verdicts between methods on "
              f"{V.METRIC_WORDS[V.decide_on(x)]}, %)", cols)
    pending: list[Pending] = []

    def above(a: Ref | None, b: Ref | None, named: bool = False, answers: dict[str, str] = MORE_ACCURATE) -> Entry:
        """The verdict of A over B on the same rows and seeds, in the modality's deciding metric;
        ``named``: B's model is named (the best adversarial training)."""
        if a is None or b is None:
            return NA
        v = V.method_compare(x, a, b)
        if v is None:               # no per-row data, or rows that cannot be matched: nothing to say
            return Entry([], na=V.ROWS_DIFFER)
        who = f"B = {model_label(b.cell.model)}: " if named and b.cell is not None else ""
        pending.append(Pending(Entry([]), v, a, b, answers, who))
        return pending[-1].entry

    for kind, c in attack_conditions(x):
        claim_rows(x, t, kind, c, above)
    bc, rc = x.clean("baseline"), x.clean("rdmaa")
    entry = above(rc, bc, answers=KEEPS) if bc is not None and rc is not None else NA
    t.add(f"RDMAA keeps the baseline's clean {V.METRIC_WORDS[V.decide_on(x)]} (not worse by the paired test)",
          [entry, DASH, DASH, DASH])
    settle(x, pending)
    t.notes += claims_notes(x)
    return t


def attack_conditions(x: View) -> list[tuple[str, tuple]]:
    """The transfer conditions the claims are checked under at the paper's ε: the first FGSM, and the
    first PGD that has a white-box twin (else the first PGD)."""
    conds = conditions(x, [PAPER_EPS])
    first = {c[1].kind: c for c in reversed(conds)}   # first of each kind wins
    pg = next((c for c in conds if c[1].kind == "pgd" and x.plan.whitebox_twin(c[1]) is not None), first.get("pgd"))
    return [(k, c) for k, c in (("fgsm", first.get("fgsm")), ("pgd", pg)) if c is not None]


def claim_rows(x: View, t: Table, kind: str, c: tuple, above) -> None:
    """The claims table's rows for one attack: the baseline's fall, RDMAA against no defence, against
    the best adversarial training and against each seed control."""
    name, a, e, p = kind.upper(), c[1], PAPER_EPS, x.paper
    b = x.transfer("baseline", a, e)
    if kind in p and b is not None:
        v, half = V.mean_and_half(x, b, "accuracy")
        yes = "yes" if v <= p[kind] + 0.05 else "no"
        entry = Entry([], na=f"{yes} ({pct(v)}{f' ± {100 * half:.1f}' if half else ''}; paper {100 * p[kind]:.0f})")
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
    pair = x.matched_pair()
    if pair is not None:
        r, ats = pair
        t.add(f"… both trained at the matched ε: {model_label(r)} more accurate than the best of "
              f"{', '.join(model_label(m) for m in ats)} under {name}",
              [DASH, DASH, above(x.matched_ref(r, kind, "transfer"),
                                 V.best_ref(x, [x.matched_ref(m, kind, "transfer") for m in ats]), True),
               above(x.matched_ref(r, kind, "white-box"),
                     V.best_ref(x, [x.matched_ref(m, kind, "white-box") for m in ats]), True)])
    for ctl in getattr(x.plan, "controls", []):
        # does RDMAA resist the baseline's images better than ANY other network would?
        t.add(f"RDMAA is more accurate under {name} transfer than the seed control" +
              (f" ({ctl})" if ctl != "control" else "") + " (the baseline's recipe, another seed: undefended)",
              [above(rt, x.transfer(ctl, a, e)), DASH, above(mrt, x.matched_ref(ctl, kind, "transfer")), DASH])


def settle(x: View, pending: list[Pending]) -> None:
    """Adjust the table's verdicts together, then fill each waiting cell: its words and its numbers
    (the difference, both sides' files, raw and adjusted p) for report.json."""
    for w, v in zip(pending, V.adjust_verdicts(x, [q.verdict for q in pending])):
        w.entry.parts = [v.part(w.a, w.b)]
        w.entry.said = claim_words(x, v, w.a, w.b, w.answers, w.who)


def claim_words(x: View, v: "V.MethodVerdict", a: Ref, b: Ref, answers: dict[str, str], who: str = "") -> str:
    """``no (B = AdvTrain-PGD: worse: 61.0 vs 70.2, −9.2 [−14.0, −4.1]; p < .001, Holm .004; within ±3:
    no (TOST p = 1, Holm 1); 300 rows of the test set × 3 seeds; by seed …)``; with fewer than three
    seeds the answer reads ``…, two networks`` and the reason follows the rows × seeds."""
    c, (margin, how) = v.cmp, V.stats_rule(x)
    adj, m = V.ADJUST_SHORT[how], V.points(margin)
    head = f"equivalent within {m} points" if v.outcome == "equivalent" else v.outcome
    txt = (f"{who}{head}: {pct(v.va)} vs {pct(v.vb)}, {signed(c.diff)} {bounds(c.lo, c.hi)}; "
           f"{V.p_is(c.p)}, {adj} {V.p_txt(c.p_adj)}; within ±{m}: {'yes' if c.equivalent else 'no'} "
           f"(TOST {V.p_is(c.p_tost)}, {adj} {V.p_txt(c.p_tost_adj)})")
    pos = V.positive_class(x)
    if pos is not None:
        r = V.compare(x, a, b, "recall:" + pos)
        if r is not None:
            txt += f"; {pos} recall {pct(r.va)} vs {pct(r.vb)}"
    scope = stats.scope_words(c.n_seeds)
    txt += f"; {v.behind()}" + (f": {scope}" if scope else "") + (" †" if v.restricted or v.a.subset else "")
    return f"{answers[v.outcome]}{'' if c.methods else ', two networks'} ({txt})"


def claims_notes(x: View) -> list[str]:
    """The claims table's notes: how to read a cell, the rows it pairs, and the verdict rule."""
    margin, how = V.stats_rule(x)
    return ["Each cell: the answer to the claim (yes / no / cannot tell; \"two networks\" when either model "
            f"has fewer than {stats.MIN_SEEDS} seeds), then the outcome (better, worse, equivalent within "
            f"{V.points(margin)} points, cannot tell), our numbers (RDMAA first) against the comparison in "
            + V.METRIC_WORDS[V.decide_on(x)] +
            (f" with {V.positive_class(x)} recall (sensitivity) beside" if V.positive_class(x) else "") +
            f": A vs B, A − B [95 % interval], p raw and {V.ADJUST_WORDS[how]}-adjusted, whether the "
            "difference is within the margin (TOST p raw and adjusted), the rows × seeds behind it. \"The "
            "paper's accuracy\": our accuracy within 5 points of it or below.",
            "Each comparison is on the same rows and seeds (a whole-test-set cell is cut to the seeded subset's "
            "rows when the other cell ran there, †); at the matched ε the baseline is attacked by its own attack; "
            "best adversarial training: the most accurate of " +
            (", ".join(model_label(m) for m in x.advtrain) or "none") + " in that cell, in " +
            V.METRIC_WORDS[V.decide_on(x)] + " (named as B).",
            V.method_rule(x)]


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
    """Factual sentences, each with its numbers: the clean accuracy, the transfer attacks, the stronger
    white-box attacks, RDMAA against adversarial training, the matched ε and gradient masking."""
    bc = x.clean("baseline")
    if bc is None:
        return [f"{x.m}: the baseline's clean metrics are missing; nothing to say yet."]
    conds = conditions(x, [PAPER_EPS])
    fg = next((c for c in conds if c[1].kind == "fgsm"), None)
    pg = next((c for c in conds if c[1].kind in ("pgd", "bim") and x.plan.whitebox_twin(c[1]) is not None),
              next((c for c in conds if c[1].kind in ("pgd", "bim")), None))
    s = [*clean_findings(x, bc), *fall_findings(x, conds), *transfer_findings(x, (fg, pg)), *whitebox_findings(x),
         *advtrain_findings(x, pg), *matched_findings(x), *masking_findings(x, flags, ran)]
    return [t for t in s if t]


def mean_of(x: View, r: Ref | None) -> float | None:
    """A cell's accuracy, the mean over its seeds (None: missing)."""
    return None if r is None else V.mean_and_half(x, r, "accuracy", interval=False)[0]


def pc(v: float | None) -> str:
    """``80.1 %``."""
    return f"{pct(v)} %"


def clean_findings(x: View, bc: Ref) -> list[str]:
    """The baseline's clean accuracy (against the majority class and the paper), and RDMAA's."""
    p, s = x.paper, []
    maj = bc.metric("majority_rate")
    acc, half = V.mean_and_half(x, bc, "accuracy")
    s.append(f"The baseline classifies {pct(acc)}{f' ± {100 * half:.1f}' if half is not None else ''} % of the {bc.n} "
             f"test images right (balanced accuracy {pc(V.mean_and_half(x, bc, 'balanced_accuracy', interval=False)[0])}"
             f"; always answering the majority class would give {pc(maj)}); "
             f"the paper reports {p['clean'] * 100:.0f} %." if "clean" in p else "")
    rc = x.clean("rdmaa")
    if rc is not None:
        s.append(f"RDMAA classifies {pc(mean_of(x, rc))} of the clean test images right (against the baseline: "
                 f"{V.said(x, rc, bc)}).")
    return s


def fall_findings(x: View, conds: list) -> list[str]:
    """How far each transfer attack at the paper's ε brings the baseline down (and the paper's number)."""
    p, falls = x.paper, []
    for lab, att, _, pk in conds:
        b = mean_of(x, x.transfer("baseline", att, PAPER_EPS))
        if b is None:
            continue
        what = lab.replace(" ε=.005", "").replace(",", "")
        falls.append(f"{pc(b)} under {what}" + (f" (paper: {p[pk] * 100:.0f} %)" if pk in p else ""))
    if not falls:
        return []
    return ["At the paper's ε = .005 the baseline falls to " + ", ".join(falls[:-1]) +
            (" and " if len(falls) > 1 else "") + falls[-1] + "."]


def transfer_findings(x: View, chosen: tuple) -> list[str]:
    """RDMAA under the FGSM and PGD crafted on the baseline, and attacked directly (white-box twin)."""
    p, e, s = x.paper, PAPER_EPS, []
    for c in chosen:
        if c is None:
            continue
        rt = mean_of(x, x.transfer("rdmaa", c[1], e))
        b = mean_of(x, x.transfer("baseline", c[1], e))
        rw, rw_def = x.twin("rdmaa", c[1], e)
        if rt is None or b is None:
            continue
        pk = "fgsm" if c[1].kind == "fgsm" else "pgd"
        enh = p.get(f"enh_{pk}", p[f"rdmaa_{pk}"] - p[pk] if f"rdmaa_{pk}" in p and pk in p else None)
        paper_enh = f"; the paper prints {enh * 100:+.0f} points of accuracy" if enh is not None else ""
        txt = (f"Under {c[0]} crafted on the baseline (transfer), RDMAA keeps {pc(rt)} against the baseline's {pc(b)} "
               f"({V.said(x, x.transfer('rdmaa', c[1], e), x.transfer('baseline', c[1], e))}{paper_enh})")
        if rw_def and mean_of(x, rw) is not None:
            bw = x.transfer("baseline", c[1], e)      # the baseline's own attack: its white-box
            txt += (f"; attacked directly (white-box) it keeps {pc(mean_of(x, rw))} (against the baseline's own "
                    f"attack: {V.said(x, rw, bw)})")
        s.append(txt + ".")
    return s


def whitebox_findings(x: View) -> list[str]:
    """The stronger white-box attacks (no transfer twin) on RDMAA and the baseline."""
    e, s = PAPER_EPS, []
    for w in x.plan.whitebox_extra():
        if not any(same_eps(e, v) for v in w.eps):
            continue
        rr, br = x.whitebox("rdmaa", w, e), x.whitebox("baseline", w, e)
        r, b = mean_of(x, rr), mean_of(x, br)
        if r is not None and b is not None:
            where = f", subset of {x.subset_n} test images" if x.p.on_subset(w) else ""
            s.append(f"{attack_label(w, e)} (white-box{where}): RDMAA {pc(r)}, baseline {pc(b)} ({V.said(x, rr, br)}).")
    return s


def advtrain_findings(x: View, pg) -> list[str]:
    """RDMAA against the best adversarial training under PGD, transfer and white-box."""
    e, s = PAPER_EPS, []
    if not x.advtrain or pg is None:
        return s
    rt = mean_of(x, x.transfer("rdmaa", pg[1], e))
    top = V.best_ref(x, [x.transfer(m, pg[1], e) for m in x.advtrain])     # in the deciding metric
    if rt is not None and top is not None:
        v = V.compare(x, x.transfer("rdmaa", pg[1], e), top)
        verdict = ("not comparable on the same rows with" if v is None else
                   {"better": "above", "worse": "below", "within noise": "within noise of"}[v.verdict])
        s.append(f"Against {pg[0]} (transfer), RDMAA at {pc(rt)} is {verdict} the best adversarially trained model "
                 f"({model_label(top.cell.model)}, {pc(mean_of(x, top))}"
                 f"{'; ' + V.said(x, x.transfer('rdmaa', pg[1], e), top) if v else ''}); "
                 "the paper claims RDMAA is above adversarial training.")
    w = x.plan.whitebox_twin(pg[1])
    if w is not None:
        rw = mean_of(x, x.whitebox("rdmaa", w, e))
        top = V.best_ref(x, [x.whitebox(m, w, e) for m in x.advtrain])
        if rw is not None and top is not None:
            s.append(f"Attacked white-box with the same PGD, RDMAA keeps {pc(rw)} and {model_label(top.cell.model)} "
                     f"{pc(mean_of(x, top))} ({V.said(x, x.whitebox('rdmaa', w, e), top)}).")
    return s


def matched_findings(x: View) -> list[str]:
    """The matched ε of FGSM and PGD (where the baseline falls to the paper's accuracy), and the
    baseline and RDMAA there."""
    me, s = x.matched or {}, []
    for kind in ("fgsm", "pgd"):
        if me.get(kind) is None:
            continue
        det = me.get(f"{kind}_detail", {})
        ratio = me[kind] / PAPER_EPS
        base = mean_of(x, x.matched_ref("baseline", kind, "white-box"))
        rd_t = mean_of(x, x.matched_ref("rdmaa", kind, "transfer"))
        rd_w = mean_of(x, x.matched_ref("rdmaa", kind, "white-box"))
        head = (f"Our baseline falls to the paper's {kind.upper()} accuracy ({det.get('paper_accuracy', 0) * 100:.0f} %) "
                f"at ε = {eps_txt(me[kind])}, {ratio:.1f}× the paper's ε" if det.get("reached", True) else
                f"Even at the largest ε swept ({eps_txt(me[kind])}), our baseline stays above the paper's "
                f"{kind.upper()} accuracy ({det.get('paper_accuracy', 0) * 100:.0f} %)")
        tail = ([f"there the baseline is at {pc(base)} (white-box)"] if base is not None else []) + \
               ([f"RDMAA at {pc(rd_t)} under transfer"] if rd_t is not None else []) + \
               ([f"{pc(rd_w)} white-box"] if rd_w is not None else [])
        s.append(head + ("; " + ", ".join(tail) if tail else "") + ".")
    return s


def masking_findings(x: View, flags: list[dict], ran: dict[str, tuple[int, int]] | None) -> list[str]:
    """Which defended models show signs of gradient masking, which show none, which were not checked."""
    s = []
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
    return s
