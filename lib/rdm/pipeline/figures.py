"""The report's figures (matplotlib, Agg): Fig. 3/4, Fig. 9 and Fig. 10 of the paper, from the plan's cells.

Each figure is written as PNG and PDF, atomically. A missing metrics file leaves a gap in a curve
(and is listed in the report) rather than stopping the report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rdm.evaluation.figures import fig_samples, image_of, pyplot, save_figure
from rdm.pipeline.labels import eps_physical, eps_txt, fmt_eps, grey_budget, model_label, units_of
from rdm.pipeline.config import PAPER_EPS
from rdm.pipeline.plan import set_path
from rdm.pipeline.certified import fig_certified
from rdm.pipeline.results import View
from rdm.pipeline import verdicts as V

MARKERS = {"baseline": "o", "rdmaa": "s", "purified": "D", "advtrain-fgsm": "^", "advtrain-pgd": "v",
           "advtrain-online": "P", "advtrain-trades": "X", "advtrain-fast": "<"}
COLORS = {"baseline": "#222222", "rdmaa": "#d62728", "purified": "#ff7f0e", "advtrain-fgsm": "#1f77b4",
          "advtrain-pgd": "#2ca02c", "advtrain-online": "#9467bd", "advtrain-trades": "#8c564b",
          "advtrain-fast": "#17becf"}
# models outside COLORS, in the order they are first drawn
SPARE_COLORS = ("#bcbd22", "#e377c2", "#7f7f7f", "#aec7e8", "#98df8a", "#c5b0d5")
MATCHED_SUFFIX = "-at-matched"


def model_style(model: str, spare: dict[str, str] | None = None) -> tuple[str, str | None]:
    """A model's bar colour and hatch: a model trained at the matched ε takes the colour of its
    paper-ε recipe, hatched; one outside :data:`COLORS` a spare colour of its own (``spare``
    remembers which, so two such models never share one)."""
    if model.endswith(MATCHED_SUFFIX):
        return model_style(model[: -len(MATCHED_SUFFIX)], spare)[0], "////"
    if model in COLORS:
        return COLORS[model], None
    spare = {} if spare is None else spare
    if model not in spare:
        spare[model] = SPARE_COLORS[len(spare) % len(SPARE_COLORS)]
    return spare[model], None


# --------------------------------------------------------------------------- Fig. 3/4
def fig_examples(x: View, out_dir: Path, n_max: int = 4) -> list[str]:
    """Original, perturbation (magnified) and adversarial image for a few test rows (FGSM ε=.005)."""
    from rdm.data.sets import SetReader

    fg = next((a for a in x.plan.test_attacks if a.kind == "fgsm"), None)
    if fg is None:
        return []
    eps = min(fg.eps, key=lambda e: abs(e - PAPER_EPS))
    adv_p, clean_p = x.r.path(x.p.transfer_set(fg, eps)), x.r.path(set_path(x.m, "test"))
    if not adv_p.exists() or not clean_p.exists():
        x.r.missing.append(x.p.transfer_set(fg, eps) if not adv_p.exists() else set_path(x.m, "test"))
        return []
    with SetReader(adv_p) as ra, SetReader(clean_p) as rc:
        classes = ra.info.classes
        n = min(ra.n, 512)
        y = ra.column("y", 0, n)
        rows: list[int] = []
        for k in range(len(classes)):           # one row per class first, then fill up
            hit = np.flatnonzero(y == k)
            if len(hit):
                rows.append(int(hit[0]))
        rows += [i for i in range(n) if i not in rows][: max(0, n_max - len(rows))]
        rows = sorted(rows[:n_max])
        if not rows:
            return []
        adv = ra.read_rows(np.array(rows), ("x", "y", "source_index"))
        cl = rc.read_rows(adv["source_index"], ("x", "y"))
    plt = pyplot()
    k = len(rows)
    fig, axes = plt.subplots(3, k, figsize=(2.2 * k, 6.9), squeeze=False)
    gain = 1.0 / (2 * eps)
    for j in range(k):
        xo, xa = cl["x"][j].astype(np.float64), adv["x"][j].astype(np.float64)
        d = xa - xo
        im, cmap = image_of(xo)
        axes[0, j].imshow(im, cmap=cmap, vmin=0, vmax=1)
        axes[0, j].set_title(classes[int(cl["y"][j])], fontsize=9)
        pim, pc = image_of(np.clip(0.5 + d * gain, 0, 1))
        axes[1, j].imshow(pim, cmap=pc if pc else None, vmin=0, vmax=1)
        axes[1, j].set_title(f"max |δ| = {np.abs(d).max():.4f}", fontsize=8)
        aim, ac = image_of(xa)
        axes[2, j].imshow(aim, cmap=ac, vmin=0, vmax=1)
        for i in range(3):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    for i, t in enumerate(("original", f"perturbation\n×{gain:g} (grey = 0)", "adversarial")):
        axes[i, 0].set_ylabel(t, fontsize=9)
    fig.suptitle(f"Fig. 3/4 ({x.m}): FGSM ε = {fmt_eps(eps)} crafted on the baseline", fontsize=10)
    return save_figure(fig, out_dir, f"fig3-4-examples-{x.m}")


# --------------------------------------------------------------------------- Fig. 9
def ci_of(x: View, r, metric: str = "accuracy") -> tuple[float | None, float, float | None]:
    """(lo, mean, hi) of a cell's ``metric`` over its seeds (rdm.pipeline.verdicts); no interval
    without per-row results."""
    rows = V.rows_of(x, r)
    if rows is None:
        return None, float(r.metric(metric)), None
    p = V.value_part(rows, metric, r)
    return p.lo, float(p.value), p.hi


def _num(v: float) -> str:
    """A number for a figure's text with a typographic minus (−1000, not -1000)."""
    return f"{v:g}".replace("-", "\u2212")


