"""Beyond the paper in the grid and the report: TRADES and fast AT beside the other
adversarial training, certified robustness (randomized smoothing) of noise-trained models, and the
model cards. Everything runs on fabricated results (tests/helpers.fabricate): no model is trained."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from rdm.errors import RdmError
from rdm.pipeline import commands as C
from rdm.pipeline import report
from rdm.pipeline.cards import card as model_card
from rdm.pipeline.config import load_grid
from rdm.pipeline.plan import SUBSET, Plan, set_path
from rdm.pipeline.results import Results, View
from rdm.pipeline.render import make_word
from rdm.data.presets import preset_path

from helpers import fabricate

NEW = ("advtrain-trades", "advtrain-fast")


def _cmd(step) -> str:
    return " ".join(make_word(w) for w in step.command)


def _steps(plan, kind):
    return [s for s in plan.steps() if s.kind == kind]


def test_grid_trains_trades_and_fast_at_by_one_recipe_mapping_and_evaluates_them():
    plan = Plan(None, "demo", ["lung"])
    assert all(m in plan.eval_models and m in plan.advtrain for m in NEW)
    train = {s.stage.rsplit("/", 1)[1]: _cmd(s) for s in _steps(plan, "train")}
    assert "--recipe trades --eps 0.005 --alpha 0.002 --steps 3 --beta 6 " in train["advtrain-trades"]
    assert "--recipe fast --eps 0.005 " in train["advtrain-fast"]
    assert "--recipe pgd --eps 0.005 --alpha 0.002 --steps 3 " in train["advtrain-online"]   # the same mapping
    assert "--recipe gaussian --sigma 0.25 " in train["noise-25"]
    rule = f"--epochs {plan.training['epochs']} --patience {plan.training['patience']} "   # the grid's one rule
    for m in NEW:     # short epochs in the demo: the demo's $(TRAIN_FLAGS) come last
        assert train[m].endswith("$(TRAIN_FLAGS)") and rule in train[m]
        mp = plan.modality("lung")
        assert mp.clean(m) is not None and mp.whitebox(m, plan.whitebox[0], 0.005) is not None
    with pytest.raises(RdmError, match="unknown recipe 'advtrain-nope'"):
        C.train("advtrain-nope", {}, "o", "t", "v", [], None, None, 0)


def test_certify_steps_and_cells_first_seed_only_with_the_grids_settings():
    plan = Plan(None, "tables", ["lung"], seed=0, seeds=2)
    mp = plan.modality("lung")
    cert = _steps(plan, "certify")
    assert [s.stage for s in cert] == ["lung/s0/certify-noise-12", "lung/s0/certify-noise-25"]
    c = _cmd(cert[1])
    assert "--sigma 0.25 --n0 100 --n 10000 --alpha 0.001 --eps 0.002 --eps 0.005 --eps $$(" in c
    assert "matched.json pgd)" in c and set_path("lung", SUBSET) in cert[1].inputs
    cells = [x for x in mp.cells if x.family == "certified"]
    assert [(x.model, x.seed, x.rows) for x in cells] == [("noise-12", 0, SUBSET), ("noise-25", 0, SUBSET)]
    assert all(x.output in mp.metrics for x in cells)            # make builds them
    # the same model attacked white-box on the same rows, and its clean result there
    wb = [x for x in mp.cells if x.model == "noise-25" and x.family == "whitebox"]
    assert {x.attack.name for x in wb} == {w.name for w in plan.whitebox if mp.on_subset(w)} and {x.rows for x in wb} == {SUBSET}
    assert mp.certified_clean("noise-25").rows == SUBSET
    demo = _cmd(_steps(Plan(None, "demo", ["lung"]), "certify")[0])
    assert "--n0 20 --n 200 " in demo                          # the demo certifies with few samples
    bad = copy.deepcopy(load_grid())
    bad["certify"]["models"] = ["advtrain-fast"]
    with pytest.raises(RdmError, match="must be noise-trained"):
        Plan(bad, "tables", ["lung"])
    bad = copy.deepcopy(load_grid())
    bad["certify"]["n0"] = 20000
    with pytest.raises(RdmError, match=r"\[certify\]: --n0"):
        Plan(bad, "tables", ["lung"])


@pytest.fixture(scope="module")
def fab(tmp_path_factory):
    """The whole grid's results, fabricated, with certificates at a small n (so that the matched ε's
    radius is beyond σ = .12's largest certifiable one), and the report built from them."""
    d = tmp_path_factory.mktemp("beyond")
    g = copy.deepcopy(load_grid())
    g["certify"].update(n=20, n0=10)
    plan = Plan(g, "tables", ["lung"])
    fabricate(d / "work", plan)
    with open(d / "work" / "timings.jsonl", "a") as f:
        f.write(json.dumps({"stage": "lung/s0/advtrain-trades", "seconds": 123.5, "rc": 0}) + "\n")
    rep = report.build("experiments/grid.toml", d / "work", d / "results", "tables", figures=False, plan=plan)
    return d, plan, rep


