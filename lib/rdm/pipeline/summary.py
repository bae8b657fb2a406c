"""The report's first page: the answer, one line per claim of the paper and modality, what the run
found beyond the paper, and the numbers of its one figure (every model's standard-suite accuracy).

Each claim line reads the verdict between methods of :func:`rdm.pipeline.verdicts.method_compare`
(A − B over seeds and rows together, its 95 % interval, the p-values adjusted across the modality's
claims, the rows × seeds behind it: the claims table's rule) and says it in words: *holds*, *does not hold*, or *cannot
tell at this many rows and seeds*. The words depend on the claim: "RDMAA is more accurate than B"
holds when A is better beyond noise; "RDMAA keeps B's clean accuracy" holds unless A is worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rdm.evaluation import stats
from rdm.pipeline import verdicts as V
from rdm.pipeline.config import PAPER_EPS
from rdm.pipeline.labels import eps_txt, eps_units, model_label, modality_title, pct, same_eps, short_attack, units_of
from rdm.pipeline.paper import conditions
from rdm.pipeline.results import Ref, View
from rdm.pipeline.tables import bounds, signed

HOLDS, FAILS = "holds", "does not hold"


@dataclass
class Claim:
    """One claim of the paper in one modality: RDMAA (A) against B, and how the verdict reads."""

    text: str
    a: Ref | None
    b: Ref | None
    keeps: bool = False          # "not worse" (clean accuracy kept) rather than "better"


def _kind(v: "V.Verdict") -> str:
    """better, worse, equivalent or noise, from the verdict object (its outcome where it has one)."""
    w = str(getattr(v, "outcome", None) or v.verdict).lower()
    if "equivalen" in w:
        return "equivalent"
    if w in ("better", "worse"):
        return w
    return "noise"


def verdict_words(v: "V.Verdict", keeps: bool) -> str:
    k = _kind(v)
    if k == "better":
        return HOLDS
    if k == "worse":
        return FAILS
    if k == "equivalent":
        return HOLDS if keeps else f"{FAILS} (level, within the equivalence margin)"
    seeds = v.a.n_seeds
    return f"cannot tell at {v.a.n_rows} rows and {seeds} seed{'s' if seeds != 1 else ''}"


def claims_of(x: View) -> list[Claim]:
    """The paper's claims in one modality, at its ε (.005), as the cells of the grid answer them."""
    e = PAPER_EPS
    conds = conditions(x, [e])
    first = {c[1].kind: c for c in reversed(conds)}
    pg = next((c for c in conds if c[1].kind == "pgd" and x.plan.whitebox_twin(c[1]) is not None), first.get("pgd"))
    out = [Claim("RDMAA keeps the clean accuracy of the undefended CNN", x.clean("rdmaa"), x.clean("baseline"), True)]
    atks = [(k.upper(), c[1]) for k, c in (("fgsm", first.get("fgsm")), ("pgd", pg)) if c is not None]
    for name, a in atks:
        out.append(Claim(f"RDMAA is more accurate than no defence under {name} (transfer, ε={eps_txt(e)})",
                         x.transfer("rdmaa", a, e), x.transfer("baseline", a, e)))
    if x.advtrain:
        for name, a in atks:
            best = V.best_ref(x, [x.transfer(m, a, e) for m in x.advtrain])
            out.append(Claim(f"RDMAA is more accurate than the best adversarial training under {name} (transfer, "
                             f"ε={eps_txt(e)})", x.transfer("rdmaa", a, e), best))
    aa = [w for w in x.plan.whitebox if w.kind == "aa" and any(same_eps(e, v) for v in w.eps)]
    if aa:
        out.append(Claim(f"… and under the standard white-box suite ({short_attack(aa[0])}, ε={eps_txt(e)}, each "
                         "model attacked itself): RDMAA more accurate than no defence",
                         x.whitebox("rdmaa", aa[0], e), x.whitebox("baseline", aa[0], e)))
    pair = x.matched_pair()
    if pair is not None and any(w.kind == "aa" for w in x.plan.whitebox):
        r, ats = pair
        best = V.best_ref(x, [x.matched_ref(m, "aa", "white-box") for m in ats])
        out.append(Claim(f"Both sides trained at the matched ε, under the standard suite at it: {model_label(r)} "
                         f"more accurate than {' / '.join(model_label(m) for m in ats)}",
                         x.matched_ref(r, "aa", "white-box"), best))
    return out


