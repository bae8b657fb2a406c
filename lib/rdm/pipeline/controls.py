"""The controls the paper lacks, as report sections: the seed-control verdict, RDMAA's ablations and
the leakage audit.

* **Seed control.** The transfer sets are crafted on the baseline; any independently trained network
  resists another network's adversarial images to some degree. The ``control`` model (an undefended
  CNN, another seed) is evaluated on the same sets, so RDMAA's gain over the baseline can be set
  beside the control's gain, on the same rows: the two gains differ by RDMAA − control (the
  baseline cancels), and a paired test over rows and seeds (:func:`rdm.pipeline.verdicts.compare`)
  decides that difference.
* **Ablations.** RDMAA against its variants (a DCAE trained on clean images only, random
  initialisation with RDMAA's schedule, a frozen encoder) on clean, transfer and white-box PGD
  rows, each paired with RDMAA on the same rows.
* **Leakage audit.** ``audit.json`` (``rdm-prep --audit``) beside the baseline's clean accuracy on
  the same test split, with one sentence of verdict.

Every comparison reads the per-row results of ``rdm-eval`` for every seed of a cell through
:mod:`rdm.pipeline.verdicts` (rows paired by their clean-set index, the modality's ``decide_on``
metric); a cell without per-row results, or on other rows, reads ``n/a`` with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rdm.pipeline.claims import above_noise
from rdm.pipeline.config import PAPER_EPS
from rdm.pipeline.labels import attack_label, model_label, pct, same_eps
from rdm.pipeline.paper import conditions
from rdm.pipeline.plan import Cell
from rdm.pipeline import verdicts as V
from rdm.pipeline.results import View
from rdm.pipeline.tables import NA, Entry, Part, Table, words

SEED_CONTROL = "control"
#: the ablations of RDMAA, in the order shown: model → what it changes
ABLATIONS = {
    "rdmaa-cleandcae": "DCAE trained on clean images only",
    "scratch": "no DCAE: random encoder, RDMAA's schedule",
    "rdmaa-frozen": "DCAE encoder frozen (head trained only)",
}


def controls_of(x: View) -> list[str]:
    """The grid's control models (``[evaluate] controls``)."""
    return list(x.plan.controls)


def ablations_of(x: View) -> list[str]:
    """The grid's ablations of RDMAA (``[evaluate] ablations``), in grid order."""
    return list(x.plan.ablations)


# --------------------------------------------------------------------------- per-row cells
# The cells as per-row results over seeds are rdm.pipeline.verdicts' (Rows, rows_of, pair, decide_on):
# one reader of per_row for the whole report.
def seeds_of(x: View, cell: Cell) -> list[Cell]:
    """The cell for every seed of the run (one cell where the plan runs one seed)."""
    return list(x.p.seeds_of(cell))


def ref(x: View, cell: Cell | None):
    """The cell's result (None: not in the grid, or its file is missing)."""
    return x.get(cell) if cell is not None else None


def compare(x: View, a, b) -> V.Verdict | str:
    """A against B on the same rows and seeds (:func:`rdm.pipeline.verdicts.compare`), or why not."""
    if a is None or b is None:
        return "n/a"
    v = V.compare(x, a, b)
    if v is None:
        return (V.ROWS_DIFFER if V.rows_of(x, a) is not None and V.rows_of(x, b) is not None
                else "n/a (no per-row results)")
    return v


def _diff(x: View, a, b) -> Entry:
    """A − B in the deciding metric with its interval (:func:`rdm.pipeline.verdicts.diff_entry`)."""
    return V.diff_entry(x, a, b) if a is not None and b is not None else NA


def _p(cmp) -> Entry:
    return words("—" if isinstance(cmp, str) else f"{cmp.cmp.p:.3g}")


def _metric_words(x: View) -> str:
    return V.METRIC_WORDS[V.decide_on(x)]


def _rows_words(cmps: list[V.Verdict]) -> str:
    if not cmps:
        return ""
    k = sorted({c.cmp.n_seeds for c in cmps})
    n = sorted({c.cmp.n_rows for c in cmps})
    return (f" Rows: {', '.join(map(str, n))} per cell; seeds: {', '.join(map(str, k))} "
            f"(each row's result averaged over the seeds).")