def _table(rep, prefix):
    name = next(n for n in rep["tables"] if n.startswith(prefix))
    t = rep["tables"][name]
    return t["columns"], t["rows"]


def test_best_adversarial_training_ranges_over_every_recipe_and_is_named(fab):
    d, plan, rep = fab
    cols, rows = _table(rep, "table-IX-advtrain")
    assert "AdvTrain-TRADES white-box" in cols and "AdvTrain-fast transfer" in cols
    checked = 0
    for row in rows:
        for proto in ("transfer", "white-box"):
            best = row["cells"][cols.index(f"best AdvTrain {proto}") - 1]
            vals = {m: row["cells"][cols.index(f"{lab} {proto}") - 1] for m, lab in
                    (("advtrain-fgsm", "AdvTrain-FGSM"), ("advtrain-pgd", "AdvTrain-PGD"),
                     ("advtrain-online", "AdvTrain-online"), ("advtrain-trades", "AdvTrain-TRADES"),
                     ("advtrain-fast", "AdvTrain-fast"))}
            shown = {lab: c["parts"][0]["value"] for lab, c in vals.items() if c["parts"]}
            if not shown:
                continue
            top = max(shown.values())
            assert best["parts"][0]["value"] == top
            checked += 1
            winner = [m for m, v in shown.items() if v == top]
            assert best["text"].startswith({"advtrain-fgsm": "AdvTrain-FGSM", "advtrain-pgd": "AdvTrain-PGD",
                                            "advtrain-online": "AdvTrain-online", "advtrain-trades": "AdvTrain-TRADES",
                                            "advtrain-fast": "AdvTrain-fast"}[winner[0]])
    assert checked >= 4, checked          # clean and the attacked rows, both protocols
    md = (d / "results" / "REPORT.md").read_text()
    claims = md.split("## What the numbers say")[1]          # the claims table (the first page says it in words)
    line = next(ln for ln in claims.splitlines() if "best adversarial training under PGD" in ln)
    assert any(f"(B = AdvTrain-{x}: " in line for x in ("FGSM", "PGD", "online", "TRADES", "fast"))


