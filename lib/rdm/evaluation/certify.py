"""Certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter, ICML 2019).

The smoothed classifier ``g(x) = argmax_c P(f(x + δ) = c)``, ``δ ~ N(0, σ²I)``, is
robust within the L2 radius ``σ·Φ⁻¹(p_A)`` around ``x`` whenever the top class has
probability ``p_A > ½`` under the noise. :func:`certify` is the paper's CERTIFY:

1. ``n0`` noisy copies pick the candidate class ``ĉ_A`` (the most frequent prediction);
2. ``n`` fresh copies count how often ``ĉ_A`` comes out; the one-sided Clopper–Pearson
   lower bound ``p̲_A`` at confidence ``1 − α`` is taken;
3. if ``p̲_A < ½`` the row **abstains** (``pred = -1``, radius 0), else the certified
   radius is ``σ·Φ⁻¹(p̲_A)``.

With probability at least ``1 − α`` per row, a returned class is ``g(x)`` and ``g``
gives it in the whole ball. Noise is added to the [0, 1] pixels and NOT clipped (the
theorem needs the Gaussian itself). Each row's noise comes from its own generator
seeded by ``(seed, row id)``, so a row gets the same answer in any batch or shard.

An L∞ budget ε of the attacks maps to L2 by the ball that contains it:
``‖δ‖₂ ≤ ε·√d`` for ``d = C·H·W`` (:func:`linf_to_l2`); a certificate at that radius
covers every L∞ perturbation of size ε.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from rdm.errors import RdmError, UsageError

ABSTAIN = -1


def training_sigma(meta: dict) -> float | None:
    """The σ a checkpoint was trained with (``rdm-advtrain --recipe gaussian``), None if it was not
    trained with Gaussian noise."""
    recipe = meta.get("recipe") if isinstance(meta, dict) else None
    noise = recipe.get("gaussian") if isinstance(recipe, dict) else None
    sigma = noise.get("sigma") if isinstance(noise, dict) else None
    return float(sigma) if isinstance(sigma, (int, float)) else None


def choose_sigma(meta: dict, sigma: float | None, name: str) -> tuple[float, list[str]]:
    """The σ to certify with and the warnings about it: by default the checkpoint's training σ; a
    certificate assumes the base model was trained with the same noise, so a σ that differs, or a
    model trained without noise, is warned about (the certificate still holds for the smoothed
    classifier, whose accuracy may then be poor)."""
    trained = training_sigma(meta)
    if sigma is None:
        if trained is None:
            raise UsageError(f"--sigma is required: {name} was not trained with Gaussian noise, so it records "
                             "no σ (rdm-advtrain --recipe gaussian --sigma S trains one that does)")
        return trained, []
    if trained is None:
        return sigma, [f"{name} was not trained with Gaussian noise: randomized smoothing at σ={sigma:g} assumes "
                       "a base model trained with that noise (rdm-advtrain --recipe gaussian); expect a weak "
                       "certificate"]
    if not math.isclose(sigma, trained, rel_tol=1e-9, abs_tol=0.0):
        return sigma, [f"certifying at σ={sigma:g} a model trained with σ={trained:g}: the certificate assumes "
                       f"the training noise; leave out --sigma to use {trained:g}"]
    return sigma, []


def check_params(sigma: float | None, n0: int, n: int, alpha: float, batch_size: int) -> None:
    """One clear error for each bad setting (before any work); ``sigma`` None: taken from the model."""
    if sigma is not None and not (sigma > 0 and math.isfinite(sigma)):
        raise RdmError(f"--sigma must be > 0, got {sigma:g}")
    if int(n0) < 1:
        raise RdmError(f"--n0 must be at least 1, got {n0}")
    if int(n) < 1:
        raise RdmError(f"--n must be at least 1, got {n}")
    if int(n0) > int(n):
        raise RdmError(f"--n0 ({n0}) must not exceed --n ({n}): selection takes fewer samples than estimation")
    if not 0 < alpha < 1:
        raise RdmError(f"--alpha must lie in (0, 1), got {alpha:g}")
    if int(batch_size) < 1:
        raise RdmError(f"--batch-size must be at least 1, got {batch_size}")


def lower_confidence_bound(k: np.ndarray | int, n: int, alpha: float) -> np.ndarray:
    """One-sided Clopper–Pearson lower bound on a binomial proportion at confidence ``1 − α``."""
    from scipy.stats import beta

    k = np.asarray(k, dtype=np.float64)
    lo = beta.ppf(alpha, k, n - k + 1)
    return np.where(k > 0, lo, 0.0)


def radius_of(p_lower: np.ndarray, sigma: float) -> np.ndarray:
    """``σ·Φ⁻¹(p̲)`` where ``p̲ ≥ ½``, else 0."""
    from scipy.stats import norm

    p = np.asarray(p_lower, dtype=np.float64)
    return np.where(p >= 0.5, sigma * norm.ppf(np.clip(p, 0.5, 1.0)), 0.0)


def max_certifiable_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius CERTIFY can return with ``n`` samples at ``alpha``: when all ``n`` samples
    give the top class the Clopper–Pearson bound is ``α^(1/n)``, so ``σ·Φ⁻¹(α^(1/n))``."""
    from scipy.stats import norm

    return float(sigma * norm.ppf(float(alpha) ** (1.0 / int(n))))


