"""The controls in the grid and the report: the seed-control verdict, RDMAA's ablations,
equal training budgets, the leakage audit, brain both ways (per-modality prep options) and ε in
physical units. Everything on fabricated results (no model runs) except where noted."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

import gridtext as G
from helpers import fabricate, set_rows, write_audit
from rdm.data.checkpoint import save_checkpoint
from rdm.errors import RdmError
from rdm.models import build, cnn_arch
from rdm.pipeline import config, controls, records
from rdm.pipeline import plan as P
from rdm.pipeline import report as R
from rdm.pipeline.labels import eps_txt, eps_units, eps_values, parse_eps, units_note, units_of
from rdm.pipeline.render import makefile
from rdm.data.presets import load_preset

GRID = G.grid(
    G.LUNG,
    G.modality("brain-grouped", "brain", "brain-mri", paper="brain", prep={"group_similar": 0.05}),
    G.FGSM,
    G.attack("pgd", [0.002, 0.005], ["test"], alpha=0.002, steps=3),
    G.table("training", epochs=40, patience=6),
    G.BASELINE,
    G.model("control", "train-cnn", seed_offset=1000),
    G.model("dcae", "pretrain-dcae", adv=["fgsm"]),
    G.model("dcae-clean", "pretrain-dcae", adv=[]),
    G.model("rdmaa", "finetune", dcae="dcae", adv=[]),
    G.model("rdmaa-cleandcae", "finetune", dcae="dcae-clean"),
    G.model("scratch", "finetune", init="random"),
    G.model("rdmaa-frozen", "finetune", dcae="dcae", freeze_encoder=True, patience=3),
    G.model("purified", "purify", dcae="dcae", cnn="baseline"),
    G.evaluate(["baseline", "rdmaa", "purified"], [0.002, 0.005],
               [G.PGD_WHITEBOX, {"name": "apgd", "attack": "apgd", "steps": 10, "limit": True, "eps": [0.005]}],
               controls=["control"], ablations=["rdmaa-cleandcae", "scratch", "rdmaa-frozen"]),
    G.paper_lung(),
    G.table("paper.brain", clean=0.95, fgsm=0.70, pgd=0.77),
)

N = 100      # fabricated test rows (helpers.SIZES)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    p = tmp_path_factory.mktemp("grid") / "grid.toml"
    p.write_text(GRID)
    return p


def _words(step) -> str:
    from rdm.pipeline.render import bash_word

    return " ".join(bash_word(w) for w in step.command)


def _pattern(rate: float, seed: int) -> np.ndarray:
    """Exactly round(rate·N) right rows, at seeded random places."""
    c = np.zeros(N, dtype=bool)
    c[np.random.default_rng(seed).permutation(N)[:int(round(rate * N))]] = True
    return c


def _build(tmp_path: Path, grid: Path, designed: dict[str, np.ndarray], ablation: dict[str, np.ndarray] | None = None,
           seeds: int = 1):
    """Fabricate the grid's files, give the transfer cells (and ablation cells) designed rows, build the report."""
    plan = P.Plan(grid, "tables", ["lung"], seed=0, seeds=seeds)
    work = tmp_path / "work"
    fabricate(work, plan)
    mp = plan.modality("lung")
    classes = list(load_preset("lung").classes)
    conds = [(a, e) for a in plan.test_attacks for e in a.eps]
    for i, (a, e) in enumerate(conds):
        for model, right in designed.items():
            for k, c in enumerate(mp.seeds_of(mp.transfer(model, a, e))):
                # every seed after the first flips a few rows of the design: seeds differ, the design holds
                r = right.copy()
                if k:
                    r[np.random.default_rng(100 * k + i).integers(0, N, 3)] ^= True
                set_rows(work, c, r, classes, seed=i)
    for model, right in (ablation or {}).items():
        for cell in (mp.clean(model), *[mp.transfer(model, a, e) for a, e in conds],
                     mp.whitebox(model, plan.whitebox[0], 0.005)):
            for c in mp.seeds_of(cell):
                set_rows(work, c, right, classes)
    rep = R.build(grid, work, tmp_path / "results", "tables", figures=False, plan=plan)
    return rep, (tmp_path / "results" / "REPORT.md").read_text(), plan


