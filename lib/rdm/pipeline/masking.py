"""Gradient-masking checks (Athalye et al. 2018; Carlini et al. 2019; Croce & Hein 2020): ONE definition
of each, used by the report (a table of pass / fail rows with their numbers, per model and modality)
and by ``rdm-eval``'s warnings (:func:`rdm.api.eval.masking_warnings`) where one run holds the data.

(a) **steps converge** — white-box accuracy at the grid's ``steps_curve`` (PGD at 10/20/50/100/200
    steps on the seeded subset, paper ε): fails when the last step-up (100 → 200) still moves
    accuracy beyond noise;
(b) **more steps and restarts never raise accuracy** — along the steps curve, from a one-restart
    attack to its many-restart twin (PGD-50 → PGD-50 ×5), and along the grid's stronger white-box
    attacks: fails when a stronger attack leaves a higher accuracy beyond noise;
(c) **Square does not beat the gradient attacks** — from the ``aa`` cascade's per-row ``fooled_by``:
    fails when the gradient-free Square fools, beyond noise, rows APGD-CE and APGD-T left standing;
(d) **white-box ≤ transfer** — fails when a transfer attack leaves a lower accuracy than the same
    attack run white-box, beyond noise;
(e) **accuracy → 0 at large ε** — the white-box sweeps, on the modality's deciding metric (grid
    ``decide_on``: balanced accuracy for lung, where a model that one class's rows all resist keeps
    that class's share as accuracy) where the sweep's result has it: fails when it rises with ε beyond
    noise, or stays above :data:`CHANCE_FLOOR` + two standard errors (of a mean of per-class recalls
    for balanced accuracy) at the largest ε ≥ :data:`LARGE_EPS`; the row gives each class's recall
    there, so a reader sees which class resists. Undecided instead of failed when the undefended
    baseline shows the same under the same attack, or (FGSM) when PGD on the same model and rows
    passes: one FGSM step overshoots at large ε, and the iterative attack shows the gradients work;
(f) **random noise costs far less than the attack** — random sign noise of the same ε (``noise``,
    no gradients) against the strongest white-box attack on the same rows: passes when the attack
    is below the noise beyond noise and the noise's drop from clean is at most half the attack's;
    ``undecided`` when the attack itself is within noise of clean (nothing to compare).

**Beyond noise**, for two results on the same rows (each row's result averaged over the seeds):
the paired sign-flip test of :func:`rdm.evaluation.stats.paired_test` gives p < 0.05 AND the difference is
more than :data:`MASK_TOL` (2 points). Results without per-row lists (older files) fall back to
:func:`rdm.pipeline.claims.above_noise` (2 points and two standard errors of two proportions).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rdm.evaluation import stats
from rdm.evaluation.masking import (  # noqa: F401  (the rules; the report's checks are built on them)
    CHANCE_FLOOR, FAIL, GRADIENT_STAGES, LARGE_EPS, MISSING, NOT_RUN, PASS, UNDECIDED, Change, change,
    curve_flags, eval_warnings, high_at_large_eps, noise_control, square_beyond_gradients, square_words,
    steps_rows,
)
from rdm.pipeline import verdicts as V
from rdm.pipeline.claims import MASK_TOL, above_noise, beyond_noise, coverage, same_rows
from rdm.pipeline.labels import attack_label, eps_txt, model_label, pct, same_eps, short_attack
from rdm.pipeline.paper import conditions
from rdm.pipeline.results import Ref, View
from rdm.pipeline.tables import Table, words

CHECKS = {
    "steps": "(a) accuracy converges with attack steps",
    "stronger": "(b) more steps / restarts never raise accuracy",
    "square": "(c) Square does not beat the gradient attacks",
    "transfer": "(d) white-box ≤ transfer",
    "large-eps": "(e) accuracy → 0 at large ε",
    "noise": "(f) random sign noise costs far less than the attack",
}
RULE = ("Beyond noise: a paired sign-flip test on the same rows (each row averaged over the seeds; "
        "rdm.evaluation.stats.paired_test) gives p < 0.05 and the difference exceeds 2 points. (a) fails when the last "
        "step-up of the steps curve moves accuracy beyond noise; (b) when a stronger attack (more steps, more "
        "restarts) leaves a higher accuracy beyond noise; (c) when Square fools, beyond noise, rows APGD-CE and "
        "APGD-T left; (d) when transfer leaves a lower accuracy than the same attack white-box beyond noise; "
        "(e) on the modality's deciding metric (balanced accuracy where the grid's decide_on says so; each "
        "class's recall at the largest ε in the row): when it rises with ε (by more than 2 points and two standard "
        "errors), or stays above 10 % + two standard errors (for balanced accuracy, of the mean of the per-class "
        "recalls) at the sweep's largest ε (≥ .1) — undecided when the undefended baseline stays "
        "above that floor under the same attack too (the attack is weak there, not the defence); (f) passes when the strongest white-box attack on the same rows is below the noise "
        "control beyond noise and the noise's drop from clean is at most half the attack's, undecided when the "
        "attack is within noise of clean.")




def effective_rows(metric: str, r: Ref) -> float:
    """The rows whose plain rate has the standard error ``metric`` has on ``r``'s rows: ``n`` for
    accuracy; for balanced accuracy, the mean of K per-class recalls on n_k rows each,
    K² / Σ 1/n_k (a rare class counts for less: its recall is noisier)."""
    if metric != "balanced_accuracy":
        return r.n
    sup = [int(c.get("support", 0)) for c in ((r.result.get("metrics") or {}).get("per_class") or {}).values()]
    sup = [k for k in sup if k > 0]
    return len(sup) ** 2 / sum(1 / k for k in sup) if sup else r.n


def _correct(rows: V.Rows) -> np.ndarray:
    return rows.correct.astype(np.float64)


def paired(x: View, a: Ref | None, b: Ref | None) -> Change | None:
    """B against A when both are on the same rows: paired per row (:func:`rdm.pipeline.verdicts.pair`,
    exact: the same rows, on their common seeds) where both carry per-row lists, unpaired where either
    lacks them (older files); None when either is missing or their rows differ."""
    if a is None or b is None or a.metric("accuracy") is None or b.metric("accuracy") is None:
        return None
    if not same_rows(a, b):
        return None
    ra, rb = V.rows_of(x, a), V.rows_of(x, b)
    if ra is not None and rb is not None:
        pr = V.pair(ra, rb, exact=True)
        if pr is not None:
            return change(_correct(pr[0]), _correct(pr[1]))
        if not np.array_equal(ra.index, rb.index):
            return None                  # per-row lists on different rows: nothing to compare
    va, vb = a.metric("accuracy"), b.metric("accuracy")
    call = "higher" if beyond_noise(b, a) else "lower" if beyond_noise(a, b) else "within noise"
    return Change(vb - va, None, b.n, call)


def _mean(x: View, r: Ref) -> float:
    """A cell's accuracy as the checks compare it: the mean over its seeds (not its first seed's)."""
    return V.mean_and_half(x, r, "accuracy", interval=False)[0]


def _acc(x: View, r: Ref) -> str:
    return f"{pct(_mean(x, r))} %"


@dataclass
class Row:
    """One check of one model: its status and numbers, and the flags it raises (failures)."""

    model: str
    check: str
    where: str
    status: str
    numbers: str
    flags: list[dict[str, Any]] = field(default_factory=list)
    kind: str = ""                 # (e): the swept attack (fgsm, pgd)

    def flag(self, check: str, text: str, **kw: Any) -> None:
        self.flags.append({"model": self.model, "check": check, "text": f"{model_label(self.model)}: {text}",
                           "flag": True, "letter": CHECKS[self.check][1], **kw})


def _curve(x: View, m: str) -> list[tuple[int, Ref]]:
    """The steps curve of model ``m``: ``[(steps, result)]`` in step order, the missing left out."""
    curve = [(n, x.get(c)) for n, c in x.p.steps_curve(m)]
    return [(n, r) for n, r in curve if r is not None and r.metric("accuracy") is not None]


Pair = tuple[str, Ref, str, Ref, Change]     # (from, its result, to, its result, to − from)


def _steps(x: View, m: str) -> tuple[Row, list[Pair]]:
    """(a), and the step-ups of the curve for (b)."""
    curve = _curve(x, m)
    if len(curve) < 2:
        return (Row(m, "steps", "", NOT_RUN, "no steps curve in the grid") if not x.plan.steps_curve else
                Row(m, "steps", "", MISSING, "metrics files missing")), []
    a = curve[0][1].cell.attack
    ups = [(f"{n0} steps", r0, f"{n1} steps", r1, paired(x, r0, r1)) for (n0, r0), (n1, r1) in zip(curve, curve[1:])]
    ups = [u for u in ups if u[4] is not None]
    where = f"{short_attack(a).split('-')[0]} ε={eps_txt(a.eps[0])}, {curve[0][1].n} rows"
    seq = ", ".join(f"{n}: {_acc(x, r)}" for n, r in curve)
    if len(ups) < len(curve) - 1:
        return Row(m, "steps", where, MISSING, f"steps {seq}; per-row results missing or rows differ"), ups
    f0, _, f1, _, last = ups[-1]
    row = Row(m, "steps", where, PASS if last.call == "within noise" else FAIL,
              f"steps {seq}; last step-up {f0} → {f1}: {last.text()}")
    if row.status == FAIL:
        row.flag("steps-not-converged", f"white-box accuracy still moves {last.text()} from {f0} to {f1} "
                                        "(not converged).")
    return row, ups


def _stronger(x: View, m: str, pairs: list[Pair]) -> Row:
    """(b): the steps curve's step-ups (given), restarts against the same attack with one restart,
    and the grid's stronger white-box attacks in order, each on the same rows."""
    curve = {n: c for n, c in x.p.steps_curve(m)}
    for e in x.paper_eps:
        for w in x.plan.whitebox:
            if w.restarts > 1 and any(same_eps(e, v) for v in w.eps) and w.steps in curve:
                one = curve[w.steps]
                if one.attack.kind == w.kind and any(same_eps(e, v) for v in one.attack.eps):
                    r0, r1 = x.get(one), x.whitebox(m, w, e)
                    c = paired(x, r0, r1)
                    if c is not None:
                        pairs.append((short_attack(one.attack), r0, short_attack(w), r1, c))
        strength = [w for w in x.plan.whitebox if w.kind in ("pgd", "bim", "apgd") and any(same_eps(e, v) for v in w.eps)]
        seq = [(w, x.whitebox(m, w, e)) for w in strength]
        seq = [(w, r) for w, r in seq if r is not None and r.metric("accuracy") is not None]
        for (w0, r0), (w1, r1) in zip(seq, seq[1:]):
            c = paired(x, r0, r1)
            if c is not None:
                pairs.append((f"{short_attack(w0)} ε={eps_txt(e)}", r0, short_attack(w1), r1, c))
    if not pairs:
        return Row(m, "stronger", "", NOT_RUN, "no two attacks of different strength on the same rows")
    rises = [p for p in pairs if p[4].call == "higher"]

    def says(p: Pair) -> str:
        return f"{p[0]} {_acc(x, p[1])} → {p[2]} {_acc(x, p[3])} ({p[4].text()})"

    row = Row(m, "stronger", f"{len(pairs)} comparisons", FAIL if rises else PASS,
              "; ".join(says(p) for p in rises) if rises else
              "largest rise: " + says(max(pairs, key=lambda p: p[4].diff)))
    for p in rises:
        row.flag("stronger-attack", f"white-box accuracy RISES from {_acc(x, p[1])} ({p[0]}, n = {p[1].n}) to "
                                    f"{_acc(x, p[3])} ({p[2]}, n = {p[3].n}), {p[4].text()}.")
    return row


