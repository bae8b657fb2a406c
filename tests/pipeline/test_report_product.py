"""The report as a product: its first page is the answer, results/ carries every per-row result it
read (relative paths only) so ``python -m rdm.report --from`` rebuilds REPORT.md byte for byte without
the work folder, and every model card validates against the schema with files that resolve."""

from __future__ import annotations

import functools
import json
import lzma
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers import fabricate
from rdm.pipeline import cards as C
from rdm.pipeline import config, records, summary
from rdm.pipeline import plan as P
from rdm.pipeline import report as R
from rdm.pipeline import shipped as S

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The real grid's lung plan, fabricated (every cell's metrics file), reported once."""
    d = tmp_path_factory.mktemp("product")
    plan = P.Plan(config.DEFAULT_GRID, "tables", ["lung"])
    fabricate(d / "work", plan)
    rep = R.build(config.DEFAULT_GRID, d / "work", d / "results", "tables", figures=False, plan=plan)
    return d, plan, rep


def _texts(folder: Path):
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            yield p, (lzma.decompress(p.read_bytes()).decode() if p.name.endswith(".xz") else
                      p.read_text(errors="replace"))


def test_rebuild_from_the_shipped_files_is_byte_for_byte_without_the_work_folder(run, tmp_path):
    d, _, rep = run
    shipped = tmp_path / "shipped"
    shutil.copytree(d / "results", shipped)
    away = d / "work-away"
    (d / "work").rename(away)                      # the rebuild must not need it
    try:
        r = subprocess.run([sys.executable, "-m", "rdm.report", "--from", str(shipped), "--results",
                            str(tmp_path / "again")], capture_output=True, text=True, cwd=tmp_path)
    finally:
        away.rename(d / "work")
    assert r.returncode == 0, r.stderr
    for name in ("REPORT.md", "SUMMARY.md"):
        assert (tmp_path / "again" / name).read_bytes() == (d / "results" / name).read_bytes(), name
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    first = json.loads((d / "results" / "report.json").read_text())
    assert again["tables"] == first["tables"] and again["answer"] == first["answer"]
    for card in (d / "results" / "models").glob("*.json"):
        assert (tmp_path / "again" / "models" / card.name).read_text() == card.read_text(), card.name
    # the new folder carries what it was built from: its cards' files resolve there
    assert _check_card(tmp_path / "again" / "models" / "lung-rdmaa.json", tmp_path / "again") > 10
    assert set(rep["shipped"]) == {"cells/lung-s0.json.xz", S.INPUTS, "grid.toml", "timings.jsonl"}


def test_results_name_no_absolute_path(run):
    d, _, _ = run
    for p, text in _texts(d / "results"):
        assert str(d) not in text and tempfile.gettempdir() + "/" not in text, p
    rep = json.loads((d / "results" / "report.json").read_text())
    files = re.findall(r'"file": "([^"]*)"', json.dumps(rep, indent=0))
    assert files and not [f for f in files if f.startswith("/")]
    # every metrics file report.json names is a member of the shipped cells, by the same path
    cells = json.loads(lzma.decompress((d / "results" / "cells" / "lung-s0.json.xz").read_bytes()))
    assert {f for f in files if f.endswith(".json") and "/metrics/" in f} <= set(cells)


def test_the_answer_is_the_first_page_one_line_per_claim(run):
    d, plan, rep = run
    md = (d / "results" / "REPORT.md").read_text()
    first = (d / "results" / "SUMMARY.md").read_text()
    assert md.startswith(first) and first.splitlines()[2] == "## The answer"
    assert md.index("## The answer") < md.index("## What the numbers say")
    claims = rep["answer"]["lung"]["claims"]
    assert [c["claim"].split(" under ")[0] for c in claims][:3] == [
        "RDMAA keeps the clean accuracy of the undefended CNN", "RDMAA is more accurate than no defence",
        "RDMAA is more accurate than no defence"]
    assert any("standard white-box suite" in c["claim"] for c in claims)
    for c in claims:
        assert c["text"] in first and c["text"].count("\n") == 0
        v = c["verdict"]
        assert v == "holds" or v.startswith("does not hold") or v.startswith("cannot tell at "), v
        assert f"{c['n_rows']} rows" in c["text"] and f"× {c['n_seeds']} seed" in c["text"]
        # the verdict agrees with the interval of the difference
        if v == "holds" and "keeps" not in c["claim"]:
            assert c["lo"] > 0, c
        if v.startswith("does not hold") and "level" not in v:
            assert c["hi"] < 0, c
        # A and B are the metrics files' numbers (one seed: the file's own number, in the deciding metric)
        assert c["metric"] == "balanced_accuracy" and c["a"] - c["b"] == pytest.approx(c["diff"], abs=1e-9)
    clean = claims[0]
    work = d / "work"
    ra = json.loads((work / "lung/s0/metrics/rdmaa/clean.json").read_text())["results"][0]["metrics"]
    rb = json.loads((work / "lung/s0/metrics/baseline/clean.json").read_text())["results"][0]["metrics"]
    assert (clean["a"], clean["b"]) == pytest.approx((ra["balanced_accuracy"], rb["balanced_accuracy"]))
    assert "Beyond the paper:" in first and "**Seed control**" in first and "**Data** (leakage audit)" in first
    assert "matched" in first


def test_verdict_words_follow_the_verdict_object():
    class Rows:
        n_rows, n_seeds = 1622, 3

    class Fake:
        def __init__(self, verdict, outcome=None):
            self.verdict, self.a = verdict, Rows()
            if outcome is not None:
                self.outcome = outcome

    assert summary.verdict_words(Fake("better"), keeps=False) == "holds"
    assert summary.verdict_words(Fake("worse"), keeps=True) == "does not hold"
    assert summary.verdict_words(Fake("within noise"), keeps=False) == "cannot tell at 1622 rows and 3 seeds"
    assert summary.verdict_words(Fake("within noise", "equivalent"), keeps=True) == "holds"
    assert summary.verdict_words(Fake("within noise", "equivalent"), keeps=False).startswith("does not hold")


def test_summary_figure_every_model_with_its_clean_accuracy(run, tmp_path):
    d, plan, _ = run
    from rdm.pipeline.results import Results, View

    facts = S.collect(plan, d / "work")
    x = View(plan, Results(d / "work"), "lung", facts["lung"])
    pts = summary.aa_points(x)
    models = {p["model"] for p in pts}
    assert models == set(plan.eval_models)
    labels = {p["label"] for p in pts}
    assert "ε=.005" in labels and any(lab.startswith("matched ε") for lab in labels)
    got = [p for p in pts if p["value"] is not None]
    assert len(got) == len(pts)
    for p in got:
        assert p["metric"] == "balanced_accuracy" and p["lo"] <= p["value"] <= p["hi"] and -1e-9 <= p["clean"] <= 1 + 1e-9
        assert p["n_seeds"] == 1 and p["n_rows"] > 0
    pytest.importorskip("matplotlib")
    from rdm.pipeline.figures import fig_aa

    out = fig_aa({"lung": pts}, tmp_path)
    assert {Path(p).suffix for p in out} == {".png", ".pdf"} and all(Path(p).stat().st_size > 1000 for p in out)
    assert fig_aa({"lung": [dict(p, value=None) for p in pts]}, tmp_path / "none") == []


# --------------------------------------------------------------------------- model cards
@functools.cache
def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(C.SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _nulls_have_reasons(obj, where="card"):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if v is None:
                assert isinstance(obj.get(f"{k}_reason"), str) and obj[f"{k}_reason"], f"{where}.{k}"
            _nulls_have_reasons(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            assert v is not None, f"{where}[{i}]"
            _nulls_have_reasons(v, f"{where}[{i}]")


_CELLS: dict = {}


def _shipped_cells(f: Path) -> dict:
    """A shipped cells file, decompressed and parsed once while it is unchanged (every per-seed entry
    of every card names one)."""
    st = f.stat()
    key = (str(f), st.st_mtime_ns, st.st_size, st.st_ino)
    if key not in _CELLS:
        _CELLS[key] = json.loads(lzma.decompress(f.read_bytes()))
    return _CELLS[key]


def _check_card(path: Path, root: Path) -> int:
    """Schema, nulls with reasons, and every ``file`` inside ``root``, its member holding the number."""
    card = json.loads(path.read_text())
    errors = sorted(_validator().iter_errors(card), key=str)
    assert not errors, (path.name, [f"{list(e.path)}: {e.message}" for e in errors[:5]])
    _nulls_have_reasons(card)
    checked = 0
    for r in [card["clean"], *card["robust"]]:
        for ps in r.get("per_seed", []):
            f = (path.parent / ps["file"]).resolve()
            assert f.is_file() and f.is_relative_to(root.resolve()), ps["file"]
            docs = _shipped_cells(f)
            res = docs[ps["member"]]["results"][ps["index"]]
            assert res["metrics"]["accuracy"] == ps["accuracy"]
            checked += 1
    return checked


def test_every_card_the_grid_writes_validates_and_its_files_resolve(run):
    d, plan, rep = run
    paths = sorted((d / "results" / "models").glob("*.json"))
    assert {p.name for p in paths} == {f"lung-{m}.json" for m in C.models_of(_view(d, plan))}
    assert sum(_check_card(p, d / "results") for p in paths) > 100
    rdmaa = json.loads((d / "results" / "models" / "lung-rdmaa.json").read_text())
    h = rdmaa["headline"]
    assert h["paper_eps"] == 0.005 and 0 <= h["aa_acc"] <= 1 and 0 <= h["clean_acc"] <= 1
    assert h["aa_acc_eps"] == {"eps": 0.005, "eps_grey_levels": 1.275, "eps_hu": 7.0}
    assert h["aa_acc_matched_eps"] is not None and h["aa_acc_matched_eps_eps"]["eps"] > 0.005
    aa = next(r for r in rdmaa["robust"] if r["kind"] == "aa" and r["eps"]["eps"] == 0.005)
    assert aa["accuracy"] == h["aa_acc"] and aa["accuracy_ci95"][0] <= aa["accuracy"] <= aa["accuracy_ci95"][1]


def _view(d, plan):
    from rdm.pipeline.results import Results, View

    return View(plan, Results(d / "work"), "lung", S.collect(plan, d / "work")["lung"])


def test_a_card_without_a_number_says_why_and_still_validates(run, tmp_path):
    d, plan, _ = run
    work = tmp_path / "work"
    shutil.copytree(d / "work", work)
    (work / "lung/s0/metrics/rdmaa/wb-aa.json").unlink()
    R.build(config.DEFAULT_GRID, work, tmp_path / "results", "tables", figures=False, plan=plan)
    card = tmp_path / "results" / "models" / "lung-rdmaa.json"
    _check_card(card, tmp_path / "results")
    h = json.loads(card.read_text())["headline"]
    assert h["aa_acc"] is None and h["aa_acc_reason"] == "its metrics file is missing"


def test_cards_shipped_in_the_repository_validate():
    """Every card under the repository's results/ (what `make tables` wrote) against the schema."""
    paths = sorted((REPO / "results" / "models").glob("*.json"))
    for p in paths:
        _check_card(p, REPO)
    if not paths:
        assert not (REPO / "results" / "REPORT.md").exists(), "a report without its model cards"