def test_certified_table_recomputes_the_certificate(fab):
    d, plan, rep = fab
    cols, rows = _table(rep, "certified-lung")
    work = d / "work"
    cfg = plan.certify
    matched = json.loads((work / "lung/s0/matched.json").read_text())["pgd"]
    assert len(rows) == len(cfg.models) > 0
    for (model, sigma), row in zip(cfg.models, rows, strict=True):
        cert = json.loads((work / f"lung/s0/certify/{model}.json").read_text())
        pr = cert["per_row"]
        y, pred, rad = (np.asarray(pr[k]) for k in ("y", "pred", "radius"))
        sqrt_d = 4.0                                        # the fabricated sets are 1×4×4
        cell = {c: row["cells"][i - 1] for i, c in enumerate(cols) if i}
        assert cell["rows"]["parts"][0]["value"] == len(y) == 40
        assert cell["abstained"]["parts"][0]["value"] == pytest.approx(np.mean(pred == -1))
        for r, col in ((0.005 * sqrt_d, next(c for c in cols if "paper's ε = .005" in c)),
                       (matched * sqrt_d, next(c for c in cols if "matched PGD" in c)),
                       (0.25, "certified r=0.25"), (0.0, "certified r=0 (smoothed clean)")):
            assert cell[col]["parts"][0]["value"] == pytest.approx(np.mean((pred == y) & (rad >= r))), col
            assert cell[col]["parts"][0]["source"] == "certificate"
        assert float(cell["largest certifiable r"]["text"]) == pytest.approx(
            sigma * norm.ppf(cfg.alpha ** (1 / cfg.n)), abs=5e-4)
        wb = next(c for c in cols if c.startswith("white-box APGD"))
        part = cell[wb]["parts"][0]                          # the same model, attacked white-box on the same rows
        assert part["file"] == str(work / f"lung/s0/metrics/{model}/wb-apgd.json")
        res = json.loads(Path(part["file"]).read_text())["results"][part["index"]]
        assert res["metrics"]["accuracy"] == part["value"] and res["metrics"]["n"] == len(y)
    md = (d / "results" / "REPORT.md").read_text()
    maxr = {s: s * norm.ppf(cfg.alpha ** (1 / cfg.n)) for _, s in cfg.models}
    assert f"{maxr[0.12]:.3f} for σ = 0.12" in md
    r_match = matched * 4.0
    assert maxr[0.12] < r_match < maxr[0.25]               # the designed case: only σ = .25 can certify there
    assert f"a certificate is possible there for Noise σ=.25 only" in md
    assert rep["modalities"]["lung"]["certified"]["noise-25"]["max_radius"] == pytest.approx(maxr[0.25])


def test_certified_figure_names_the_eps_radii_in_its_legend_with_each_curves_value(fab, monkeypatch):
    """The ε-equivalent radii are legend entries (text along the lines crossed the curves on the real
    brain grid), and each σ's entry gives its certified accuracy there, recomputed from the per-row file."""
    import rdm.evaluation.figures
    from rdm.pipeline.certified import fig_certified

    d, plan, _ = fab
    kept = {}
    monkeypatch.setattr(rdm.evaluation.figures, "save_figure", lambda fig, out, stem: kept.setdefault("fig", fig) and [])
    fig_certified(View(plan, Results(d / "work"), "lung"), d / "unused")
    ax = kept["fig"].axes[0]
    assert len(ax.texts) == 0                                # nothing written across the plot
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    matched = json.loads((d / "work/lung/s0/matched.json").read_text())["pgd"]
    radii = [0.005 * 4.0, matched * 4.0]                     # the fabricated sets are 1×4×4
    for r in radii:
        assert sum(f"L2 r = ε·√d = {r:.3g}" in lab for lab in labels) == 1
    for model, sigma in plan.certify.models:
        pr = json.loads((d / f"work/lung/s0/certify/{model}.json").read_text())["per_row"]
        y, pred, rad = (np.asarray(pr[k]) for k in ("y", "pred", "radius"))
        lab = next(lab for lab in labels if lab.startswith(f"σ = {sigma:g} "))
        for r in radii:
            if r <= ax.get_xlim()[1]:
                assert f"{100 * np.mean((pred == y) & (rad >= r)):.1f} % at r = {r:.3g}" in lab
    import matplotlib.pyplot as plt
    plt.close(kept["fig"])


def _report_parts(rep):
    out = {}
    for t in rep["tables"].values():
        for row in t["rows"]:
            for c in row["cells"]:
                for p in c.get("parts", []):
                    if p.get("source") == "metrics":
                        out[(p["file"], p["index"], p["metric"])] = p["value"]
    return out


