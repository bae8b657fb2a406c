"""The gradient-masking checks (rdm.pipeline.masking): each on designed per-row results with a case
that must fail and one that must pass, rdm-eval's warnings from the same definitions, and the
report's pass/fail table on the fabricated full grid."""

from __future__ import annotations

import numpy as np
import pytest

from rdm.api.eval import masking_warnings
from rdm.pipeline import masking as M


def rows(n_right: int, n: int = 100, seed: int = 0) -> np.ndarray:
    """``n`` rows of which ``n_right`` (chosen at random) are right."""
    out = np.zeros(n)
    out[np.random.default_rng(seed).permutation(n)[:n_right]] = 1
    return out


def test_change_is_paired_and_needs_two_points_and_p():
    a = rows(60)
    assert M.change(a, a).call == "within noise"
    lower = a.copy()
    lower[np.flatnonzero(a)[:20]] = 0                         # 20 of its right rows now wrong
    c = M.change(a, lower)
    assert c.call == "lower" and c.diff == pytest.approx(-0.2) and c.p < 0.05
    # 2 rows flipped: under the 2-point floor whatever the p
    two = a.copy()
    two[np.flatnonzero(a)[:2]] = 0
    assert M.change(a, two).call == "within noise"
    # seeds × rows matrices pair too
    assert M.change(np.stack([a, a]), np.stack([lower, lower])).call == "lower"


def fooled_by(n_square: int, n_grad: int = 30, n_clean: int = 10, n: int = 100) -> np.ndarray:
    fb = np.array([None] * n, dtype=object)
    fb[:n_clean] = "clean"
    fb[n_clean:n_clean + n_grad] = "apgd-ce"
    fb[n_clean + n_grad:n_clean + n_grad + n_square] = "square"
    return fb


def test_square_check_fails_when_square_fools_what_the_gradients_left():
    bad = M.square_beyond_gradients(fooled_by(25))
    assert bad.call == "higher" and bad.diff == pytest.approx(0.25)
    ok = M.square_beyond_gradients(fooled_by(1))
    assert ok.call == "within noise" and ok.diff == pytest.approx(0.01)
    assert M.square_beyond_gradients(np.stack([fooled_by(25), fooled_by(20)])).call == "higher"


def curve(*accs: float) -> list[tuple[int, np.ndarray]]:
    """A steps curve on the same 100 rows: each point keeps the rows right at the next one (monotone),
    or adds rows (a rise)."""
    order = np.random.default_rng(1).permutation(100)
    out = []
    for s, acc in zip((10, 20, 50, 100, 200), accs):
        r = np.zeros(100)
        r[order[: int(round(acc * 100))]] = 1
        out.append((s, r))
    return out


def test_steps_converge_and_never_rise():
    last, rises = M.steps_rows(curve(0.8, 0.6, 0.5, 0.45, 0.44))
    assert last.call == "within noise" and not rises                     # converged, monotone
    last, rises = M.steps_rows(curve(0.8, 0.7, 0.6, 0.5, 0.35))
    assert last.call == "lower" and not rises                            # still falling at 200 steps: fails (a)
    last, rises = M.steps_rows(curve(0.3, 0.35, 0.5, 0.5, 0.5))
    assert last.call == "within noise" and [(a, b) for a, b, _ in rises] == [(20, 50)]   # fails (b)


def test_noise_control():
    clean = np.ones(100)
    status, vs_clean, vs_noise = M.noise_control(clean, rows(95), rows(40))
    assert status == M.PASS and vs_clean.call == "lower" and vs_noise.call == "lower"
    status, _, vs_noise = M.noise_control(clean, rows(45, seed=2), rows(40, seed=3))
    assert status == M.FAIL                         # noise costs as much as the attack
    status, _, vs_noise = M.noise_control(clean, rows(60, seed=6), rows(40, seed=6))
    assert vs_noise.call == "lower" and status == M.FAIL    # beyond noise, but noise costs 40 of the attack's 60
    assert M.noise_control(clean, rows(70, seed=6), rows(40, seed=6))[0] == M.PASS     # 30 of 60: half
    assert M.noise_control(clean, rows(100), rows(99))[0] == M.UNDECIDED   # the attack is within noise of clean


