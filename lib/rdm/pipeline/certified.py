"""Certified robustness in the report: randomized smoothing (``rdm-certify``) of the grid's
noise-trained models ( ``[certify]`` ), a table and a curve per modality, with the empirical
white-box accuracy of the same model on the same rows beside it.

Every certified number is recomputed here from the certificate's per-row results (class, radius,
label) by :func:`rdm.evaluation.certify.certified_accuracy`, so any radius can be shown, among them the L2
radius ε·√d of the ball that contains the L∞ ball of the paper's ε and of the matched ε. What a
certificate can reach at all is :func:`rdm.evaluation.certify.max_certifiable_radius` (σ·Φ⁻¹(α^(1/n))).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rdm.evaluation.certify import ABSTAIN, certified_accuracy, max_certifiable_radius
from rdm.pipeline.config import PAPER_EPS
from rdm.pipeline.labels import eps_txt, model_label, pct, short_attack
from rdm.pipeline.results import View
from rdm.pipeline.verdicts import ref_acc_entry as acc_entry
from rdm.pipeline.tables import NA, Entry, Part, Table, words

LADDER = (0.25, 0.5)     # fixed L2 radii shown beside the ε-equivalent ones


@dataclass
class Certificate:
    """One model's certificate file, read: its settings and per-row class, radius and label."""

    model: str
    file: str
    sigma: float
    n: int
    n0: int
    alpha: float
    pred: np.ndarray
    radius: np.ndarray
    y: np.ndarray
    sqrt_d: float | None           # √d of the images (from the file's ε → L2 radius pairs)

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def max_radius(self) -> float:
        return max_certifiable_radius(self.sigma, self.n, self.alpha)

    def at(self, r: float) -> float:
        """Certified accuracy at L2 radius ``r`` (abstentions count as wrong)."""
        return certified_accuracy(self.pred, self.radius, self.y, [r])[f"{r:g}"]

    def part(self, r: float) -> Part:
        return Part(f"r={r:g}", self.at(r), self.file, None, metric=f"certified_accuracy@{r:g}", origin="certificate")

    @property
    def abstain(self) -> float:
        return float(np.mean(self.pred == ABSTAIN)) if self.rows else float("nan")


def certificate(x: View, model: str) -> Certificate | None:
    """The certificate of ``model`` (None, and the file listed as missing or unreadable, when absent);
    read once per view."""
    cache = x.__dict__.setdefault("_certificates", {})
    if model not in cache:
        cache[model] = _read(x, model)
    return cache[model]


def _read(x: View, model: str) -> Certificate | None:
    cell = x.p.certified(model)
    if cell is None:
        return None
    p = cell.output
    d = x.r.json(p)
    if d is None:
        return None
    try:
        rows, s = d["per_row"], d["settings"]
        pairs = [(float(e), float(r)) for e, r in (d.get("eps_l2") or {}).items() if float(e) > 0]
        return Certificate(model, str(x.r.path(p)), float(s["sigma"]), int(s["n"]), int(s["n0"]), float(s["alpha"]),
                           np.asarray(rows["pred"]), np.asarray(rows["radius"], dtype=np.float64),
                           np.asarray(rows["y"]), pairs[0][1] / pairs[0][0] if pairs else None)
    except (ValueError, KeyError, TypeError, OSError) as e:
        x.r.problems.append(f"{p}: not a certificate ({type(e).__name__}: {e})")
        return None


def eps_radii(x: View, sqrt_d: float | None) -> list[tuple[str, float, float]]:
    """(what, L∞ ε, L2 radius ε·√d) for the paper's ε and the matched ε of PGD."""
    if sqrt_d is None:
        return []
    out = [(f"paper's ε = {eps_txt(e)}", e, e * sqrt_d) for e in x.paper_eps if abs(e - PAPER_EPS) < 1e-12]
    me = (x.matched or {}).get("pgd")
    if me is not None:
        out.append((f"matched PGD ε = {eps_txt(float(f'{me:.3g}'))}", float(me), float(me) * sqrt_d))
    return out


def base_clean(x: View, model: str):
    """The cell of a noise-trained model's base network, clean, on the rows it was certified on: every
    subset white-box file holds that result, so the first one that exists (else the first of them)."""
    return next((c for c in x.p.certified_cleans(model) if x.r.exists(c)), x.p.certified_clean(model))