# --------------------------------------------------------------------------- the seed control
CONTROL_ANSWER = {"better": "yes", "worse": "no", "within noise": "within noise"}


def control_table(x: View) -> tuple[Table | None, list[dict[str, Any]]]:
    """RDMAA's transfer gain over the baseline beside the seed control's, per transfer attack and ε."""
    if SEED_CONTROL not in controls_of(x) or "rdmaa" not in x.models:
        return None, []
    t = Table(f"controls-seed-{x.m}",
              f"Seed control ({x.m}): under transfer, does RDMAA beat an independently trained undefended "
              "network? (%, on the same rows)",
              ["Transfer attack (crafted on the baseline)", "No defence", "RDMAA", "Control", "RDMAA gain",
               "Control gain", "RDMAA − control", "p", "RDMAA beats the control"])
    out: list[dict[str, Any]] = []
    cmps: list[V.Verdict] = []
    for lab, a, e, _ in conditions(x, x.paper_eps):
        b, r, c = (ref(x, x.p.transfer(mdl, a, e)) for mdl in ("baseline", "rdmaa", SEED_CONTROL))
        gain_r, gain_c, rc = compare(x, r, b), compare(x, c, b), compare(x, r, c)
        verdict = CONTROL_ANSWER[rc.verdict] if not isinstance(rc, str) else rc
        t.add(lab, [*V.paired_entries(x, [b, r, c]), _diff(x, r, b), _diff(x, c, b), _diff(x, r, c),
                    _p(rc), words(verdict)])
        out.append({"attack": a.name, "eps": e, "verdict": verdict,
                    **({} if isinstance(rc, str) else {"rdmaa_minus_control": rc.cmp.to_dict()}),
                    **({} if isinstance(gain_r, str) else {"rdmaa_gain": gain_r.cmp.to_dict()}),
                    **({} if isinstance(gain_c, str) else {"control_gain": gain_c.cmp.to_dict()})})
        cmps += [] if isinstance(rc, str) else [rc]
    off = x.plan.models[SEED_CONTROL].get("seed_offset") if SEED_CONTROL in x.plan.models else None
    t.notes.append(f"The control is an undefended CNN trained like the baseline with another seed"
                   f"{f' (seed + {off})' if off else ''}, "
                   "evaluated on the adversarial sets crafted on the same seed's baseline. Both gains are over the "
                   "baseline on the same rows, so RDMAA − control is their difference; 'yes' when RDMAA beats "
                   "the control by the verdict rule (a paired sign-flip test over the rows at p < 0.05, a bootstrap "
                   "interval that excludes 0 and, with two or more seeds, RDMAA ahead with every seed), 'no' when "
                   f"the control beats RDMAA by it, 'within noise' otherwise. Decided on {_metric_words(x)}."
                   + _rows_words(cmps))
    return t, out


def control_words(x: View, out: list[dict[str, Any]]) -> str:
    """The controls section's sentence for one modality."""
    if not out:
        return (f"**{x.m}.** No seed control in the grid (model `{SEED_CONTROL}`)." if SEED_CONTROL not in controls_of(x)
                else f"**{x.m}.** No transfer cell to compare.")
    decided = [d["verdict"] for d in out if d["verdict"] in ("yes", "no", "within noise")]
    if not decided:
        return f"**{x.m}.** RDMAA beats an independently trained undefended network under transfer: {out[0]['verdict']}."
    if all(v == "yes" for v in decided):
        ans = "yes"
    elif all(v == "no" for v in decided):
        ans = "no"
    elif "yes" not in decided:
        ans = "within noise" if "no" not in decided else "no"
    else:
        ans = "mixed"
    counts = ", ".join(f"{decided.count(v)} {v}" for v in ("yes", "no", "within noise") if decided.count(v))
    gains = [(d["rdmaa_gain"]["diff"], d["control_gain"]["diff"]) for d in out
             if "rdmaa_gain" in d and "control_gain" in d]
    more = ""
    if gains:
        gr, gc = np.mean([g[0] for g in gains]), np.mean([g[1] for g in gains])
        more = (f" Averaged over the {len(gains)} transfer cells, RDMAA's gain over the baseline is {100 * gr:+.1f} "
                f"points and the control's {100 * gc:+.1f}.")
    return (f"**{x.m}.** RDMAA beats an independently trained undefended network under transfer: **{ans}** "
            f"({counts} of {len(decided)} attack/ε cells).{more}")