def test_rdm_eval_warns_when_square_beats_the_gradients():
    def r(fb):
        n = len(fb)
        return {"set": "/w/test.h5", "protocol": "white-box", "attack": {"name": "aa", "eps": 0.005, "steps": 100},
                "metrics": {"accuracy": float(np.mean([v is None for v in fb])), "n": n},
                "per_row": {"fooled_by": list(fb)}}

    w = masking_warnings([r(fooled_by(25))])
    assert len(w) == 1 and "Square fooled 25.0 %" in w[0] and "test.h5" in w[0]
    assert masking_warnings([r(fooled_by(1))]) == []


# --------------------------------------------------------------------------- the grid's cells
def test_the_grid_runs_aa_noise_and_the_steps_curve_for_every_model_with_rows_by_cost():
    from rdm.errors import RdmError
    from rdm.pipeline import config
    from rdm.pipeline import plan as P

    # the shipped grid: the standard suite on the seeded subset of every seed (seeds before rows);
    # with limit = "auto" the estimate decides at the grid's measured throughputs: brain's 307 rows fit
    # the budget, lung's 1,622 and leukaemia's 652 at two ε do not
    auto = _auto_aa(config.load_grid(None))
    sub = dict.fromkeys(("lung", "brain", "brain-grouped", "leukemia"), P.SUBSET)
    for grid, mode, aa_rows in ((None, "tables", sub), (None, "demo", sub),
                                (auto, "tables", {**sub, "brain": "test", "brain-grouped": "test"}),
                                (auto, "demo", dict.fromkeys(sub, "test"))):
        plan = P.Plan(grid, mode)
        cells = list(plan.cells())
        for m, mp in plan.run.items():
            for model in plan.eval_models:
                mine = [c for c in cells if c.modality == m and c.model == model]
                aa = [c for c in mine if c.family == "whitebox" and c.attack.kind == "aa"]
                want = [0.002, 0.005] if mode == "tables" else [0.005]
                assert sorted(c.eps for c in aa) == want and {c.rows for c in aa} == {aa_rows[m]}
                assert all(("seeded subset" if c.rows == P.SUBSET else "whole test set") in c.label for c in aa)
                assert mp.matched(model, "aa", "white-box") is not None
                noise = [c for c in mine if c.family == "whitebox" and c.attack.kind == "noise"]
                assert sorted(c.eps for c in noise) == [0.002, 0.005] and {c.rows for c in noise} == {"test"}
                steps = [n for n, _ in mp.steps_curve(model)]
                assert steps == ([10, 20, 50, 100, 200] if mode == "tables" else [5, 10])
    # the estimate decides: at a GPU's throughput the whole test set, at one pass a second the subset
    g = _auto_aa(config.load_grid(None))
    g["evaluate"]["cost"] = {**g["evaluate"]["cost"], "throughput": 1e6}
    mp = P.Plan(g, "tables", ["lung"]).modality("lung")
    assert mp.whitebox("rdmaa", next(w for w in mp.plan.whitebox if w.kind == "aa"), 0.005).rows == "test"
    assert mp.matched("rdmaa", "aa", "white-box").rows == "test"
    g["evaluate"]["cost"]["throughput"] = 1
    mp = P.Plan(g, "tables", ["brain"]).modality("brain")
    assert mp.matched("rdmaa", "aa", "white-box").rows == P.SUBSET
    # 4402 passes per lung row at two ε (APGD-CE 100 + APGD-T 100 + Square 5000 × 0.4 + forwards)
    aa = next(w for w in mp.plan.whitebox if w.kind == "aa")
    est = P.Plan(None, "tables", ["lung"]).modality("lung").estimate(aa)
    assert est.passes == pytest.approx(2 * (0.4 + 100 + 100 + 5000 * 0.4 + 0.8)) and est.rows == 1622
    assert est.hours == pytest.approx(est.passes * 1622 / 650 / 3600)          # lung's own throughput
    # one throughput per modality: a modality it does not name gets the default (100)
    g["evaluate"]["cost"]["throughput"] = {"lung": 1e6}
    plan = P.Plan(g, "tables", ["lung", "brain"])
    assert plan.modality("lung").matched("rdmaa", "aa", "white-box").rows == "test"
    assert plan.cost.throughput_of("brain") == 100 and plan.cost.throughput_of("lung") == 1e6
    g["evaluate"]["cost"]["throughput"] = {"lung": 0}
    with pytest.raises(RdmError, match="throughput must be > 0"):
        P.Plan(g, "tables")