def eps_axis(ax, eps: list[float], units: dict):
    """A second x axis on top of ``ax`` (log ε on [0, 1]) that names each ε of ``eps`` in 8-bit grey
    levels and, where the preset has an intensity window (CT), in its unit
    (:func:`~rdm.pipeline.labels.eps_physical`; ``units`` from :func:`~rdm.pipeline.labels.units_of`);
    where ``eps`` has the literature's budgets k/255 (:func:`~rdm.pipeline.labels.grey_budget`), those
    only, and the bottom axis names the rest."""
    from matplotlib.ticker import NullLocator

    g = units["grey_levels"]
    top = ax.secondary_xaxis("top", functions=(lambda e: e * g, lambda v: v / g))
    # where the sweep has the literature's budgets k/255, the top axis names those (the bottom one the
    # rest: eleven two-line labels on one axis overlap); else it names every ε in grey levels
    budgets = [e for e in eps if grey_budget(e) is not None]
    top.set_xticks([e * g for e in budgets or eps], [eps_physical(e, units, "\n") for e in budgets or eps],
                   fontsize=7)
    top.xaxis.set_minor_locator(NullLocator())
    unit = units["unit"] if units.get("per_unit") else None
    top.set_xlabel(("the literature's budgets k/255 (8-bit grey levels)" if budgets else
                    "the same ε in 8-bit grey levels") +
                   (f" and in {unit} (window {_num(units['window'][0])} to {_num(units['window'][1])})" if unit else ""),
                   fontsize=8)
    return top


def fig_sweep(x: View, out_dir: Path) -> list[str]:
    """Accuracy vs ε: FGSM and PGD (rows) × white-box and transfer (columns), one row set per panel,
    each curve with its 95 % interval band (rows and seeds: :func:`rdm.evaluation.stats.interval`), in the metric
    the modality's verdicts decide on (lung: balanced accuracy; a model that answers the majority
    class keeps its plain accuracy under attack)."""
    if not x.sweep_eps:
        return []
    metric = V.decide_on(x)
    seeds_drawn: set[int] = set()          # the seeds behind the plotted cells (not the plan's)
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11.5, 8.2), sharey=True, sharex=True)
    units = units_of(x.plan.modalities[x.m]["preset"])
    drew = False
    sub = f"seeded subset, {x.subset_n} rows" if x.plan.sweep_on_subset else "whole test set"
    for i, kind in enumerate(("fgsm", "pgd")):
        for j, (proto, get) in enumerate((("white-box", x.sweep), ("transfer", x.sweep_transfer))):
            ax = axes[i, j]
            drew = _sweep_curves(ax, x, kind, proto, get, metric, seeds_drawn) or drew
            _sweep_marks(ax, x, kind, proto, metric, units)
            _sweep_axes(ax, x, i, j, kind, proto, metric, sub, units)
    if not drew:
        plt.close(fig)
        return []
    seen: dict = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(seen.values(), seen.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title="solid: white-box\ndashed: transfer", title_fontsize=8)
    lo_k, hi_k = min(seeds_drawn, default=1), max(seeds_drawn, default=1)
    fig.suptitle(f"Fig. 9 ({x.m}): {V.METRIC_WORDS[metric]} vs ε; bands: 95 % interval "
                 + ("(bootstrap over rows, one seed)" if hi_k == 1 else
                    f"over {hi_k} seeds and the rows" if lo_k == hi_k else
                    f"over the rows and each curve's seeds ({lo_k} to {hi_k})"), fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out_dir, f"fig9-accuracy-vs-eps-{x.m}")