# --------------------------------------------------------------------------- the seed control
@pytest.mark.parametrize("case,control_rate,answer", [
    ("the control explains the gain", 0.75, "within noise"),
    ("the control gains more", 0.95, "no"),
    ("RDMAA's gain is its own", 0.40, "yes"),
])
def test_seed_control_verdict_follows_the_designed_rows(tmp_path, grid, case, control_rate, answer):
    base, rdmaa = _pattern(0.40, 1), _pattern(0.75, 2)
    control = rdmaa.copy() if control_rate == 0.75 else _pattern(control_rate, 3)
    rep, md, _ = _build(tmp_path, grid, {"baseline": base, "rdmaa": rdmaa, "control": control})
    sc = rep["modalities"]["lung"]["seed_control"]
    assert len(sc) == 3                                     # FGSM .005, PGD .002, PGD .005
    assert {d["verdict"] for d in sc} == {answer}, case
    d = sc[0]["rdmaa_minus_control"]
    assert d["n_rows"] == N and d["n_seeds"] == 1
    assert d["diff"] == pytest.approx(np.mean(rdmaa) - np.mean(control))
    assert f"under transfer: **{answer}**" in md
    # the table shows the gains on the same rows; its numbers trace to the per-row files
    t = rep["tables"]["controls-seed-lung"]
    row = t["rows"][0]["cells"]
    gain_r = row[3]["parts"][0]
    assert gain_r["value"] == pytest.approx(np.mean(rdmaa) - np.mean(base))     # the designed rows, not the table
    assert row[1]["parts"][0]["value"] == pytest.approx(np.mean(rdmaa))
    assert row[0]["parts"][0]["file"].endswith("transfer.json")


def test_seed_control_pairs_every_seed_row_by_row(tmp_path, grid):
    base, rdmaa = _pattern(0.40, 1), _pattern(0.75, 2)
    rep, md, plan = _build(tmp_path, grid, {"baseline": base, "rdmaa": rdmaa, "control": _pattern(0.45, 3)}, seeds=2)
    sc = rep["modalities"]["lung"]["seed_control"]
    assert all(d["rdmaa_minus_control"]["n_seeds"] == 2 and d["verdict"] == "yes" for d in sc)
    # each seed's own difference, kept and printed beside the verdict (the rule needs every seed ahead)
    per = sc[0]["rdmaa_minus_control"]["per_seed"]
    assert len(per) == 2 and all(v > 0 for v in per)
    assert np.mean(per) == pytest.approx(sc[0]["rdmaa_minus_control"]["diff"])
    assert f"× 2 seeds; by seed {100 * per[0]:+.1f}, {100 * per[1]:+.1f}" in md
    # a seed on other rows is left out (rdm.pipeline.verdicts): the pair is made on the seeds both have
    mp = plan.modality("lung")
    a = plan.test_attacks[0]
    c = mp.seeds_of(mp.transfer("control", a, 0.005))[1]
    doc = json.loads((tmp_path / "work" / c.output).read_text())
    r = next(r for r in doc["results"] if Path(r["set"]).name.startswith("test-fgsm"))
    r["per_row"] = {k: v[:-1] for k, v in r["per_row"].items()}
    (tmp_path / "work" / c.output).write_text(json.dumps(doc))
    rep = R.build(plan.path, tmp_path / "work", tmp_path / "r2", "tables", figures=False, plan=plan)
    k = {d["attack"] + str(d["eps"]): d["rdmaa_minus_control"]["n_seeds"] for d in rep["modalities"]["lung"]["seed_control"]}
    assert k["fgsm0.005"] == 1 and k["pgd0.005"] == 2


def test_without_per_row_results_the_control_reads_na_not_a_verdict(tmp_path, grid):
    plan = P.Plan(grid, "tables", ["lung"])
    fabricate(tmp_path / "work", plan)
    for f in (tmp_path / "work").rglob("transfer.json"):       # results written before rdm-eval kept rows
        doc = json.loads(f.read_text())
        for r in doc["results"]:
            r.pop("per_row", None)
        f.write_text(json.dumps(doc))
    rep = R.build(grid, tmp_path / "work", tmp_path / "results", "tables", figures=False, plan=plan)
    assert {d["verdict"] for d in rep["modalities"]["lung"]["seed_control"]} == {"n/a (no per-row results)"}
    assert "under transfer: n/a (no per-row results)" in (tmp_path / "results" / "REPORT.md").read_text()