def linf_to_l2(eps: float, shape: Sequence[int]) -> float:
    """Radius of the L2 ball that contains the L∞ ball of size ``eps`` in ``shape``'s pixel space."""
    return float(eps) * math.sqrt(float(np.prod(shape)))


def _row_generator(seed: int, row_id: int, stage: int, device: torch.device) -> torch.Generator:
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(row_id), int(stage), 0x5EED])
    g = torch.Generator(device=device)
    g.manual_seed(int(state.generate_state(1, dtype=np.uint64)[0] & ((1 << 63) - 1)))
    return g


@torch.no_grad()
def sample_counts(model: nn.Module, x: torch.Tensor, num: int, sigma: float, num_classes: int, *,
                  gen: torch.Generator, batch_size: int) -> np.ndarray:
    """Class counts of ``model`` on ``num`` noisy copies of the single image ``x`` (C×H×W); the
    forward passes go through :func:`rdm.models.predict_rows`, as ``rdm-eval``'s (channels-last,
    64-row pieces on CPU)."""
    from rdm.models import predict_rows

    counts = torch.zeros(num_classes, dtype=torch.int64, device=x.device)
    left = int(num)
    while left > 0:
        b = min(batch_size, left)
        noise = torch.randn((b, *x.shape), generator=gen, device=x.device, dtype=x.dtype)
        pred = predict_rows(model, x.unsqueeze(0) + sigma * noise)
        counts += torch.bincount(pred, minlength=num_classes)[:num_classes]
        left -= b
    return counts.cpu().numpy()


@dataclass
class Certificate:
    """Per-row CERTIFY results for one batch."""

    pred: np.ndarray          # class of the smoothed classifier, or ABSTAIN
    radius: np.ndarray        # certified L2 radius (0 when abstaining)
    p_lower: np.ndarray
    count: np.ndarray         # how often the candidate class came out of the n samples


def certify(model: nn.Module, x: torch.Tensor, num_classes: int, *, sigma: float, n0: int = 100,
            n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000, seed: int = 0,
            row_ids: Sequence[int] | None = None) -> Certificate:
    """CERTIFY for each image of the batch ``x`` (N×C×H×W); the model is put in eval mode
    for the call and its mode restored after."""
    check_params(sigma, n0, n, alpha, batch_size)
    ids = list(range(len(x))) if row_ids is None else [int(i) for i in row_ids]
    if len(ids) != len(x):
        raise ValueError(f"row_ids has {len(ids)} entries for {len(x)} rows")
    was_training = model.training
    model.eval()
    try:
        cand, count = np.zeros(len(x), np.int64), np.zeros(len(x), np.int64)
        for i, (xi, rid) in enumerate(zip(x, ids)):
            c0 = sample_counts(model, xi, n0, sigma, num_classes,
                               gen=_row_generator(seed, rid, 0, x.device), batch_size=batch_size)
            cand[i] = int(np.argmax(c0))
            c = sample_counts(model, xi, n, sigma, num_classes,
                              gen=_row_generator(seed, rid, 1, x.device), batch_size=batch_size)
            count[i] = int(c[cand[i]])
    finally:
        model.train(was_training)
    p_lower = lower_confidence_bound(count, n, alpha)
    radius = radius_of(p_lower, sigma)
    pred = np.where(p_lower >= 0.5, cand, ABSTAIN)
    return Certificate(pred=pred, radius=np.where(pred == ABSTAIN, 0.0, radius), p_lower=p_lower, count=count)


def certified_accuracy(pred: np.ndarray, radius: np.ndarray, y: np.ndarray, radii: Sequence[float]
                       ) -> dict[str, float]:
    """Share of rows certified correct at each L2 radius (abstentions count as wrong)."""
    pred, radius, y = map(np.asarray, (pred, radius, y))
    ok = pred == y
    return {f"{r:g}": float(np.mean(ok & (radius >= r))) if len(y) else float("nan") for r in radii}