def test_model_cards_have_the_keys_and_the_reports_numbers(fab):
    d, plan, rep = fab
    cards = {Path(p).name: json.loads(Path(p).read_text()) for p in rep["cards"]}
    want = {f"lung-{m}.json" for m in (*plan.eval_models, *plan.controls, "noise-12", "noise-25")}
    assert set(cards) == want
    shown = _report_parts(rep)
    checked = 0
    for name, c in cards.items():
        assert {"card", "modality", "model", "threat_model", "dataset", "seeds", "clean", "robust", "training"} <= set(c)
        assert c["dataset"]["rows"]["test"] == 100 and c["dataset"]["split_seed"] == 0 and c["seeds"] == [0]
        assert set(c["dataset"]["sets_sha256"]) == {"train", "val", "test", "test-sub"}
        assert c["threat_model"][0]["norm"] == "Linf"
        for r in [c["clean"], *c["robust"]]:
            assert r["accuracy"] is not None and r["rows"] in (40, 100) and r["seeds"] == [0]
            for ps in r["per_seed"]:
                key = (str(d / "work" / ps["member"]), ps["index"], "accuracy")   # the card names its shipped member
                if key in shown:              # every number the report shows too is the same number
                    assert shown[key] == ps["accuracy"]
                    checked += 1
        for r in c["robust"]:                                        # rounded: 4 digits, grey levels .001, HU .1
            e = r["eps"]
            assert e["eps_grey_levels"] == pytest.approx(255 * e["eps"], rel=1e-3, abs=1e-3)
            assert e["eps_hu"] == pytest.approx(1400 * e["eps"], rel=1e-3, abs=0.06)   # lung: HU window [-1000, 400]
    assert checked > 50
    trades = cards["lung-advtrain-trades.json"]
    assert trades["training"]["cost_s"] == {"0": 123.5} and trades["training"]["settings"]["beta"] == 6
    assert {r["suite"] for r in trades["robust"]} >= {"pgd", "pgd50x5", "apgd", "fgsm"}
    noise = cards["lung-noise-25.json"]
    assert noise["threat_model"][1]["norm"] == "L2"
    assert noise["certified"] == {k: v for k, v in rep["modalities"]["lung"]["certified"]["noise-25"].items()
                                  if k != "file"}


def test_model_card_hu_comes_from_the_presets_window(fab, tmp_path):
    """A CT preset with another window than LUNA16's [-1000, 400] gets its own HU in its cards."""
    d, _, _ = fab
    wide = tmp_path / "wide.toml"
    wide.write_text(preset_path("lung").read_text().replace("window = [-1000, 400]", "window = [-1200, 600]"))
    g = copy.deepcopy(load_grid())
    g["modalities"]["lung"]["preset"] = str(wide)
    x = View(Plan(g, "tables", ["lung"]), Results(d / "work"), "lung")
    c = model_card(x, d / "work", "rdmaa", {})
    assert c["threat_model"][0]["intensity"] == {"unit": "HU", "window": [-1200.0, 600.0]}
    assert len(c["robust"]) > 5 and len(c["threat_model"][0]["eps"]) > 1
    for r in [*(r["eps"] for r in c["robust"]), *c["threat_model"][0]["eps"]]:
        assert r["eps_hu"] == pytest.approx(1800 * r["eps"], rel=1e-3, abs=0.06)
        assert r["eps_grey_levels"] == pytest.approx(255 * r["eps"], rel=1e-3, abs=1e-3)


def test_certified_base_clean_comes_from_any_subset_whitebox_file(tmp_path):
    """The base network's clean accuracy on the certified rows is in every subset white-box file: with
    the first one (PGD-50 ×5) missing, as on the real brain grid, the certified table's column and the
    model card read the next (APGD)."""
    g = copy.deepcopy(load_grid())
    g["certify"].update(n=20, n0=10)
    plan = Plan(g, "tables", ["lung"])
    fabricate(tmp_path / "work", plan)
    for model, _ in plan.certify.models:
        (tmp_path / "work" / f"lung/s0/metrics/{model}/wb-pgd50x5.json").unlink()
    rep = report.build("experiments/grid.toml", tmp_path / "work", tmp_path / "results", "tables", figures=False,
                       plan=plan)
    cols, rows = _table(rep, "certified-lung")
    for (model, _), row in zip(plan.certify.models, rows, strict=True):
        part = row["cells"][cols.index("base model clean (same rows)") - 1]["parts"][0]
        assert part["file"] == str(tmp_path / "work" / f"lung/s0/metrics/{model}/wb-apgd.json")
        res = json.loads(Path(part["file"]).read_text())["results"][part["index"]]
        assert res["protocol"] == "clean" and res["metrics"]["accuracy"] == part["value"]
        card = json.loads((tmp_path / "results" / "models" / f"lung-{model}.json").read_text())
        assert card["clean"]["accuracy"] == part["value"]          # the model card reads the same cell