def _subset_whitebox(x: View):
    return [(w, e) for w in x.plan.whitebox if x.p.on_subset(w) for e in w.eps]


def table_certified(x: View) -> Table | None:
    """Certified accuracy of each noise-trained model at a few L2 radii, abstentions, rows, and the
    same model's clean and white-box accuracy on the same rows; None when the grid certifies nothing."""
    models = [m for m, _ in x.plan.certify.models]
    if not models:
        return None
    certs = {m: certificate(x, m) for m in models}
    sqrt_d = next((c.sqrt_d for c in certs.values() if c is not None and c.sqrt_d), None)
    er = eps_radii(x, sqrt_d)
    radii = [(f"r={r:g}", r) for r in LADDER] + [(f"r={r:.3g} (L∞ {what})", r) for what, _, r in er]
    wb = _subset_whitebox(x)
    cols = (["Model", "σ", "rows", "n / n0 / α", "abstained", "certified r=0 (smoothed clean)"] +
            [f"certified {h}" for h, _ in radii] + ["largest certifiable r", "base model clean (same rows)"] +
            [f"white-box {short_attack(w)} ε={eps_txt(e)} (same rows)" for w, e in wb])
    t = Table(f"certified-{x.m}", f"Certified L2 robustness by randomized smoothing, {x.m} (certified accuracy, %; "
              "clean and white-box: accuracy / balanced accuracy, %)", cols)
    for m, sigma in x.plan.certify.models:
        c = certs[m]
        if c is None:
            row = [words(f"{sigma:g}"), NA, NA, NA, NA] + [NA] * len(radii) + \
                  [words(f"{max_certifiable_radius(sigma, x.plan.certify.n, x.plan.certify.alpha):.3f}")]
        else:
            row = [words(f"{c.sigma:g}"), Entry([Part("rows", c.rows, c.file, count=True, origin="certificate")]),
                   words(f"{c.n} / {c.n0} / {c.alpha:g}"),
                   Entry([Part("abstain", c.abstain, c.file, metric="abstain", origin="certificate")]),
                   Entry([c.part(0.0)])] + [Entry([c.part(r)]) for _, r in radii] + [words(f"{c.max_radius:.3f}")]
        row += [acc_entry(x.get(base_clean(x, m)))] + [acc_entry(x.whitebox(m, w, e)) for w, e in wb]
        t.add(model_label(m), row)
    t.notes += [
        "Smoothed classifier g(x) = the class the noise-trained network f gives most often under Gaussian noise of "
        "std σ (CERTIFY of Cohen et al. 2019: n0 samples pick the class, n samples bound its probability from below "
        "by Clopper–Pearson at confidence 1 − α; below ½ the row abstains and counts as wrong). Certified at r: g "
        "is right and provably constant in the L2 ball of radius r.",
        "ε-equivalent radii: the L2 ball of radius ε·√d contains the L∞ ball of size ε (d = C·H·W"
        + (f" = {round(sqrt_d ** 2)}" if sqrt_d else "") + "), so a certificate there covers every L∞ attack of "
        "size ε. No certificate can exceed σ·Φ⁻¹(α^(1/n)) (largest certifiable r).",
        "The white-box columns attack the base network f of the same model (rdm-eval), not the smoothed g, on the "
        "same rows (the seeded subset); they are an empirical number beside the certified one, not a bound on it.",
        "Certified for the first seed only (randomized smoothing is costly).",
    ]
    return t