# --------------------------------------------------------------------------- ablations
def ablation_conditions(x: View) -> list[tuple[str, str, Any]]:
    """(label, family, lookup) of the ablation table's rows: clean, transfer at ε = .005, white-box PGD."""
    out: list[tuple[str, str, Any]] = [("No attack", "clean", lambda mdl: x.p.clean(mdl))]
    for lab, a, e, _ in conditions(x, [PAPER_EPS]):
        out.append((f"{lab} (transfer)", "transfer", (lambda a, e: lambda mdl: x.p.transfer(mdl, a, e))(a, e)))
    pgd = next((w for w in x.plan.whitebox if w.kind == "pgd" and not w.subset and w.restarts == 1
                and any(same_eps(PAPER_EPS, v) for v in w.eps)), None)
    if pgd is not None:
        out.append((f"{attack_label(pgd, PAPER_EPS)} (white-box)", "whitebox",
                    lambda mdl: x.p.whitebox(mdl, pgd, PAPER_EPS)))
    return out


def ablation_table(x: View) -> tuple[Table | None, list[dict[str, Any]]]:
    """Each ablation of RDMAA against RDMAA, per condition, paired on the same rows."""
    present = ablations_of(x)
    if not present or "rdmaa" not in x.models:
        return None, []
    t = Table(f"ablations-{x.m}", f"Ablations of RDMAA ({x.m}): each variant against RDMAA on the same rows (%)",
              ["Variant / condition", "Variant", "RDMAA", "Variant − RDMAA", "p", "verdict"])
    out: list[dict[str, Any]] = []
    cmps: list[V.Verdict] = []
    for mdl in present:
        for lab, fam, cell_of in ablation_conditions(x):
            v, r = ref(x, cell_of(mdl)), ref(x, cell_of("rdmaa"))
            cmp = compare(x, v, r)
            cmps += [] if isinstance(cmp, str) else [cmp]
            verdict = cmp if isinstance(cmp, str) else {"better": "variant better", "worse": "variant worse",
                                                        "within noise": "within noise"}[cmp.verdict]
            t.add(f"{model_label(mdl)} / {lab}", [*V.paired_entries(x, [v, r]), _diff(x, v, r), _p(cmp), words(verdict)])
            out.append({"model": mdl, "condition": lab, "family": fam, "verdict": verdict,
                        **({} if isinstance(cmp, str) else {"variant_minus_rdmaa": cmp.cmp.to_dict()})})
    t.notes.append("Variants: " + "; ".join(f"{model_label(m)}: {ABLATIONS.get(m, m)}" for m in present) + ".")
    t.notes.append("A variant is better or worse than RDMAA by the verdict rule (a paired sign-flip test over the "
                   "rows at p < 0.05, a bootstrap interval that excludes 0 and, with two or more seeds, the same "
                   f"sign with every seed); otherwise within noise. Decided on {_metric_words(x)}." + _rows_words(cmps) +
                   " Transfer sets are crafted on the baseline; white-box attacks each model itself.")
    if "scratch" not in present:
        t.notes.append("RDMAA's schedule from a random encoder (`rdm-finetune --init random`) trains the baseline's "
                       "weights with the baseline's seed (tests/training/test_finetune.py): that ablation is RDMAA against no "
                       "defence, in the paper's tables above, on the same rows and seeds.")
    else:
        t.notes.append("`scratch` is rdm-finetune --init random: RDMAA's schedule, data and stopping rule with a "
                       "random encoder. rdm-finetune differs from rdm-train-cnn only in the encoder's start, so with "
                       "the baseline's seed it trains the baseline's weights (tests/training/test_finetune.py); its rows "
                       "are therefore also the baseline's.")
    return t, out