# --------------------------------------------------------------------------- where each model ran
def test_models_table_shows_the_training_device_and_warns_when_they_differ():
    meta = {"kind": "cnn", "recipe": {"name": "baseline"}, "history": [{}], "epochs_run": 1, "best_epoch": 1,
            "val": {"accuracy": 0.9}, "wall_time_s": 3.0}
    gpu = dict(meta, environment={"device": "cuda:0", "device_name": "NVIDIA H100", "torch": "2.13.0",
                                  "precision": "fp32"})
    cpu = dict(meta, environment={"device": "cpu", "device_name": "AMD EPYC", "torch": "2.13.0", "precision": "fp32"})
    t, info = records.models_table_of("lung", {"baseline@0": gpu, "rdmaa@0": cpu, "control@0": meta},
                                      ["baseline", "rdmaa", "control"], [0])
    dev = {lab: cells[-1].text() for lab, cells in t.rows}
    assert dev == {"baseline": "NVIDIA H100 (cuda:0)", "rdmaa": "AMD EPYC (cpu)", "control": "not recorded"}
    assert any("TRAINED ON DIFFERENT DEVICES" in n for n in t.notes)
    assert info["control"]["environment"] is None and "does not record" in info["control"]["environment_reason"]
    line = summary.devices_line(info)
    assert line and "NVIDIA H100: baseline" in line and "AMD EPYC: rdmaa" in line
    t2, info2 = records.models_table_of("lung", {"baseline@0": cpu, "rdmaa@0": cpu}, ["baseline", "rdmaa"], [0])
    assert not any("DIFFERENT DEVICES" in n for n in t2.notes) and summary.devices_line(info2) is None


# --------------------------------------------------------------------------- the command
def test_report_command_from_needs_a_shipped_folder(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rdm.report", "--from", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "rdm.report"], capture_output=True, text=True)
    assert r.returncode == 2 and "--from" in r.stderr


def test_a_second_report_into_the_same_folder_leaves_nothing_of_the_first(run, tmp_path):
    d, plan, _ = run
    res = tmp_path / "results"
    shutil.copytree(d / "results", res)
    for stale in ("tables/old-table.csv", "models/lung-gone.json", "cells/brain-s0.json.xz"):
        (res / stale).write_text("from another run")
    rep = R.build(config.DEFAULT_GRID, d / "work", res, "tables", figures=False, plan=plan)
    for stale in ("tables/old-table.csv", "models/lung-gone.json", "cells/brain-s0.json.xz"):
        assert not (res / stale).exists(), stale
    assert len(list((res / "models").glob("*.json"))) == len(rep["cards"])
    assert len(list((res / "tables").glob("*.csv"))) == len(rep["tables"])
