"""The claims table's verdicts between methods (rdm.pipeline.claims, rdm.pipeline.verdicts): designed
per-row results on a small fabricated grid give each of the four outcomes; the p-values are adjusted
across the table; fewer than three seeds are labelled as comparing two networks; the grid's [stats]
section sets the margin and the adjustment. No model runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gridtext as G
from helpers import fabricate, set_rows
from rdm.data.presets import load_preset
from rdm.errors import RdmError
from rdm.evaluation import stats
from rdm.pipeline import claims
from rdm.pipeline import plan as P
from rdm.pipeline.results import Results, View

N = 100       # fabricated test rows (helpers.SIZES)
GRID = G.grid(G.LUNG, G.FGSM, G.PGD, G.RDMAA, G.evaluate(["baseline", "rdmaa"], [0.005], [G.PGD_WHITEBOX]),
              G.paper_lung())
ROWS = ["FGSM at ε=.005 brings the baseline down to the paper's accuracy",
        "RDMAA is more accurate than no defence under FGSM",
        "PGD at ε=.005 brings the baseline down to the paper's accuracy",
        "RDMAA is more accurate than no defence under PGD",
        "RDMAA keeps the baseline's clean accuracy (not worse by the paired test)"]


def _right(rate: float, seed: int) -> np.ndarray:
    c = np.zeros(N, dtype=bool)
    c[np.random.default_rng(seed).permutation(N)[:int(round(rate * N))]] = True
    return c


def _shift(base: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``base`` with k more rows right (k > 0) or |k| fewer (k < 0)."""
    r = base.copy()
    pool = np.flatnonzero(~base if k > 0 else base)
    r[np.random.default_rng(seed).permutation(pool)[:abs(k)]] = k > 0
    return r


def _view(tmp_path: Path, seeds: int, stats_block: str = "") -> View:
    """The small grid fabricated with ``seeds`` seeds, its cells designed per seed s:
    clean — RDMAA and the baseline right on the same rows (equivalent);
    FGSM transfer — RDMAA 95 %, the baseline 20 % (better);
    PGD transfer — RDMAA 20 %, the baseline 60 % (worse);
    PGD white-box — the baseline as under transfer, RDMAA its rows with +20, −20, 0 rows by seed
    (cannot tell)."""
    (tmp_path / "g.toml").write_text(GRID + stats_block)
    plan = P.Plan(tmp_path / "g.toml", "tables", ["lung"], seeds=seeds)
    work = tmp_path / "work"
    fabricate(work, plan)
    mp, classes = plan.modality("lung"), list(load_preset("lung").classes)
    fg, pg = (next(a for a in plan.test_attacks if a.kind == k) for k in ("fgsm", "pgd"))
    wb = plan.whitebox[0]

    def put(cell, rows_by_seed) -> None:
        for s, c in enumerate(mp.seeds_of(cell)):
            set_rows(work, c, rows_by_seed(s), classes, seed=s)

    put(mp.clean("baseline"), lambda s: _right(0.85, s))
    put(mp.clean("rdmaa"), lambda s: _right(0.85, s))
    put(mp.transfer("rdmaa", fg, 0.005), lambda s: _right(0.95, 10 + s))
    put(mp.transfer("baseline", fg, 0.005), lambda s: _right(0.20, 20 + s))
    put(mp.transfer("rdmaa", pg, 0.005), lambda s: _right(0.20, 30 + s))
    put(mp.transfer("baseline", pg, 0.005), lambda s: _right(0.60, 40 + s))
    put(mp.whitebox("baseline", wb, 0.005), lambda s: _right(0.60, 40 + s))
    put(mp.whitebox("rdmaa", wb, 0.005), lambda s: _shift(_right(0.60, 40 + s), (20, -20, 0)[s % 3], s))
    return View(plan, Results(work), "lung")


def _verdict_cells(t):
    """(row label, column, entry) of every cell that carries a verdict between methods."""
    return [(lab, i, e) for lab, cells in t.rows for i, e in enumerate(cells)
            if e.parts and e.parts[0].test is not None]


