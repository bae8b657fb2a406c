"""Signs of gradient masking, as rules on numbers: the checks one ``rdm-eval`` run can make on its own
results (accuracy that rises with ε or stays high at large ε; Square fooling rows the gradient attacks
left), and the paired changes that the report's fuller checks are built from (:mod:`rdm.pipeline.masking`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rdm.evaluation import stats
from rdm.evaluation.labels import eps_txt, pct, short_attack

MASK_TOL = 0.02    # accuracy changes below 2 points are never called a rise or a fall
LARGE_EPS = 0.1    # an ε at which an attack following true gradients can change an image outright
CHANCE_FLOOR = 0.1
GRADIENT_STAGES = ("apgd-ce", "apgd-t")
PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"
NOT_RUN, MISSING = "—", "n/a"      # the grid runs no such check; its metrics files are missing



def above_noise(a_hi: float, n_hi: int, a_lo: float, n_lo: int) -> bool:
    """``a_hi`` exceeds ``a_lo`` by more than 2 points and two standard errors (rates on n rows)."""
    se = math.sqrt(a_hi * (1 - a_hi) / max(n_hi, 1) + a_lo * (1 - a_lo) / max(n_lo, 1))
    return a_hi - a_lo > max(MASK_TOL, 2 * se)


# =========================================================================== the rules, on numbers
@dataclass(frozen=True)
class Change:
    """B against A on the same rows: B − A (accuracy), its p-value, and the call."""

    diff: float
    p: float | None          # None: unpaired fallback (no per-row lists)
    n: int
    call: str                # "higher", "lower", "within noise"
    seeds: int = 1

    def text(self) -> str:
        p = "" if self.p is None else f", p = {self.p:.2g}"
        k = f", {self.seeds} seeds" if self.seeds > 1 else ""
        return f"{100 * self.diff:+.1f} points{p}{k}"


def change(a: np.ndarray, b: np.ndarray) -> Change:
    """B against A, both ``correct[seed, row]`` on the same rows (rows as 1-D when one seed)."""
    c = stats.paired_test(b, a)
    call = "within noise" if c.verdict == "within noise" or abs(c.diff) <= MASK_TOL else \
        ("higher" if c.diff > 0 else "lower")
    return Change(c.diff, c.p, c.n_rows, call, c.n_seeds)


def high_at_large_eps(eps: float, acc: float, n: float) -> bool:
    """``acc`` at ``eps`` stays above :data:`CHANCE_FLOOR` + two standard errors on ``n`` rows
    (for balanced accuracy, the effective rows of its per-class recalls)."""
    return eps >= LARGE_EPS and acc > CHANCE_FLOOR + 2 * math.sqrt(0.09 / max(n, 1))


def curve_flags(subject: str, points: Sequence[tuple[float, float, float]],
                what: str = "accuracy") -> list[tuple[str, str]]:
    """``(check, text)`` for a ``what``-vs-ε curve (accuracy, or balanced accuracy) of one white-box
    attack on one set of rows (points ``(ε, value, rows)`` in ε order; rows: for balanced accuracy, the effective rows):
    every rise beyond noise, and a high value at its largest ε. ``subject`` begins each text
    (``RDMAA: white-box FGSM``)."""
    out = []
    for (e0, a0, n0), (e1, a1, n1) in zip(points, points[1:]):
        if above_noise(a1, max(int(n1), 1), a0, max(int(n0), 1)):
            out.append(("non-monotone", f"{subject} {what} RISES from {pct(a0)} % at ε={eps_txt(e0)} to "
                                        f"{pct(a1)} % at ε={eps_txt(e1)}."))
    if points:
        e, a, n = points[-1]
        if high_at_large_eps(e, a, n):
            out.append(("high-at-large-eps", f"{subject} leaves {pct(a)} % {what} at ε={eps_txt(e)}, where an "
                                             "attack that follows true gradients can change an image outright."))
    return out


def square_beyond_gradients(fooled_by: np.ndarray) -> Change:
    """(c) on the cascade's ``fooled_by`` (``seeds × rows``, or rows): accuracy after APGD-CE and
    APGD-T alone against the whole cascade's, paired per row (the rows only Square fooled)."""
    fb = np.asarray(fooled_by, dtype=object)
    after_gradients = np.vectorize(lambda v: v is None or v not in ("clean", *GRADIENT_STAGES), otypes=[float])(fb)
    robust = np.vectorize(lambda v: v is None, otypes=[float])(fb)
    return change(robust, after_gradients)


def steps_rows(curve: Sequence[tuple[int, np.ndarray]]) -> tuple[Change, list[tuple[int, int, Change]]]:
    """(a) and (b) on a steps curve ``[(steps, correct)]`` in step order: the last step-up's change,
    and every step-up whose accuracy rises beyond noise."""
    ups = [(s0, s1, change(c0, c1)) for (s0, c0), (s1, c1) in zip(curve, curve[1:])]
    return ups[-1][2], [u for u in ups if u[2].call == "higher"]


def noise_control(clean: np.ndarray, noise: np.ndarray, attack: np.ndarray) -> tuple[str, Change, Change]:
    """(f) on the same rows: the status, the attack against clean, and the attack against the noise."""
    vs_clean, vs_noise = change(clean, attack), change(noise, attack)
    drop_attack = float(np.mean(clean) - np.mean(attack))
    drop_noise = float(np.mean(clean) - np.mean(noise))
    if vs_clean.call != "lower":
        return UNDECIDED, vs_clean, vs_noise
    ok = vs_noise.call == "lower" and drop_noise <= drop_attack / 2 + 1e-9
    return (PASS if ok else FAIL), vs_clean, vs_noise


# =========================================================================== rdm-eval
def eval_warnings(results: Sequence[dict[str, Any]]) -> list[str]:
    """The checks one ``rdm-eval`` run holds the data for: each white-box attack's curve over ε per
    set ((e), with its rises), and the cascade's Square rows ((c))."""
    groups: dict[tuple, list[tuple[float, float, int]]] = {}
    attacks: dict[tuple, dict] = {}
    out = []
    for r in results:
        att = r.get("attack")
        if r.get("protocol") != "white-box" or not isinstance(att, dict):
            continue
        key = (r["set"], att.get("name"), att.get("alpha"), att.get("steps"), att.get("restarts"),
               att.get("random_start"))
        m = r["metrics"]
        groups.setdefault(key, []).append((float(att["eps"]), float(m["accuracy"]), int(m.get("n", 0))))
        attacks[key] = att
        fb = (r.get("per_row") or {}).get("fooled_by")
        if fb:
            c = square_beyond_gradients(np.asarray(fb, dtype=object))
            if c.call == "higher":
                out.append(f"{Path(r['set']).name}: white-box {short_attack(att)} ε={eps_txt(float(att['eps']))}: "
                           f"{square_words(c)}")
    for key, pts in groups.items():
        subject = f"{Path(key[0]).name}: white-box {short_attack(attacks[key])}"
        out += [text for _, text in curve_flags(subject, sorted(pts))]
    return out


def square_words(c: Change) -> str:
    return (f"Square fooled {pct(c.diff)} % of the rows that APGD-CE and APGD-T left ({c.text()}, n = {c.n}): "
            "the gradients do not find what a gradient-free search finds (a sign of gradient masking).")


# =========================================================================== the report