def _auto_aa(g: dict) -> dict:
    """The grid with its standard suite on ``limit = "auto"``: the cost estimate picks the rows."""
    next(w for w in g["evaluate"]["whitebox"] if w["attack"] == "aa")["limit"] = "auto"
    return g


def test_cost_printout_and_bad_cost_settings(tmp_path):
    import subprocess
    import sys

    from rdm.errors import RdmError
    from rdm.pipeline import config
    from rdm.pipeline import plan as P

    shipped = config.DEFAULT_GRID.read_text()
    aa_line = '{ name = "aa", attack = "aa", limit = true, square_seeds = 1 }'
    assert aa_line in shipped
    (tmp_path / "auto.toml").write_text(shipped.replace(aa_line, aa_line.replace("true", '"auto"')))
    for grid, rows in ((config.DEFAULT_GRID, "subset"), (tmp_path / "auto.toml", "subset (auto: whole test set 3.05 h > 2 h)")):
        r = subprocess.run([sys.executable, "-m", "rdm.pipeline.plan", "--cost", "--modality", "lung", "--grid", str(grid)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        aa = next(line.split("\t") for line in r.stdout.splitlines() if line.startswith("lung\twb-aa\t"))
        assert aa[4] == "4402" and aa[5] == "300" and aa[8] == rows
        assert "at lung 650 passes/s" in r.stdout
    g = config.load_grid(None)
    g["evaluate"]["cost"] = {"throughput": 0}
    with pytest.raises(RdmError, match="throughput must be > 0"):
        P.Plan(g, "tables")
    g["evaluate"]["cost"] = {"speed": 3}
    with pytest.raises(RdmError, match="cost has no key speed"):
        P.Plan(g, "tables")
    g = config.load_grid(None)
    g["evaluate"]["whitebox"][-1]["limit"] = "sometimes"
    with pytest.raises(RdmError, match="limit must be true, false or"):
        P.Plan(g, "tables")


# --------------------------------------------------------------------------- the report's table
@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from helpers import fabricate
    from rdm.pipeline import config
    from rdm.pipeline import plan as P
    from rdm.pipeline import report as R

    d = tmp_path_factory.mktemp("mask")
    fabricate(d / "work", P.Plan(config.DEFAULT_GRID, "tables", ["lung"], seeds=2))
    rep = R.build(config.DEFAULT_GRID, d / "work", d / "results", "tables", figures=False, seeds=2)
    return d, rep


def test_report_table_fails_the_masking_model_and_passes_the_honest_one(report):
    """Two seeds: every check pairs each row's result averaged over both."""
    d, rep = report
    t = rep["tables"]["masking-lung"]
    assert t["columns"] == ["Model", "Check", "Rows", "Numbers", "Result"]
    got: dict = {}
    for row in t["rows"]:
        check, _, numbers, result = (c["text"] for c in row["cells"])
        got.setdefault((row["label"], check[:3]), []).append((result, numbers))
    for check in ("(a)", "(b)", "(c)", "(f)"):
        assert {r for r, _ in got[("RDMAA", check)]} == {"fail"}, (check, got[("RDMAA", check)])
        assert {r for r, _ in got[("AdvTrain-PGD", check)]} == {"pass"}, (check, got[("AdvTrain-PGD", check)])
    assert {r for r, _ in got[("AdvTrain-PGD", "(d)")]} == {"pass"} and ("AdvTrain-PGD", "(e)") in got
    assert "200 steps" in got[("RDMAA", "(a)")][0][1] and "Square alone fooled" in got[("RDMAA", "(c)")][0][1]
    assert all("2 seeds" in n for _, n in got[("RDMAA", "(a)")])  # paired over both
    # (c) Square against the gradient stages: on the seeds that ran Square (square_seeds = 1: the first)
    assert got[("AdvTrain-PGD", "(c)")] and not any("2 seeds" in n for _, n in got[("AdvTrain-PGD", "(c)")])
    flags = {f["check"] for f in rep["modalities"]["lung"]["masking"] if f["model"] == "rdmaa"}
    assert {"steps-not-converged", "stronger-attack", "square-beats-gradients", "noise-as-strong"} <= flags
    assert not [f for f in rep["modalities"]["lung"]["masking"] if f["model"] == "advtrain-pgd"]
    md = (d / "results" / "REPORT.md").read_text()
    section = md.split("## Gradient-masking checks")[1].split("\n## ")[0]
    assert "Gradient-masking checks, lung" in section and "paired sign-flip test" in section
    for ext in ("csv", "tex"):
        assert (d / "results" / "tables" / f"masking-lung.{ext}").read_text().count("fail") >= 4


def test_a_weak_attack_at_large_eps_is_not_called_masking_when_the_baseline_survives_it_too():
    """(e): a defended model above the floor at the largest ε fails only when the undefended baseline,
    under the same attack, does not stay there too (then the attack is weak, not the defence)."""
    from rdm.pipeline import masking as MK

    def row(model, kind, fail):
        r = MK.Row(model, "large-eps", f"{kind} sweep", MK.FAIL if fail else MK.PASS, "numbers.")
        if fail:
            r.flag("high-at-large-eps", "leaves 30 %", kind=kind)
        return r

    rows = [row("baseline", "fgsm", True), row("baseline", "pgd", False),
            row("rdmaa", "fgsm", True), row("rdmaa", "pgd", True)]
    MK._explained_large_eps(rows)
    rd_fgsm, rd_pgd = rows[2], rows[3]
    assert rd_fgsm.status == MK.UNDECIDED and rd_fgsm.flags == [] and "baseline" in rd_fgsm.numbers
    assert rd_pgd.status == MK.FAIL and rd_pgd.flags          # the baseline falls to PGD: a real sign
    assert rows[0].status == MK.FAIL                            # the baseline's own row is not rewritten

    # a rise with ε (one FGSM step overshooting at large ε) the baseline shows too is not the defence's
    # doing; a rise under an attack the baseline follows down is
    def rises(model, kind):
        r = MK.Row(model, "large-eps", f"{kind} sweep", MK.FAIL, "numbers.")
        r.flag("non-monotone", "RISES from 8.9 % at ε=.1 to 17.5 % at ε=.2", kind=kind)
        return r

    rows = [rises("baseline", "fgsm"), row("baseline", "pgd", False), rises("rdmaa", "fgsm"), rises("rdmaa", "pgd")]
    MK._explained_large_eps(rows)
    assert rows[2].status == MK.UNDECIDED and rows[2].flags == []
    assert rows[3].status == MK.FAIL and rows[3].flags[0]["check"] == "non-monotone"
    both = [rises("baseline", "fgsm"), row("rdmaa", "fgsm", True)]       # the baseline rises, RDMAA stays high:
    MK._explained_large_eps(both)                                  # not the same sign, still a failure
    assert both[1].status == MK.FAIL


def test_an_fgsm_rise_is_not_masking_when_pgd_on_the_same_model_reaches_the_floor():
    """(e): one FGSM step overshoots at large ε; if PGD on the same model and rows passes (e), the
    gradients work and the FGSM row is undecided, for the baseline as for a defence. Without a passing
    PGD row (PGD fails too, or did not run) the FGSM row still fails."""
    from rdm.pipeline import masking as MK

    def row(model, kind, fail):
        r = MK.Row(model, "large-eps", f"{kind.upper()} sweep", MK.FAIL if fail else MK.PASS, "numbers.", kind=kind)
        if fail:
            r.flag("non-monotone", "RISES from 4.7 % at ε=.05 to 29.3 % at ε=.2", kind=kind)
        return r

    rows = [row("baseline", "fgsm", True), row("baseline", "pgd", False)]
    MK._explained_large_eps(rows)                                   # the baseline's own row, by its own PGD
    assert rows[0].status == MK.UNDECIDED and rows[0].flags == [] and "PGD on the same model and rows passes" in rows[0].numbers
    # the baseline passes FGSM here, so only a model's own PGD can explain its FGSM row
    rows = [row("baseline", "fgsm", False), row("baseline", "pgd", False),
            row("rdmaa", "fgsm", True), row("rdmaa", "pgd", False),
            row("advtrain-fast", "fgsm", True), row("advtrain-fast", "pgd", True),
            row("advtrain-trades", "fgsm", True)]
    MK._explained_large_eps(rows)
    assert rows[2].status == MK.UNDECIDED and rows[2].flags == [] and "PGD on the same model and rows passes" in rows[2].numbers
    assert rows[4].status == MK.FAIL and rows[4].flags            # PGD fails too: a sign
    assert rows[5].status == MK.FAIL
    assert rows[6].status == MK.FAIL and rows[6].flags            # no PGD row: nothing shows the gradients work


def test_masking_pairs_only_the_same_rows_and_the_same_seeds(tmp_path, monkeypatch):
    """Per-row pairing (through rdm.pipeline.verdicts) on the same rows and seeds; two results on the
    same set with as many rows but different rows are not compared at all; a cell with a seed the
    other lacks yet (a partial grid) is paired on their common seed. It fell back to the unpaired
    rule, which left the real lung grid's noise control (f) without a comparison once RDMAA's PGD-3
    cell had its second seed and the noise cell not."""
    import dataclasses
    from pathlib import Path

    from test_verdicts import _ref, _setup

    y = np.arange(60) % 2
    x = _setup(tmp_path, y)
    a = _ref(x, "a", np.arange(40) < 36, y[:40], on="test")            # rows 0..39, 90 %
    lower = _ref(x, "lower", np.arange(40) < 16, y[:40], on="test")     # the same rows, 40 %
    c = M.paired(x, a, lower)
    assert c.call == "lower" and c.p is not None and c.diff == pytest.approx(-0.5) and c.n == 40
    shifted = _ref(x, "shifted", np.arange(40) < 16, y[20:], on="test")
    shifted.result["per_row"]["index"] = list(range(20, 60))                      # rows 20..59: as many, not the same
    assert M.same_rows(a, shifted) and M.paired(x, a, shifted) is None
    # two seeds of A against one of B: paired on the common seed
    cell = x.p.clean("rdmaa")
    a2 = _ref(x, "a2", np.arange(40) < 36, y[:40], on="test", cell=cell)
    cell1 = dataclasses.replace(cell, seed=1, output="lung/s1/metrics/a2.json")
    (x.r.work / cell1.output).parent.mkdir(parents=True, exist_ok=True)
    (x.r.work / cell1.output).write_text(Path(a2.file).read_text())
    monkeypatch.setattr(x.p, "seeds_of", lambda c: [c, cell1] if c == cell else [c], raising=False)
    c = M.paired(x, a2, lower)
    assert c.call == "lower" and c.p is not None and c.seeds == 1 and c.n == 40


def test_large_eps_decides_on_balanced_accuracy_and_names_the_class_that_resists(tmp_path):
    """(e) on lung (decide_on = balanced accuracy; 6 nodules in 40 rows): a model that answers
    'nodule' for every attacked image at the largest ε keeps 15 % accuracy, under the 10 % floor's
    two standard errors, but every nodule resists: balanced accuracy 50 %, a failure, with each
    class's recall in the row. A model that every row falls to passes."""
    import json

    from helpers import fabricate, fake_result
    from rdm.pipeline import config
    from rdm.pipeline import plan as P
    from rdm.pipeline.results import Results, View, _matches

    plan = P.Plan(config.DEFAULT_GRID, "tables", ["lung"])
    work = tmp_path / "work"
    fabricate(work, plan)
    classes = ["non-nodule", "nodule"]
    y = np.array([0] * 34 + [1] * 6)

    def sweep(model: str, right: np.ndarray) -> None:
        for e in plan.sweep_eps:
            cell = plan.modality("lung").sweep(model, "pgd", e)
            path = work / cell.output
            doc = json.loads(path.read_text())
            i = next(j for j, r in enumerate(doc["results"]) if _matches(cell.pick)[0](r))
            old = doc["results"][i]
            doc["results"][i] = fake_result(old["set"], "white-box", old["attack"], 0, 40, classes,
                                            np.random.default_rng(0), y=y, right=right)
            path.write_text(json.dumps(doc))

    sweep("rdmaa", y == 1)                          # every image answered 'nodule', at every ε
    sweep("advtrain-pgd", np.zeros(40, bool))       # every image fooled
    x = View(plan, Results(work), "lung")
    big = max(plan.sweep_eps)
    assert not M.high_at_large_eps(big, 0.15, 40)             # the accuracy rule alone would not see it
    rd = next(r for r in M._large_eps(x, "rdmaa") if r.where.startswith("PGD"))
    assert rd.status == M.FAIL and [f["check"] for f in rd.flags] == ["high-at-large-eps"]
    assert "50.0 % balanced accuracy" in rd.flags[0]["text"] and "nodule 100.0 %" in rd.flags[0]["text"]
    assert f"At ε={M.eps_txt(big)}, recall: non-nodule 0.0 %, nodule 100.0 %." in rd.numbers
    at = next(r for r in M._large_eps(x, "advtrain-pgd") if r.where.startswith("PGD"))
    assert at.status == M.PASS and at.numbers.startswith("balanced accuracy 0.0 %")
    assert f"0.0 % at ε={M.eps_txt(big)}. At ε={M.eps_txt(big)}, recall:" in at.numbers
    assert "nodule 0.0 %" in at.numbers


def test_no_sign_is_said_only_of_models_whose_checks_ran():
    """A defended model whose metrics files are all missing is "not checked", never "no sign"; one
    with some checks missing says how many ran; the summary line and the paragraph agree."""
    from types import SimpleNamespace

    from rdm.pipeline import claims as C

    rows = [M.Row("rdmaa", "steps", "", M.PASS, "."), M.Row("rdmaa", "square", "", M.MISSING, "n/a"),
            M.Row("rdmaa", "noise", "", M.NOT_RUN, "no noise attack"),
            M.Row("advtrain-pgd", "steps", "", M.MISSING, "n/a"), M.Row("advtrain-pgd", "square", "", M.MISSING, "n/a"),
            M.Row("advtrain-fast", "steps", "", M.UNDECIDED, "."), M.Row("advtrain-fast", "square", "", M.FAIL, ".")]
    ran = M.checks_ran(rows)
    assert ran == {"rdmaa": (1, 2), "advtrain-pgd": (0, 2), "advtrain-fast": (2, 2)}
    x = SimpleNamespace(defended=["rdmaa", "advtrain-pgd", "advtrain-fast"], plan=SimpleNamespace(whitebox=[]),
                        paper_eps=[0.005])
    checked, unchecked = C.coverage(x, [], ran)
    assert checked == ["RDMAA (1 of 2 checks ran)", "AdvTrain-fast"] and unchecked == ["AdvTrain-PGD"]
    assert C.coverage(x, ["advtrain-fast"], ran) == (["RDMAA (1 of 2 checks ran)"], ["AdvTrain-PGD"])
    words = M.masking_words(x, [], ran)
    assert "not checked for AdvTrain-PGD" in words.replace("Not", "not") and "RDMAA (1 of 2 checks ran)" in words
    nothing = M.masking_words(x, [], {m: (0, 2) for m in x.defended})
    assert "No sign" not in nothing and nothing.startswith("Not checked for RDMAA, AdvTrain-PGD, AdvTrain-fast")


def test_masking_numbers_are_the_mean_over_the_seeds(tmp_path):
    """The table's numbers are the cells the checks compare: with two seeds, the mean of both seeds'
    accuracies (was the first seed's alone)."""
    import json

    from helpers import fabricate
    from rdm.pipeline import config
    from rdm.pipeline import plan as P
    from rdm.pipeline import report as R

    fabricate(tmp_path / "work", P.Plan(config.DEFAULT_GRID, "tables", ["lung"], seeds=2))
    f = tmp_path / "work" / "lung" / "s1" / "metrics" / "rdmaa" / "wb-steps-10.json"
    j = json.loads(f.read_text())
    res = j["results"][0]
    s0 = json.loads((tmp_path / "work" / "lung" / "s0" / "metrics" / "rdmaa" / "wb-steps-10.json").read_text())
    acc0 = s0["results"][0]["metrics"]["accuracy"]
    res["per_row"]["pred"] = list(res["per_row"]["y"])          # seed 1: every row right
    res["metrics"]["accuracy"] = 1.0
    f.write_text(json.dumps(j))
    rep = R.build(config.DEFAULT_GRID, tmp_path / "work", tmp_path / "results", "tables", figures=False, seeds=2)
    steps = [[c["text"] for c in r["cells"]] for r in rep["tables"]["masking-lung"]["rows"]
             if r["label"] == "RDMAA" and r["cells"][0]["text"].startswith("(a)")]
    assert len(steps) == 1 and acc0 < 0.5
    want = f"10: {100 * (acc0 + 1.0) / 2:.1f} %"
    assert want in steps[0][2], (want, steps[0][2])
    # a partial grid: RDMAA's noise control has seed 0 only, its attacks both seeds. (f) pairs them on
    # seed 0 (it said "no white-box attack … on the noise control's rows"), and every number it shows
    # is on those rows and that seed
    (tmp_path / "work" / "lung" / "s1" / "metrics" / "rdmaa" / "wb-noise.json").unlink()
    pgd1 = tmp_path / "work" / "lung" / "s1" / "metrics" / "rdmaa" / "wb-pgd.json"
    j = json.loads(pgd1.read_text())
    for r in j["results"]:
        if r.get("attack"):
            r["per_row"]["pred"] = list(r["per_row"]["y"])      # seed 1's PGD-3 fools nothing
            r["metrics"]["accuracy"] = 1.0
    pgd1.write_text(json.dumps(j))
    rep = R.build(config.DEFAULT_GRID, tmp_path / "work", tmp_path / "results", "tables", figures=False, seeds=2)
    noise = [[c["text"] for c in r["cells"]] for r in rep["tables"]["masking-lung"]["rows"]
             if r["label"] == "RDMAA" and r["cells"][0]["text"].startswith("(f)")]
    s0pgd = json.loads((tmp_path / "work" / "lung" / "s0" / "metrics" / "rdmaa" / "wb-pgd.json").read_text())
    assert len(noise) == 2 and all(r[3] in ("pass", "fail", "undecided") for r in noise), noise
    checked = 0
    for r in noise:
        if "PGD-3" in r[2]:
            checked += 1
            e = float("0" + r[1].split("ε=")[1].split(",")[0])
            acc = next(q["metrics"]["accuracy"] for q in s0pgd["results"]
                       if q.get("attack") and abs(q["attack"]["eps"] - e) < 1e-9)
            assert f"PGD-3 {100 * acc:.1f} %" in r[2], (acc, r[2])
    assert checked == 2


def test_the_prose_says_no_sign_only_of_models_whose_checks_ran(tmp_path):
    """The folded 'every comparison in words' agrees with the summary line: it never says 'None of the
    defended models shows…' while a model's metrics files are missing, and names that model as not
    checked (a partial real grid said 'None…' while the summary said 'not checked for RDMAA')."""
    import shutil

    from helpers import fabricate
    from rdm.pipeline import config
    from rdm.pipeline import plan as P
    from rdm.pipeline import report as R

    def words_and_summary(gone):
        work, res = tmp_path / "-".join(gone) / "work", tmp_path / "-".join(gone) / "results"
        fabricate(work, P.Plan(config.DEFAULT_GRID, "tables", ["brain"], seeds=1))
        for m in gone:
            shutil.rmtree(work / "brain" / "s0" / "metrics" / m)
        R.build(config.DEFAULT_GRID, work, res, "tables", figures=False, seeds=1)
        md = (res / "REPORT.md").read_text()
        return (md.split("<summary>Every comparison in words</summary>")[1].split("</details>")[0],
                md.split("**Gradient masking**")[1].splitlines()[0])

    # the fabricated grid flags some models: the flagged sentence, then the unchecked one
    words, summary = words_and_summary(["advtrain-fast"])
    assert "Signs of gradient masking" in words and "not checked for AdvTrain-fast" in summary
    assert "Not checked for gradient masking: AdvTrain-fast (metrics files missing)." in words
    # only the unflagged AdvTrain-PGD left with metrics: it, and only it, shows no sign
    words, summary = words_and_summary(["rdmaa", "purified", "advtrain-fgsm", "advtrain-online",
                                        "advtrain-trades", "advtrain-fast", "rdmaa-at-matched",
                                        "advtrain-online-at-matched"])
    assert "✓ no sign for AdvTrain-PGD" in summary and "Signs of gradient masking" not in words
    assert "None of the defended models" not in words
    assert "AdvTrain-PGD shows none of the gradient-masking signs checked for" in words
    assert ("Not checked for gradient masking: RDMAA, Purifier, AdvTrain-FGSM, AdvTrain-online, AdvTrain-TRADES, "
            "AdvTrain-fast, RDMAA (matched-ε DCAE), AdvTrain-online (matched ε) (metrics files missing).") in words


def test_a_full_two_seed_report_says_every_cell_has_both_seeds(report):
    """The fabricated grid is complete: report.json and REPORT.md count every cell under 2 seeds."""
    d, rep = report
    cov = rep["modalities"]["lung"]["seed_coverage"]
    assert cov["2"] > 100 and cov["1"] == 0 and cov["0"] == 0 and cov["once"] == cov["once_present"] > 0
    assert (f"lung: 2 seeds {cov['2']}, 1 seed 0, none 0 (of {cov['2']} cells); {cov['once']} on the first seed "
            f"only by design, {cov['once']} of them present") in (d / "results" / "REPORT.md").read_text()
