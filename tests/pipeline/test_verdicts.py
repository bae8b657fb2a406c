"""The report's arithmetic on the same rows (rdm.pipeline.verdicts): designed per-row results where
the old arithmetic (a subset number minus a whole-test number) and the paired one disagree, rows
that cannot be matched, a two-seed interval, noise on few rows, and lung deciding on balanced
accuracy. Small metrics files written by hand; no model runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import fake_result
from rdm.pipeline import plan as P
from rdm.pipeline import steps
from rdm.pipeline import verdicts as V
from rdm.pipeline.results import Ref, Results, View
from rdm.pipeline.verdicts import ref_acc_entry as acc_entry, ref_diff_entry as diff_entry
from rdm.data.sets import SetWriter, make_provenance
from test_report import TINY

CLASSES = ["non-nodule", "nodule"]


def _setup(tmp_path, y, n_sub: int = 0, lung_balanced: bool = False) -> View:
    grid = TINY
    if lung_balanced:
        grid = grid.replace('source = "lung-nodule"\n',
                            'source = "lung-nodule"\ndecide_on = "balanced_accuracy"\npositive_class = "nodule"\n', 1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "g.toml").write_text(grid)
    plan = P.Plan(tmp_path / "g.toml", "tables", ["lung"])
    work = tmp_path / "work"
    test = work / P.set_path("lung", "test")
    y = np.asarray(y)
    with SetWriter(test, shape=(1, 4, 4), classes=CLASSES, modality="x", preset="lung",
                   provenance=make_provenance(seed=0)) as w:
        w.append(np.zeros((len(y), 1, 4, 4), np.float32), y)
    if n_sub:
        steps.write_subset(str(test), n_sub, str(work / P.set_path("lung", P.SUBSET)), 0)
    return View(plan, Results(work), "lung")


def _ref(x: View, name: str, right, y, on: str = "test", cell=None) -> Ref:
    """A result whose per-row lists get ``right`` rows right (rows 0..n−1 of ``on``: test, test-sub,
    or an adversarial set of the test set)."""
    work = x.r.work
    s = work / (P.set_path("lung", "test-sub") if on == "test-sub" else
                P.set_path("lung", "test") if on == "test" else f"lung/adv/{on}.h5")
    clean = on == "test"
    r = fake_result(str(s), "clean" if clean else "white-box", None if clean else {"name": "fgsm", "eps": 0.005},
                    0, len(y), CLASSES, np.random.default_rng(0), y=y, right=right)
    if on not in ("test", "test-sub"):
        r["source"] = str(work / P.set_path("lung", "test"))
    f = work / "lung" / "metrics" / f"{name}.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"results": [r]}))
    return Ref(str(f), 0, r, cell, x)


def test_subset_minus_whole_test_is_computed_on_the_subsets_rows(tmp_path):
    """RDMAA on the 8-row subset (6 right) against the baseline on all 20 rows (right exactly on the
    subset's rows): 75 − 40 = +35 across rows, 75 − 100 = −25 on the same rows."""
    y = np.arange(20) % 2
    x = _setup(tmp_path, y, n_sub=8)
    sub = steps.subset_rows(20, 8, 0)
    base_right = np.zeros(20, bool)
    base_right[sub] = True
    base = _ref(x, "base", base_right, y, on="test-fgsm-0.005")
    rd = _ref(x, "rdmaa", [True] * 6 + [False] * 2, y[sub], on="test-sub")
    assert rd.metric("accuracy") - base.metric("accuracy") == pytest.approx(0.35)      # the old arithmetic
    e = diff_entry(rd, base)
    d = e.parts[0]
    assert d.value == pytest.approx(-0.25) and e.text().startswith("-25.0 [")
    assert e.text().endswith("†") and d.rows["n_rows"] == 8 and d.rows["restricted"]
    a, b = d.minus
    assert a.rows["rows_id"] == b.rows["rows_id"] and b.value == pytest.approx(1.0)
    # the cell itself keeps its own rows, marked as the subset's
    assert acc_entry(rd).text().startswith("75.0 ± ") and acc_entry(rd).text().endswith("†")


def test_rows_that_cannot_be_matched_read_na(tmp_path):
    y = np.arange(20) % 2
    x = _setup(tmp_path, y, n_sub=8)
    base = _ref(x, "base", np.ones(20, bool), y)
    no_rows = _ref(x, "old", np.ones(20, bool), y)
    del no_rows.result["per_row"]                        # a result written before per-row results
    assert diff_entry(no_rows, base).text() == "n/a (rows differ)"
    # a subset whose provenance does not say which test rows it holds
    (x.r.work / P.set_path("lung", P.SUBSET)).unlink()
    with SetWriter(x.r.work / P.set_path("lung", P.SUBSET), shape=(1, 4, 4), classes=CLASSES, modality="x",
                   preset="lung", provenance=make_provenance(seed=0)) as w:
        w.append(np.zeros((8, 1, 4, 4), np.float32), np.arange(8) % 2)
    x2 = View(x.plan, Results(x.r.work), "lung")
    sub = _ref(x2, "sub", np.ones(8, bool), np.arange(8) % 2, on="test-sub")
    assert diff_entry(sub, Ref(base.file, 0, base.result, None, x2)).text() == "n/a (rows differ)"
    assert V.compare(x2, sub, base) is None


def test_two_seeds_give_a_t_interval_over_seeds_combined_with_the_rows(tmp_path, monkeypatch):
    y = np.arange(40) % 2
    x = _setup(tmp_path, y)
    cell = x.p.clean("rdmaa")
    cell1 = dataclasses.replace(cell, seed=1, output="lung/s1/metrics/rdmaa/clean.json")
    r0 = _ref(x, "s0", np.arange(40) < 32, y, cell=cell)                 # 80 %
    r1 = _ref(x, "s1", np.arange(40) < 36, y, cell=cell1)                # 90 %
    (x.r.work / cell1.output).parent.mkdir(parents=True, exist_ok=True)
    (x.r.work / cell1.output).write_text(Path(r1.file).read_text())
    monkeypatch.setattr(x.p, "seeds_of", lambda c: [c, cell1] if c == cell else [c], raising=False)
    p = acc_entry(r0).parts[0]
    from scipy.stats import t

    from rdm.evaluation.stats import interval

    half = t.ppf(0.975, 1) * np.std([0.8, 0.9], ddof=1) / np.sqrt(2)   # t(0.975, 1 df) = 12.7: .635

    rows = interval(np.mean([np.arange(40) < 32, np.arange(40) < 36], axis=0)[None, :])   # the rows' part
    lo, hi = 0.85 - np.hypot(0.85 - rows.lo, half), min(1.0, 0.85 + np.hypot(rows.hi - 0.85, half))
    assert p.value == pytest.approx(0.85) and (p.lo, p.hi) == pytest.approx((lo, hi)) and hi == 1.0
    assert p.rows["n_seeds"] == 2 and p.rows["method"] == "seeds (t) and rows (bootstrap)"
    assert p.text() == f"85.0 ± {100 * (hi - lo) / 2:.1f}"
    assert p.to_json()["source"] == "per-row"


def test_few_rows_are_within_noise_many_rows_are_not(tmp_path):
    """The same 10-point gap: 'within noise' on 20 rows, 'better' on 400."""
    for n, want in ((20, "within noise"), (400, "better")):
        y = np.arange(n) % 2
        x = _setup(tmp_path / str(n), y)
        a = _ref(x, "a", np.arange(n) < int(0.9 * n), y)
        b = _ref(x, "b", np.arange(n) < int(0.8 * n), y)
        v = V.compare(x, a, b)
        assert v.verdict == want and v.cmp.diff == pytest.approx(0.1)
        assert diff_entry(a, b).text().endswith({"within noise": "≈", "better": "↑"}[want])


def test_lung_decides_on_balanced_accuracy(tmp_path):
    """A is more accurate (80 vs 75 %) by never finding a nodule: on balanced accuracy (50 vs 84 %)
    it is worse, and the nodule recall (0 vs 100 %) is said beside."""
    y = np.array([0] * 160 + [1] * 40)
    x = _setup(tmp_path, y, lung_balanced=True)
    a = _ref(x, "a", y == 0, y)
    b_right = np.r_[np.arange(160) < 110, np.ones(40, bool)]
    b = _ref(x, "b", b_right, y)
    assert a.metric("accuracy") > b.metric("accuracy")
    assert V.compare(x, a, b, "accuracy").cmp.diff == pytest.approx(0.05)
    v = V.compare(x, a, b)
    assert v.metric == "balanced_accuracy" and v.verdict == "worse"
    assert v.cmp.diff == pytest.approx(0.5 - (110 / 160 + 1) / 2)
    assert "recall nodule" in acc_entry(a).parts[2].key or acc_entry(a).parts[2].metric == "recall:nodule"
    words = V.said(x, a, b)
    assert words.startswith("balanced accuracy 50.0 % vs 84.4 %") and "worse" in words
    assert "nodule recall 0.0 % vs 100.0 %" in words


def test_bad_decide_on_is_one_clear_error(tmp_path):
    from rdm.errors import RdmError

    (tmp_path / "g.toml").write_text(TINY.replace('source = "lung-nodule"\n',
                                                  'source = "lung-nodule"\ndecide_on = "f1"\n', 1))
    with pytest.raises(RdmError, match="decide_on = 'f1'"):
        P.Plan(tmp_path / "g.toml", "tables")
    (tmp_path / "g.toml").write_text(TINY.replace('source = "lung-nodule"\n',
                                                  'source = "lung-nodule"\npositive_class = "tumour"\n', 1))
    with pytest.raises(RdmError, match="positive_class = 'tumour'"):
        P.Plan(tmp_path / "g.toml", "tables")


def test_other_per_row_columns_follow_the_rows_order(tmp_path):
    """``Rows.column`` aligns a file's other per-row lists (fooled_by, pred_clean) on the sorted rows,
    also after the rows are cut down."""
    y = np.arange(6) % 2
    x = _setup(tmp_path, y)
    r = _ref(x, "rev", [True, False] * 3, y, on="test-fgsm-0.005")
    pr = r.result["per_row"]
    for k in ("index", "y", "pred", "pred_clean"):
        pr[k] = pr[k][::-1]                                  # the file lists rows 5..0
    pr["fooled_by"] = [f"stage{i}" for i in pr["index"]]
    pr["pred_clean"][0] = 1 - pr["pred_clean"][0]           # row 5's clean image wrong
    rows = V.rows_of(x, r)
    assert rows.index.tolist() == list(range(6))
    assert rows.column("fooled_by").tolist() == [[f"stage{i}" for i in range(6)]]
    assert rows.correct_of("pred_clean").tolist() == [[True] * 5 + [False]]
    assert rows.take(np.array([1, 5])).column("fooled_by").tolist() == [["stage1", "stage5"]]
    assert rows.column("no-such-list") is None


def test_acc_entry_is_computed_once_per_view_and_result(tmp_path, monkeypatch):
    """The report shows one cell in several tables: its intervals are bootstrapped once per View, and
    each caller gets its own copy of the entry."""
    y = np.arange(40) % 2
    x = _setup(tmp_path, y)
    r = _ref(x, "a", np.arange(40) < 30, y)
    calls = []
    real = V.stats.interval
    monkeypatch.setattr(V.stats, "interval", lambda *a, **k: calls.append(1) or real(*a, **k))
    e1 = V.acc_entry(x, r)
    n = len(calls)
    e2 = V.acc_entry(x, Ref(r.file, r.index, r.result, None, x))
    assert n == 2 and len(calls) == n and e1.text() == e2.text() == acc_entry(r).text()
    e1.parts[0].key = "changed"
    assert e2.parts[0].key == "acc" and V.acc_entry(x, r).parts[0].key == "acc"
    V.acc_entry(View(x.plan, Results(x.r.work), "lung"), r)            # another View computes its own
    assert len(calls) == 2 * n


def test_a_noise_verdict_whose_interval_excludes_zero_says_which_condition_failed():
    """The report printed "−3.6 [−7.2, −0.3]: within noise" (brain, p = .06): the reader is told which
    other condition of the rule held it back; an interval around 0 needs no reason."""
    from rdm.evaluation.stats import Comparison

    def v(lo, hi, p, verdict, per_seed=()):
        return V.Verdict(None, None, "acc", Comparison(-0.036, lo, hi, p, max(1, len(per_seed)), 307, verdict,
                                                       per_seed), 0.893, 0.928)

    assert v(-0.072, -0.003, 0.062, "within noise").noise_reason() == " (p = .06)"
    assert v(-0.072, -0.003, 0.01, "within noise", (-0.08, 0.01)).noise_reason() == " (a seed disagrees in sign)"
    assert v(-0.072, 0.004, 0.2, "within noise").noise_reason() == ""
    assert v(-0.072, -0.003, 0.01, "worse").noise_reason() == ""
    # the summary's lines read it from a difference's parts (no Verdict there)
    assert V.noise_reason("within noise", -0.072, -0.003, 0.062) == " (p = .06)"
    assert V.noise_reason("within noise", None, None, None) == ""


def test_an_interval_that_excludes_zero_never_reads_as_touching_it():
    """The lung ablation table printed "-2.9 [-5.8, +0.0] ↓": its upper bound was -0.04 points."""
    from rdm.pipeline.tables import bounds

    assert bounds(-0.058, -0.0004) == "[-5.8, -0.04]"
    assert bounds(0.00001, 0.05) == "[+0.001, +5.0]"
    assert bounds(-0.058, 0.0) == "[-5.8, +0.0]" and bounds(-0.0123, 0.0456) == "[-1.2, +4.6]"


def test_the_report_counts_the_cells_by_the_seeds_they_have(tmp_path):
    """A partial two-seed grid: one file present for both seeds, another for seed 0 only; every other
    cell has none. The counts (and their words) follow the files, per result cell."""
    (tmp_path / "g.toml").write_text(TINY)
    x = View(P.Plan(tmp_path / "g.toml", "tables", ["lung"], seeds=2), Results(tmp_path / "work"), "lung")
    first = [c for c in x.p.cells if c.seed == 0]
    once = sum(len(x.p.seeds_of(c)) < 2 for c in first)
    planned = len(first) - once
    assert V.seed_coverage(x) == {"2": 0, "1": 0, "0": planned, "once": once, "once_present": 0}
    a = x.p.clean("rdmaa")
    b = next(c for c in first if c.output != a.output)
    for c in [*x.p.seeds_of(a), b]:
        f = x.r.work / c.output
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
    both = sum(c.output == a.output for c in first)
    one = sum(c.output == b.output for c in first)
    assert len({c.output for c in x.p.seeds_of(a)}) == 2 and both >= 1 and one >= 1
    assert V.seed_coverage(x) == {"2": both, "1": one, "0": planned - both - one, "once": once, "once_present": 0}
    assert V.coverage_words("lung", {"2": 1, "1": 3, "0": 5, "once": 0, "once_present": 0}) == \
        "lung: 2 seeds 1, 1 seed 3, none 5 (of 9 cells)"
    assert V.coverage_words("lung", {"2": 1, "1": 3, "0": 5, "once": 4, "once_present": 2}).endswith(
        "(of 9 cells); 4 on the first seed only by design, 2 of them present")