class _SquareSeeds:
    """A modality's cell lookups with the standard suite's cells of the seeds that ran Square only
    (``square_seeds``: the other seeds run its gradient part, ``aa-apgd``, which has no Square)."""

    def __init__(self, p: Any):
        self._p = p

    def seeds_of(self, cell: Any) -> list:
        return [c for c in self._p.seeds_of(cell) if c.attack is None or not c.attack.gradient_only]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)


class _SquareView:
    """The view check (c) reads: Square against the gradient stages on the seeds where Square ran."""

    def __init__(self, x: View):
        self._x, self.p = x, _SquareSeeds(x.p)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._x, name)


def _square(x: View, m: str) -> list[Row]:
    x = _SquareView(x)      # type: ignore[assignment]
    aa = [w for w in x.plan.whitebox if w.kind == "aa"]
    cells = [(attack_label(w, e), x.whitebox(m, w, e)) for w in aa for e in w.eps]
    if "aa" in x.plan.matched_attacks:
        cells.append(("AA ε=matched", x.matched_ref(m, "aa", "white-box")))
    out = []
    for lab, r in cells:
        if r is None:
            continue
        rows = V.rows_of(x, r)
        fb = None if rows is None else rows.column("fooled_by")
        if fb is None:
            out.append(Row(m, "square", lab, MISSING, "no per-row fooled_by"))
            continue
        c = square_beyond_gradients(fb)
        row = Row(m, "square", f"{lab.split(',')[0]}, {r.n} rows", FAIL if c.call == "higher" else PASS,
                  f"AA {_acc(x, r)}; after APGD-CE + APGD-T "
                  f"{pct(_mean(x, r) + c.diff)} %; "
                  f"Square alone fooled {c.text()}")
        if row.status == FAIL:
            row.flag("square-beats-gradients", square_words(c), eps=r.cell.eps if r.cell else None)
        out.append(row)
    return out or [Row(m, "square", "", NOT_RUN, "no aa cell in the grid") if not cells else
                   Row(m, "square", "", MISSING, "metrics files missing")]