# --------------------------------------------------------------------------- ablations
def test_ablation_table_pairs_each_variant_with_rdmaa(tmp_path, grid):
    rdmaa = _pattern(0.75, 2)
    worse = _pattern(0.35, 4)
    rep, md, _ = _build(tmp_path, grid, {}, {"rdmaa": rdmaa, "scratch": worse, "rdmaa-frozen": rdmaa,
                                               "rdmaa-cleandcae": rdmaa})
    ab = rep["modalities"]["lung"]["ablations"]
    by = {(d["model"], d["family"]): d["verdict"] for d in ab}
    assert by[("scratch", "clean")] == by[("scratch", "whitebox")] == "variant worse"
    assert by[("rdmaa-frozen", "transfer")] == by[("rdmaa-cleandcae", "whitebox")] == "within noise"
    # clean, transfer FGSM .005 and PGD .005 (not .002), white-box PGD .005: four rows per variant
    assert sum(d["model"] == "scratch" for d in ab) == 4
    assert "## Ablations of RDMAA" in md and "(tables/ablations-lung.csv" not in md
    assert (tmp_path / "results" / "tables" / "ablations-lung.csv").read_text().count("\n") == 13
    assert (tmp_path / "results" / "tables" / "ablations-lung.tex").read_text().startswith("%")
    # one line per modality in "What the numbers say": each variant − RDMAA with its verdict mark
    line = next(it["text"] for it in rep["modalities"]["lung"]["summary"] if it["claim"] == "Ablations")
    d = next(d["variant_minus_rdmaa"] for d in ab if d["model"] == "scratch" and d["family"] == "clean")
    assert "no DCAE: random encoder" not in line and f"clean ↓ {100 * d['diff']:+.1f}" in line
    assert f"({N} rows × 1 seed)" in line and "- **Ablations**" in md


def test_ablations_and_controls_run_only_their_light_jobs(grid):
    plan = P.Plan(grid, "tables", ["lung"])
    jobs = {s.outputs[0].split("/metrics/")[1] for s in plan.steps() if s.kind == "eval"}
    for m in ("scratch", "rdmaa-frozen", "rdmaa-cleandcae"):
        assert {j.split("/", 1)[1] for j in jobs if j.startswith(m + "/")} == \
            {"clean.json", "transfer.json", "wb-pgd.json"}
    assert any(j.startswith("rdmaa/wb-apgd") for j in jobs)
    # the variants are trained as the grid says: dcae-clean on clean images only, scratch without a DCAE
    words = {s.stage.rsplit("/", 1)[1]: _words(s) for s in plan.steps() if s.kind == "train"}
    assert "--adv" not in words["dcae-clean"] and "adv/" not in words["dcae-clean"]
    assert "--dcae" in words["rdmaa-cleandcae"] and "dcae-clean.ckpt" in words["rdmaa-cleandcae"]
    assert "--init random" in words["scratch"] and "--dcae" not in words["scratch"]
    assert "--freeze-encoder" in words["rdmaa-frozen"]


# --------------------------------------------------------------------------- equal budgets
def test_one_stopping_rule_reaches_every_trained_model(grid):
    plan = P.Plan(grid, "tables", ["lung"])
    words = {s.stage.rsplit("/", 1)[1]: _words(s) for s in plan.steps() if s.kind == "train"}
    for name, w in words.items():
        if name == "purified":            # composes two trained models: no training, no rule
            assert "--patience" not in w and "--epochs" not in w
            continue
        assert "--epochs 40" in w, name
        assert ("--patience 3" if name == "rdmaa-frozen" else "--patience 6") in w, name
        # the demo's TRAIN_FLAGS come last, so its short epochs win
        assert w.index("--patience") < w.index("TRAIN_FLAGS"), name
    bad = GRID.replace("patience = 6", "patience = -1")
    with pytest.raises(RdmError, match=r"\[training\]: patience must be an integer ≥ 0"):
        config.Grid(tomllib.loads(bad) | {"_path": "g.toml"})