# --------------------------------------------------------------------------- the leakage audit
def read_audit(path: Path) -> dict[str, Any] | str:
    """``audit.json`` as written by ``rdm-prep --audit``, or the words saying why not."""
    if not path.exists():
        return f"missing ({path})"
    try:
        d = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        return f"unreadable ({path}: {e})"
    return check_audit(d, str(path))


def check_audit(d: Any, name: str) -> dict[str, Any] | str:
    """``d`` when it has the keys the audit section reads, else the words saying why not."""
    if isinstance(d, str):
        return d
    try:
        d["baselines"]["knn1_pixels"], d["near_train"].items()   # the keys the section reads
    except (KeyError, TypeError, AttributeError) as e:
        return f"unreadable ({name}: {e!r})"
    return d


def shared_groups_text(audit: dict[str, Any]) -> str:
    """The groups in both splits; ``n/a`` where the source had no patient ids (as many groups as images:
    each image its own group, so that 0 would say nothing about patients)."""
    shared = audit.get("shared_groups")
    if shared is None:
        return "n/a"
    gtr, gte = audit.get("groups_train"), audit.get("groups_test")
    if gtr is not None and gtr == audit.get("n_train") and gte == audit.get("n_test"):
        return "n/a (no patient ids: every image is its own group)"
    return str(shared) + (f" ({gtr} groups in train, {gte} in test)" if gtr is not None else "")


def audit_table(x: View, audit: dict[str, Any]) -> Table:
    """Near-duplicates across the split and the shortcut baselines beside the CNN baseline."""
    n = int(audit.get("n_test", 0))
    t = Table(f"audit-{x.m}", f"Leakage audit ({x.m}): test split against training split", ["Measure", "value"])
    for tau, k in audit["near_train"].items():
        t.add(f"test rows with a training image within RMS {tau}", [words(f"{int(k)} of {n}")])
    q = audit.get("nearest_rms_quantiles") or {}
    if "median" in q:
        t.add("RMS distance to the nearest training image, median", [words(f"{float(q['median']):.3f}")])
    t.add("groups (patients, duplicate sets or similarity clusters) in both train and test", [words(shared_groups_text(audit))])
    b = audit["baselines"]
    t.add("1-NN on raw pixels (acc / bal)", [Entry([Part("acc", b.get("knn1_pixels")),
                                                    Part("bal", b.get("knn1_pixels_balanced"))])])
    t.add("logistic regression on colour statistics (acc / bal)",
          [Entry([Part("acc", b.get("colour_logreg")), Part("bal", b.get("colour_logreg_balanced"))])])
    t.add("majority class", [Entry([Part("acc", b.get("majority"))])])
    t.add("CNN baseline, clean (acc / bal)", [baseline_clean(x)[0]])
    t.notes.append("RMS distance on [0, 1] pixels (‖a − b‖₂/√D). The baselines and the CNN are scored on the same "
                   "test split; the colour statistics are each channel's mean and standard deviation.")
    return t


def baseline_clean(x: View) -> tuple[Entry, float | None, int]:
    """The CNN baseline's clean accuracy / balanced accuracy as every other cell reads them
    (:func:`rdm.pipeline.verdicts.acc_entry`: the mean over the seeds ± its 95 % interval, traced to
    the file with one seed), its accuracy and its rows."""
    ref = x.clean("baseline")
    if ref is None:
        return NA, None, 0
    e = V.acc_entry(x, ref)
    rows = V.rows_of(x, ref)
    return Entry(e.parts[:2], mark=e.mark), e.parts[0].value, (ref.n if rows is None else rows.n_rows)


