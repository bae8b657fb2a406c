"""The report builds from a core-tier run at three seeds (fabricated numbers, no model runs): every cell
of the core plan is read, none is missing, and the matched-ε models and the purifier's standard suite
are in its tables."""

from __future__ import annotations

import pytest
from helpers import fabricate

from rdm.pipeline import config
from rdm.pipeline import plan as P
from rdm.pipeline import report as R
from rdm.pipeline.labels import model_label


@pytest.fixture(scope="module")
def core_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("core")
    plan = P.Plan(config.DEFAULT_GRID, "tables", ["leukemia"], seeds=3, tier="core")
    fabricate(d / "work", plan)
    rep = R.build(config.DEFAULT_GRID, d / "work", d / "results", "tables", figures=False, plan=plan)
    return d, plan, rep


def test_the_core_report_reads_every_cell(core_report):
    d, plan, rep = core_report
    assert rep["missing"] == [] and rep["seeds"] == [0, 1, 2]
    md = (d / "results" / "REPORT.md").read_text()
    assert "| n/a" not in md
    for model in ("rdmaa-at-matched", "advtrain-online-at-matched"):
        assert model_label(model) in md
    # nothing of the full tier: no ablation, no noise model
    assert "RDMAA, frozen encoder" not in md and "Noise σ=.12" not in md


def test_the_core_report_has_the_purifiers_standard_suite(core_report):
    d, plan, rep = core_report
    mp = plan.modality("leukemia")
    for cell in (mp.matched("purified", "aa", "white-box"),
                 mp.whitebox("purified", next(w for w in plan.whitebox if w.kind == "aa"), 0.005)):
        assert [c.seed for c in mp.seeds_of(cell)] == [0, 1, 2]
        assert all((d / "work" / c.output).is_file() for c in mp.seeds_of(cell))


def test_the_core_report_rebuilds_from_what_it_shipped_and_the_cli_defaults_to_the_core(core_report, tmp_path,
                                                                                          monkeypatch):
    """The tier is shipped with the run, so ``--from`` rebuilds the core report byte for byte; and
    ``python -m rdm.report --work`` with no ``--tier`` reads a tables run as make's default tier (core),
    not the whole grid, whose cells this run never made."""
    import json
    import lzma

    d, plan, rep = core_report
    info = json.loads(lzma.decompress((d / "results" / "cells" / "inputs.json.xz").read_bytes()))
    assert info["tier"] == "core"
    monkeypatch.delenv("RDM_TIER", raising=False)
    want = (d / "results" / "REPORT.md").read_text()
    assert R.main(["--from", str(d / "results"), "--results", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "REPORT.md").read_text() == want
    assert R.main(["--grid", str(config.DEFAULT_GRID), "--work", str(d / "work"), "--results", str(tmp_path / "cli"),
                   "--seeds", "3", "--no-figures"]) == 0
    assert (tmp_path / "cli" / "REPORT.md").read_text().replace(str(tmp_path / "cli"), "R") == \
        want.replace(str(d / "results"), "R")
    assert R.main(["--grid", str(config.DEFAULT_GRID), "--work", str(d / "work"), "--results", str(tmp_path / "full"),
                   "--seeds", "3", "--no-figures", "--tier", "full"]) == 0
    assert "| n/a" in (tmp_path / "full" / "REPORT.md").read_text()


def test_like_is_compared_with_like_at_each_eps(core_report):
    """The best adversarial training of the paper's claims ranges over the models trained at the paper's
    ε; the models trained at the matched ε meet each other in a row of their own, at the matched ε only,
    and on the first page under the standard suite."""
    d, plan, rep = core_report
    assert plan.advtrain == ["advtrain-fgsm", "advtrain-pgd", "advtrain-online", "advtrain-trades", "advtrain-fast"]
    assert plan.matched_trained == ["rdmaa-at-matched", "advtrain-online-at-matched"]
    assert plan.trained_at_matched("dcae-at-matched") and not plan.trained_at_matched("rdmaa")
    md = (d / "results" / "REPORT.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    best = [r for r in rows if "than the best adversarial training" in r]
    assert best and not any("(matched ε)" in r or "matched-ε DCAE" in r for r in best)
    both = [r for r in rows if r.startswith("| … both trained at the matched ε: RDMAA (matched-ε DCAE)")]
    assert len(both) == 2                                  # FGSM and PGD
    for r in both:
        cells = [c.strip() for c in r.strip().strip("|").split("|")]
        assert cells[1:3] == ["—", "—"]                   # not at the paper's ε
        assert all("B = AdvTrain-online (matched ε)" in c and "× 3 seeds" in c for c in cells[3:5])
    first = (d / "results" / "SUMMARY.md").read_text()
    line = next(x for x in first.splitlines() if x.startswith("- Both sides trained at the matched ε"))
    assert "RDMAA (matched-ε DCAE) more accurate than AdvTrain-online (matched ε)" in line and "× 3 seeds" in line
