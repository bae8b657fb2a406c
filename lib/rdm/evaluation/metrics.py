"""Classification and adversarial metrics, built from COUNTS so shards merge exactly.

:class:`Counts` holds a confusion matrix (rows: true class, columns: predicted) and,
for adversarial sets, sums over rows (perturbation norms, SSIM, PSNR, clean-correct
and fooled counts). ``a.merge(b)`` of two shards' counts equals the counts of the
whole set, and :func:`summarize` turns counts into the reported numbers with
scikit-learn (confusion-matrix cells become weighted (true, pred) pairs, which gives
scikit-learn's exact values).

Definitions
    accuracy            share of rows predicted right
    balanced_accuracy   mean recall over the classes present in the set (scikit-learn)
    precision/recall/f1 macro (unweighted mean over all classes) and per class;
                        a class never predicted has precision 0 (zero_division=0)
    majority_rate       accuracy of a constant model that predicts this set's
                        most frequent class
    attack_success_rate of the rows the model classifies right on the CLEAN source,
                        the share it classifies wrong on the adversarial image
    linf / l2           per-row ‖x_adv − x‖ in pixel units [0, 1], mean and max
    ssim / psnr         per row to the clean source, data_range = 1 (scikit-image);
                        PSNR of an unchanged image is infinite: such rows are counted
                        in ``psnr_inf`` and left out of the PSNR mean
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Counts", "AdvCounts", "counts_from_predictions", "adv_counts", "summarize",
           "perturbation_norms", "ssim_psnr"]


@dataclass
class AdvCounts:
    """Sums over the rows of an adversarial set (mergeable)."""

    n: int = 0
    clean_correct: int = 0        # model right on the clean source
    fooled: int = 0               # ... and wrong on the adversarial image
    linf_sum: float = 0.0
    linf_max: float = 0.0
    l2_sum: float = 0.0
    ssim_sum: float = 0.0
    psnr_sum: float = 0.0         # over rows with finite PSNR
    psnr_finite: int = 0
    psnr_inf: int = 0             # unchanged rows (PSNR = ∞)

    def merge(self, o: "AdvCounts") -> "AdvCounts":
        return AdvCounts(self.n + o.n, self.clean_correct + o.clean_correct, self.fooled + o.fooled,
                         self.linf_sum + o.linf_sum, max(self.linf_max, o.linf_max),
                         self.l2_sum + o.l2_sum, self.ssim_sum + o.ssim_sum,
                         self.psnr_sum + o.psnr_sum, self.psnr_finite + o.psnr_finite,
                         self.psnr_inf + o.psnr_inf)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Counts:
    """Confusion matrix (+ optional adversarial sums) of one set or one shard of it."""

    classes: list[str]
    confusion: np.ndarray
    adv: AdvCounts | None = None

    @classmethod
    def empty(cls, classes: Sequence[str], adversarial: bool = False) -> "Counts":
        k = len(classes)
        return cls(list(classes), np.zeros((k, k), dtype=np.int64), AdvCounts() if adversarial else None)

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    def add_predictions(self, y_true, y_pred) -> None:
        self.confusion += confusion(y_true, y_pred, len(self.classes))

    def merge(self, o: "Counts") -> "Counts":
        if list(o.classes) != list(self.classes):
            raise ValueError(f"cannot merge counts over classes {self.classes} and {o.classes}")
        if (self.adv is None) != (o.adv is None):
            raise ValueError("cannot merge counts of a clean and an adversarial set")
        adv = self.adv.merge(o.adv) if self.adv is not None else None
        return Counts(list(self.classes), self.confusion + o.confusion, adv)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"classes": list(self.classes), "confusion": self.confusion.tolist()}
        if self.adv is not None:
            d["adv"] = self.adv.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Counts":
        adv = AdvCounts(**d["adv"]) if d.get("adv") is not None else None
        return cls(list(d["classes"]), np.asarray(d["confusion"], dtype=np.int64), adv)


def counts_from_predictions(y_true, y_pred, classes: Sequence[str]) -> Counts:
    c = Counts.empty(classes)
    c.add_predictions(y_true, y_pred)
    return c


# --------------------------------------------------------------------------- per-row measures
def perturbation_norms(x_adv: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row L∞ and L2 norms of ``x_adv − x`` (float64 arithmetic, float32 result)."""
    d = (np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
    return np.abs(d).max(axis=1).astype(np.float32), np.sqrt((d ** 2).sum(axis=1)).astype(np.float32)


def ssim_psnr(x_adv: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row SSIM and PSNR (data_range = 1) of N×C×H×W images against their clean source
    (numpy arrays, or tensors: on a GPU computed there, see :func:`_ssim_psnr_torch`)."""
    if _on_gpu(x_adv) or _on_gpu(x):
        return _ssim_psnr_torch(x_adv, x)
    x_adv, x = _numpy(x_adv), _numpy(x)
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    n = len(x)
    ssim = np.empty(n, dtype=np.float64)
    psnr = np.empty(n, dtype=np.float64)
    for i in range(n):
        a = np.asarray(x[i], dtype=np.float64)
        b = np.asarray(x_adv[i], dtype=np.float64)
        h, w = a.shape[-2:]
        win = min(7, h if h % 2 else h - 1, w if w % 2 else w - 1)
        if a.shape[0] == 1:
            ssim[i] = structural_similarity(a[0], b[0], data_range=1.0, win_size=win)
        else:
            ssim[i] = structural_similarity(a, b, data_range=1.0, channel_axis=0, win_size=win)
        if np.array_equal(a, b):
            psnr[i] = math.inf
        else:
            psnr[i] = peak_signal_noise_ratio(a, b, data_range=1.0)
    return ssim, psnr


def _ssim_psnr_torch(x_adv, x) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ssim_psnr` for a batch on a GPU, in float64 on the device: scikit-image's
    ``structural_similarity`` (uniform window, sample covariance, K1 = 0.01, K2 = 0.03, the
    mean over the window-valid interior, channels averaged) and ``peak_signal_noise_ratio``,
    the same formulas to within float64 rounding (tested against scikit-image on CPU). On a
    CPU the per-image scikit-image calls are faster (256 brain images: 0.17 s against 0.2–0.5 s
    for this, one thread), so it is only used for images already on a GPU, where a per-image
    loop on the host would cost more than the attack itself."""
    import torch
    import torch.nn.functional as F

    a = _f64(x)
    b = _f64(x_adv, like=a)
    n = a.shape[0]
    if n == 0:
        return np.zeros(0), np.zeros(0)
    h, w = a.shape[-2:]
    win = min(7, h if h % 2 else h - 1, w if w % 2 else w - 1)
    cov_norm = win * win / (win * win - 1)
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def box(t):     # the window mean over the valid interior only: what scikit-image keeps after crop
        return F.avg_pool2d(t, win, stride=1)

    ux, uy = box(a), box(b)
    vx = cov_norm * (box(a * a) - ux * ux)
    vy = cov_norm * (box(b * b) - uy * uy)
    vxy = cov_norm * (box(a * b) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    ssim = s.flatten(2).mean(2).mean(1)
    mse = (a - b).pow(2).flatten(1).mean(1)
    psnr = torch.where(mse > 0, 10 * torch.log10(1.0 / mse), torch.full_like(mse, math.inf))
    return ssim.cpu().numpy(), psnr.cpu().numpy()


def _f64(v, like=None):
    import torch

    t = v if torch.is_tensor(v) else torch.from_numpy(np.ascontiguousarray(v))
    return t.to(device=like.device if like is not None else t.device, dtype=torch.float64)


def _on_gpu(v) -> bool:
    return hasattr(v, "device") and getattr(v.device, "type", "cpu") != "cpu"


def _numpy(v) -> np.ndarray:
    return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)


def adv_counts(y, pred_clean, pred_adv, x_adv, x_clean) -> AdvCounts:
    """Adversarial sums for one batch of rows (numpy arrays or tensors; SSIM/PSNR of images on a
    GPU are computed there)."""
    y, pc, pa = (_numpy(v).reshape(-1) for v in (y, pred_clean, pred_adv))
    linf, l2 = perturbation_norms(_numpy(x_adv), _numpy(x_clean))
    ssim, psnr = ssim_psnr(x_adv, x_clean)
    right = pc == y
    finite = np.isfinite(psnr)
    return AdvCounts(
        n=int(len(y)), clean_correct=int(right.sum()), fooled=int((right & (pa != y)).sum()),
        linf_sum=float(linf.astype(np.float64).sum()), linf_max=float(linf.max()) if len(linf) else 0.0,
        l2_sum=float(l2.astype(np.float64).sum()), ssim_sum=float(ssim.sum()),
        psnr_sum=float(psnr[finite].sum()), psnr_finite=int(finite.sum()), psnr_inf=int((~finite).sum()))


# --------------------------------------------------------------------------- summary
# Computed from the confusion matrix by scikit-learn's definitions (tests/evaluation/test_metrics.py
# checks them against sklearn.metrics on every case): importing scikit-learn costs every command about
# 1.5 s of CPU at start-up, and its argument checks 12 ms a call.
def confusion(y_true, y_pred, k: int) -> np.ndarray:
    """The k×k confusion matrix (rows: true class, columns: predicted), int64; rows whose true or
    predicted class is outside 0..k-1 are not counted (``sklearn.metrics.confusion_matrix`` with
    ``labels=range(k)``)."""
    t, p = (np.asarray(v).reshape(-1).astype(np.int64) for v in (y_true, y_pred))
    keep = (t >= 0) & (t < k) & (p >= 0) & (p < k)
    return np.bincount(t[keep] * k + p[keep], minlength=k * k).reshape(k, k).astype(np.int64)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's ``zero_division=0``)."""
    out = np.zeros_like(num, dtype=np.float64)
    nz = den != 0
    out[nz] = num[nz] / den[nz]
    return out


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 of a confusion matrix (0 where undefined), as
    ``sklearn.metrics.precision_recall_fscore_support(..., zero_division=0)`` computes them."""
    c = np.asarray(cm, dtype=np.float64)
    tp, pred, true = np.diag(c), c.sum(axis=0), c.sum(axis=1)
    return _divide(tp, pred), _divide(tp, true), _divide(2.0 * tp, 1.0 * true + pred)


def summarize(c: Counts) -> dict[str, Any]:
    """The reported numbers (plain floats/ints/lists: JSON-ready)."""
    cm = c.confusion
    n = int(cm.sum())
    out: dict[str, Any] = {"n": n}
    if n == 0:
        out.update(accuracy=None, balanced_accuracy=None)
        return out
    support = cm.sum(axis=1)
    present = support > 0
    # balanced accuracy: mean recall over the classes present (scikit-learn's definition); the macro
    # averages are over every class, absent ones counting 0
    p, r, f = precision_recall_f1(cm)
    pm, rm, fm = (float(np.average(v)) for v in (p, r, f))
    out.update(
        accuracy=float(np.trace(cm) / n),
        balanced_accuracy=float(np.mean(np.diag(cm)[present] / support[present])),
        precision_macro=float(pm), recall_macro=float(rm), f1_macro=float(fm),
        per_class={name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(support[i])} for i, name in enumerate(c.classes)},
        majority_rate=float(support.max() / n),
        majority_class=c.classes[int(support.argmax())],
        confusion=cm.tolist(),
    )
    if c.adv is not None and c.adv.n:
        a = c.adv
        out["adversarial"] = {
            "attack_success_rate": (a.fooled / a.clean_correct) if a.clean_correct else None,
            "clean_correct": a.clean_correct, "fooled": a.fooled,
            "clean_accuracy": a.clean_correct / a.n,
            "linf_mean": a.linf_sum / a.n, "linf_max": a.linf_max, "l2_mean": a.l2_sum / a.n,
            "ssim_mean": a.ssim_sum / a.n,
            "psnr_mean": (a.psnr_sum / a.psnr_finite) if a.psnr_finite else None,
            "psnr_inf": a.psnr_inf,
        }
    return out