def claim_lines(x: View, claims: list[Claim]) -> list[dict[str, Any]]:
    """Each claim's line (:func:`claim_line`), its p-values adjusted across the modality's claims."""
    found = [V.method_compare(x, c.a, c.b) if c.a is not None and c.b is not None else None for c in claims]
    done = iter(V.adjust_verdicts(x, [v for v in found if v is not None]))
    return [claim_line(c, None if v is None else next(done), missing=c.a is None or c.b is None)
            for c, v in zip(claims, found)]


def claim_line(c: Claim, v: "V.MethodVerdict | None", missing: bool = False) -> dict[str, Any]:
    """``{"claim", "text", "verdict", ...numbers}`` of one claim (``text``: the Markdown line)."""
    if missing:
        return {"claim": c.text, "verdict": None, "text": f"- {c.text}: **no answer** (metrics file missing)"}
    if v is None:
        return {"claim": c.text, "verdict": None, "text": f"- {c.text}: **no answer** (their rows cannot be matched)"}
    said = verdict_words(v, c.keeps)
    vs = f" vs {model_label(c.b.cell.model)}" if c.b.cell is not None and c.b.cell.model not in ("baseline",) else ""
    where = " of the seeded subset" if v.a.subset or v.b.subset else ""
    k = v.cmp
    p = V.p_txt(k.p_adj if k.p_adj is not None else k.p)
    scope = "" if k.methods else f"; {stats.TWO_NETWORKS}"
    txt = (f"- {c.text}: **{said}** — {signed(k.diff)} points {bounds(k.lo, k.hi)} in "
           f"{V.METRIC_WORDS[v.metric]} ({pct(v.va)} vs {pct(v.vb)} %{vs}), adjusted p {p}, "
           f"{v.a.n_rows} rows{where} × {v.a.n_seeds} seed{'s' if v.a.n_seeds != 1 else ''}{scope}")
    return {"claim": c.text, "verdict": said, "outcome": v.outcome, "metric": v.metric, "a": v.va, "b": v.vb,
            "diff": k.diff, "lo": k.lo, "hi": k.hi, "p": k.p, "p_adj": k.p_adj, "p_tost_adj": k.p_tost_adj,
            "scope": "methods" if k.methods else "networks", "n_rows": v.a.n_rows, "n_seeds": v.a.n_seeds,
            "files": [f for f, _ in v.a.files] + [f for f, _ in v.b.files], "text": txt}


BEYOND = ("Seed control", "Gradient masking", "Data", "ε")


def beyond_lines(x: View, items: list[dict[str, Any]]) -> list[str]:
    """The run's findings beyond the paper (seed control, masking, leakage, matched ε), one line each,
    from the report's short list (:func:`rdm.pipeline.claims.summary`, :func:`rdm.pipeline.controls.summary_items`)."""
    out = []
    for key in BEYOND:
        for it in items:
            if it["claim"] == key:
                out.append(f"- {it['text']}")
    units = units_of(x.plan.modalities[x.m]["preset"])
    got = [(k, (x.matched or {}).get(k)) for k in ("fgsm", "pgd")]
    got = [(k, v) for k, v in got if isinstance(v, (int, float)) and v > 0]
    if got and not any(it["claim"] == "ε" for it in items):
        out.append("- **Matched ε**: " + "; ".join(f"{k.upper()} {eps_units(v, units)}" for k, v in got))
    return out