def _ckpt(path: Path, best: int, run: int, stopped: bool) -> None:
    p = load_preset("lung")
    arch = cnn_arch(p)
    torch.manual_seed(0)
    hist = [{"epoch": i + 1, "train": {"loss": 1.0}} for i in range(run)]
    save_checkpoint(path, build(arch), {"kind": "cnn", "arch": arch, "classes": list(p.classes),
                                        "input_shape": list(p.shape), "preset": p.as_dict(),
                                        "recipe": {"name": "baseline", "epochs": 40, "patience": 6}, "history": hist,
                                        "best_epoch": best,
                                        "epochs_run": run, "stopped_early": stopped,
                                        "val": {"accuracy": 0.9, "balanced_accuracy": 0.85}})


def test_models_table_flags_a_model_whose_best_epoch_is_its_last(tmp_path, grid):
    work = tmp_path / "work"
    paths = {n: work / P.model_path("lung", n, 0) for n in ("baseline", "advtrain-online", "rdmaa")}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    _ckpt(paths["baseline"], best=12, run=18, stopped=True)
    _ckpt(paths["advtrain-online"], best=8, run=8, stopped=False)     # hit the cap still improving
    _ckpt(paths["rdmaa"], best=40, run=40, stopped=False)
    t, info = records.models_table(work, "lung", ["baseline", "advtrain-online", "rdmaa"], [0])
    best = {lab: cells[3].text() for lab, cells in t.rows}
    assert best["baseline"] == "12"
    assert best["advtrain-online"] == "8 = last: NOT CONVERGED" and best["rdmaa"].endswith("NOT CONVERGED")
    assert info["baseline"]["converged"] is True and info["advtrain-online"]["converged"] is False
    assert any(n.startswith("NOT CONVERGED (advtrain-online, rdmaa)") for n in t.notes)
    # and the short list of "What the numbers say" names them
    x = R.View(P.Plan(grid, "tables", ["lung"]), R.Results(work), "lung")
    items = {it["claim"]: it["text"] for it in controls.summary_items(x, {}, info)}
    assert "1 of 3 trained models had their best validation epoch before their last" in items["Training budgets"]
    assert "at most 40 epochs, early stopping on validation, patience 6)" in items["Training budgets"]
    assert items["Training budgets"].endswith("NOT CONVERGED, see the models table): advtrain-online, rdmaa")
    assert items["ε"].endswith("the paper's ε .005 = 1.3/255 = 7 HU")


# --------------------------------------------------------------------------- the leakage audit
@pytest.mark.parametrize("knn,colour,says", [
    (0.98, 0.40, "1-NN on raw pixels BEATS the CNN"),
    (0.89, 0.40, "1-NN on raw pixels matches the CNN within noise"),
    (0.50, 0.40, "Both shortcut baselines are below the CNN beyond noise"),
])
def test_audit_section_reads_audit_json_beside_the_cnn(tmp_path, grid, knn, colour, says):
    plan = P.Plan(grid, "tables", ["lung"])
    work = tmp_path / "work"
    fabricate(work, plan)                               # the CNN baseline's clean accuracy: 90 %
    write_audit(work, "lung", baselines={"knn1_pixels": knn, "colour_logreg": colour},
                near_train={"0.02": 0, "0.05": 7, "0.1": 41})
    rep = R.build(grid, work, tmp_path / "results", "tables", figures=False, plan=plan)
    md = (tmp_path / "results" / "REPORT.md").read_text()
    a = rep["modalities"]["lung"]["audit"]
    assert says in a["verdict"] and says in md
    t = rep["tables"]["audit-lung"]
    rows = {r["label"]: [c["text"] for c in r["cells"]] for r in t["rows"]}
    assert rows["test rows with a training image within RMS 0.05"] == ["7 of 100"]
    assert rows["1-NN on raw pixels (acc / bal)"][0].startswith(f"{100 * knn:.1f}")
    assert rows["CNN baseline, clean (acc / bal)"][0].startswith("90.0")
    assert rows["groups (patients, duplicate sets or similarity clusters) in both train and test"] == ["0"]       # an audit.json without group counts