def audit_verdict(x: View, audit: dict[str, Any]) -> str:
    """One sentence: do the shortcut baselines reach the CNN (beyond the 2-point, 2-SE noise rule)?"""
    b, n = audit["baselines"], int(audit.get("n_test", 0))
    _, cnn, n_cnn = baseline_clean(x)
    knn, col, maj = b.get("knn1_pixels"), b.get("colour_logreg"), b.get("majority")
    near = list(audit["near_train"].items())
    dup = (f" Test rows with a training image within RMS {' / '.join(t for t, _ in near)}: "
           f"{' / '.join(str(k) for _, k in near)} of {n}.") if near else ""
    if cnn is None:
        return f"No clean accuracy of the CNN baseline to set the shortcuts beside.{dup}"
    said = []
    for name, v, what in (("a 1-NN on raw pixels", knn, "the split may leak near-duplicates (slices or fields of "
                                                          "one patient), or the task is easy for pixel matching"),
                          ("a logistic regression on colour statistics", col,
                           "the classes differ in colour or intensity statistics (staining, exposure, windowing), "
                           "which a CNN can read instead of morphology")):
        if v is None:
            continue
        if above_noise(v, n, cnn, max(n_cnn, 1)):
            said.append(f"{name} BEATS the CNN ({pct(v)} % vs {pct(cnn)} %): {what}")
        elif not above_noise(cnn, max(n_cnn, 1), v, n):
            said.append(f"{name} matches the CNN within noise ({pct(v)} % vs {pct(cnn)} %): {what}")
    if not said:
        tail = "" if maj is None else f", majority class {pct(maj)} %"
        return (f"Both shortcut baselines are below the CNN beyond noise (1-NN {pct(knn)} %, colour statistics "
                f"{pct(col)} %, CNN {pct(cnn)} %{tail}): no sign that the split leaks or that a shortcut explains "
                f"the CNN's accuracy.{dup}")
    return "; ".join(s[0].upper() + s[1:] for s in said) + "." + dup


def audit_section(x: View, audit: Path | dict[str, Any] | str) -> tuple[list[str], Table | None, dict[str, Any]]:
    """Markdown lines, table and JSON of one modality's audit (``audit``: its audit.json, its content,
    or the words saying why there is none)."""
    a = read_audit(audit) if isinstance(audit, Path) else check_audit(audit, "audit.json")
    if isinstance(a, str):
        return [f"**{x.m}.** Leakage audit: {a}; run `rdm-prep --audit`.\n"], None, {"problem": a}
    t = audit_table(x, a)
    v = audit_verdict(x, a)
    return [t.markdown(), f"**Verdict, {x.m}.** {v}\n"], t, {**a, "verdict": v}


def both_ways_verdict(views: dict[str, View], audits: dict[str, dict[str, Any]], ms: list[str]) -> str | None:
    """One sentence on a modality prepared as is and grouped by similarity (brain, brain-grouped): did
    grouping take the 1-NN shortcut away, and did the CNN's clean accuracy fall with it? Different test
    rows on each side, so the unpaired noise rule of the audit verdict (:func:`~.claims.above_noise`:
    more than 2 points and two standard errors), not a paired test."""
    plain = [m for m in ms if "group_similar" not in views[m].plan.prep.get(m, {})]
    grouped = [m for m in ms if m not in plain]
    if len(plain) != 1 or len(grouped) != 1:
        return None
    (a, b), knn, cnn = (plain[0], grouped[0]), [], []
    for m in (a, b):
        au = audits.get(m)
        k = au.get("baselines", {}).get("knn1_pixels") if isinstance(au, dict) else None
        _, c, n = baseline_clean(views[m])
        if k is None or c is None:
            return None
        knn.append((float(k), int(au.get("n_test", 0))))
        cnn.append((float(c), n))
    kd, cd = knn[0][0] - knn[1][0], cnn[0][0] - cnn[1][0]
    k_moves, c_moves = above_noise(*knn[0], *knn[1]), above_noise(*cnn[0], *cnn[1])
    rows = f"{cnn[0][1]} and {cnn[1][1]} test rows, unpaired: beyond 2 points and 2 SE"
    head = (f"Grouping similar images into one split moves the 1-NN shortcut by {-100 * kd:+.1f} points "
            f"({pct(knn[0][0])} → {pct(knn[1][0])} %) and the CNN baseline by {-100 * cd:+.1f} "
            f"({pct(cnn[0][0])} → {pct(cnn[1][0])} %; {rows}). ")
    if not k_moves:
        return head + (f"The shortcut stays: the grouping at this τ does not separate what {a} leaks, if it leaks; "
                       "its split cannot tell leakage from an easy task.")
    if c_moves:
        return head + (f"{a}'s split leaks near-copies (slices of one patient, fields of one smear) into its test "
                       f"set and inflates the CNN's clean accuracy by about {100 * cd:.0f} points: {b}'s numbers "
                       "are the ones to cite.")
    return head + (f"The shortcut goes and the CNN holds within noise: its accuracy on {a}'s split does not come "
                   "from the leak.")