# --------------------------------------------------------------------------- a whole set
def summary_radii(shape: Sequence[int], eps: Sequence[float] = (), extra: Sequence[float] = ()) -> list[float]:
    """The L2 radii a summary reports: a fixed ladder, each ε's containing L2 radius, and ``extra``."""
    ladder = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]
    return sorted({round(float(r), 6) for r in [*ladder, *(linf_to_l2(e, shape) for e in eps), *extra]})


def certify_set(model_path, set_path, *, sigma: float | None = None, n0: int = 100, n: int = 100_000,
                alpha: float = 0.001, batch_size: int = 1000, seed: int = 0, device="cpu",
                shard: tuple[int, int] | None = None, eps: Sequence[float] = (),
                progress=None, warn=None) -> dict:
    """CERTIFY every row (or a shard's rows) of ``set_path``: a JSON-able report with per-row
    ``rows``/``y``/``pred``/``radius``/``p_lower`` and certified accuracy at :func:`summary_radii`.
    ``sigma`` None: the σ the checkpoint was trained with (:func:`choose_sigma`; its warnings go to
    ``warn``)."""
    from pathlib import Path

    from rdm.data.checkpoint import load_checkpoint

    check_params(sigma, n0, n, alpha, batch_size)
    ck = load_checkpoint(model_path, torch.device(device), expect_kind=("cnn", "purified"))
    sigma, warnings = choose_sigma(ck.meta, sigma, Path(model_path).name)
    for w in warnings if warn is not None else ():
        warn(w)
    return certify_checkpoint(ck, set_path, sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch_size,
                              seed=seed, device=device, shard=shard, eps=eps, progress=progress)


def certify_checkpoint(ck, set_path, *, sigma: float, n0: int = 100, n: int = 100_000,
                       alpha: float = 0.001, batch_size: int = 1000, seed: int = 0, device="cpu",
                       shard: tuple[int, int] | None = None, eps: Sequence[float] = (),
                       progress=None) -> dict:
    """:func:`certify_set` of a model already in memory (a loaded checkpoint, or a user's module
    wrapped by :mod:`rdm.api.notebook`)."""
    from pathlib import Path

    from rdm.data.checkpoint import input_checks
    from rdm.data.sets import SetReader, sha256_file, validate_set
    from rdm.data.shards import shard_range

    check_params(sigma, n0, n, alpha, batch_size)
    device = torch.device(device)
    model_path = ck.path
    ck.model.to(memory_format=torch.channels_last)     # as rdm-eval: faster convolutions, same values
    info = validate_set(set_path, expect_shape=ck.input_shape, expect_classes=ck.classes or None,
                        what=Path(model_path).name)
    input_checks(ck, info)
    a, b = shard_range(info.n, shard)
    if b <= a:
        raise RdmError(f"--shard {shard[0]}/{shard[1]}: no rows of {Path(set_path).name} (it has {info.n})")
    k = len(ck.classes) if ck.classes else 2
    out = {"rows": [], "y": [], "pred": [], "radius": [], "p_lower": []}
    task = progress.add_task("certify", total=b - a, info="") if progress is not None else None
    with SetReader(set_path) as r:
        for s in range(a, b, 64):
            e = min(s + 64, b)
            part = r.read(s, e, ["x", "y"])
            x = torch.from_numpy(part["x"]).to(device)
            c = certify(ck.model, x, k, sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch_size,
                        seed=seed, row_ids=range(s, e))
            out["rows"] += list(range(s, e))
            out["y"] += part["y"].tolist()
            out["pred"] += c.pred.tolist()
            out["radius"] += [float(v) for v in c.radius]
            out["p_lower"] += [float(v) for v in c.p_lower]
            if task is not None:
                progress.advance(task, e - s)
    radii = summary_radii(ck.input_shape, eps)
    return {
        "model": str(model_path), "model_sha256": ck.sha256, "set": str(set_path),
        "set_sha256": sha256_file(set_path), "classes": ck.classes,
        "settings": {"sigma": sigma, "n0": n0, "n": n, "alpha": alpha, "seed": seed},
        "rows_of": info.n, "shard": None if shard is None else {"index": shard[0], "count": shard[1]},
        "eps_l2": {f"{e:g}": linf_to_l2(e, ck.input_shape) for e in eps},
        "certified_accuracy": certified_accuracy(out["pred"], out["radius"], out["y"], radii),
        "abstain": float(np.mean(np.asarray(out["pred"]) == ABSTAIN)),
        "per_row": out,
    }


def report_text(report: dict) -> str:
    """The certificate report as ``rdm-certify -o`` writes it."""
    import json

    return json.dumps(report, indent=1) + "\n"