def test_audit_table_says_na_for_shared_groups_without_patient_ids(tmp_path, grid):
    plan = P.Plan(grid, "tables", ["lung"])
    work = tmp_path / "work"
    fabricate(work, plan)
    rows = {}
    for gtr, gte in ((300, 100), (60, 20)):             # one image per group (no patient ids); real groups
        write_audit(work, "lung", groups_train=gtr, groups_test=gte)
        rep = R.build(grid, work, tmp_path / "results", "tables", figures=False, plan=plan)
        r = next(r for r in rep["tables"]["audit-lung"]["rows"] if r["label"] == "groups (patients, duplicate sets or similarity clusters) in both train and test")
        rows[gtr] = r["cells"][0]["text"]
    assert rows == {300: "n/a (no patient ids: every image is its own group)", 60: "0 (60 groups in train, 20 in test)"}


def test_the_cnn_beside_the_audit_is_the_mean_over_seeds_with_its_interval(tmp_path, grid):
    """Two seeds of the baseline's clean cell (90 % and 80 % right): the audit table shows their mean
    with the interval over seeds and rows, as every other cell (rdm.pipeline.verdicts.acc_entry)."""
    from helpers import set_rows
    from rdm.pipeline.results import Results, View

    plan = P.Plan(grid, "tables", ["lung"], seed=0, seeds=2)
    work = tmp_path / "work"
    fabricate(work, plan)
    write_audit(work, "lung")
    mp = plan.modality("lung")
    classes = list(load_preset("lung").classes)
    for c, rate in zip(mp.seeds_of(mp.clean("baseline")), (0.9, 0.8)):
        set_rows(work, c, np.arange(N) < rate * N, classes)
    rep = R.build(grid, work, tmp_path / "results", "tables", figures=False, plan=plan)
    cell = next(r for r in rep["tables"]["audit-lung"]["rows"] if r["label"] == "CNN baseline, clean (acc / bal)")
    acc = cell["cells"][0]["parts"][0]
    from scipy.stats import t

    from rdm.evaluation.stats import interval

    half = t.ppf(0.975, 1) * np.std([0.9, 0.8], ddof=1) / np.sqrt(2)   # the seeds' part: t(0.975, 1 df)
    rows = interval(np.mean([np.arange(N) < 0.9 * N, np.arange(N) < 0.8 * N], axis=0)[None, :])   # the rows' part
    lo, hi = 0.85 - np.hypot(0.85 - rows.lo, half), min(1.0, 0.85 + np.hypot(rows.hi - 0.85, half))
    assert acc["value"] == pytest.approx(0.85) and cell["cells"][0]["text"].startswith(f"85.0 ± {100 * (hi - lo) / 2:.1f} / ")
    entry, v, n = controls.baseline_clean(View(plan, Results(work), "lung"))
    assert v == pytest.approx(0.85) and n == N and entry.parts[0].rows["n_seeds"] == 2


def test_a_missing_audit_is_said_not_a_crash(tmp_path, grid):
    plan = P.Plan(grid, "tables", ["lung"])
    fabricate(tmp_path / "work", plan)
    (tmp_path / "work" / P.audit_path("lung")).unlink(missing_ok=True)
    R.build(grid, tmp_path / "work", tmp_path / "results", "tables", figures=False, plan=plan)
    assert "Leakage audit: missing" in (tmp_path / "results" / "REPORT.md").read_text()


