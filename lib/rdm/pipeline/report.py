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

Outputs (all written atomically) under RESULTS/, every path in them relative::

    REPORT.md       the report; its first page is the answer (:mod:`~rdm.pipeline.summary`)
    SUMMARY.md      that first page alone
    report.json     every shown number with the file it came from (paths relative to the work folder:
                    each metrics file is a member of cells/<modality>-s<seed>.json.xz)
    tables/<name>.csv|tex  figures/*.png|pdf  models/<modality>-<model>.json (model cards)
    grid.toml  timings.jsonl  cells/   what the report read (:mod:`~rdm.pipeline.shipped`), so that
                    ``python -m rdm.report --from RESULTS`` rebuilds REPORT.md without the work folder

``build`` reads a work folder; ``rebuild`` reads what an earlier ``build`` shipped. Both hand one
:class:`Run` to ``render``, which writes each part of the report with its own function.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdm.data.atomic import atomic_output
from rdm.errors import RdmError
from rdm.pipeline import cards, certified, claims, controls, masking, paper, records, shipped, summary
from rdm.pipeline import verdicts as V
from rdm.pipeline.labels import modality_title, units_note, units_of
from rdm.pipeline.config import DEFAULT_GRID, MODES
from rdm.pipeline.plan import Plan, modality_dir
from rdm.pipeline.results import Results, View
from rdm.pipeline.tables import Table


TITLE = "# rdm report — the RDMAA paper's tables, reproduced and tested white-box"
DEMO_NOTE = ("> **Demo run on synthetic phantoms.** The numbers below test the pipeline; they say nothing "
             "about the paper's claims. Run `make tables` on the real data for those.")


@dataclass
class Run:
    """What one report is made from: the plan, the metrics files, the facts of sets and checkpoints."""

    plan: Plan
    store: Results
    facts: dict[str, dict[str, Any]]
    mode: str
    absent: list[str]
    grid_path: Path
    timings_text: str | None
    work: Path
    shipped_figures: list[str] | None = None     # rebuild: the figures the first build drew


@dataclass
class Parts:
    """What the per-modality pass gives the sections: Markdown by section, tables, report.json."""

    views: dict[str, View] = field(default_factory=dict)
    audits: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tables: list[Table] = field(default_factory=list)
    coverage: list[str] = field(default_factory=list)
    items: dict[str, list[dict]] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)
    rep: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- opening a run
def _present(full: Plan, present: list[str], mode: str) -> Plan:
    return full if list(full.run) == present else Plan(full.raw, mode, present, full.seed, len(full.seeds),
                                                         full.tier.name)


def open_work(grid_path: str | Path, work: str | Path, mode: str = "tables", plan: Plan | None = None,
              seed: int = 0, seeds: int = 1, tier: str | None = None) -> Run:
    """A run from the work folder the plan's graph wrote (``tier``: the part of the grid it ran,
    default the whole grid)."""
    work = Path(work)
    full = plan or Plan(grid_path, mode, seed=seed, seeds=seeds, tier=tier)
    present = [m for m in full.modalities if (work / modality_dir(m)).is_dir()]
    if not present:
        raise RdmError(f"{work}: no modality folder ({', '.join(full.modalities)}); run the graph first")
    plan = _present(full, present, mode)
    tpath = work / "timings.jsonl"
    return Run(plan, Results(work), shipped.collect(plan, work), mode, [m for m in full.modalities if m not in present],
               Path(grid_path), tpath.read_text() if tpath.exists() else None, work)


def open_shipped(results: str | Path) -> Run:
    """A run from what :func:`build` shipped under ``results`` (no work folder needed)."""
    results = Path(results)
    info, docs = shipped.load(results)
    grid = results / shipped.GRID
    if not grid.exists():
        raise RdmError(f"{results}: no {shipped.GRID}")
    full = Plan(grid, info["mode"], seed=int(info["seed"]), seeds=int(info["seeds"]), tier=info.get("tier", "full"))
    present = [m for m in full.modalities if m in info["modalities"]]
    plan = _present(full, present, info["mode"])
    tpath = results / shipped.TIMINGS
    figs = None
    if (results / "report.json").exists():
        try:
            figs = json.loads((results / "report.json").read_text()).get("figures")
        except ValueError:
            figs = None
    return Run(plan, Results(results / "work", shipped=docs), info["facts"], info["mode"],
               [m for m in full.modalities if m not in present], grid, tpath.read_text() if tpath.exists() else None,
               results / "work", shipped_figures=figs or [])


def default_tier(mode: str, grid_path: str | Path) -> str:
    """The tier ``python -m rdm.report`` reads when none is named: what ``make`` runs by default —
    the core tier for the tables when the grid defines one, the whole grid for the demo."""
    from rdm.pipeline.config import load_grid

    return "core" if mode == "tables" and "core" in load_grid(grid_path).get("tiers", {}) else "full"


def build(grid_path: str | Path, work: str | Path, results: str | Path, mode: str = "tables",
          figures: bool = True, plan: Plan | None = None, seed: int = 0, seeds: int = 1,
          tier: str | None = None) -> dict[str, Any]:
    """Write the report under ``results`` from what the plan's graph wrote under ``work``, and ship what it
    read; returns report.json's content (with absolute paths, for callers in Python). ``plan``: an already
    built plan of ``grid_path`` (default: built here)."""
    run = open_work(grid_path, work, mode, plan, seed, seeds, tier)
    rep = render(run, Path(results), figures)
    rep["shipped"] = shipped.ship(run.plan, run.work, results, grid_path, run.facts, mode)
    prune(Path(results), rep, figures)
    _write(Path(results) / "report.json", json.dumps(_relative(rep, run.work, Path(results)), indent=1,
                                                     default=_json_default) + "\n")
    return rep


def rebuild(source: str | Path, results: str | Path | None = None) -> dict[str, Any]:
    """The report again from what :func:`build` shipped under ``source`` (into ``results``, default the
    same folder); the figures are the ones the first build drew."""
    source = Path(source)
    results = Path(results) if results is not None else source
    run = open_shipped(source)
    if results.resolve() != source.resolve():       # the new folder carries what it was built from
        import shutil

        for rel in [shipped.GRID, shipped.TIMINGS, *(p.relative_to(source).as_posix() for p in
                                                     sorted((source / shipped.CELLS).glob("*.json.xz"))),
                    *(Path(f).as_posix() for f in run.shipped_figures or [])]:
            if (source / rel).is_file():
                (results / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / rel, results / rel)
    rep = render(run, results, figures=False)
    rep["shipped"] = json.loads((source / "report.json").read_text()).get("shipped", []) \
        if (source / "report.json").exists() else []
    _write(results / "report.json", json.dumps(_relative(rep, run.work, results), indent=1,
                                               default=_json_default) + "\n")
    return rep


def prune(results: Path, rep: dict[str, Any], figures: bool) -> list[str]:
    """Remove what an earlier report left in the folders this one writes (tables/, models/, cells/, and
    figures/ when it drew figures), so the results folder holds one run; the files removed."""
    keep = {(results / f"tables/{name}.{ext}").resolve() for name in rep["tables"] for ext in ("csv", "tex")}
    keep |= {Path(p).resolve() for p in rep.get("cards", [])}
    keep |= {(results / p).resolve() for p in rep.get("shipped", [])}
    keep |= {Path(p).resolve() for p in rep.get("figures", [])}
    gone = []
    for sub in ("tables", "models", "cells", *(("figures",) if figures else ())):
        for p in sorted((results / sub).glob("*")) if (results / sub).is_dir() else []:
            if p.is_file() and p.resolve() not in keep:
                p.unlink()
                gone.append(f"{sub}/{p.name}")
    return gone


def _relative(rep: Any, work: Path, results: Path) -> Any:
    """report.json's content with every path relative (to the results folder, else to the work folder)."""
    return shipped.relative(rep, results, work)


# --------------------------------------------------------------------------- the sections
def header(run: Run) -> list[str]:
    md = [TITLE, ""]
    if run.mode == "demo":
        md += [DEMO_NOTE, ""]
    return md


def method_note(run: Run, parts: Parts) -> list[str]:
    plan = run.plan
    md = ["## How to read this report", "",
          f"Grid: `{shipped.GRID}` (the run's grid, copied here); the per-row results of every cell are in "
          "`cells/` (one xz-compressed JSON per modality and seed, each metrics file under its path in the run's "
          "work folder); `python -m rdm.report --from <this folder>` rebuilds this report from them. "
          "Cells read *accuracy ± CI / balanced accuracy ± CI* in % "
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
    if len(plan.seeds) > 1:
        md += ["Result cells of the plan by the number of seeds whose metrics file is present "
               "(fewer than planned in a partial grid; every table gives the rows × seeds "
               "behind its numbers): " + "; ".join(parts.coverage) + ".", ""]
    if run.absent:
        md += [f"Modalities in the grid but not run: {', '.join(run.absent)}.", ""]
    return md


def modality_parts(run: Run) -> Parts:
    """Every modality's tables, Markdown by section and JSON, in one pass over the modalities."""
    plan, store, parts = run.plan, run.store, Parts()
    parts.rep = {"modalities": {}}
    for m in plan.run:
        facts = run.facts.get(m, {})
        x = View(plan, store, m, facts)
        dt, dinfo = records.data_table_of(m, facts.get("sets") or {})
        x.subset_n = (dinfo.get("test-sub") or {}).get("n")
        parts.views[m] = x
        t3, t6, t9 = paper.table_accuracy(x), paper.table_prf(x), paper.table_advtrain(x)
        ts, tp, tm = paper.table_sweep(x, "fgsm"), paper.table_sweep(x, "pgd"), paper.table_matched(x)
        mrows = masking.masking_rows(x)
        flags, tmask = masking.masking_checks(x, mrows), masking.masking_table(x, mrows)
        ran = masking.checks_ran(mrows)
        parts.tables.append(tmask)
        sec = parts.sections
        sec["masking"] += [f"### {m}\n", tmask.markdown()]
        tc = claims.claims_table(x)
        # the controls: the seed control, the ablations, the leakage audit
        extra, cmd, cinfo = controls.build(x, facts.get("audit", "missing"))
        parts.audits[m] = cinfo["audit"]
        units = units_of(plan.modalities[m]["preset"])
        for t in (tc, t3, t6, t9, ts, tp, tm, *extra):     # every ε also in grey levels (and HU)
            note = units_note([t.title, *t.columns, *(lab for lab, _ in t.rows)], units,
                              x.sweep_eps if t is ts or t is tp else ())
            if note:
                t.notes.append(note)
        parts.tables += [tc, t3, t6, t9, ts, tp, tm, *extra]
        sec["paper"] += [f"## {modality_title(m)}\n", t3.markdown(), t6.markdown(), t9.markdown()]
        for k, lines in cmd.items():
            sec[k] += lines
        cov = V.seed_coverage(x)
        parts.coverage.append(V.coverage_words(m, cov))
        r = parts.rep["modalities"][m] = {"matched": x.matched or {}, "masking": flags, "subset_n": x.subset_n,
                                          "data": dinfo, **cinfo, "units": units, "seed_coverage": cov}
        sec["eps"] += [f"### {m}\n", ts.markdown(), tp.markdown(), *paper.matched_lines(x, units), tm.markdown(),
                       f"**Gradient-masking check, {m}.** " + masking.masking_words(x, flags, ran) + "\n"]
        mt, minfo = records.models_table_of(m, facts.get("checkpoints") or {}, plan.models, plan.seeds,
                                            facts.get("mse_floor"))
        items = claims.summary(x, flags, ran) + controls.summary_items(x, cinfo, minfo)
        r["summary"] = parts.items[m] = items
        parts.models[m] = minfo
        sec["words"] += [f"### {m}\n", *claims.summary_lines(x, items), tc.markdown(),
                         "<details><summary>Every comparison in words</summary>\n",
                         " ".join(claims.findings(x, flags, ran)) + "\n", "</details>\n"]
        paper.add_table1(dt, x)
        tcert = certified.table_certified(x)
        if tcert is not None:
            parts.tables.append(tcert)
            sec["certified"] += [f"### {m}\n", " ".join(certified.certified_words(x)) + "\n", tcert.markdown()]
            r["certified"] = certified.summary(x)
        if dt is not None:
            parts.tables.append(dt)
            prov = dinfo.get("provenance", {})
            how = ("synthetic phantoms (`rdm-prep synthetic`)" if run.mode == "demo" else
                   f"`$(DATA_ROOT)/{plan.modalities[m].get('source', '?')}` via `rdm-prep`")
            sec["data"] += [f"### {m}\n", f"Source: {how}; preset `{plan.modalities[m].get('preset')}`; "
                            f"seed {prov.get('seed', '?')}.\n", dt.markdown()]
        r["models"] = minfo
        if mt is not None:
            parts.tables.append(mt)
            sec["data"].append(mt.markdown())
    return parts


def answer_page(run: Run, parts: Parts, results: Path, figures: bool) -> tuple[list[str], dict[str, Any]]:
    """The first page (:mod:`rdm.pipeline.summary`) and its figure."""
    fig = None
    if run.shipped_figures is not None:
        fig = next((Path(f).name for f in run.shipped_figures if Path(f).name == "fig-aa-summary.png"), None)
    elif figures:
        pts = {m: summary.aa_points(x) for m, x in parts.views.items()}
        try:
            from rdm.pipeline import figures as F

            drawn = F.fig_aa(pts, results / "figures")
        except ImportError as e:
            run.store.problems.append(f"figures skipped: {e}")
            drawn = []
        parts.rep.setdefault("figures", []).extend(drawn)
        fig = next((Path(f).name for f in drawn if f.endswith(".png")), None)
    return summary.page(parts.views, parts.items, parts.models, fig, run.mode)


def words_section(parts: Parts) -> list[str]:
    return ["## What the numbers say", ""] + parts.sections["words"]


def paper_section(parts: Parts) -> list[str]:
    return ["## The paper's tables (III–XI), ours beside the paper's", ""] + parts.sections["paper"]


def eps_section(parts: Parts) -> list[str]:
    return ["## The ε scale", "",
            "The paper's ε = .002 and .005 are measured on inputs in [0, 1] here (ε = .002 is half a grey level). "
            "Each model is swept over ε white-box (FGSM, and PGD with α = 2.5·ε/steps) and under transfer from the "
            "baseline; the *matched ε* is the ε at which our baseline falls to the paper's attacked accuracy "
            "(white-box sweep, log-linear interpolation), and every model is evaluated there too.", ""] + \
        parts.sections["eps"]


def masking_section(parts: Parts) -> list[str]:
    return ["## Gradient-masking checks", "",
            "Each check per model, pass / fail with its numbers (the rule under each table; "
            "`rdm.pipeline.masking` holds the one definition `rdm-eval`'s warnings share). `—`: the grid runs "
            "no such check; `n/a`: its metrics files are missing.", ""] + parts.sections["masking"]


def controls_section(parts: Parts) -> list[str]:
    md = ["## Seed control: is RDMAA's transfer gain about RDMAA?", "",
          "The transfer sets are crafted on the baseline, and any independently trained network resists another "
          "network's adversarial images to some degree. The control, an undefended CNN trained with another "
          "seed, is evaluated on the same sets: RDMAA's gain counts only where it exceeds the control's.", ""] + \
        parts.sections["control"]
    if parts.sections["ablation"]:
        md += ["## Ablations of RDMAA", "",
               "Which part of RDMAA does anything: a DCAE trained on clean images only, the same schedule from a "
               "random encoder, and a frozen encoder, each against RDMAA on the same rows.", ""] + \
            parts.sections["ablation"]
    return md


def audit_section(parts: Parts) -> list[str]:
    both = controls.same_source_table(parts.views, parts.audits)
    parts.tables += both
    return ["## Leakage audit: is the data sound?", "",
            "`rdm-prep --audit` on each prepared split: test images with a near-duplicate in the training split, "
            "and two shortcut classifiers that read no pathology (1-NN on raw pixels; a logistic regression on "
            "each channel's mean and standard deviation) beside the CNN baseline on the same test split.", ""] + \
        parts.sections["audit"] + [t.markdown() for t in both]


def certified_section(parts: Parts) -> list[str]:
    if not parts.sections["certified"]:
        return []
    return ["## Certified robustness (randomized smoothing)", "",
            "Beyond the paper: noise-trained models (`rdm-advtrain --recipe gaussian`) certified by randomized "
            "smoothing (`rdm-certify`, Cohen et al. 2019) on the seeded subset, first seed only; certified "
            "accuracy is a lower bound that holds for every attack within the L2 radius (with probability "
            "1 − α per row).", ""] + parts.sections["certified"]


def data_section(run: Run, parts: Parts) -> list[str]:
    t2 = paper.table_attacks(run.plan)
    tt, tinfo = records.timings_of(run.timings_text, run.plan.models) if run.timings_text is not None else \
        ([], {"missing": "timings.jsonl"})
    parts.rep["timings"] = tinfo
    parts.tables += [t2, *tt]
    return ["## Data used and wall time", "", t2.markdown()] + parts.sections["data"] + [t.markdown() for t in tt]


def cards_section(run: Run, parts: Parts, results: Path) -> list[str]:
    parts.rep["cards"] = cards.write_all(parts.views, run.work, results / "models",
                                         parts.rep["timings"].get("stages", {}))
    return ["## Model cards", "", f"One JSON per evaluated model in `models/` ({len(parts.rep['cards'])} files, "
            "`<modality>-<model>.json`, schema `rdm/pipeline/model-card.schema.json`): threat model, ε in pixels, "
            "grey levels and (CT) HU, clean and robust accuracy per attack suite with 95 % intervals, rows and "
            "seeds, architecture and parameter count, dataset and its sha256, split, training recipe, cost and "
            "device.", ""]


def figures_section(run: Run, parts: Parts, results: Path, figures: bool) -> list[str]:
    figs: list[str] = list(parts.rep.get("figures", []))
    if run.shipped_figures is not None:
        figs = list(run.shipped_figures)
    elif figures:
        try:
            from rdm.pipeline import figures as F
            figs += F.make_all(parts.views, results / "figures")
        except ImportError as e:
            run.store.problems.append(f"figures skipped: {e}")
    parts.rep["figures"] = figs
    if not figs:
        return []
    return ["## Figures", ""] + [f"![{Path(f).stem}](figures/{Path(f).name})\n" for f in figs if f.endswith(".png")]


def missing_section(run: Run, parts: Parts) -> list[str]:
    store = run.store
    missing = list(dict.fromkeys(store.missing))
    md = ["## Missing files and problems", ""]
    if missing or store.problems:
        md += [f"- missing: `{p}`" for p in missing] + [f"- {p}" for p in dict.fromkeys(store.problems)]
    else:
        md.append("None: every cell of the grid has its metrics file.")
    md.append("")
    parts.rep["missing"] = missing
    parts.rep["problems"] = list(dict.fromkeys(store.problems))
    return md


def tables_section(parts: Parts) -> list[str]:
    return ["## Tables as files", "", "Each table above is also in `tables/<name>.csv` and `tables/<name>.tex`: " +
            ", ".join(f"`{t.name}`" for t in parts.tables) + ".", ""]


def render(run: Run, results: Path, figures: bool = True) -> dict[str, Any]:
    """Write REPORT.md, SUMMARY.md, tables/, figures/ and models/ under ``results``; report.json's content."""
    results.mkdir(parents=True, exist_ok=True)
    parts = modality_parts(run)
    first, srep = answer_page(run, parts, results, figures)
    top = header(run) + first
    md = top + method_note(run, parts) + words_section(parts) + paper_section(parts) + eps_section(parts) + \
        masking_section(parts) + controls_section(parts) + audit_section(parts) + certified_section(parts) + \
        data_section(run, parts) + cards_section(run, parts, results) + \
        figures_section(run, parts, results, figures) + missing_section(run, parts) + tables_section(parts)
    rep: dict[str, Any] = {"grid": shipped.GRID, "mode": run.mode, "seeds": run.plan.seeds, "answer": srep,
                           **parts.rep, "tables": {t.name: t.to_json() for t in parts.tables}}
    (results / "tables").mkdir(parents=True, exist_ok=True)
    for t in parts.tables:
        _write(results / "tables" / f"{t.name}.csv", t.csv())
        _write(results / "tables" / f"{t.name}.tex", t.latex())
    _write(results / "SUMMARY.md", "\n".join(top))
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
    ap.add_argument("--work", help="the graph's output folder (OUT)")
    ap.add_argument("--from", dest="source", metavar="RESULTS",
                    help="rebuild the report from what an earlier one shipped in RESULTS (grid.toml, cells/, "
                         "timings.jsonl), without the work folder")
    ap.add_argument("--results", help="where REPORT.md, tables/ and figures/ go (with --from: default RESULTS)")
    ap.add_argument("--mode", choices=MODES, default="tables")
    ap.add_argument("--seed", type=int, default=0, help="the run's base seed (make's SEED)")
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds the run trained (make's SEEDS)")
    ap.add_argument("--tier", choices=("core", "full"), default=None,
                    help="the part of the grid the run built (make's TIER; default: core for --mode tables when "
                         "the grid has [tiers.core], else full); --from reads it from what was shipped")
    ap.add_argument("--no-figures", action="store_true", help="tables only")
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args(argv)
    if (a.work is None) == (a.source is None):
        ap.error("give either --work (and --results) or --from")
    if a.work is not None and a.results is None:
        ap.error("--work needs --results")
    try:
        if a.source is not None:
            rep = rebuild(a.source, a.results)
        else:
            grid = a.grid or DEFAULT_GRID
            rep = build(grid, a.work, a.results, a.mode, figures=not a.no_figures, seed=a.seed, seeds=a.seeds,
                        tier=a.tier or default_tier(a.mode, grid))
    except RdmError as e:
        if a.debug:
            raise
        sys.stderr.write(f"error: {e}\n")
        return 1
    n_missing = len(rep["missing"])
    if n_missing:
        sys.stderr.write(f"report: {n_missing} metrics files missing (listed at the end of REPORT.md)\n")
    print(Path(a.results or a.source) / "REPORT.md")
    return 0


if __name__ == "__main__":
    from rdm.errors import module_main

    sys.exit(module_main(main))