def _transfer(x: View, m: str) -> Row:
    pairs: list[tuple[str, Ref | None, Ref | None]] = []
    for lab, a, e, _ in conditions(x, x.paper_eps):
        ref, defined = x.twin(m, a, e)
        if defined:
            pairs.append((lab, x.transfer(m, a, e), ref))
    for kind in ("fgsm", "pgd"):
        for e in x.sweep_eps:
            pairs.append((f"{kind.upper()} sweep ε={eps_txt(e)}", x.sweep_transfer(m, kind, e), x.sweep(m, kind, e)))
    done = [(lab, tr, wb, paired(x, tr, wb)) for lab, tr, wb in pairs]
    done = [t for t in done if t[3] is not None]
    if not done:
        return Row(m, "transfer", "", NOT_RUN, "no transfer and white-box pair on the same rows")
    bad = [t for t in done if t[3].call == "higher"]
    worst = max(done, key=lambda t: t[3].diff)
    row = Row(m, "transfer", f"{len(done)} pairs", FAIL if bad else PASS,
              "; ".join(f"{lab}: transfer {_acc(x, tr)}, white-box {_acc(x, wb)} ({c.text()})"
                        for lab, tr, wb, c in (bad or [worst])) + ("" if bad else " (the closest pair)"))
    for lab, tr, wb, c in bad:
        row.flag("transfer-stronger", f"transfer accuracy {_acc(x, tr)} is BELOW white-box {_acc(x, wb)} ({lab}); "
                                      "the white-box attack should be the stronger one.")
    return row