# --------------------------------------------------------------------------- brain both ways
def test_per_modality_prep_options_and_the_audit_reach_the_prep_command(grid):
    plan = P.Plan(grid, "tables")
    prep = {s.modality: s for s in plan.steps() if s.kind == "prep"}
    assert "--group-similar 0.05" in _words(prep["brain-grouped"]) and "--group-similar" not in _words(prep["lung"])
    for s in prep.values():
        assert "--audit" in _words(s) and P.audit_path(s.modality) in s.outputs
    assert "brain-mri" in _words(prep["brain-grouped"]) and "--preset brain" in _words(prep["brain-grouped"])
    # the grouped brain is the paper's brain task: its numbers (and so its matched ε targets) are brain's
    assert plan.paper["brain-grouped"]["fgsm"] == 0.70
    assert "--group-similar 0.05" in makefile(plan)
    bad = tomllib.loads(GRID.replace("group_similar = 0.05", "group_similarity = 0.05")) | {"_path": "g.toml"}
    with pytest.raises(RdmError, match="unknown option 'group_similarity'"):
        config.Grid(bad)
    for cap, ok in ((30, True), (0, False), (2.5, False), (True, False)):
        g = tomllib.loads(GRID) | {"_path": "g.toml"}
        g["modalities"]["brain-grouped"]["prep"]["group_cap"] = cap
        if ok:
            step = next(s for s in P.Plan(g, "tables").steps() if s.kind == "prep" and s.modality == "brain-grouped")
            assert "--group-similar 0.05 --group-cap 30" in _words(step)
        else:
            with pytest.raises(RdmError, match="group_cap must be a whole number ≥ 1"):
                config.Grid(g)


@pytest.mark.parametrize("grouped_knn,grouped_cnn,says", [
    (0.60, 0.75, "brain's split leaks near-copies"),            # the shortcut goes and the CNN falls with it
    (0.60, 0.92, "The shortcut goes and the CNN holds within noise"),
    (0.93, 0.80, "The shortcut stays"),                          # grouping did not take the shortcut away
])
def test_brain_both_ways_says_whether_the_slice_split_leaked(tmp_path, grouped_knn, grouped_cnn, says):
    g = tmp_path / "grid.toml"
    g.write_text(GRID.replace(G.LUNG, G.BRAIN))
    plan = P.Plan(g, "tables", ["brain", "brain-grouped"])
    work = tmp_path / "work"
    fabricate(work, plan)
    classes = list(load_preset("brain").classes)
    for m, knn, cnn in (("brain", 0.95, 0.94), ("brain-grouped", grouped_knn, grouped_cnn)):
        write_audit(work, m, baselines={"knn1_pixels": knn}, n_test=N)
        for c in plan.modality(m).seeds_of(plan.modality(m).clean("baseline")):
            set_rows(work, c, _pattern(cnn, 7), classes)
    rep = R.build(g, work, tmp_path / "results", "tables", figures=False, plan=plan)
    t = rep["tables"]["audit-both-ways-brain-brain-grouped"]
    verdict = t["notes"][0]
    assert verdict.startswith("**Verdict.**") and says in verdict, verdict
    assert f"({95.0:.1f} → {100 * grouped_knn:.1f} %)" in verdict and f"({94.0:.1f} → {100 * grouped_cnn:.1f} %" in verdict
    assert says in (tmp_path / "results" / "REPORT.md").read_text()


def test_the_real_grid_runs_brain_both_ways_with_equal_budgets():
    plan = P.Plan(config.DEFAULT_GRID, "tables")
    assert {"brain", "brain-grouped"} <= set(plan.modalities)
    assert plan.prep["brain-grouped"].get("group_similar") and not plan.prep["brain"]
    assert plan.prep["brain-grouped"].get("group_cap")      # plain transitive grouping chains through brain
    assert plan.training.get("patience") and plan.training.get("epochs")
    for ms in plan.models.values():
        if ms.recipe != "purify":
            assert ms.get("epochs") == plan.training["epochs"] and ms.get("patience") == plan.training["patience"], \
                ms.name


# --------------------------------------------------------------------------- ε in physical units
def test_units_come_from_the_preset_window():
    from rdm.prep import luna16

    u = units_of("lung")
    assert (u["unit"], u["per_unit"]) == ("HU", 1400.0)
    assert u["window"] == [luna16.HU_MIN, luna16.HU_MAX]          # the reader and the preset agree
    assert units_of(load_preset("lung").as_dict()) == u           # as a checkpoint stores the preset
    assert eps_units(0.005, u) == ".005 = 1.3/255 = 7 HU"
    assert eps_values(0.005, u) == pytest.approx({"eps": 0.005, "eps_grey_levels": 1.275, "eps_hu": 7.0})
    assert eps_values(0.005, units_of("brain")) == pytest.approx({"eps": 0.005, "eps_grey_levels": 1.275})
    assert eps_values(None, u) == {"eps": None}
    assert eps_units(0.002, units_of("brain")) == ".002 = 0.51/255" and units_of("brain")["unit"] is None
    assert units_note(["PGD ε=.002, α=.002", "FGSM ε=.005"], u).endswith(".002 = 0.51/255 = 2.8 HU; "
                                                                          ".005 = 1.3/255 = 7 HU.")
    assert units_note(["No attack"], u) is None