def _sweep_curves(ax, x: View, kind: str, proto: str, get, metric: str, seeds_drawn: set[int]) -> bool:
    """One panel's curves, each model's with its interval band; whether any was drawn."""
    drew = False
    spare: dict[str, str] = {}
    for m in ["baseline"] + x.defended:
        if m == "baseline" and proto == "transfer":
            continue          # its transfer sets are its own (white-box) attack: left panel
        c, matched = model_style(m, spare)     # a model trained at the matched ε: its recipe's colour, open marks
        pts, band = [], []
        for e in x.sweep_eps:
            r = get(m, kind, e)
            if r is not None and r.metric(metric) is not None:
                lo, mean, hi = ci_of(x, r, metric)
                rr = V.rows_of(x, r)
                seeds_drawn.add(rr.n_seeds if rr is not None else 1)
                pts.append((e, 100 * mean))
                if lo is not None:
                    band.append((e, 100 * lo, 100 * hi))
        if not pts:
            continue
        drew = True
        if len(band) > 1:
            be, blo, bhi = zip(*band)
            ax.fill_between(be, blo, bhi, color=c, alpha=0.13, lw=0)
        ax.plot(*zip(*pts), ls="-" if proto == "white-box" else "--",
                marker=MARKERS.get(m.removesuffix(MATCHED_SUFFIX), "o"), ms=4, color=c, lw=1.4,
                mfc="white" if matched else c, label=model_label(m))
    return drew


def _sweep_marks(ax, x: View, kind: str, proto: str, metric: str, units) -> None:
    """The paper's ε, the matched ε and the paper's numbers on one panel. The lines are named in the
    legend; only the matched ε's value stands beside its line, on the side with room for it (to its
    right unless that runs past the sweep's largest ε)."""
    me = x.matched or {}
    for k, pe in enumerate(x.paper_eps):
        ax.axvline(pe, color="#888888", ls=":", lw=1,
                   label="the paper's ε (" + ", ".join(map(eps_txt, x.paper_eps)) + ")" if k == 0 else None)
    if me.get(kind) is not None:
        e = float(me[kind])
        ax.axvline(e, color="#444444", ls="-.", lw=1, label="matched ε (baseline at the paper's accuracy)")
        right = e * 10 ** 0.45 <= x.sweep_eps[-1]
        ax.annotate(f"matched ε = {fmt_eps(e)}\n{eps_physical(e, units, ', ')}", (e, 103), fontsize=7,
                    ha="left" if right else "right", va="bottom", xytext=(3 if right else -3, 0),
                    textcoords="offset points")
    its = "" if metric == "accuracy" else " (its accuracy)"
    for key, col, lab in ((kind, "#222222", "paper, no defence" + its),
                          (f"rdmaa_{kind}", COLORS["rdmaa"], "paper, RDMAA" + its)):
        if x.paper.get(key) is not None and (key == kind) == (proto == "white-box"):
            ax.plot([PAPER_EPS], [100 * x.paper[key]], marker="*", ms=11, color=col, ls="none", label=lab,
                    markeredgecolor="white", zorder=5)