def recalls_at(r: Ref) -> str:
    """Each class's recall in ``r`` (``recall: non-nodule 0.0 %, nodule 100.0 %``): which class resists."""
    pc = (r.result.get("metrics") or {}).get("per_class") or {}
    got = [f"{c} {pct(v['recall'])} %" for c, v in pc.items() if v.get("support") and v.get("recall") is not None]
    return "recall: " + ", ".join(got) if got else ""


def _large_eps(x: View, m: str) -> list[Row]:
    out = []
    decide = V.decide_on(x)
    for kind in ("fgsm", "pgd"):
        curve = [(e, x.sweep(m, kind, e)) for e in x.sweep_eps]
        curve = [(e, r) for e, r in curve if r is not None and r.metric("accuracy") is not None]
        if not curve:
            continue
        metric = decide if all(r.metric(decide) is not None for _, r in curve) else "accuracy"
        pts = [(e, r.metric(metric), effective_rows(metric, r)) for e, r in curve]
        what = V.METRIC_WORDS[metric]
        flags = curve_flags(f"white-box {kind.upper()}", pts, what)
        e, a, _ = pts[-1]
        last = curve[-1][1]
        rec = recalls_at(last)
        row = Row(m, "large-eps", f"{kind.upper()} sweep, {last.n} rows", FAIL if flags else PASS,
                  " ".join(t for _, t in flags) or f"{what} {pct(pts[0][1])} % at ε={eps_txt(pts[0][0])} … "
                                                   f"{pct(a)} % at ε={eps_txt(e)}.", kind=kind)
        if rec:
            row.numbers += f" At ε={eps_txt(e)}, {rec}."
        for check, text in flags:
            row.flag(check, text + (f" ({rec})" if rec and check == "high-at-large-eps" else ""), kind=kind)
        out.append(row)
    planned = any(x.p.sweep(m, k, e) is not None for k in ("fgsm", "pgd") for e in x.sweep_eps)
    return out or [Row(m, "large-eps", "", MISSING if planned else NOT_RUN,
                       "no sweep" if planned or not x.sweep_eps else "no sweep of this model in this tier")]