def test_sweep_figure_axis_gives_eps_in_grey_levels_and_hu():
    from rdm.evaluation.figures import pyplot
    from rdm.pipeline.figures import eps_axis

    plt = pyplot()
    fig, axes = plt.subplots(1, 2)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlim(0.001, 0.3)
    lung = eps_axis(axes[0], [0.002, 0.005], units_of("lung"))
    brain = eps_axis(axes[1], [0.002, 0.005], units_of("brain"))
    fig.canvas.draw()
    assert [t.get_text() for t in lung.get_xticklabels()] == ["0.51/255\n2.8 HU", "1.3/255\n7 HU"]
    assert lung.get_xlim() == pytest.approx((0.255, 76.5))          # the top axis is ε·255
    assert "in HU (window \u22121000 to 400)" in lung.get_xlabel()          # a minus sign, not a hyphen
    assert [t.get_text() for t in brain.get_xticklabels()] == ["0.51/255", "1.3/255"]
    assert "HU" not in brain.get_xlabel() and "grey levels" in brain.get_xlabel()
    plt.close(fig)
    # a sweep with the literature's budgets: the top axis names those only (the bottom axis the rest)
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_xlim(0.001, 0.3)
    top = eps_axis(ax, [0.002, 1 / 255, 0.005, 2 / 255, 0.2], units_of("lung"))
    fig.canvas.draw()
    assert [t.get_text() for t in top.get_xticklabels()] == ["1/255\n5.49 HU", "2/255\n11 HU"]
    assert "the literature's budgets k/255" in top.get_xlabel()
    plt.close(fig)

def test_the_literatures_budgets_k_over_255_are_written_read_and_named_as_such(tmp_path):
    u = units_of("lung")
    assert parse_eps("2/255") == 2 / 255 and parse_eps(0.005) == 0.005
    assert [eps_txt(e) for e in (1 / 255, 2 / 255, 8 / 255, 0.2, 0.005, 0.0055)] == \
        ["1/255", "2/255", "8/255", ".2", ".005", ".0055"]          # .2 is 51/255 but has a short decimal
    assert eps_units(2 / 255, u) == "2/255 = .00784 = 11 HU"
    assert units_note(["PGD ε=2/255"], u) .endswith("2/255 = .00784 = 11 HU.")
    for bad in ("two/255", "1/0"):
        with pytest.raises(RdmError, match="sweep_eps"):
            parse_eps(bad, "[evaluate] sweep_eps")
    # the grid file takes fractions; the sweep comes out sorted, and the shipped grid has 1, 2, 4, 8/255
    p = tmp_path / "grid.toml"
    p.write_text(G.grid(G.LUNG, G.FGSM, G.PGD, G.BASELINE,
                        G.table("evaluate", models=["baseline"], paper_eps=[0.005], whitebox=[G.PGD_WHITEBOX],
                                sweep_eps=["8/255", 0.002]), G.paper_lung()))
    assert config.Grid(p).sweep_eps == pytest.approx([0.002, 8 / 255])
    p.write_text(p.read_text().replace('"8/255"', '"8/two"'))
    with pytest.raises(RdmError, match=r"\[evaluate\] sweep_eps: '8/two' is not a number"):
        config.Grid(p)
    shipped = config.Grid(Path(__file__).parents[2] / "experiments" / "grid.toml").sweep_eps
    assert all(any(abs(e - k / 255) < 1e-12 for e in shipped) for k in (1, 2, 4, 8))