def summary_line(report: dict) -> str:
    """The one-line summary of a certificate report: σ, rows, abstentions, certified accuracy per radius."""
    acc = ", ".join(f"r={r}: {v:.1%}" for r, v in report["certified_accuracy"].items())
    return (f"certified accuracy at σ={report['settings']['sigma']:g} ({len(report['per_row']['rows'])} rows, abstain "
            f"{report['abstain']:.1%}): {acc}")


_PART_KEYS = ("model_sha256", "set_sha256", "settings", "rows_of", "shard", "per_row", "certified_accuracy")


def _check_part_rows(path, rep: dict) -> None:
    """A part's per-row values as certify_set writes them: radius finite and ≥ 0 (0 when
    abstaining), p_lower in [0, 1], integer labels and predictions (−1: abstain), and the
    certified-accuracy radii finite and ≥ 0. A NaN radius would count as certified nowhere
    and an inf one everywhere; either is a tampered part."""
    import math

    pr = rep.get("per_row")
    keys = ("rows", "y", "pred", "radius", "p_lower")
    if not isinstance(pr, dict) or any(not isinstance(pr.get(k), list) for k in keys) \
            or len({len(pr[k]) for k in keys}) != 1:
        raise RdmError(f"{path}: per_row must hold lists rows, y, pred, radius, p_lower of one length")
    num = (int, float)
    for i, (y, pred, r, p) in enumerate(zip(pr["y"], pr["pred"], pr["radius"], pr["p_lower"])):
        if not (type(y) is int and y >= 0 and type(pred) is int and pred >= ABSTAIN):
            raise RdmError(f"{path}: row {i} has label {y!r} and prediction {pred!r}; expected integers")
        if not (isinstance(r, num) and not isinstance(r, bool) and math.isfinite(r) and r >= 0):
            raise RdmError(f"{path}: row {i} has radius {r!r}; a certified radius is a finite number ≥ 0")
        if not (isinstance(p, num) and not isinstance(p, bool) and 0 <= p <= 1):
            raise RdmError(f"{path}: row {i} has p_lower {p!r}; expected a probability in [0, 1]")
    ca = rep.get("certified_accuracy")
    if not isinstance(ca, dict):
        raise RdmError(f"{path}: certified_accuracy must map radii to shares")
    for k in ca:
        try:
            r = float(k)
        except ValueError:
            r = float("nan")
        if not (math.isfinite(r) and r >= 0):
            raise RdmError(f"{path}: certified_accuracy has radius {k!r}; expected a finite number ≥ 0")


def merge_certificate_files(paths: Sequence) -> dict:
    """One report from the JSON parts that ``rdm-certify --shard i/n -o …`` wrote: the same model,
    set and settings, every shard once (:mod:`rdm.data.shards`), rows in order."""
    import json
    from pathlib import Path

    from rdm.data.shards import check_coverage, in_shard_order, shard_range

    parts = []
    for p in paths:
        try:
            rep = json.loads(Path(p).read_text())
        except (OSError, ValueError) as e:
            raise RdmError(f"{p}: not a certificate part ({type(e).__name__})") from None
        if not isinstance(rep, dict) or any(k not in rep for k in _PART_KEYS) or not rep["shard"]:
            raise RdmError(f"{p}: not a certificate part of a --shard run")
        _check_part_rows(p, rep)
        parts.append((str(p), rep))
    first = parts[0][1]
    key = lambda r: (r["model_sha256"], r["set_sha256"], json.dumps(r["settings"], sort_keys=True),  # noqa: E731
                     r["rows_of"], r["shard"]["count"])
    for name, rep in parts[1:]:
        if key(rep) != key(first):
            raise RdmError(f"{name}: another model, set, settings or shard count than {parts[0][0]}")
    ordered = in_shard_order([(n, int(r["shard"]["index"]), r) for n, r in parts], int(first["shard"]["count"]))
    spans = []
    for n, r in ordered:     # each part's rows are its shard's, as --shard chose them (an empty shard included)
        start, stop = shard_range(int(first["rows_of"]), (int(r["shard"]["index"]), int(r["shard"]["count"])))
        if list(r["per_row"]["rows"]) != list(range(start, stop)):
            raise RdmError(f"{n}: its rows are not those of shard {r['shard']['index']}/{r['shard']['count']}")
        spans.append((n, start, stop))
    check_coverage(spans, int(first["rows_of"]))
    out = {k: [v for _, r in ordered for v in r["per_row"][k]] for k in first["per_row"]}
    merged = dict(first, shard=None, per_row=out)
    radii = [float(r) for r in first["certified_accuracy"]]
    merged["certified_accuracy"] = certified_accuracy(out["pred"], out["radius"], out["y"], radii)
    merged["abstain"] = float(np.mean(np.asarray(out["pred"]) == ABSTAIN))
    return merged
