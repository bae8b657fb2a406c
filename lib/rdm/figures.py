"""The report's figures (matplotlib, Agg): Fig. 3/4, Fig. 9 and Fig. 10 of the paper, from the graph's files.

Each figure is written as PNG and PDF, atomically. Functions take the report's
:class:`rdm.report.Exp` lookups, so a missing metrics file leaves a gap in a curve (and is
listed in the report) rather than stopping the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output
from .grid import fmt_eps

MARKERS = {"baseline": "o", "rdmaa": "s", "purified": "D", "advtrain-fgsm": "^", "advtrain-pgd": "v",
           "advtrain-online": "P"}
COLORS = {"baseline": "#222222", "rdmaa": "#d62728", "purified": "#ff7f0e", "advtrain-fgsm": "#1f77b4",
          "advtrain-pgd": "#2ca02c", "advtrain-online": "#9467bd"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, stem: str) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = out_dir / f"{stem}.{ext}"
        with atomic_output(p) as tmp:
            fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight")
        paths.append(str(p))
    _plt().close(fig)
    return paths


def _img(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """C×H×W in [0, 1] → something imshow takes."""
    if x.shape[0] == 1:
        return x[0], "gray"
    return np.clip(np.transpose(x, (1, 2, 0)), 0, 1), None


# --------------------------------------------------------------------------- class samples
def pick_per_class(y: np.ndarray, n_classes: int, per_class: int, seed: int = 0) -> list[list[int]]:
    """Up to ``per_class`` seeded random rows of each class (sorted), so a preview is not just the first files."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_classes):
        hit = np.flatnonzero(y == k)
        if len(hit) > per_class:
            hit = np.sort(rng.choice(hit, per_class, replace=False))
        out.append([int(i) for i in hit])
    return out


PREVIEW_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def fig_samples(set_path: Path, out_paths: Path | list[Path], per_class: int = 6, seed: int = 0,
                title: str | None = None) -> list[str]:
    """A grid of a few images per class of one set (one row per class), at the set's stored size.

    Written atomically to each of ``out_paths``; the format follows the suffix (.png, .pdf, ...). Used by
    ``rdm-prep --preview`` and by the report's data section, so that the images are looked at.
    """
    from .sets import SetReader

    with SetReader(set_path) as r:
        classes = list(r.info.classes)
        picks = pick_per_class(r.column("y", 0, r.n), len(classes), per_class, seed)
        flat = [i for rows in picks for i in rows]
        x = r.read_rows(np.array(flat, dtype=np.int64), ("x",))["x"] if flat else None
        size = "×".join(str(v) for v in r.info.shape)
    plt = _plt()
    cols = max(1, max((len(p) for p in picks), default=1))
    fig, axes = plt.subplots(len(classes), cols, figsize=(1.5 * cols + 1.2, 1.55 * len(classes)), squeeze=False)
    j0 = 0
    for k, rows in enumerate(picks):
        for j in range(cols):
            ax = axes[k, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(rows):
                im, cmap = _img(x[j0 + j].astype(np.float64))
                ax.imshow(im, cmap=cmap, vmin=0, vmax=1)
            elif j > 0 or rows:
                ax.axis("off")            # keep the first axis of an empty class, for its label
        axes[k, 0].set_ylabel(f"{classes[k]}\n({len(rows)} shown)" if len(rows) < per_class else classes[k],
                              fontsize=9)
        j0 += len(rows)
    fig.suptitle(title or f"{Path(set_path).name}: {per_class} random images per class ({size})", fontsize=10)
    written = []
    for out_path in [out_paths] if isinstance(out_paths, (str, Path)) else out_paths:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out_path) as tmp:
            fig.savefig(tmp, format=out_path.suffix.lstrip(".").lower() or "png", dpi=130, bbox_inches="tight")
        written.append(str(out_path))
    plt.close(fig)
    return written


# --------------------------------------------------------------------------- Fig. 3/4
def fig_examples(x, out_dir: Path, n_max: int = 4) -> list[str]:
    """Original, perturbation (magnified) and adversarial image for a few test rows (FGSM ε=.005)."""
    from .report import PAPER_EPS, label  # noqa: F401
    from .sets import SetReader

    m, work = x.m, x.s.work
    fg = next((a for a in x.test_attacks if a["attack"] == "fgsm"), None)
    if fg is None:
        return []
    eps = min(fg["eps"], key=lambda e: abs(e - PAPER_EPS))
    adv_p = work / m / "adv" / f"test-{fg['name']}-{fmt_eps(eps)}.h5"
    clean_p = work / m / "test.h5"
    if not adv_p.exists() or not clean_p.exists():
        x.s.missing.append(str(adv_p if not adv_p.exists() else clean_p))
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
    plt = _plt()
    k = len(rows)
    fig, axes = plt.subplots(3, k, figsize=(2.2 * k, 6.9), squeeze=False)
    gain = 1.0 / (2 * eps)
    for j in range(k):
        xo, xa = cl["x"][j].astype(np.float64), adv["x"][j].astype(np.float64)
        d = xa - xo
        im, cmap = _img(xo)
        axes[0, j].imshow(im, cmap=cmap, vmin=0, vmax=1)
        axes[0, j].set_title(classes[int(cl["y"][j])], fontsize=9)
        pim, pc = _img(np.clip(0.5 + d * gain, 0, 1))
        axes[1, j].imshow(pim, cmap=pc if pc else None, vmin=0, vmax=1)
        axes[1, j].set_title(f"max |δ| = {np.abs(d).max():.4f}", fontsize=8)
        aim, ac = _img(xa)
        axes[2, j].imshow(aim, cmap=ac, vmin=0, vmax=1)
        for i in range(3):
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    for i, t in enumerate(("original", f"perturbation\n×{gain:g} (grey = 0)", "adversarial")):
        axes[i, 0].set_ylabel(t, fontsize=9)
    fig.suptitle(f"Fig. 3/4 ({m}): FGSM ε = {fmt_eps(eps)} crafted on the baseline", fontsize=10)
    return _save(fig, out_dir, f"fig3-4-examples-{m}")


