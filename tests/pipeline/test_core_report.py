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
