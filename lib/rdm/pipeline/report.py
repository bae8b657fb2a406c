"""``python -m rdm.report``: REPORT.md, the paper's tables (CSV + LaTeX), figures and report.json.

This module only assembles: the plan (:mod:`~rdm.pipeline.plan`) says which cells exist and where
their numbers are, :mod:`~rdm.pipeline.results` reads them, :mod:`~rdm.pipeline.paper`,
:mod:`~rdm.pipeline.claims` and :mod:`~rdm.pipeline.records` build the tables and words,
:mod:`~rdm.pipeline.figures` the figures. It never runs a model.

Every number a table shows is a number from a metrics file (a percentage with one decimal), a
difference of two such numbers, or the paper's number from the grid's ``[paper.<modality>]``.
``report.json`` keeps each shown number with the file and the result it came from, so a test can
check them. A cell whose metrics file is missing reads ``n/a`` and the file is listed at the end;
``—`` marks a cell the grid does not define.

Outputs (all written atomically) under RESULTS/::

    REPORT.md  report.json  tables/<name>.csv  tables/<name>.tex  figures/*.png|pdf
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from rdm.data.atomic import atomic_output
from rdm.errors import RdmError
from rdm.pipeline import cards, certified, claims, controls, masking, paper, records
from rdm.pipeline import verdicts as V
from rdm.pipeline.labels import modality_title, units_note, units_of
from rdm.pipeline.config import DEFAULT_GRID, MODES
from rdm.pipeline.plan import Plan, audit_path, modality_dir
from rdm.pipeline.results import Results, View
from rdm.pipeline.tables import Table


def build(grid_path: str | Path, work: str | Path, results: str | Path, mode: str = "tables",
          figures: bool = True, plan: Plan | None = None, seed: int = 0, seeds: int = 1) -> dict[str, Any]:
    """Write REPORT.md, report.json, tables/ and figures/ under ``results`` from what the plan's
    graph wrote under ``work``; returns report.json's content. ``plan``: an already built plan of
    ``grid_path`` (default: built here)."""
    work, results = Path(work), Path(results)
    full = plan or Plan(grid_path, mode, seed=seed, seeds=seeds)
    present = [m for m in full.modalities if (work / modality_dir(m)).is_dir()]
    absent = [m for m in full.modalities if m not in present]
    if not present:
        raise RdmError(f"{work}: no modality folder ({', '.join(full.modalities)}); run the graph first")
    plan = full if list(full.run) == present else Plan(full.raw, mode, present, full.seed, len(full.seeds))
    store = Results(work)
    md: list[str] = []
    tables: list[Table] = []
    rep: dict[str, Any] = {"grid": str(grid_path), "work": str(work), "mode": mode, "modalities": {}, "tables": {}}
    md += ["# rdm report — the RDMAA paper's tables, reproduced and tested white-box", ""]
    if mode == "demo":
        md += ["> **Demo run on synthetic phantoms.** The numbers below test the pipeline; they say nothing "
               "about the paper's claims. Run `make tables` on the real data for those.", ""]
    md += [f"Grid: `{grid_path}`; outputs: `{work}`. Cells read *accuracy ± CI / balanced accuracy ± CI* in % "
           "(mean over the seeds ± half its 95 % interval; each table says the rows and seeds behind it; for a "
           "modality with a positive class, its recall follows); differences are on the same rows and seeds, "
           "with a paired verdict (↑ better, ↓ worse, ≈ within noise; the rule is printed under each table) and "
           "`n/a (rows differ)` where the rows cannot be matched; † marks the seeded subset's rows. "
           "`paper` columns hold the paper's numbers as its tables print them; `n/a` marks a missing metrics file "
           "(listed at the end), `—` a cell the grid does not define. *transfer*: adversarial images crafted on "
           "the undefended baseline (the paper's protocol); *white-box*: crafted on the evaluated model itself.", ""]
    md += [f"Seeds: {', '.join(map(str, plan.seeds))}. Every model is trained, attacked and evaluated once per seed "
           f"on one split (seed {plan.seeds[0]}'s), so the cells of different models and seeds pair row by row; "
           f"the seed-control model is the baseline's recipe trained with seed + "
           f"{plan.models['control'].get('seed_offset', 0) if 'control' in plan.models else '—'}.", ""]
    rep["seeds"] = plan.seeds
    coverage_at, coverage = len(md), []
    if absent:
        md += [f"Modalities in the grid but not run: {', '.join(absent)}.", ""]

    views: dict[str, View] = {}
    audits: dict[str, Any] = {}
    sections: dict[str, list[str]] = defaultdict(list)
    for m in present:
        x = View(plan, store, m)
        dt, dinfo = records.data_table(work, m)
        x.subset_n = (dinfo.get("test-sub") or {}).get("n")
        views[m] = x
        t3, t6, t9 = paper.table_accuracy(x), paper.table_prf(x), paper.table_advtrain(x)
        ts, tp, tm = paper.table_sweep(x, "fgsm"), paper.table_sweep(x, "pgd"), paper.table_matched(x)
        mrows = masking.masking_rows(x)
        flags, tmask = masking.masking_checks(x, mrows), masking.masking_table(x, mrows)
        ran = masking.checks_ran(mrows)
        tables.append(tmask)
        sections["masking"] += [f"### {m}\n", tmask.markdown()]
        tc = claims.claims_table(x)
        # the controls: the seed control, the ablations, the leakage audit
        extra, cmd, cinfo = controls.build(x, work / audit_path(m))
        audits[m] = cinfo["audit"]
        units = units_of(plan.modalities[m]["preset"])
        for t in (tc, t3, t6, t9, ts, tp, tm, *extra):     # every ε also in grey levels (and HU)
            note = units_note([t.title, *t.columns, *(lab for lab, _ in t.rows)], units,
                              x.sweep_eps if t is ts or t is tp else ())
            if note:
                t.notes.append(note)
        tables += [tc, t3, t6, t9, ts, tp, tm, *extra]
        sections["paper"] += [f"## {modality_title(m)}\n", t3.markdown(), t6.markdown(), t9.markdown()]
        for k, lines in cmd.items():
            sections[k] += lines
        cov = V.seed_coverage(x)
        coverage.append(V.coverage_words(m, cov))
        rep["modalities"][m] = {"matched": x.matched or {}, "masking": flags, "subset_n": x.subset_n, "data": dinfo,
                                **cinfo, "units": units, "seed_coverage": cov}
        sections["eps"] += [f"### {m}\n", ts.markdown(), tp.markdown(), *paper.matched_lines(x, units), tm.markdown(),
                            f"**Gradient-masking check, {m}.** " + masking.masking_words(x, flags, ran) + "\n"]
        mt, minfo = records.models_table(work, m, plan.models, plan.seeds)
        items = claims.summary(x, flags, ran) + controls.summary_items(x, cinfo, minfo)
        rep["modalities"][m]["summary"] = items
        sections["words"] += [f"### {m}\n", *claims.summary_lines(x, items), tc.markdown(),
                              "<details><summary>Every comparison in words</summary>\n",
                              " ".join(claims.findings(x, flags, ran)) + "\n", "</details>\n"]
        paper.add_table1(dt, x)
        tcert = certified.table_certified(x)
        if tcert is not None:
            tables.append(tcert)
            sections["certified"] += [f"### {m}\n", " ".join(certified.certified_words(x)) + "\n", tcert.markdown()]
            rep["modalities"][m]["certified"] = certified.summary(x)
        if dt is not None:
            tables.append(dt)
            prov = dinfo.get("provenance", {})
            how = ("synthetic phantoms (`rdm-prep synthetic`)" if mode == "demo" else
                   f"`$(DATA_ROOT)/{plan.modalities[m].get('source', '?')}` via `rdm-prep`")
            sections["data"] += [f"### {m}\n", f"Source: {how}; preset `{plan.modalities[m].get('preset')}`; "
                                 f"seed {prov.get('seed', '?')}.\n", dt.markdown()]
        rep["modalities"][m]["models"] = minfo
        if mt is not None:
            tables.append(mt)
            sections["data"].append(mt.markdown())
    tt, tinfo = records.timings(work, plan.models)
    rep["timings"] = tinfo
    tables += tt

    if len(plan.seeds) > 1:
        md[coverage_at:coverage_at] = ["Result cells of the plan by the number of seeds whose metrics file is present "
                                       "(fewer than planned in a partial grid; every table gives the rows × seeds "
                                       "behind its numbers): "
                                       + "; ".join(coverage) + ".", ""]
    md += ["## What the numbers say", ""] + sections["words"]
    md += ["## The paper's tables (III–XI), ours beside the paper's", ""] + sections["paper"]
    md += ["## The ε scale", "",
           "The paper's ε = .002 and .005 are measured on inputs in [0, 1] here (ε = .002 is half a grey level). "
           "Each model is swept over ε white-box (FGSM, and PGD with α = 2.5·ε/steps) and under transfer from the baseline; "
           "the *matched ε* is the ε at which our baseline falls to the paper's attacked accuracy (white-box sweep, "
           "log-linear interpolation), and every model is evaluated there too.", ""] + sections["eps"]
    md += ["## Gradient-masking checks", "",
           "Each check per model, pass / fail with its numbers (the rule under each table; "
           "`rdm.pipeline.masking` holds the one definition `rdm-eval`'s warnings share). `—`: the grid runs "
           "no such check; `n/a`: its metrics files are missing.", ""] + sections["masking"]
    md += ["## Seed control: is RDMAA's transfer gain about RDMAA?", "",
           "The transfer sets are crafted on the baseline, and any independently trained network resists another "
           "network's adversarial images to some degree. The control, an undefended CNN trained with another "
           "seed, is evaluated on the same sets: RDMAA's gain counts only where it exceeds the control's.", ""] + \
        sections["control"]
    if sections["ablation"]:
        md += ["## Ablations of RDMAA", "",
               "Which part of RDMAA does anything: a DCAE trained on clean images only, the same schedule from a "
               "random encoder, and a frozen encoder, each against RDMAA on the same rows.", ""] + sections["ablation"]
    both = controls.same_source_table(views, audits)
    tables += both
    md += ["## Leakage audit: is the data sound?", "",
           "`rdm-prep --audit` on each prepared split: test images with a near-duplicate in the training split, "
           "and two shortcut classifiers that read no pathology (1-NN on raw pixels; a logistic regression on "
           "each channel's mean and standard deviation) beside the CNN baseline on the same test split.", ""] + \
        sections["audit"] + [t.markdown() for t in both]
    t2 = paper.table_attacks(plan)
    tables.append(t2)
    if sections["certified"]:
        md += ["## Certified robustness (randomized smoothing)", "",
               "Beyond the paper: noise-trained models (`rdm-advtrain --recipe gaussian`) certified by randomized "
               "smoothing (`rdm-certify`, Cohen et al. 2019) on the seeded subset, first seed only; certified "
               "accuracy is a lower bound that holds for every attack within the L2 radius (with probability "
               "1 − α per row).", ""] + sections["certified"]
    md += ["## Data used and wall time", "", t2.markdown()] + sections["data"] + [t.markdown() for t in tt]
    rep["cards"] = cards.write_all(views, work, results / "models", tinfo.get("stages", {}))
    md += ["## Model cards", "", f"One JSON per evaluated model in `models/` ({len(rep['cards'])} files, "
           "`<modality>-<model>.json`): threat model, ε in pixels, grey levels and (CT) HU, clean and robust "
           "accuracy per attack suite with rows and seeds, dataset and its sha256, split, training recipe and cost.",
           ""]

    figs: list[str] = []
    if figures:
        try:
            from rdm.pipeline import figures as F
            figs = F.make_all(views, results / "figures")
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
    ap.add_argument("--mode", choices=MODES, default="tables")
    ap.add_argument("--seed", type=int, default=0, help="the run's base seed (make's SEED)")
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds the run trained (make's SEEDS)")
    ap.add_argument("--no-figures", action="store_true", help="tables only")
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args(argv)
    try:
        rep = build(a.grid or DEFAULT_GRID, a.work, a.results, a.mode, figures=not a.no_figures,
                    seed=a.seed, seeds=a.seeds)
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
    from rdm.errors import module_main

    sys.exit(module_main(main))