def test_report_tables_give_eps_in_grey_levels_and_hu(tmp_path, grid):
    rep, md, _ = _build(tmp_path, grid, {})
    t = rep["tables"]["table-III-accuracy-lung"]
    assert any(".005 = 1.3/255 = 7 HU" in n for n in t["notes"])
    assert rep["modalities"]["lung"]["units"]["per_unit"] == 1400.0
    line = md.split("matched ε for FGSM")[1].splitlines()[0]
    e = float("0" + line.split("**")[1])
    assert f"({255 * e:.2g}/255, {1400 * e:.3g} HU;" in line


def test_ablation_values_are_on_the_seeds_their_difference_pairs(tmp_path, grid):
    """A partial grid: RDMAA has two seeds, a variant only the first. Both value columns are then the
    first seed's, so they subtract to the difference beside them (averaging RDMAA's second seed into its
    column showed "variant 87.2, RDMAA 87.0, variant − RDMAA +2.6" on the real lung grid)."""
    rdmaa0, rdmaa1, frozen = _pattern(0.75, 2), _pattern(0.30, 5), _pattern(0.60, 4)
    _, _, plan = _build(tmp_path, grid, {}, {"rdmaa": rdmaa0, "rdmaa-frozen": frozen}, seeds=2)
    mp, classes = plan.modality("lung"), list(load_preset("lung").classes)
    work = tmp_path / "work"
    set_rows(work, mp.seeds_of(mp.clean("rdmaa"))[1], rdmaa1, classes)       # RDMAA's second seed: far worse
    for cell in mp.seeds_of(mp.clean("rdmaa-frozen"))[1:]:
        (work / cell.output).unlink()                                      # the variant's second seed: not yet run
    rep = R.build(plan.path, work, tmp_path / "r2", "tables", figures=False, plan=plan)
    row = next(r for r in rep["tables"]["ablations-lung"]["rows"] if r["label"].endswith("/ No attack")
               and r["label"].startswith("RDMAA, frozen"))
    variant, rdmaa, diff = (row["cells"][i]["parts"] for i in range(3))
    assert rdmaa[0]["value"] == pytest.approx(np.mean(rdmaa0))              # seed 0's, not the mean with seed 1
    assert rdmaa[0]["rows"]["n_seeds"] == variant[0]["rows"]["n_seeds"] == 1
    bal = next(i for i, p in enumerate(variant) if p["metric"] == "balanced_accuracy")
    assert diff[0]["value"] == pytest.approx(variant[bal]["value"] - rdmaa[bal]["value"])
    # a variant with every seed keeps both seeds in its columns
    full = next(r for r in rep["tables"]["ablations-lung"]["rows"] if r["label"].startswith("RDMAA, clean-only")
                and r["label"].endswith("/ No attack"))
    assert full["cells"][1]["parts"][0]["rows"]["n_seeds"] == 2
    assert full["cells"][1]["parts"][0]["value"] == pytest.approx((np.mean(rdmaa0) + np.mean(rdmaa1)) / 2)


def test_seed_control_values_are_on_the_seeds_all_three_share(tmp_path, grid):
    """The control's second seed not run yet: the baseline, RDMAA and control columns are all seed 0's,
    and RDMAA − control is the difference of the two columns beside it."""
    base, rdmaa, control = _pattern(0.40, 1), _pattern(0.75, 2), _pattern(0.55, 3)
    _, _, plan = _build(tmp_path, grid, {"baseline": base, "rdmaa": rdmaa, "control": control}, seeds=2)
    mp = plan.modality("lung")
    a = plan.test_attacks[0]
    for cell in mp.seeds_of(mp.transfer("control", a, 0.005))[1:]:
        (tmp_path / "work" / cell.output).unlink()
    rep = R.build(plan.path, tmp_path / "work", tmp_path / "r2", "tables", figures=False, plan=plan)
    row = rep["tables"]["controls-seed-lung"]["rows"][0]["cells"]
    b, r, c = (row[i]["parts"] for i in range(3))
    assert {p[0]["rows"]["n_seeds"] for p in (b, r, c)} == {1}
    assert r[0]["value"] == pytest.approx(np.mean(rdmaa)) and c[0]["value"] == pytest.approx(np.mean(control))
    bal = next(i for i, p in enumerate(r) if p["metric"] == "balanced_accuracy")
    assert row[5]["parts"][0]["value"] == pytest.approx(r[bal]["value"] - c[bal]["value"])