def test_three_seeds_give_each_of_the_four_outcomes(tmp_path):
    x = _view(tmp_path, seeds=3)
    t = claims.claims_table(x)
    assert [lab for lab, _ in t.rows] == ROWS                   # the table's rows, in their order
    cell = {lab: [e.text() for e in cells] for lab, cells in t.rows}
    assert cell[ROWS[1]][0].startswith("yes (better: ")
    assert cell[ROWS[3]][0].startswith("no (worse: ")
    assert cell[ROWS[3]][1].startswith("cannot tell (cannot tell: ")
    assert cell[ROWS[4]][0].startswith("yes (equivalent within 3 points: 85.0 vs 85.0, +0.0 [+0.0, +0.0]")
    assert cell[ROWS[1]][0] in t.csv() and cell[ROWS[3]][1] in t.markdown()   # every rendering says the same
    for lab, i, e in _verdict_cells(t):
        txt, d = e.text(), e.parts[0]
        assert " rows of the " in txt and " × 3 seeds; by seed " in txt and "two networks" not in txt
        assert "Holm" in txt and ("p = " in txt or "p < " in txt) and "within ±3: " in txt
        assert d.test["scope"] == "methods" and d.rows["n_seeds"] == 3 and d.rows["seeds"] == [0, 1, 2]
        assert d.verdict == stats.decide(d.lo, d.hi, d.test["p_adj"], d.test["p_tost_adj"])
        # the difference is of the two cells it names, on the same rows and seeds
        a, b = d.minus
        assert d.value == pytest.approx(a.value - b.value) and a.rows["rows_id"] == b.rows["rows_id"]
    wb = next(e for lab, i, e in _verdict_cells(t) if lab == ROWS[3] and i == 1).parts[0]
    assert wb.rows["per_seed"] == pytest.approx([0.2, -0.2, 0.0])        # the seeds disagree: no verdict
    assert wb.lo < -0.1 and wb.hi > 0.1


def test_the_p_values_are_adjusted_across_the_table(tmp_path):
    x = _view(tmp_path, seeds=3)
    t = claims.claims_table(x)
    parts = [e.parts[0] for _, _, e in _verdict_cells(t)]
    assert len(parts) >= 6
    raw, raw_tost = [p.p for p in parts], [p.test["p_tost"] for p in parts]
    assert [p.test["p_adj"] for p in parts] == pytest.approx(stats.holm(raw).tolist())
    assert [p.test["p_tost_adj"] for p in parts] == pytest.approx(stats.holm(raw_tost).tolist())
    assert all(p.test["adjustment"] == "holm" for p in parts)
    # report.json keeps the same numbers (the table's JSON is what the report writes)
    js = [c["parts"][0] for r in t.to_json()["rows"] for c in r["cells"]
          if c["parts"] and "test" in c["parts"][0]]
    assert [j["p"] for j in js] == raw and [j["test"]["p_adj"] for j in js] == [p.test["p_adj"] for p in parts]
    assert {j["verdict"] for j in js} >= {"better", "worse", "equivalent", "cannot tell"}
    assert any("adjusted across this table by Holm" in n for n in t.notes)


def test_one_seed_compares_two_networks(tmp_path):
    x = _view(tmp_path, seeds=1)
    t = claims.claims_table(x)
    cells = _verdict_cells(t)
    assert cells
    for lab, i, e in cells:
        txt = e.text()
        assert ", two networks (" in txt and f"× 1 seed: {stats.TWO_NETWORKS}" in txt
        assert e.parts[0].test["scope"] == "networks"
    fgsm = dict((lab, cells) for lab, cells in t.rows)[ROWS[1]][0].text()
    assert fgsm.startswith("yes, two networks (better: ")


def test_the_grid_sets_the_margin_and_the_adjustment(tmp_path):
    x = _view(tmp_path, seeds=3, stats_block=G.table("stats", equivalence_margin=0.005, adjust="bh"))
    assert x.plan.stats.equivalence_margin == 0.005 and x.plan.stats.adjust == "bh"
    t = claims.claims_table(x)
    clean = dict(t.rows)[ROWS[4]][0]
    assert clean.text().startswith("yes (equivalent within 0.5 points: ") and "BH " in clean.text()
    parts = [e.parts[0] for _, _, e in _verdict_cells(t)]
    assert [p.test["p_adj"] for p in parts] == pytest.approx(stats.benjamini_hochberg([p.p for p in parts]).tolist())
    assert all(p.test["margin"] == 0.005 for p in parts)
    assert any("Benjamini–Hochberg" in n for n in t.notes)


@pytest.mark.parametrize("block,msg", [
    ("equivalence_margin = 3", "equivalence_margin must be a fraction in (0, 1)"),
    ("equivalence_margin = \"3 points\"", "equivalence_margin must be a fraction"),
    ("adjust = \"bonferroni\"", "adjust = 'bonferroni': expected holm or bh"),
    ("margin = 0.03", "[stats] unknown key margin"),
])
def test_a_bad_stats_section_is_one_clear_error(tmp_path, block, msg):
    (tmp_path / "g.toml").write_text(GRID + f"\n[stats]\n{block}\n")
    with pytest.raises(RdmError) as e:
        P.Plan(tmp_path / "g.toml", "tables", ["lung"])
    assert msg in str(e.value) and "\n" not in str(e.value)