def _sweep_axes(ax, x: View, i: int, j: int, kind: str, proto: str, metric: str, sub: str, units) -> None:
    """One panel's scales, ticks, title and labels."""
    ax.set_xscale("log")
    bottom = [e for e in x.sweep_eps if grey_budget(e) is None] or x.sweep_eps   # k/255: the top axis
    ax.set_xticks(bottom, [eps_txt(e) for e in bottom], fontsize=7)
    ax.xaxis.set_minor_formatter("")
    if i == 0:
        eps_axis(ax, x.sweep_eps, units)
    ax.set_ylim(-2, 116)              # above 100: the matched ε label, two lines
    ax.grid(alpha=0.3, which="both")
    rows = sub if proto == "white-box" else "whole test set"
    what = "PGD on each model" if kind == "pgd" else "FGSM on each model"
    ax.set_title(f"{kind.upper()}, {proto} " +
                 (f"({what}; {rows})" if proto == "white-box" else f"(crafted on the baseline; {rows})"),
                 fontsize=9)
    if i == 1:
        ax.set_xlabel("ε (L∞, pixels in [0, 1])")
    if j == 0:
        ax.set_ylabel(f"{V.METRIC_WORDS[metric]} (%)")


# --------------------------------------------------------------------------- Fig. 10
def confusion_panels(x: View) -> tuple[list[str], list[tuple[str, list]]]:
    """Fig. 10's grid: columns clean / PGD transfer from the baseline / PGD white-box (the model's own
    gradients) at the PGD ε nearest the paper's; rows no defence, RDMAA and the adversarially trained
    model most accurate under that white-box attack in the metric the modality decides on (named).
    A cell is ``(title, ref)``, or a string said in place of a panel (the baseline's transfer set is
    its own white-box attack)."""
    pg = next((a for a in x.plan.test_attacks if a.kind in ("pgd", "bim")), None)
    e = None if pg is None else min(pg.eps, key=lambda v: abs(v - PAPER_EPS))
    cols = ["clean"] + ([] if pg is None else [f"PGD ε={fmt_eps(e)} transfer (crafted on the baseline)",
                                               f"PGD ε={fmt_eps(e)} white-box (its own gradients)"])

    def row(m: str) -> list:
        cells: list = [("clean", x.clean(m))]
        if pg is None:
            return cells
        if m == "baseline":       # crafted on itself: its transfer set is its white-box attack
            return cells + ["its own attack:\nthe white-box panel", ("white-box", x.transfer(m, pg, e))]
        return cells + [("transfer", x.transfer(m, pg, e)), ("white-box", x.twin(m, pg, e)[0])]

    rows = [(model_label(m), row(m)) for m in ("baseline", "rdmaa") if m in x.models]
    best = None if pg is None else V.best_ref(x, [x.twin(m, pg, e)[0] for m in x.advtrain])
    if best is not None and best.cell is not None:
        rows.append((f"{model_label(best.cell.model)} (best adversarial training white-box)", row(best.cell.model)))
    return cols, rows


def _has_confusion(c) -> bool:
    return isinstance(c, tuple) and c[1] is not None and bool(c[1].result.get("metrics", {}).get("confusion"))