def devices_line(models: dict[str, Any]) -> str | None:
    """A warning when the modality's models were trained on different devices (None otherwise)."""
    devs: dict[str, list[str]] = {}
    for name, info in models.items():
        env = (info or {}).get("environment") if isinstance(info, dict) else None
        if isinstance(env, dict) and env.get("device"):
            d = env.get("device_name") or env["device"]
            devs.setdefault(str(d), []).append(name)
    if len(devs) < 2:
        return None
    return ("- ⚠ **Models trained on different devices** (" + "; ".join(f"{d}: {', '.join(n)}" for d, n in devs.items())
            + "): the comparisons above pair them.")


def aa_points(x: View) -> list[dict[str, Any]]:
    """The figure's numbers: each evaluated model's standard-suite (``aa``) accuracy at each ε it runs
    (the paper's and the matched ε) in the modality's deciding metric, mean over the seeds with its 95 %
    interval, and the clean accuracy of the same rows and seeds."""
    metric = V.decide_on(x)
    aa = [w for w in x.plan.whitebox if w.kind == "aa"]
    out = []
    for model in x.models:
        cells: list[tuple[str, float | None, Ref | None]] = []
        for w in aa:
            for e in w.eps:
                cells.append((f"ε={eps_txt(e)}", float(e), x.whitebox(model, w, e)))
        if "aa" in x.plan.matched_attacks:
            me = (x.matched or {}).get("pgd")
            cells.append(("matched ε" + (f"={eps_txt(float(f'{me:.3g}'))}" if me else ""), me,
                          x.matched_ref(model, "aa", "white-box")))
        for label, eps, ref in cells:
            pt: dict[str, Any] = {"model": model, "label": label, "eps": eps, "metric": metric}
            rows = V.rows_of(x, ref)
            pr = V.pair(rows, V.rows_of(x, x.clean(model))) if rows is not None else None
            if pr is None:
                pt.update(value=None, reason="metrics file missing" if ref is None else "no per-row results")
            else:
                ra, rc = pr
                p, q = V.value_part(ra, metric, ref), V.value_part(rc, metric)
                pt.update(value=p.value, lo=p.lo, hi=p.hi, clean=q.value, n_rows=ra.n_rows, n_seeds=ra.n_seeds)
            out.append(pt)
    return out


def page(views: dict[str, View], items: dict[str, list[dict]], models: dict[str, dict], figure: str | None,
         mode: str) -> tuple[list[str], dict[str, Any]]:
    """The first page's Markdown (from its ``## The answer`` heading) and its JSON."""
    md = ["## The answer", "",
          "Each claim of the paper, tested on this run's cells: the verdict, RDMAA − the comparison in points with "
          "its 95 % interval over seeds and rows together (paired, on the same rows and seeds), the p-value "
          "adjusted across the modality's claims, and the rows × seeds behind it. *Holds*: RDMAA is ahead "
          "(for clean accuracy: not behind, or equivalent within the grid's margin); *cannot tell*: neither a "
          "difference nor equivalence is shown at this many rows and seeds; below 3 seeds a verdict compares "
          "two networks, not two methods (the claims table's rule, below).", ""]
    rep: dict[str, Any] = {}
    for m, x in views.items():
        lines = claim_lines(x, claims_of(x))
        beyond = beyond_lines(x, items.get(m, []))
        dev = devices_line(models.get(m, {}))
        md += [f"### {modality_title(m)}", "", *(ln["text"] for ln in lines), ""]
        if beyond or dev:
            md += ["Beyond the paper:", "", *beyond, *([dev] if dev else []), ""]
        rep[m] = {"claims": lines, "beyond": beyond, "devices": dev, "aa_points": aa_points(x)}
    if figure:
        md += [f"![Standard-suite accuracy of every model](figures/{figure})", "",
               "<sub>Every model's accuracy under the standard white-box suite (AutoAttack's cascade, each model "
               "attacked itself) at the paper's ε and the matched ε, mean over the seeds with its 95 % interval "
               "(lung: balanced accuracy); ○ the clean accuracy of the same rows and seeds.</sub>", ""]
    md += ["The detailed tables, every comparison in words, the controls and the data follow below; "
           "`report.json` holds every number with the file it came from.", ""]
    return md, rep