def _drawn(fab, monkeypatch, draw, plan=None):
    """``draw`` (a figure function of rdm.pipeline.figures) on the fabricated lung results: the View
    and the figure it made (kept instead of saved)."""
    import rdm.pipeline.figures as F

    d, plan0, _ = fab
    x = View(plan or plan0, Results(d / "work"), "lung")
    kept = {}
    monkeypatch.setattr(F, "save_figure", lambda fig, out, stem: kept.setdefault("fig", fig) and [])
    getattr(F, draw)(x, d / "unused")
    return x, kept["fig"]


def test_fig10_sets_rdmaa_white_box_and_the_best_adversarial_training_beside_its_transfer_view(fab, monkeypatch):
    """Fig. 10: columns clean / transfer / white-box, rows no defence, RDMAA and the
    adversarially trained model most accurate white-box; every panel's title is its file's accuracy."""
    import matplotlib.pyplot as plt

    from rdm.pipeline.verdicts import decide_on, mean_and_half

    x, fig = _drawn(fab, monkeypatch, "fig_confusion")
    plan = x.plan
    pg = next(a for a in plan.test_attacks if a.kind == "pgd")
    assert decide_on(x) == "balanced_accuracy"                    # lung: the best is chosen on balanced accuracy
    acc = {m: mean_and_half(x, x.twin(m, pg, 0.005)[0], decide_on(x), interval=False)[0] for m in x.advtrain}
    best = max(acc, key=acc.get)
    assert len(set(acc.values())) > 1                     # the fabricated models differ: a real choice
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 9
    expect = [("No defence", "clean", x.clean("baseline")), ("No defence", "white-box", x.transfer("baseline", pg, 0.005)),
              ("RDMAA", "transfer", x.transfer("rdmaa", pg, 0.005)), ("RDMAA", "white-box", x.twin("rdmaa", pg, 0.005)[0]),
              ("AdvTrain", "white-box", x.twin(best, pg, 0.005)[0])]
    for who, col, ref in expect:
        hits = [t for t in titles if t.split("\n")[0].startswith(who) and col in t.split("\n")[1]]
        assert any(t.endswith(f"accuracy {100 * ref.metric('accuracy'):.1f}%, "
                              f"balanced {100 * ref.metric('balanced_accuracy'):.1f}%") for t in hits), (who, col, titles)
    from rdm.pipeline.labels import model_label
    assert sum(t.startswith(f"{model_label(best)} (best adversarial training white-box)") for t in titles) == 3
    # the baseline's transfer set is its own attack: said in words, not drawn twice
    assert any("its own attack" in t.get_text() for ax in fig.axes for t in ax.texts)
    plt.close(fig)