def same_source_table(views: dict[str, View], audits: dict[str, dict[str, Any]]) -> list[Table]:
    """Modalities prepared from the same data and preset in different ways (brain by slice and
    similarity-grouped): their audits and the CNN baseline side by side, one table per source."""
    groups: dict[tuple, list[str]] = {}
    for m, x in views.items():
        spec = x.plan.modalities[m]
        groups.setdefault((spec.get("source"), spec.get("preset")), []).append(m)
    out = []
    for (source, _), ms in groups.items():
        if len(ms) < 2:
            continue
        cols = ["Measure"] + [f"{m} ({_split_words(views[m])})" for m in ms]
        t = Table(f"audit-both-ways-{'-'.join(ms)}", f"The same data split two ways ({source}): audit and CNN baseline",
                  cols)
        taus = next((list(a["near_train"]) for a in (audits.get(m) for m in ms) if isinstance(a, dict)
                     and "near_train" in a), [])

        def cell(m: str, f) -> Entry:
            a = audits.get(m)
            return f(a) if isinstance(a, dict) and "baselines" in a else NA

        for tau in taus:
            t.add(f"test rows with a training image within RMS {tau}",
                  [cell(m, lambda a, tau=tau: words(f"{int(a['near_train'].get(tau, 0))} of {int(a['n_test'])}"))
                   for m in ms])
        for key, lab in (("knn1_pixels", "1-NN on raw pixels"), ("colour_logreg", "colour-statistics logistic regression"),
                         ("majority", "majority class")):
            t.add(lab, [cell(m, lambda a, key=key: Entry([Part("acc", a["baselines"].get(key))])) for m in ms])
        t.add("CNN baseline, clean (acc / bal)", [baseline_clean(views[m])[0] for m in ms])
        rd = []
        for m in ms:
            r, b = (ref(views[m], views[m].p.clean(k)) for k in ("rdmaa", "baseline"))
            rd.append(_diff(views[m], r, b))
        t.add("RDMAA − no defence, clean", rd)
        verdict = both_ways_verdict(views, audits, ms)
        if verdict:
            t.notes.insert(0, "**Verdict.** " + verdict)
        t.notes.append("Where the grouped split's 1-NN falls and the CNN's accuracy holds, the slice split leaked; "
                       "where both stay high, the task is easy for pixel matching (or leaks in a way grouping at "
                       "this τ does not catch).")
        out.append(t)
    return out


def _split_words(x: View) -> str:
    opts = x.plan.prep.get(x.m, {})
    if "group_similar" in opts:
        cap = f", at most {opts['group_cap']} images per group" if opts.get("group_cap") else ""
        return f"grouped at RMS ≤ {opts['group_similar']:g}{cap}"
    return "as prepared by the preset"


# --------------------------------------------------------------------------- one modality's sections
def build(x: View, audit_file: Path | dict[str, Any] | str) -> tuple[list[Table], dict[str, list[str]], dict[str, Any]]:
    """One modality's control tables, its Markdown per report section (``control``, ``ablation``,
    ``audit``, and ``paper``: the audit's verdict under the modality's own tables) and its JSON."""
    from rdm.pipeline.labels import modality_title

    tsc, cinfo = control_table(x)
    tab, abinfo = ablation_table(x)
    aud_md, taud, audinfo = audit_section(x, audit_file)
    md: dict[str, list[str]] = {
        "control": [control_words(x, cinfo) + "\n"] + ([tsc.markdown()] if tsc else []),
        "ablation": [f"### {x.m}\n", tab.markdown()] if tab is not None else [],
        "audit": [f"### {modality_title(x.m)}\n", *aud_md],
        "paper": ([f"**Leakage audit, {x.m}** (section \"Leakage audit\"): {audinfo['verdict']}\n"]
                  if "verdict" in audinfo else []),
    }
    return ([t for t in (tsc, tab, taud) if t is not None], md,
            {"seed_control": cinfo, "ablations": abinfo, "audit": audinfo})


