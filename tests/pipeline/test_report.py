"""The report: the demo graph end to end on tiny phantoms, then its numbers against the metrics files.

One module-scoped run of the real Makefile graph (``python -m rdm.pipeline.grid makefile`` + ``make``)
on a tiny grid; the tests then check that every number report.json shows is the number in the
metrics file it names, that REPORT.md shows the same text, that a second ``make`` does no work,
that a partial run reports ``n/a`` instead of crashing, and that the real grid's graph keeps
the modalities apart. Plus unit tests of the matched-ε interpolation.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gridtext as G
from helpers import fabricate
from rdm.evaluation.stats import decide
from rdm.pipeline import config
from rdm.pipeline import plan as P
from rdm.pipeline import report as R
from rdm.pipeline.claims import same_rows
from rdm.pipeline.results import Ref

REPO = Path(__file__).resolve().parents[2]

TINY = G.grid(
    G.LUNG, G.FGSM, G.PGD, G.RDMAA,
    G.evaluate(["baseline", "rdmaa"], [0.005], [G.PGD_WHITEBOX]),
    G.paper_lung(rdmaa_clean=0.91, rdmaa_fgsm=0.88, rdmaa_pgd=0.83, advtrain_fgsm=0.86, advtrain_pgd=0.80,
                 prf_clean=[0.83, 0.86, 0.84], prf_pgd=[0.50, 0.49, 0.38], prf_fgsm=[0.38, 0.29, 0.29],
                 rdmaa_prf_clean=[0.85, 0.82, 0.84], rdmaa_prf_pgd=[0.72, 0.79, 0.74],
                 rdmaa_prf_fgsm=[0.80, 0.77, 0.78]),
)


def _make_vars(d: Path) -> list[str]:
    return [f"VENV={sys.prefix}", f"STAMP={d / 'stamp'}", "MODE=demo", f"GRID={d / 'tiny.toml'}",
            f"GRID_MK={d / 'grid.mk'}", f"OUT={d / 'work'}", f"RESULTS={d / 'results'}", "DEMO_N=60",
            "SUBSET_N=20", "TRAIN_FLAGS=--epochs 1", "DEVICE=cpu", "SEED=0", "SEEDS=1"]   # grid.mk: 1 seed


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RDM_THREADS": "1"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    d = tmp_path_factory.mktemp("graph")
    (d / "tiny.toml").write_text(TINY)
    (d / "stamp").touch()   # the venv is installed already: no `make install` step
    with open(d / "grid.mk", "w") as f:
        subprocess.run([sys.executable, "-m", "rdm.pipeline.grid", "makefile", "--mode", "demo", "--grid", str(d / "tiny.toml")],
                       stdout=f, check=True, cwd=REPO)
    r = subprocess.run(["make", "-j2", "-f", str(REPO / "Makefile"), *_make_vars(d), "report"], cwd=REPO,
                       capture_output=True, text=True, timeout=900, env=_env())
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    return d


def _parts(cell_json):
    for p in cell_json["parts"]:
        yield p


_DOCS: dict = {}


def _doc(path: Path) -> dict:
    """A metrics file, parsed once while it is unchanged (a report names each file many times)."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
    if key not in _DOCS:
        _DOCS[key] = json.loads(path.read_text())
    return _DOCS[key]


def _file_metric(file: str, index: int, metric: str, work: Path | None = None) -> float:
    """``metric`` of result ``index`` of a metrics file (report.json names it relative to the work folder)."""
    m = _doc((work or Path("/")) / file)["results"][index]["metrics"]
    if metric.startswith("recall:"):
        return m["per_class"][metric[7:]]["recall"]
    return m[metric] if metric in m else m["adversarial"][metric]