# --------------------------------------------------------------------------- Fig. 9
def fig_sweep(x, out_dir: Path) -> list[str]:
    from .report import label

    if not x.sweep:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    me = x.matched or {}
    drew = False
    for ax, kind in zip(axes, ("fgsm", "pgd")):
        for m in ["baseline"] + x.defended:
            c = COLORS.get(m)
            for proto, ls, get in (("white-box", "-", x.sweep_wb), ("transfer", "--", x.sweep_tr)):
                if m == "baseline" and proto == "transfer":
                    continue
                pts = []
                for e in x.sweep:
                    r = get(m, kind, e)
                    if r is not None and r.metric("accuracy") is not None:
                        pts.append((e, 100 * r.metric("accuracy")))
                if pts:
                    drew = True
                    ax.plot(*zip(*pts), ls=ls, marker=MARKERS.get(m, "o"), ms=4, color=c, lw=1.4,
                            mfc=c if proto == "white-box" else "white",
                            label=f"{label(m)} ({proto})" if m != "baseline" else f"{label(m)}")
        for pe in x.paper_eps:
            ax.axvline(pe, color="#888888", ls=":", lw=1)
        ax.text(x.paper_eps[-1], 101, " paper ε", fontsize=7, color="#666666", va="bottom")
        if me.get(kind) is not None:
            ax.axvline(me[kind], color="#444444", ls="-.", lw=1)
            ax.text(me[kind], 1, f" matched ε={fmt_eps(me[kind])}", fontsize=7, rotation=90, va="bottom")
        pk = x.paper.get(kind)
        if pk is not None:
            ax.plot([0.005], [100 * pk], marker="*", ms=11, color="#222222", ls="none", label="paper, no defence")
        if x.paper.get(f"rdmaa_{kind}") is not None:
            ax.plot([0.005], [100 * x.paper[f"rdmaa_{kind}"]], marker="*", ms=11, color=COLORS["rdmaa"],
                    ls="none", label="paper, RDMAA")
        ax.set_xscale("log")
        ax.set_ylim(-2, 105)
        ax.set_xlabel("ε (L∞, pixels in [0, 1])")
        ax.set_title(f"{kind.upper()}" + (" (white-box: PGD on each model)" if kind == "pgd" else ""), fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("accuracy (%)")
    if not drew:
        plt.close(fig)
        return []
    h, l = axes[1].get_legend_handles_labels()
    h0, l0 = axes[0].get_legend_handles_labels()
    seen = dict(zip(l0 + l, h0 + h))
    fig.legend(seen.values(), seen.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title="solid: white-box\ndashed: transfer", title_fontsize=8)
    fig.suptitle(f"Fig. 9 ({x.m}): accuracy vs ε", fontsize=11)
    fig.tight_layout()
    return _save(fig, out_dir, f"fig9-accuracy-vs-eps-{x.m}")


# --------------------------------------------------------------------------- Fig. 10
def fig_confusion(x, out_dir: Path) -> list[str]:
    from .report import PAPER_EPS, label

    pg = next((a for a in x.test_attacks if a["attack"] in ("pgd", "bim")), None)
    panels = []
    for m in ("baseline", "rdmaa"):
        panels.append((f"{label(m)}, clean", x.clean(m)))
        if pg is not None:
            e = min(pg["eps"], key=lambda v: abs(v - PAPER_EPS))
            how = "its own attack" if m == "baseline" else "transfer from the baseline"
            panels.append((f"{label(m)}, PGD ε={fmt_eps(e)} ({how})", x.transfer(m, pg["name"], e)))
    panels = [(t, r) for t, r in panels if r is not None and r.result.get("metrics", {}).get("confusion")]
    if not panels:
        return []
    plt = _plt()
    classes = panels[0][1].result["counts"]["classes"] if "counts" in panels[0][1].result else None
    cols = 2
    nrow = (len(panels) + 1) // 2
    k = len(panels[0][1].result["metrics"]["confusion"])
    size = 2.2 + 0.55 * k
    fig, axes = plt.subplots(nrow, cols, figsize=(cols * size + 1, nrow * size), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, r) in zip(axes.ravel(), panels):
        ax.axis("on")
        cm = np.asarray(r.result["metrics"]["confusion"], dtype=np.float64)
        rows = cm.sum(axis=1, keepdims=True)
        frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{int(cm[i, j])}\n{100 * frac[i, j]:.0f}%", ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.6 else "black")
        names = classes or [str(i) for i in range(cm.shape[0])]
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        acc = r.metric("accuracy")
        ax.set_title(f"{title}\naccuracy {100 * acc:.1f}%", fontsize=8)
    fig.suptitle(f"Fig. 10 ({x.m}): confusion matrices (rows: true class; colour: share of the row)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_dir, f"fig10-confusion-{x.m}")


def make_all(grid: dict[str, Any], work: Path, out_dir: Path, exps: dict, store) -> list[str]:
    out: list[str] = []
    for m, x in exps.items():
        train = work / m / "train.h5"
        if train.exists():
            out += fig_samples(train, [out_dir / f"fig0-samples-{m}.{e}" for e in ("png", "pdf")],
                               title=f"{m}: 6 random training images per class, as the models see them")
        out += fig_examples(x, out_dir)
        out += fig_sweep(x, out_dir)
        out += fig_confusion(x, out_dir)
    return out