def fig_confusion(x: View, out_dir: Path) -> list[str]:
    cols, rows = confusion_panels(x)
    rows = [(lab, cells) for lab, cells in rows if any(_has_confusion(c) for c in cells)]
    if not rows:
        return []
    first = next(c[1] for _, cells in rows for c in cells if _has_confusion(c))
    classes = first.result["counts"]["classes"] if "counts" in first.result else None
    k = len(first.result["metrics"]["confusion"])
    balanced = V.decide_on(x) == "balanced_accuracy"
    plt = pyplot()
    size = max(3.4, 2.2 + 0.55 * k)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(len(cols) * size + 1, len(rows) * size + 0.4),
                             squeeze=False)
    for i, (lab, cells) in enumerate(rows):
        for j, c in enumerate(cells):
            ax = axes[i, j]
            if not _has_confusion(c):
                ax.axis("off")
                ax.text(0.5, 0.5, c if isinstance(c, str) else "n/a (metrics file missing)", ha="center",
                        va="center", fontsize=8, color="0.35", transform=ax.transAxes)
                ax.set_title(f"{lab}\n{cols[j]}", fontsize=8)
                continue
            r = c[1]
            cm = np.asarray(r.result["metrics"]["confusion"], dtype=np.float64)
            tot = cm.sum(axis=1, keepdims=True)
            frac = np.divide(cm, tot, out=np.zeros_like(cm), where=tot > 0)
            ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
            for a in range(cm.shape[0]):
                for b in range(cm.shape[1]):
                    ax.text(b, a, f"{int(cm[a, b])}\n{100 * frac[a, b]:.0f}%", ha="center", va="center",
                            fontsize=7, color="white" if frac[a, b] > 0.6 else "black")
            names = classes or [str(n) for n in range(cm.shape[0])]
            ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
            ax.set_yticks(range(len(names)), names, fontsize=7)
            ax.set_xlabel("predicted", fontsize=8)
            ax.set_ylabel("true", fontsize=8)
            bal = r.metric("balanced_accuracy") if balanced else None
            ax.set_title(f"{lab}\n{cols[j]}\naccuracy {100 * r.metric('accuracy'):.1f}%"
                         + ("" if bal is None else f", balanced {100 * bal:.1f}%"), fontsize=8)
    seeds = len(x.plan.seeds)
    fig.suptitle(f"Fig. 10 ({x.m}): confusion matrices (rows: true class; colour: share of the row)"
                 + (f"; seed {x.plan.seeds[0]}, the first of {seeds}" if seeds > 1 else ""), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, f"fig10-confusion-{x.m}")


def make_all(views: dict[str, View], out_dir: Path) -> list[str]:
    out: list[str] = []
    for m, x in views.items():
        train = x.r.path(set_path(m, "train"))
        if train.exists():
            out += fig_samples(train, [out_dir / f"fig0-samples-{m}.{e}" for e in ("png", "pdf")],
                               title=f"{m}: 6 random training images per class, as the models see them")
        out += fig_examples(x, out_dir)
        out += fig_sweep(x, out_dir)
        out += fig_confusion(x, out_dir)
        out += fig_certified(x, out_dir)
    return out


# --------------------------------------------------------------------------- the first page's figure
def fig_aa(points: dict[str, list[dict]], out_dir: Path, stem: str = "fig-aa-summary") -> list[str]:
    """One panel per modality: each model's standard-suite accuracy at each ε (bars with their 95 %
    intervals) and the clean accuracy of the same rows (○), from :func:`rdm.pipeline.summary.aa_points`.
    Nothing is drawn (``[]``) when no modality has such a cell."""
    panels = [(m, [p for p in pts if p.get("value") is not None]) for m, pts in points.items()]
    panels = [(m, pts) for m, pts in panels if pts]
    if not panels:
        return []
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.8), squeeze=False)
    spare: dict[str, str] = {}
    legend: dict[str, object] = {}
    for ax, (m, pts) in zip(axes[0], panels):
        labels = list(dict.fromkeys(p["label"] for p in pts))
        models = list(dict.fromkeys(p["model"] for p in pts))
        width = 0.8 / max(len(models), 1)
        for j, model in enumerate(models):
            for i, lab in enumerate(labels):
                p = next((q for q in pts if q["model"] == model and q["label"] == lab), None)
                if p is None:
                    continue
                xpos = i - 0.4 + width * (j + 0.5)
                err = None
                if p.get("lo") is not None:
                    err = [[100 * (p["value"] - p["lo"])], [100 * (p["hi"] - p["value"])]]
                color, hatch = model_style(model, spare)
                bar = ax.bar(xpos, 100 * p["value"], width * 0.9, yerr=err, error_kw={"lw": 0.8, "capsize": 2}, color=color, hatch=hatch,
                             edgecolor="white" if hatch else None, linewidth=0)
                legend.setdefault(model_label(model), bar)
                if p.get("clean") is not None:
                    ax.plot(xpos, 100 * p["clean"], "o", mfc="white", mec=color, ms=5)
        ax.set_xticks(range(len(labels)), labels)
        metric = pts[0]["metric"].replace("_", " ")
        ax.set_ylabel(f"{metric} (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{m}: standard suite (white-box)")
        ax.grid(axis="y", alpha=0.3)
    names = list(legend)
    fig.legend([legend[n] for n in names], names, loc="lower center", ncol=min(len(names), 6), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(fig, out_dir, stem)