def _check_part(p: dict, work: Path | None = None) -> None:
    """A shown number is its metrics file's number (or the mean over its seeds' files), with its
    interval; a difference is of two numbers on the SAME rows and seeds."""
    if p.get("source") == "metrics":
        want = _file_metric(p["file"], p["index"], p["metric"], work)
        assert p["value"] == want, p
        assert p["text"] == f"{100 * want:.1f}" + (f" ± {50 * (p['hi'] - p['lo']):.1f}" if "lo" in p else ""), p
        if "lo" in p:
            assert p["lo"] <= p["value"] <= p["hi"], p
    elif p.get("source") == "per-row":
        rows = p["rows"]
        assert rows["n_seeds"] == len(rows["files"]) and 0 <= p["value"] <= 1, p
        if not rows["restricted"] and p["metric"] in ("accuracy", "balanced_accuracy"):
            want = np.mean([_file_metric(f["file"], f["index"], p["metric"], work) for f in rows["files"]])
            assert p["value"] == pytest.approx(want, abs=1e-12), p
    elif p.get("source") == "difference":
        a, b = p["of"]
        _check_part(a, work)
        _check_part(b, work)
        assert a["rows"]["rows_id"] == b["rows"]["rows_id"] == p["rows"]["rows_id"], p   # the same rows
        assert a["rows"]["seeds"] == b["rows"]["seeds"] and a["metric"] == b["metric"], p
        assert p["value"] == pytest.approx(a["value"] - b["value"], abs=1e-12)
        assert p["text"].startswith(f"{100 * (a['value'] - b['value']) + 0.0:+.1f} [".replace("-0.0 [", "+0.0 ["))
        assert p["verdict"] in ("better", "worse", "within noise", "equivalent", "cannot tell") and 0 < p["p"] <= 1
        if "test" in p:     # a verdict between methods (claims): decided on the adjusted p, never below the raw
            t = p["test"]
            assert t["p_adj"] >= p["p"] and t["p_tost_adj"] >= t["p_tost"], p
            assert p["verdict"] == decide(p["lo"], p["hi"], t["p_adj"], t["p_tost_adj"]), p
            assert t["scope"] == ("methods" if p["rows"]["n_seeds"] >= 3 else "networks"), p


def _check_report(res: Path, work: Path) -> int:
    """Every number report.json (as written, paths relative to ``work``) shows is its file's number."""
    rep = json.loads((res / "report.json").read_text())
    md = (res / "REPORT.md").read_text()
    checked = 0
    for name, t in rep["tables"].items():
        assert (res / "tables" / f"{name}.csv").stat().st_size > 0
        assert (res / "tables" / f"{name}.tex").read_text().startswith("%")
        for row in t["rows"]:
            texts = [c["text"] for c in row["cells"]]
            assert all(texts), f"blank cell in {name}: {row['label']}"
            # the same row, cell for cell, is in REPORT.md
            assert "| " + " | ".join([row["label"], *texts]) + " |" in md, (name, row["label"])
            for c in row["cells"]:
                for p in _parts(c):
                    _check_part(p, work)
                    checked += p.get("source") in ("metrics", "per-row", "difference")
    return checked


@pytest.mark.slow
def test_every_number_comes_from_its_metrics_file(built):
    assert _check_report(built / "results", built / "work") > 100