def certified_words(x: View) -> list[str]:
    """Plain sentences: can a certificate reach the ε-equivalent radii at these n and α, and what it gives."""
    models = x.plan.certify.models
    if not models:
        return []
    certs = [c for c in (certificate(x, m) for m, _ in models) if c is not None]
    cfg = x.plan.certify
    n, alpha = (certs[0].n, certs[0].alpha) if certs else (cfg.n, cfg.alpha)
    maxr = {m: max_certifiable_radius(s, n, alpha) for m, s in models}
    s = [f"At n = {n} noise samples and α = {alpha:g}, no certificate can exceed σ·Φ⁻¹(α^(1/n)): " +
         ", ".join(f"{maxr[m]:.3f} for σ = {sg:g}" for m, sg in models) + "."]
    sqrt_d = next((c.sqrt_d for c in certs if c.sqrt_d), None)
    if sqrt_d is None:
        return s + ["No certificate has been computed yet, so the ε-equivalent radii are not known here."]
    for what, e, r in eps_radii(x, sqrt_d):
        able = [model_label(m) for m, _ in models if maxr[m] >= r]
        head = f"The L2 ball that contains the L∞ ball of the {what} has radius ε·√d = {r:.3f}: "
        if not able:
            s.append(head + "beyond every σ's largest certifiable radius, so **no certificate is possible there** "
                     "at these n and α.")
            continue
        got = ", ".join(f"{model_label(c.model)} certifies {pct(c.at(r))} % of {c.rows} rows" for c in certs
                        if maxr[c.model] >= r)
        s.append(head + f"a certificate is possible there for {', '.join(able)}" +
                 ("" if len(able) == len(models) else " only") + (f"; {got}" if got else "") + ".")
    return s


def fig_certified(x: View, out_dir: Path) -> list[str]:
    """Certified accuracy against L2 radius, one line per σ, the ε-equivalent radii marked."""
    from rdm.evaluation.figures import pyplot, save_figure

    certs = [c for c in (certificate(x, m) for m, _ in x.plan.certify.models) if c is not None]
    if not certs:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    er = eps_radii(x, next((c.sqrt_d for c in certs if c.sqrt_d), None))
    top = max(c.max_radius for c in certs) * 1.15     # nothing is certified beyond the largest radius
    top = max([top] + [r * 1.05 for _, _, r in er if r <= 2 * top])
    grid = np.linspace(0.0, top, 400)
    shown = [e for e in er if e[2] <= top]
    lines = []
    for c in certs:
        ok = c.pred == c.y
        acc = [100.0 * float(np.mean(ok & (c.radius >= r))) for r in grid]
        at = "; ".join(f"{pct(c.at(r))} % at r = {r:.3g}" for _, _, r in shown)
        line, = ax.plot(grid, acc, lw=1.6, label=f"σ = {c.sigma:g} ({c.rows} rows, abstained {pct(c.abstain)} %)"
                        + (f": {at}" if at else ""))
        lines.append((c, line.get_color()))
        ax.axvline(c.max_radius, color=line.get_color(), ls=":", lw=1)
    off = [f"L∞ {what}: r = ε·√d = {r:.3g}, off the axis, beyond every certificate" for what, _, r in er if r > top]
    # the ε-equivalent radii are named in the legend (text along the lines crossed the curves) and each
    # curve's value there is a dot on it
    for k, (what, _, r) in enumerate(shown):
        ax.axvline(r, color="#444444", ls=("--", "-.")[k % 2], lw=1, label=f"L∞ {what} → L2 r = ε·√d = {r:.3g}")
        for c, color in lines:
            ax.plot([r], [100.0 * c.at(r)], marker="o", ms=4.5, color=color, markeredgecolor="white", zorder=4)
    ax.set_xlim(0, top)
    ax.set_ylim(-2, 100)
    ax.set_xlabel("\n".join(["L2 radius (pixels in [0, 1])", *off]))
    ax.set_ylabel("certified accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(0.0, -0.13 - 0.045 * len(off)),
              title="dotted: each σ's largest certifiable radius; dots: its certified accuracy at the ε radii",
              title_fontsize=7, frameon=False)
    ax.set_title(f"Certified accuracy vs L2 radius, {x.m} (randomized smoothing, n = {certs[0].n}, "
                 f"α = {certs[0].alpha:g})", fontsize=10)
    return save_figure(fig, out_dir, f"fig-certified-{x.m}")


def summary(x: View) -> dict[str, Any]:
    """report.json's certified block of a modality: per model the radii and numbers shown."""
    out: dict[str, Any] = {}
    for m, _ in x.plan.certify.models:
        c = certificate(x, m)
        if c is None:
            continue
        radii = [0.0, *LADDER] + [r for _, _, r in eps_radii(x, c.sqrt_d)]
        out[m] = {"file": c.file, "sigma": c.sigma, "n": c.n, "n0": c.n0, "alpha": c.alpha, "rows": c.rows,
                  "abstain": c.abstain, "max_radius": c.max_radius,
                  "certified_accuracy": {f"{r:g}": c.at(r) for r in radii}}
    return out
