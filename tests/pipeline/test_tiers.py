"""The grid's tiers: what the core tier holds (the paper's tables and the claims at every seed, the
matched-ε models, the purifier's standard suite), that the full tier holds it all, the per-stage cost
estimate, and the standard suite's Square on the first seed only."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest

from rdm.errors import RdmError
from rdm.pipeline import config, render
from rdm.pipeline import plan as P

CORE_MODELS = ["baseline", "rdmaa", "purified", "advtrain-fgsm", "advtrain-pgd", "advtrain-online", "advtrain-trades",
               "advtrain-fast", "rdmaa-at-matched", "advtrain-online-at-matched"]


@pytest.fixture(scope="module")
def core():
    return P.Plan(None, "tables", seeds=3, tier="core")


@pytest.fixture(scope="module")
def full():
    return P.Plan(None, "tables", seeds=3, tier="full")


def _words(step) -> str:
    return " ".join(render.make_word(w) for w in step.command)


def test_core_runs_three_modalities_and_the_claims_models(core):
    assert list(core.run) == ["lung", "leukemia", "brain-grouped"]
    assert core.eval_models == CORE_MODELS and core.controls == ["control"] and core.ablations == []
    assert core.certify.models == ()
    cells = list(core.cells())
    assert {c.model for c in cells} == {*CORE_MODELS, "control"}
    # no sweep but the baseline's (the matched ε), no steps curve, no PGD-50×5/APGD-CE, no certificate
    fams = Counter(c.family for c in cells)
    assert not {"steps", "matched-steps", "sweep-transfer", "certified", "certify-clean"} & set(fams)
    assert {c.model for c in cells if c.family == "sweep"} == {"baseline"}
    assert not [c for c in cells if c.attack is not None and c.attack.name in ("pgd50x5", "apgd")]
    assert not [c for c in cells if c.family == "matched" and c.attack.kind == "apgd"]


def test_every_core_model_has_the_claims_cells_on_every_seed(core):
    for m, mp in core.run.items():
        aa = next(w for w in core.whitebox if w.name == "aa")
        pgd = next(w for w in core.whitebox if w.name == "pgd")
        for model in CORE_MODELS:
            for fam, cell in (("clean", mp.clean(model)), ("wb-pgd", mp.whitebox(model, pgd, 0.005)),
                              ("wb-aa", mp.whitebox(model, aa, 0.005)),
                              ("transfer", mp.transfer(model, core.test_attacks[0], 0.005)),
                              *((f"matched-{k}-{proto}", mp.matched(model, k, proto))
                                for k, proto in (("fgsm", "transfer"), ("pgd", "transfer"), ("fgsm", "white-box"),
                                                 ("pgd", "white-box"), ("aa", "white-box")))):
                assert cell is not None, (m, model, fam)
                assert [c.seed for c in mp.seeds_of(cell)] == [0, 1, 2], (m, model, fam)


def test_full_holds_every_core_cell_and_step(core, full):
    assert list(full.run) == ["lung", "brain", "brain-grouped", "leukemia"]
    full_cells = {(c.output, c.pick) for c in full.cells()}
    assert {(c.output, c.pick) for c in core.cells()} <= full_cells
    full_steps = {(s.stage, tuple(s.outputs), _words(s)) for s in full.steps()}
    assert {(s.stage, tuple(s.outputs), _words(s)) for s in P.needed_steps(core)} <= full_steps
    assert len(full_cells) > 4 * len(list(core.cells()))
    for plan in (core, full):
        stages = Counter(s.stage for s in plan.steps())
        assert not [k for k, n in stages.items() if n > 1]


def test_the_standard_suite_runs_square_on_the_first_seed_only(core):
    mp = core.modality("lung")
    for cell in (mp.whitebox("rdmaa", next(w for w in core.whitebox if w.name == "aa"), 0.005),
                 mp.matched("purified", "aa", "white-box")):
        s0, s1, s2 = mp.seeds_of(cell)
        assert s0.attack.kind == "aa" and s1.attack.kind == s2.attack.kind == "aa-apgd"
        assert s0.rows == s1.rows == s2.rows and s0.inputs[1:] == tuple(x.replace("/s1/", "/s0/") for x in s1.inputs[1:])
        assert s1.output.endswith("-apgd.json") and not s0.output.endswith("-apgd.json")
        step = next(s for s in mp.steps if s1.output in s.outputs)
        assert "--attack aa-apgd" in _words(step) and "queries" not in _words(step)
        assert "--attack aa " in _words(next(s for s in mp.steps if s0.output in s.outputs)) + " "
    assert config.Attack("aa", "aa", (("steps", 5), ("queries", 9)), square_seeds=1).for_seed(0).kind == "aa"
    assert config.Attack("pgd", "pgd", square_seeds=None).for_seed(3).kind == "pgd"


def test_the_matched_eps_models_train_and_craft_at_the_seeds_matched_eps(core):
    mp = core.modality("leukemia")
    for seed in (0, 2):
        matched = P.matched_path("leukemia", seed)
        by_out = {o: s for s in mp.steps for o in s.outputs}
        dcae = by_out[P.model_path("leukemia", "dcae-at-matched", seed)]
        sets = [P.matched_set_path("leukemia", k, seed, "train") for k in ("fgsm", "pgd")]
        assert all(x in dcae.inputs for x in sets)
        for k, x in zip(("fgsm", "pgd"), sets):
            craft = by_out[x]
            assert matched in craft.inputs and P.set_path("leukemia", "train") in craft.inputs
            assert f"matched.json {k})" in _words(craft) and P.model_path("leukemia", "baseline", seed) in craft.inputs
        rd = by_out[P.model_path("leukemia", "rdmaa-at-matched", seed)]
        assert P.model_path("leukemia", "dcae-at-matched", seed) in rd.inputs
        at = by_out[P.model_path("leukemia", "advtrain-online-at-matched", seed)]
        assert matched in at.inputs and "--recipe pgd --eps $$(" in _words(at) and "matched.json pgd)" in _words(at)
        assert "--alpha" not in _words(at)        # α = 2.5·ε/steps of the matched ε
    assert P.parse_path("leukemia/s2/adv/train-matched-pgd.h5") == (
        "matched-set", {"m": "leukemia", "seed": 2, "split": "train", "kind": "pgd"})


def test_the_purifier_is_attacked_end_to_end(core, full):
    for plan in (core, full):
        mp = plan.modality("lung")
        assert mp.matched("purified", "aa", "white-box") is not None
        assert mp.matched("purified", "pgd", "transfer") is not None      # the transfer-from-baseline check
    # full tier: steps and restarts curves at the matched ε for every defence, none for the baseline
    mp = full.modality("lung")
    for model in full.defended:
        curve = mp.matched_curve(model)
        assert [(n, r) for n, r, _ in curve] == [(10, 1), (20, 1), (50, 1), (100, 1), (200, 1), (50, 5)], model
        assert all(c.eps_from == "pgd" and c.rows == P.SUBSET for _, _, c in curve)
    assert mp.matched_curve("baseline") == [] and core.modality("lung").matched_curve("purified") == []


def test_the_cost_is_printed_per_stage_and_the_core_costs_less(core):
    lines = P.stage_lines(core)
    assert lines[0].startswith("# tier core, 3 seed(s), lung, leukemia, brain-grouped")
    rows = [line.split("\t") for line in lines if line.count("\t") == 4 and not line.startswith("modality")]
    stages = {(m, d): float(h) for m, _, d, _, h in rows}
    # the matched-ε DCAE costs what the paper's does (two sets each), the purifier's composition nothing
    assert stages[("lung", "dcae-at-matched")] == stages[("lung", "dcae")] > stages[("lung", "rdmaa")] > 0
    assert stages[("lung", "purified")] == 0
    assert stages[("lung", "advtrain-online")] > stages[("lung", "baseline")]
    total = float(next(line for line in lines if line.startswith("all\ttotal")).split("\t")[2])
    one = P.Plan(None, "tables", seeds=1, tier="core")
    t1 = P.stage_table(one, P.needed_steps(one))["total"]
    assert t1 < total <= 3 * t1 + 1e-6
    full = P.Plan(None, "tables", seeds=1, tier="full")
    assert P.stage_table(full, P.needed_steps(full))["total"] > t1
    r = subprocess.run([sys.executable, "-m", "rdm.pipeline.plan", "--cost", "--tier", "core", "--modality", "lung"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "lung\ttrain\tdcae-at-matched\t1\t" in r.stdout and "all\ttotal\t" in r.stdout


def test_bad_tiers_are_one_line(tmp_path):
    g = config.load_grid(None)
    del g["tiers"]
    with pytest.raises(RdmError, match=r"no \[tiers.core\] section"):
        P.Plan(g, "tables", tier="core")
    assert P.Plan(g, "tables", ["lung"], tier="full").tier.name == "full"
    for bad, msg in (({"models": ["rdmaa", "nope"]}, "names nope"), ({"speed": 1}, "has no key speed"),
                     ({"jobs": "clean"}, "jobs must be a list")):
        g["tiers"] = {"core": bad}
        with pytest.raises(RdmError, match=msg):
            P.Plan(g, "tables", tier="core")
    with pytest.raises(RdmError, match="expected one of core, full"):
        P.Plan(None, "tables", tier="medium")
    g = config.load_grid(None)
    g["models"]["advtrain-online-at-matched"]["eps"] = "large"
    with pytest.raises(RdmError, match="advtrain-online-at-matched: eps = 'large'"):
        P.Plan(g, "tables", ["lung"])
    g = config.load_grid(None)
    g["evaluate"]["whitebox"][0]["square_seeds"] = 1          # PGD-3 has no Square
    with pytest.raises(RdmError, match="square_seeds"):
        P.Plan(g, "tables", ["lung"])
    text = re.sub(r"\[tiers\.core\].*?(?=\n# -{10})", "", config.DEFAULT_GRID.read_text(), flags=re.S)
    assert "[tiers" not in text
    (tmp_path / "g.toml").write_text(text)
    r = subprocess.run([sys.executable, "-m", "rdm.pipeline.plan", "--grid", str(tmp_path / "g.toml"), "--tier", "core"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "tiers.core" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_cost_of_what_is_left_leaves_finished_steps_out(tmp_path):
    plan = P.Plan(None, "tables", ["lung"], seeds=1, tier="core")
    steps = P.needed_steps(plan)
    every = P.stage_lines(plan, 2, tmp_path)[-1].split("\t")
    assert every[1] == "to run" and f"{len(steps)} of {len(steps)} steps" in every[3]
    done = next(s for s in steps if s.stage == "lung/s0/advtrain-trades")
    for o in done.outputs:
        (tmp_path / o).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / o).write_text("")
    left = P.stage_lines(plan, 2, tmp_path)[-1].split("\t")
    assert f"{len(steps) - 1} of {len(steps)} steps" in left[3]
    assert P.step_hours(plan, done) > 0.1 and float(left[2]) < float(every[2])