def test_best_adversarial_training_is_chosen_on_the_metric_the_verdicts_decide_on(fab, monkeypatch):
    """Lung decides on balanced accuracy: its best adversarial training is the most accurate in that
    metric, not in accuracy (a majority-class model must not be the one RDMAA is judged against)."""
    from rdm.pipeline import claims
    from rdm.pipeline import verdicts as V
    from rdm.pipeline.labels import model_label

    d, plan, _ = fab
    x = View(plan, Results(d / "work"), "lung")
    pg = next(a for a in plan.test_attacks if a.kind == "pgd")
    a, b = "advtrain-online", "advtrain-trades"
    refs = [x.transfer(m, pg, 0.005) for m in x.advtrain]
    # designed: A is the more accurate, B the more balanced; every other model below both
    value = {a: {"accuracy": 0.95, "balanced_accuracy": 0.60}, b: {"accuracy": 0.80, "balanced_accuracy": 0.85}}
    real = V.mean_and_half

    def fake(x_, ref, metric="accuracy", interval=True):
        if ref is not None and ref.cell is not None and ref.cell.protocol == "transfer" and ref.cell.model in x.advtrain:
            return value.get(ref.cell.model, {}).get(metric, 0.1), None
        return real(x_, ref, metric, interval)

    monkeypatch.setattr(V, "mean_and_half", fake)
    assert V.decide_on(x) == "balanced_accuracy" and V.best_ref(x, refs).cell.model == b
    monkeypatch.setitem(plan.modalities["lung"], "decide_on", "accuracy")
    assert V.best_ref(x, refs).cell.model == a and V.best_ref(x, [None]) is None
    monkeypatch.setitem(plan.modalities["lung"], "decide_on", "balanced_accuracy")
    row = next(r for lab, r in claims.claims_table(x).rows
               if lab.startswith("RDMAA is more accurate than the best adversarial training under PGD"))
    assert f"B = {model_label(b)}:" in row[0].text()
    item = next(i for i in claims.summary(x, [], None) if i["claim"] == "Best adversarial training")
    assert f"transfer (vs {model_label(b)})" in item["text"]
    # the prose names the same model, and so does Table IX-XI's "best AdvTrain" column
    words = " ".join(claims.findings(x, [], None))
    assert f"the best adversarially trained model ({model_label(b)}," in words
    from rdm.pipeline import paper

    t = paper.table_advtrain(x)
    col = t.columns.index("best AdvTrain transfer") - 1
    cells = [r for lab, r in t.rows if lab.startswith("PGD ε=.005")][0]
    assert cells[col].text().startswith(model_label(b) + " ")


def test_fig9_plots_the_metric_the_verdicts_decide_on(fab, monkeypatch):
    """Lung's Fig. 9 is in balanced accuracy (the metric of its verdicts): each plotted point is the
    cell's balanced accuracy, and the axis says so."""
    import matplotlib.pyplot as plt

    from rdm.pipeline.verdicts import mean_and_half

    x, fig = _drawn(fab, monkeypatch, "fig_sweep")
    ax = fig.axes[0]                                     # FGSM, white-box
    assert ax.get_ylabel() == "balanced accuracy (%)" and "balanced accuracy vs ε" in fig._suptitle.get_text()
    line = next(l for l in ax.get_lines() if l.get_label() == "RDMAA")
    want = [100 * mean_and_half(x, x.sweep("rdmaa", "fgsm", e), "balanced_accuracy", interval=False)[0]
            for e in x.sweep_eps]
    assert list(line.get_ydata()) == pytest.approx(want)     # (the fabricated lung rows are 50/50: the same as accuracy)
    assert "paper, no defence (its accuracy)" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert fig._suptitle.get_text().endswith("(bootstrap over rows, one seed)")
    plt.close(fig)
    # a plan of 3 seeds whose sweeps ran with seed 0 only: the bands are one seed's, and the title says so
    _, fig3 = _drawn(fab, monkeypatch, "fig_sweep", Plan(x.plan.raw, "tables", ["lung"], seeds=3))
    assert fig3._suptitle.get_text().endswith("(bootstrap over rows, one seed)")
    plt.close(fig3)


def test_a_models_card_names_the_seeds_behind_its_numbers_not_the_plans(fab):
    """The real leukaemia TRADES card said "seeds": [0, 1, 2] with one trained seed: a plan of three
    seeds over a grid that ran seed 0 only lists seed 0, and the plan's seeds apart."""
    d, _, _ = fab
    x = View(Plan(copy.deepcopy(load_grid()), "tables", ["lung"], seeds=3), Results(d / "work"), "lung")
    c = model_card(x, d / "work", "advtrain-trades", {})
    assert c["seeds"] == [0] and c["seeds_planned"] == [0, 1, 2]
    assert c["clean"]["seeds"] == [0] and c["clean"]["accuracy"] is not None