@pytest.mark.slow
def test_cells_mean_what_their_headers_say(built):
    """Independent of report.json's bookkeeping: read chosen metrics files and find them in the table."""
    work, rep = built / "work" / "lung" / "s0", json.loads((built / "results" / "report.json").read_text())
    t = rep["tables"]["table-III-accuracy-lung"]
    col = {c: i - 1 for i, c in enumerate(t["columns"])}
    rows = {r["label"]: [c["text"] for c in r["cells"]] for r in t["rows"]}

    def txt(m):      # accuracy ± CI / balanced accuracy ± CI (one seed: a bootstrap over rows)
        return f"{100 * m['accuracy']:.1f} ± [0-9.]+ / {100 * m['balanced_accuracy']:.1f} ± [0-9.]+"

    clean = json.loads((work / "metrics" / "baseline" / "clean.json").read_text())["results"][0]["metrics"]
    assert re.fullmatch(txt(clean), rows["No attack"][col["No defence"]])
    tr = json.loads((work / "metrics" / "rdmaa" / "transfer.json").read_text())["results"]
    fg = next(r for r in tr if Path(r["set"]).name == "test-fgsm-0.005.h5")
    assert fg["protocol"] == "transfer"
    assert re.fullmatch(txt(fg["metrics"]), rows["FGSM ε=.005"][col["RDMAA transfer"]])
    wb = json.loads((work / "metrics" / "rdmaa" / "wb-pgd.json").read_text())["results"]
    pg = next(r for r in wb if r.get("attack") and math.isclose(r["attack"]["eps"], 0.005))
    assert pg["protocol"] == "white-box"
    assert re.fullmatch(txt(pg["metrics"]), rows["PGD ε=.005, α=.002, 3 steps"][col["RDMAA white-box"]])
    assert rows["FGSM ε=.005"][col["paper"]] == "35"
    assert rows["Majority-class rate (test set)"][col["No defence"]] == f"{100 * clean['majority_rate']:.1f}"
    # enhancement = RDMAA − baseline under the same transfer set
    base = json.loads((work / "metrics" / "baseline" / "transfer.json").read_text())["results"]
    bfg = next(r for r in base if Path(r["set"]).name == "test-fgsm-0.005.h5")
    enh = fg["metrics"]["accuracy"] - bfg["metrics"]["accuracy"]
    assert rows["FGSM ε=.005"][col["Enhancement transfer"]].startswith(f"{100 * enh:+.1f} [")
    # the subset size is stated
    assert "(n = 12)" in (built / "results" / "REPORT.md").read_text()


@pytest.mark.slow
def test_full_run_has_no_gaps_and_all_figures(built):
    res = built / "results"
    rep = json.loads((res / "report.json").read_text())
    assert rep["missing"] == []
    md = (res / "REPORT.md").read_text()
    assert "| n/a" not in md and "n = n/a" not in md
    for stem in ("fig3-4-examples-lung", "fig9-accuracy-vs-eps-lung", "fig10-confusion-lung"):
        for ext in ("png", "pdf"):
            assert (res / "figures" / f"{stem}.{ext}").stat().st_size > 1000
    m = rep["modalities"]["lung"]
    assert m["data"]["test"]["n"] == 12 and m["data"]["test-sub"]["n"] == 12
    assert set(m["matched"]) >= {"fgsm", "pgd"}
    assert rep["timings"]["total_s"] > 0 and "lung" in rep["timings"]["per_modality"]
    for section in ("## What the numbers say", "## The ε scale", "Gradient-masking check", "## Data used and wall time"):
        assert section in md