# --------------------------------------------------------------------------- the short list's lines
def summary_items(x: View, info: dict[str, Any], models: dict[str, Any]) -> list[dict[str, Any]]:
    """The controls' lines of "What the numbers say", beside the claims' (:func:`rdm.pipeline.claims.summary`):
    the ablations (each variant − RDMAA on clean, PGD transfer and white-box rows), the training budgets
    (the models whose best epoch was their last), the leakage audit's verdict and the paper's ε in
    physical units, so each of the controls' questions has its one-line answer per modality. ``info``:
    :func:`build`'s JSON; ``models``: :func:`rdm.pipeline.records.models_table`'s."""
    from rdm.pipeline.labels import eps_txt, eps_units, units_of
    from rdm.pipeline.tables import VERDICT_MARK, bounds, signed

    out: list[dict[str, Any]] = []
    ab = info.get("ablations") or []
    if ab:
        per, behind = [], set()
        for mdl in dict.fromkeys(d["model"] for d in ab):
            rows = [d for d in ab if d["model"] == mdl]
            tr = [d for d in rows if d["family"] == "transfer"]
            pick = [d for d in rows if d["family"] == "clean"] + \
                   ([next((d for d in tr if d["condition"].startswith("PGD")), tr[0])] if tr else []) + \
                   [d for d in rows if d["family"] == "whitebox"]
            bits = []
            for d in pick:
                name = {"clean": "clean", "whitebox": "white-box"}.get(d["family"], "transfer")
                c = d.get("variant_minus_rdmaa")
                if c is None:
                    bits.append(f"{name} n/a")
                    continue
                behind.add((c["n_rows"], c["n_seeds"]))
                bits.append(f"{name} {VERDICT_MARK.get(c['verdict'], '')} {signed(c['diff'])} {bounds(c['lo'], c['hi'])}")
            per.append(f"{model_label(mdl)}: " + ", ".join(bits))
        tail = "; ".join(f"{n} rows × {k} seed{'s' if k != 1 else ''}" for n, k in sorted(behind, reverse=True))
        out.append({"claim": "Ablations", "text": f"**Ablations** (variant − RDMAA in {_metric_words(x)}, points; PGD "
                    f"transfer and white-box at ε={eps_txt(PAPER_EPS)}): " + "; ".join(per) +
                    (f" ({tail})" if tail else ""), "parts": []})
    trained = {k: v for k, v in models.items() if isinstance(v, dict) and v.get("converged") is not None}
    if trained:
        flagged = [k for k, v in trained.items() if v["converged"] is False]
        def settings(key: str) -> str:        # the recipes' values of one setting, e.g. "40" or "3/6"
            vals = {v["recipe"].get(key) for v in trained.values() if isinstance(v.get("recipe"), dict)}
            return "/".join(map(str, sorted(v for v in vals if v)))

        caps, pats = settings("epochs"), settings("patience")
        cap = f"at most {caps} epochs, " if caps else ""
        pat = f", patience {pats}" if pats else ""
        txt = (f"**Training budgets** (one stopping rule: {cap}early stopping on validation{pat}): "
               f"{len(trained) - len(flagged)} of {len(trained)} trained models had their best validation epoch "
               "before their last")
        txt += (f"; best epoch = the last (NOT CONVERGED, see the models table): {', '.join(flagged)}" if flagged
                else "")
        out.append({"claim": "Training budgets", "text": txt, "parts": []})
    aud = info.get("audit") or {}
    if aud.get("verdict"):
        out.append({"claim": "Data", "text": f"**Data** (leakage audit): {aud['verdict']}", "parts": []})
    units = units_of(x.plan.modalities[x.m]["preset"])
    eps = [f"the paper's ε {eps_units(PAPER_EPS, units)}"]
    for k in ("fgsm", "pgd"):
        v = (x.matched or {}).get(k)
        if isinstance(v, (int, float)) and v > 0:
            eps.append(f"the matched {k.upper()} ε {eps_units(v, units)}")
    out.append({"claim": "ε", "text": "**ε in physical units** (in [0, 1] pixels = in 8-bit grey levels"
                + (f" = in {units['unit']}" if units.get("per_unit") else "") + "): " + "; ".join(eps), "parts": []})
    return out