def _noise(x: View, m: str) -> list[Row]:
    out = []
    noise = [w for w in x.plan.whitebox if w.kind == "noise"]
    for w in noise:
        for e in w.eps:
            nr = x.whitebox(m, w, e)
            if nr is None:
                continue
            rn = V.rows_of(x, nr)
            atts = [(a, x.whitebox(m, a, e)) for a in x.plan.whitebox
                    if a.kind != "noise" and any(same_eps(e, v) for v in a.eps)]
            atts = [(a, r) for a, r in atts if r is not None and same_rows(nr, r) and r.metric("accuracy") is not None]
            ra = [(a, r, V.pair(V.rows_of(x, r), rn, exact=True)) for a, r in atts]
            ra = [t for t in ra if t[2] is not None and t[2][0].correct_of("pred_clean") is not None]
            if not ra:
                out.append(Row(m, "noise", f"ε={eps_txt(e)}", NOT_RUN, "no white-box attack with per-row results "
                                                                       "on the noise control's rows"))
                continue
            a, r, (rows, noise_rows) = min(ra, key=lambda t: t[1].metric("accuracy"))
            clean = rows.correct_of("pred_clean").astype(np.float64)
            status, vs_clean, vs_noise = noise_control(clean, _correct(noise_rows), _correct(rows))
            # every number on the paired rows and seeds (a partial grid: a cell's other seeds are left out)
            acc_noise, acc_att = (f"{pct(float(_correct(v).mean()))} %" for v in (noise_rows, rows))
            row = Row(m, "noise", f"ε={eps_txt(e)}, {r.n} rows", status,
                      f"clean {pct(float(clean.mean()))} %, noise {acc_noise}, {short_attack(a)} {acc_att} "
                      f"({vs_clean.text()} from clean; {vs_noise.text()} from the noise)")
            if status == FAIL:
                row.flag("noise-as-strong", f"random sign noise at ε={eps_txt(e)} ({acc_noise}) costs about as much as "
                                            f"{short_attack(a)} ({acc_att}): the attack finds little that noise "
                                            "does not.", eps=e)
            out.append(row)
    return out or [Row(m, "noise", "", NOT_RUN, "no noise control in the grid") if not noise else
                   Row(m, "noise", "", MISSING, "metrics files missing")]


def masking_rows(x: View) -> list[Row]:
    """Every check for every evaluated model of one modality, in check order."""
    out: list[Row] = []
    for m in x.models:
        steps, ups = _steps(x, m)
        out += [steps, _stronger(x, m, ups), *_square(x, m), _transfer(x, m), *_large_eps(x, m), *_noise(x, m)]
    _explained_large_eps(out)
    order = list(CHECKS)
    return sorted(out, key=lambda r: (x.models.index(r.model), order.index(r.check)))