@pytest.mark.slow
def test_second_make_does_no_work(built):
    vars_ = _make_vars(built)
    log = built / "work" / "timings.jsonl"
    before = log.read_text()
    r = subprocess.run(["make", "-f", str(REPO / "Makefile"), *vars_, "report"], cwd=REPO, env=_env(),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert log.read_text() == before          # only the content stamps ran, and rewrote nothing
    assert "rdm-" not in r.stdout and "rdm.pipeline.grid timed" not in r.stdout, r.stdout[-2000:]


@pytest.mark.slow
def test_partial_run_prints_na_and_lists_the_file(built, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(built / "work", work)
    gone = work / "lung" / "s0" / "metrics" / "rdmaa" / "transfer.json"
    gone.unlink()
    rep = R.build(built / "tiny.toml", work, tmp_path / "results", "demo", figures=True)
    rel = gone.relative_to(work).as_posix()
    assert rel in rep["missing"]
    md = (tmp_path / "results" / "REPORT.md").read_text()
    assert "n/a" in md and rel in md.split("## Missing files")[1]
    rows = {r["label"]: [c["text"] for c in r["cells"]] for r in rep["tables"]["table-III-accuracy-lung"]["rows"]}
    assert "n/a" in rows["FGSM ε=.005"]
    assert all(all(t for t in cells) for cells in rows.values())


def test_report_cli_fails_in_one_line_without_outputs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rdm.report", "--work", str(tmp_path / "none"),
                        "--results", str(tmp_path / "res")], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the full grid, fabricated
@pytest.fixture(scope="module")
def fabricated(tmp_path_factory):
    d = tmp_path_factory.mktemp("fab")
    fabricate(d / "work", P.Plan(config.DEFAULT_GRID, "tables"))
    rep = R.build(config.DEFAULT_GRID, d / "work", d / "results", "tables", figures=False)
    return d, rep


def test_full_grid_report_every_number_from_its_file(fabricated):
    d, rep = fabricated
    assert rep["missing"] == [] and rep["problems"] == []
    assert _check_report(d / "results", d / "work") > 1000
    md = (d / "results" / "REPORT.md").read_text()
    assert "| n/a" not in md
    for no, m in (("III", "lung"), ("IV", "leukemia"), ("V", "brain"), ("VI", "lung"), ("XI", "brain")):
        assert f"Table {no} ({m})" in md
    # the heavy white-box attacks run at ε=.005 only: no row for .002
    rows = [r["label"] for r in rep["tables"]["table-III-accuracy-lung"]["rows"]]
    assert any(l.startswith("PGD ε=.005, 50 steps ×5 restarts") for l in rows)
    assert not any(l.startswith("PGD ε=.002, 50 steps") for l in rows)
    assert rep["modalities"]["lung"]["subset_n"] == 40 and "n = 40" in md
    # the sweep's clean row is on the rows of its column: the subset white-box, the whole test set transfer
    t = rep["tables"]["sweep-fgsm-lung"]
    clean = next(r for r in t["rows"] if r["label"] == "0 (clean)")
    for col, cell in zip(t["columns"][1:], clean["cells"]):
        doc = json.loads(Path(cell["parts"][0]["file"]).read_text())
        assert Path(doc["results"][cell["parts"][0]["index"]]["set"]).name == \
            ("test.h5" if col.endswith("transfer") else "test-sub.h5"), col
    # wall time: the failed run is not counted, each stage once
    assert rep["timings"]["per_modality"]["lung"]["train"] == 60.0
    assert rep["timings"]["per_modality"]["lung"]["eval"] == 9.5


def test_what_the_numbers_say_is_one_line_per_claim_from_the_metrics_files(fabricated):
    """The short list at the top: one line per claim, each difference's verdict mark, numbers,
    interval and rows × seeds in its line, every number traced to its metrics files."""
    d, rep = fabricated
    md = (d / "results" / "REPORT.md").read_text()
    top = md.split("## What the numbers say")[1].split("\n## ")[0]
    mark = {"better": "↑", "worse": "↓", "within noise": "≈"}
    for m, mod in rep["modalities"].items():
        items = mod["summary"]
        claims = [i["claim"] for i in items]
        assert claims[:6] == ["Clean", "Transfer", "White-box standard suite", "Seed control",
                              "Best adversarial training", "Gradient masking"], m
        # then the controls' one-liners (rdm.pipeline.controls.summary_items): ε in units is always there
        assert claims[-1] == "ε" and set(claims[6:]) <= {"Ablations", "Training budgets", "Data", "ε"}, m
        assert sum(len(i["parts"]) for i in items) >= 8
        for it in items:
            assert f"- {it['text']}" in top and "\n" not in it["text"]
            for p in it["parts"]:
                _check_part(p)
                if p.get("source") == "difference":
                    a, b = p["of"]
                    seeds = p["rows"]["n_seeds"]
                    said = f"{mark[p['verdict']]} {a['text']} vs {b['text']}, {p['text'][:-2]}"
                    assert said in it["text"] and f" × {seeds} seed" in it["text"], (said, it["text"])
                    rest = it["text"].split(said, 1)[1]        # lung: the nodule recall beside, then the rows
                    recall = r"; nodule recall [\d.]+ vs [\d.]+" if m == "lung" else ""
                    assert re.match(recall + rf" \({p['rows']['n_rows']} rows", rest), rest
        assert "RDMAA (a, b, c" in items[5]["text"]                  # the designed masking model


def test_masking_checks_follow_the_numbers(fabricated):
    d, rep = fabricated
    flags = rep["modalities"]["lung"]["masking"]
    rd = [f for f in flags if f["model"] == "rdmaa" and f["check"] == "stronger-attack"]
    assert rd and any("RISES from 20.0 %" in f["text"] for f in rd)
    assert not [f for f in flags if f["model"] == "advtrain-pgd"]
    md = (d / "results" / "REPORT.md").read_text()
    assert "White-box accuracy RISES from 20.0 %" in md.split("Gradient-masking check, lung")[1]
    # PGD-3 on the whole test set (rdmaa: 20 %) is never compared with the subset cells
    assert not [f for f in rd if "3 steps" in f["text"]]


def test_comparisons_only_on_the_same_rows():
    def ref(src, n, acc):
        return Ref("f.json", 0, {"set": src, "metrics": {"accuracy": acc, "n": n}})

    full, sub = ref("/w/test.h5", 1622, 0.83), ref("/w/test-sub.h5", 100, 0.89)
    adv = Ref("g.json", 0, {"set": "/w/adv/test-fgsm-0.005.h5", "source": "/w/test.h5",
                              "metrics": {"accuracy": 0.9, "n": 1622}})
    assert same_rows(full, adv) and not same_rows(full, sub) and not same_rows(adv, sub)


def test_modality_not_run_is_said_once(fabricated, tmp_path):
    d, _ = fabricated
    work = tmp_path / "work"
    shutil.copytree(d / "work", work)
    shutil.rmtree(work / "brain")
    rep = R.build(config.DEFAULT_GRID, work, tmp_path / "results", "tables", figures=False)
    assert "brain" not in rep["modalities"] and rep["missing"] == []
    assert "not run: brain" in (tmp_path / "results" / "REPORT.md").read_text()


# --------------------------------------------------------------------------- the plan is the one source
def test_renamed_outputs_the_report_follows(tmp_path, monkeypatch):
    """Rename the metrics files and the adversarial sets in the plan (its path templates) and
    nothing else: make's rules, the files written and the report all follow; no n/a."""
    monkeypatch.setitem(P.PATHS, "metrics", "{m}/numbers/{model}--{job}.s{seed}.json")
    monkeypatch.setitem(P.PATHS, "adv", "{m}/crafted/{attack}@{eps}.{split}.s{seed}.h5")
    plan = P.Plan(config.DEFAULT_GRID, "tables", ["lung"])
    work = tmp_path / "work"
    fabricate(work, plan)
    assert not (work / "lung" / "s0" / "metrics").exists() and (work / "lung" / "numbers" / "rdmaa--transfer.s0.json").exists()
    from rdm.pipeline import render

    mk = render.makefile(plan)
    assert "$(OUT)/lung/numbers/rdmaa--transfer.s0.json: $(OUT)/lung/s0/models/rdmaa.ckpt " \
           "$(OUT)/lung/crafted/fgsm@0.002.test.s0.h5" in mk
    assert "'$(OUT)/lung/crafted/fgsm@{eps}.test.s0.h5'" in mk and "/metrics/" not in mk
    rep = R.build(config.DEFAULT_GRID, work, tmp_path / "results", "tables", figures=False)
    assert rep["missing"] == [] and rep["problems"] == []
    md = (tmp_path / "results" / "REPORT.md").read_text()
    assert "| n/a" not in md and "/numbers/" in json.dumps(rep["tables"]["table-III-accuracy-lung"])
    assert _check_report(tmp_path / "results", work) > 500
    assert P.parse_path("lung/crafted/pgd-a02@0.005.test.s2.h5") == \
        ("adv", {"m": "lung", "attack": "pgd-a02", "eps": 0.005, "split": "test", "seed": 2})


TOY_GRID = G.grid(
    "attacks = []\n", G.LUNG, G.BASELINE,
    G.table("evaluate", models=["baseline"], paper_eps=[0.05],
            whitebox=[{"name": "shift", "attack": "toy-shift", "direction": -1, "eps": [0.05, 0.1]}], sweep_eps=[]),
)


def test_a_toy_attack_in_one_class_runs_from_the_grid_and_the_report_labels_it(tmp_path, phantom_set):
    """One registered class is the whole attack: the grid names it with its own hyper-parameter,
    the plan spells its flags, rdm-eval runs it, the report labels it with its numbers."""
    from typer.testing import CliRunner

    from helpers import make_ckpt
    from rdm.attacks import registry as AR
    from rdm.attacks import functions as A
    from rdm.pipeline import render
    from rdm_tools.eval import app as eval_app

    class Shift(AR.Attack):
        """Moves every pixel by ε·direction: no gradient, only the registry's plumbing."""
        name, label, title = "toy-shift", "Shift", "toy: x + direction·ε"
        params = (AR.Param("direction", int, 1, "+1 or −1", choices=(-1, 1)),)

        def forward(self, model, x, y, row_ids):
            lo, hi = A.eps_bounds(x, self.eps)
            return A.project(x + self.direction * self.eps, lo, hi)

    AR.register(Shift)
    try:
        grid = tmp_path / "toy.toml"
        grid.write_text(TOY_GRID)
        plan = P.Plan(grid, "tables")
        step = next(s for s in plan.steps() if s.stage == "lung/s0/eval-baseline-wb-shift")
        work = tmp_path / "work"
        make_ckpt(work / P.model_path("lung", "baseline", 0), preset="lung", size=(16, 16))
        test = phantom_set("t.h5", preset="lung", n=24, shape=(1, 16, 16))
        shutil.copy(test, work / P.set_path("lung", "test"))
        args = render.argv(step.command, {"RDM": "", "OUT": str(work), "SEED": "0", "DEVICE": "cpu"})
        assert args[args.index("--attack"):args.index("-o")] == [
            "--attack", "toy-shift", "--attack-param", "direction=-1", "--eps", "0.05", "--eps", "0.1"]
        res = CliRunner().invoke(eval_app, args[1:])
        assert res.exit_code == 0, res.stderr
        rep = R.build(grid, work, tmp_path / "results", "tables", figures=False)
    finally:
        AR.unregister(Shift.name)
    rows = {r["label"]: r["cells"] for r in rep["tables"]["table-III-accuracy-lung"]["rows"]}
    shown = rows["Shift ε=.05, direction=-1 (white-box only)"][0]
    metrics = json.loads((work / step.outputs[0]).read_text())["results"]
    assert shown["parts"][0]["file"] == str(work / step.outputs[0])
    assert shown["parts"][0]["value"] == next(r for r in metrics if r.get("attack") and r["attack"]["eps"] == 0.05
                                              )["metrics"]["accuracy"]
    assert "Shift ε=.1, direction=-1 (white-box only)" in rows
    assert "| Shift ε=.05, direction=-1 (white-box only) | " in (tmp_path / "results" / "REPORT.md").read_text()


def test_two_seeds_every_cell_is_a_mean_over_seeds_with_a_t_interval(tmp_path):
    """SEEDS=2: each accuracy cell is the mean of its two seeds' files with a t interval, each
    difference pairs the same seeds and rows, and the footnotes say 2 seeds."""
    plan = P.Plan(config.DEFAULT_GRID, "tables", ["lung"], seeds=2)
    fabricate(tmp_path / "work", plan)
    rep = R.build(config.DEFAULT_GRID, tmp_path / "work", tmp_path / "results", "tables", figures=False, plan=plan)
    assert rep["missing"] == [] and _check_report(tmp_path / "results", tmp_path / "work") > 500
    t = rep["tables"]["table-III-accuracy-lung"]
    cell = next(r for r in t["rows"] if r["label"] == "FGSM ε=.005")["cells"][t["columns"].index("RDMAA transfer") - 1]
    acc = cell["parts"][0]
    assert acc["source"] == "per-row" and acc["rows"]["n_seeds"] == 2 and acc["rows"]["method"] == "seeds (t) and rows (bootstrap)"
    files = [f["file"] for f in acc["rows"]["files"]]
    assert len(set(files)) == 2 and all("/s0/" in f or "/s1/" in f for f in files)
    assert "× 2 seeds" in " ".join(t["notes"])


def test_paper_numbers_as_each_table_prints_them(fabricated):
    """Table IV prints enhancement 40 for PGD (its own 87 − 36 would be 51) and Table VII prints 47 % for
    the no-defence PGD cell that Table IV prints as 36 %: each table shows what it prints, with a note.
    Tables I and II carry the paper's columns."""
    _, rep = fabricated

    def row(name, label):
        t = rep["tables"][name]
        r = next(r for r in t["rows"] if r["label"] == label)
        return {c: cell["text"] for c, cell in zip(t["columns"][1:], r["cells"])}, t["notes"]

    t4, notes4 = row("table-IV-accuracy-leukemia", "PGD ε=.005, α=.002, 3 steps")
    assert (t4["paper"], t4["paper RDMAA"], t4["paper enh."], t4["paper diff."]) == ("36", "87", "40", "3")
    assert any("87 − 36 = 51" in n and "47" in n for n in notes4)
    t7, notes7 = row("table-VII-prf-leukemia", "PGD ε=.005, α=.002, 3 steps — paper")
    assert t7["No defence ACC"] == "47" and t7["RDMAA ACC"] == "87"
    assert any("Table IV prints 36 %, Table VII 47 %" in n for n in notes7)
    t3, _ = row("table-III-accuracy-lung", "FGSM ε=.005")
    assert (t3["paper enh."], t3["paper diff."]) == ("53", "3")
    t1, _ = row("data-lung", "train")
    assert t1["paper (Table I)"] == "5187"
    t2 = rep["tables"]["table-II-attacks"]
    assert any(r["cells"][-1]["text"].startswith("PGD, ε .002 and .005, α .002, 3 steps") for r in t2["rows"])


@pytest.mark.slow
def test_report_rebuilt_from_what_it_shipped_is_the_same_bytes(built, tmp_path):
    """results/ carries the grid, the timings and every cell's per-row results: `python -m rdm.report
    --from` on a copy of it, with the work folder out of reach, writes the same REPORT.md."""
    shipped = tmp_path / "shipped"
    shutil.copytree(built / "results", shipped)
    assert sorted(p.name for p in (shipped / "cells").iterdir()) == ["inputs.json.xz", "lung-s0.json.xz"]
    away = built / "work-away"
    (built / "work").rename(away)
    try:
        r = subprocess.run([sys.executable, "-m", "rdm.report", "--from", str(shipped)], cwd=tmp_path,
                           capture_output=True, text=True, env=_env())
    finally:
        away.rename(built / "work")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (shipped / "REPORT.md").read_bytes() == (built / "results" / "REPORT.md").read_bytes()
    assert (shipped / "SUMMARY.md").read_bytes() == (built / "results" / "SUMMARY.md").read_bytes()
    assert "## The answer" in (shipped / "SUMMARY.md").read_text()
