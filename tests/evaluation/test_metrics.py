"""Metrics from counts equal scikit-learn / scikit-image on fixed predictions; shards merge exactly."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn import metrics as skm

from rdm.evaluation.metrics import (AdvCounts, Counts, adv_counts, counts_from_predictions, perturbation_norms,
                         ssim_psnr, summarize)

CLASSES = ["a", "b", "c", "d"]


def _preds(seed, n=200, k=4, drop_pred=None, drop_true=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))
    if drop_pred is not None:
        p[p == drop_pred] = (drop_pred + 1) % k
    if drop_true is not None:
        y[y == drop_true] = (drop_true + 1) % k
    return y, p


@pytest.mark.parametrize("case", [dict(seed=0), dict(seed=1, drop_pred=2), dict(seed=2, drop_true=3)])
def test_summary_equals_sklearn(case):
    y, p = _preds(**case)
    m = summarize(counts_from_predictions(y, p, CLASSES))
    labels = list(range(4))
    assert m["n"] == len(y)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p), abs=1e-12)
    for avg in ("macro",):
        P, R, F, _ = skm.precision_recall_fscore_support(y, p, labels=labels, average=avg, zero_division=0)
        assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == pytest.approx((P, R, F), abs=1e-12)
    P, R, F, S = skm.precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    for i, c in enumerate(CLASSES):
        pc = m["per_class"][c]
        assert (pc["precision"], pc["recall"], pc["f1"]) == pytest.approx((P[i], R[i], F[i]), abs=1e-12)
        assert pc["support"] == S[i]
    assert m["confusion"] == skm.confusion_matrix(y, p, labels=labels).tolist()
    counts = np.bincount(y, minlength=4)
    assert m["majority_rate"] == pytest.approx(counts.max() / len(y))
    assert m["majority_class"] == CLASSES[int(counts.argmax())]


def test_majority_rate_is_accuracy_of_constant_model():
    y = np.array([0] * 30 + [1] * 70)
    p = np.zeros(100, dtype=int)
    m = summarize(counts_from_predictions(y, p, ["neg", "pos"]))
    assert m["majority_rate"] == pytest.approx(skm.accuracy_score(y, np.ones(100, dtype=int)))
    assert m["accuracy"] == pytest.approx(0.3)
    assert m["balanced_accuracy"] == pytest.approx(0.5)


def test_shard_counts_merge_exactly():
    y, p = _preds(5, n=301)
    whole = counts_from_predictions(y, p, CLASSES)
    cuts = [0, 17, 150, 301]
    parts = [counts_from_predictions(y[a:b], p[a:b], CLASSES) for a, b in zip(cuts, cuts[1:])]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert np.array_equal(merged.confusion, whole.confusion)
    assert summarize(merged) == summarize(whole)
    assert Counts.from_dict(merged.to_dict()).confusion.tolist() == whole.confusion.tolist()
    with pytest.raises(ValueError):
        merged.merge(counts_from_predictions(y, p, ["w", "x", "y", "z"]))


def _adv_pair(seed=0, n=12, c=3, hw=16, eps=0.03):
    rng = np.random.default_rng(seed)
    x = rng.random((n, c, hw, hw)).astype(np.float32)
    xa = np.clip(x + rng.choice([-eps, 0, eps], size=x.shape), 0, 1).astype(np.float32)
    xa[0] = x[0]                                     # one unchanged row: PSNR = ∞
    return x, xa


def test_norms_ssim_psnr_match_numpy_and_skimage():
    x, xa = _adv_pair()
    linf, l2 = perturbation_norms(xa, x)
    d = (xa.astype(np.float64) - x).reshape(len(x), -1)
    assert np.allclose(linf, np.abs(d).max(1)) and np.allclose(l2, np.linalg.norm(d, axis=1))
    ssim, psnr = ssim_psnr(xa, x)
    for i in range(1, len(x)):
        assert ssim[i] == pytest.approx(structural_similarity(x[i].astype(np.float64), xa[i].astype(np.float64),
                                                              data_range=1, channel_axis=0))
        assert psnr[i] == pytest.approx(peak_signal_noise_ratio(x[i].astype(np.float64),
                                                                xa[i].astype(np.float64), data_range=1))
    assert ssim[0] == pytest.approx(1.0) and math.isinf(psnr[0])
    g, ga = _adv_pair(c=1)
    s1, _ = ssim_psnr(ga, g)
    assert s1[3] == pytest.approx(structural_similarity(g[3, 0].astype(np.float64), ga[3, 0].astype(np.float64),
                                                        data_range=1))


def test_attack_success_rate_counts_only_clean_correct_rows():
    x, xa = _adv_pair(n=6)
    y = np.array([0, 0, 1, 1, 2, 2])
    pc = np.array([0, 0, 1, 0, 2, 1])               # right on rows 0, 1, 2, 4
    pa = np.array([1, 0, 0, 1, 2, 2])               # wrong now on 0, 2 (and 3, 5 were wrong/right)
    a = adv_counts(y, pc, pa, xa, x)
    assert (a.n, a.clean_correct, a.fooled) == (6, 4, 2)
    c = Counts.empty(["p", "q", "r"], adversarial=True)
    c.add_predictions(y, pa)
    c.adv = c.adv.merge(a)
    m = summarize(c)["adversarial"]
    assert m["attack_success_rate"] == pytest.approx(2 / 4)
    assert m["psnr_inf"] == 1 and m["clean_accuracy"] == pytest.approx(4 / 6)
    # merged halves equal the whole
    h = adv_counts(y[:3], pc[:3], pa[:3], xa[:3], x[:3]).merge(adv_counts(y[3:], pc[3:], pa[3:], xa[3:], x[3:]))
    for k, v in a.to_dict().items():
        assert getattr(h, k) == pytest.approx(v), k
    assert AdvCounts().merge(a).to_dict() == pytest.approx(a.to_dict())


def test_confusion_and_scores_are_scikit_learns():
    """rdm computes the confusion matrix, per-class precision/recall/F1 and their macro means itself
    (no scikit-learn import at a command's start-up): the same numbers, bit for bit, as sklearn.metrics,
    on random labels and on the undefined cases (a class never predicted, never present, absent)."""
    from rdm.evaluation.metrics import confusion, precision_recall_f1

    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, k, n), rng.integers(0, k, n), k) for k, n in ((2, 50), (3, 7), (4, 200), (5, 3))]
    cases += [(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0]), 2),      # class 1 never predicted
              (np.array([0, 0, 0]), np.array([0, 1, 1]), 3),            # class 1 never true, class 2 absent
              (np.array([2, 2]), np.array([2, 2]), 3)]
    for yt, yp, k in cases:
        labels = list(range(k))
        cm = confusion(yt, yp, k)
        assert cm.dtype == np.int64 and np.array_equal(cm, skm.confusion_matrix(yt, yp, labels=labels))
        p, r, f = precision_recall_f1(cm)
        sp, sr, sf, _ = skm.precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
        assert np.array_equal(p, sp) and np.array_equal(r, sr) and np.array_equal(f, sf)
        c = Counts.empty([f"c{i}" for i in range(k)])
        c.add_predictions(yt, yp)
        s = summarize(c)
        macro = skm.precision_recall_fscore_support(yt, yp, labels=labels, average="macro", zero_division=0)
        assert [s["precision_macro"], s["recall_macro"], s["f1_macro"]] == [float(v) for v in macro[:3]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # sklearn warns of predicted classes absent from y_true
            assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(yt, yp), abs=1e-15)
        assert s["accuracy"] == skm.accuracy_score(yt, yp)
    # labels outside 0..k-1 are not counted, as with sklearn's labels=range(k)
    assert np.array_equal(confusion([0, 1, 5, -1], [0, 1, 1, 0], 2),
                          skm.confusion_matrix([0, 1, 5, -1], [0, 1, 1, 0], labels=[0, 1]))