def _explained_large_eps(rows: list[Row]) -> None:
    """(e) for a model is undecided, not failed, when something other than the model explains it:

    * the undefended baseline shows the same under the same attack (a defended model only): it also
      stays above the floor at the sweep's largest ε, or its accuracy also rises with ε. Then the
      attack (its single step, its ε), not the defence, leaves the accuracy there;
    * an FGSM sweep, when PGD on the same model and rows passes (e): the iterative attack follows the
      gradients to the floor, so they are not masked; one FGSM step of size ε overshoots at large ε.

    On the real grid: lung's baseline's balanced accuracy rose from 8.9 % at ε = .1 to 17.5 % at .2
    under FGSM while PGD took it to 0; leukaemia's RDMAA (seed 0) rose from 4.7 % at .05 to 29.3 %
    at .2 under FGSM while PGD took it to 0 %."""
    base: dict[Any, set[str]] = {}
    for r in rows:
        if r.model == "baseline" and r.check == "large-eps" and r.status == FAIL:
            for f in r.flags:
                base.setdefault(f.get("kind"), set()).add(f["check"])
    pgd_passed = {r.model for r in rows if r.check == "large-eps" and r.kind == "pgd" and r.status == PASS}
    for r in rows:
        if r.check != "large-eps" or r.status != FAIL:
            continue
        if r.model != "baseline" and all(f["check"] in base.get(f.get("kind"), ()) for f in r.flags):
            why = " The undefended baseline shows the same under the same attack."
        elif r.kind == "fgsm" and r.model in pgd_passed:
            why = (" PGD on the same model and rows passes this check: one FGSM step overshoots at large ε; "
                   "the gradients lead an iterative attack to the floor.")
        else:
            continue
        r.status, r.flags = UNDECIDED, []
        r.numbers += why


def checks_ran(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """Per model, ``(ran, defined)``: how many of its checks ran (pass, fail or undecided) of those the
    grid defines (a check whose metrics files are missing is defined but did not run). "No sign" is
    said only of the checks that ran."""
    out: dict[str, list[int]] = {}
    for r in rows:
        c = out.setdefault(r.model, [0, 0])
        if r.status != NOT_RUN:
            c[1] += 1
            c[0] += r.status in (PASS, FAIL, UNDECIDED)
    return {m: (a, b) for m, (a, b) in out.items()}


def masking_checks(x: View, rows: list[Row] | None = None) -> list[dict[str, Any]]:
    """The failures of the defended models: the signs of gradient masking the findings name."""
    rows = masking_rows(x) if rows is None else rows
    return [f for r in rows if r.model in x.defended for f in r.flags]


def masking_table(x: View, rows: list[Row]) -> Table:
    t = Table(f"masking-{x.m}", f"Gradient-masking checks, {x.m}: pass / fail per model",
              ["Model", "Check", "Rows", "Numbers", "Result"])
    for r in rows:
        t.add(model_label(r.model), [words(CHECKS[r.check]), words(r.where or "—"), words(r.numbers),
                                     words(r.status)])
    t.notes.append(RULE)
    return t


def masking_words(x: View, flags: list[dict], ran: dict[str, tuple[int, int]] | None = None) -> str:
    """The report's gradient-masking paragraph for one modality (``ran``: :func:`checks_ran` of its
    rows; "no sign" is said only of the models whose checks ran)."""
    if not x.defended:
        return "No defended model in the grid."
    checked, unchecked = coverage(x, [f["model"] for f in flags], ran)
    none_ran = ("Not checked for " + ", ".join(unchecked) + ": the metrics files these checks read are missing "
                "(listed at the end).") if unchecked else ""
    if not flags and not checked:
        return none_ran
    if not flags:
        parts = []
        for m in x.defended:
            vals = []
            for w in x.plan.whitebox:
                if not any(same_eps(x.paper_eps[-1], v) for v in w.eps):
                    continue
                r = x.whitebox(m, w, x.paper_eps[-1])
                if r is not None and r.metric("accuracy") is not None:
                    vals.append(f"{short_attack(w)} {pct(r.metric('accuracy'))} %")
            if vals:
                parts.append(f"{model_label(m)}: " + ", ".join(vals))
        return ("No sign found in the checks of the gradient-masking table that ran (steps converge, stronger "
                "attacks never raise accuracy, Square finds nothing the gradients miss, transfer never below "
                "white-box, accuracy falls with ε, noise far weaker than the attack) for " + ", ".join(checked) + ". "
                + ("White-box at ε=" + eps_txt(x.paper_eps[-1]) + ": " + "; ".join(parts) + ". " if parts else "")
                + none_ran).rstrip()
    by: dict[str, list[str]] = defaultdict(list)
    for f in flags:
        t = f["text"].split(": ", 1)[1]
        by[f["model"]].append(t[:1].upper() + t[1:])
    out = ["Flagged:", ""] + [f"- **{model_label(m)}**: " + " ".join(v) for m, v in by.items()]
    if checked:
        out += ["", "No sign found for: " + ", ".join(checked) + "."]
    if none_ran:
        out += ["", none_ran]
    return "\n".join(out)
