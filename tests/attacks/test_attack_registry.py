"""The attack registry: old serialised specs still load unchanged, CLI flags rebuild a spec,
labels, validation, and a toy attack defined in this file alone runs through rdm-eval/rdm-attack."""

from __future__ import annotations

import json
import math

import pytest
import typer
from typer.testing import CliRunner

from rdm.attacks import registry as R
from rdm.attacks import functions as A
from rdm.attacks.options import specs_from
from rdm.errors import RdmError
from rdm_tools.attack import app as attack_app
from rdm_tools.eval import app as eval_app

from helpers import make_ckpt

runner = CliRunner()

# to_dict() of the pre-registry AttackSpec (commit 98ccb7a), as stored in sets and eval JSON
OLD = [
    {"name": "fgsm", "eps": 0.005, "alpha": None, "steps": None, "restarts": 1, "random_start": False,
     "seed": 0, "keep": "fooled", "description": "FGSM(eps=0.005)"},
    {"name": "pgd", "eps": 0.005, "alpha": 0.002, "steps": 3, "restarts": 2, "random_start": True, "seed": 9,
     "keep": "fooled", "description": "PGD(eps=0.005, alpha=0.002, steps=3, restarts=2, random_start=True, "
                                      "seed=9, keep=fooled)"},
    {"name": "bim", "eps": 0.01, "alpha": 0.0025, "steps": 10, "restarts": 1, "random_start": False, "seed": 0,
     "keep": "best", "description": "BIM(eps=0.01, alpha=0.0025, steps=10, restarts=1, seed=0, keep=best)"},
    {"name": "apgd", "eps": 0.03, "alpha": None, "steps": 100, "restarts": 1, "random_start": True, "seed": 0,
     "keep": "fooled", "description": "APGD-CE(eps=0.03, steps=100, restarts=1, seed=0)"},
]


@pytest.mark.parametrize("old", OLD, ids=[d["name"] for d in OLD])
def test_pre_registry_specs_load_and_serialise_byte_for_byte(old):
    spec = R.AttackSpec.from_dict(old)
    assert json.dumps(spec.to_dict(), sort_keys=True) == json.dumps(old, sort_keys=True)
    # and the same spec comes out of make() with the options the old command line took
    opts = {k: old[k] for k in ("alpha", "steps", "restarts", "keep") if old[k] is not None}
    if old["name"] == "pgd":
        opts["random_start"] = True
    if old["name"] in ("fgsm", "apgd"):
        opts.pop("keep", None)
    assert R.AttackSpec.make(old["name"], old["eps"], seed=old["seed"], **opts) == spec


def _parse(app, args):
    """The options a command parses from ``args`` (click's parser: nothing runs)."""
    cmd = typer.main.get_command(app)
    return cmd.make_context(cmd.name or "x", list(args), resilient_parsing=False).params


SPECS = [R.AttackSpec.make("fgsm", 0.002), R.AttackSpec.make("pgd", 0.005, alpha=0.002, steps=3),
         R.AttackSpec.make("pgd", 0.005, steps=3), R.AttackSpec.make("pgd", 1 / 255, restarts=5, random_start=True,
                                                                    keep="best"),
         R.AttackSpec.make("bim", 0.01), R.AttackSpec.make("apgd", 0.005, steps=20, restarts=3)]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
@pytest.mark.parametrize("app", [attack_app, eval_app], ids=["rdm-attack", "rdm-eval"])
def test_cli_flags_rebuild_the_spec_through_the_real_parsers(spec, app):
    flags = R.cli_flags(spec)
    assert flags[:2] == ["--attack", spec.name]
    p = _parse(app, ["m.ckpt", "s.h5", "-o", "x.h5", *flags] if app is attack_app else ["m.ckpt", "s.h5", *flags])
    (back,) = specs_from(p["attack"], p["eps"], alpha=p["alpha"], steps=p["steps"], restarts=p["restarts"],
                         random_start=p["random_start"], keep=p["keep"], queries=p["queries"],
                         params=p["attack_param"], seed=spec.seed)
    assert back == spec
    # defaults are left out: a default PGD needs no hyper-parameter flag at all
    assert R.cli_flags(R.AttackSpec.make("pgd", 0.01), with_eps=False) == ["--attack", "pgd"]


def test_labels_and_default_alpha_in_one_place():
    assert R.label(R.AttackSpec.make("pgd", 0.005, alpha=0.002, steps=3)) == "PGD ε=0.005 α=0.002 ×3"
    assert R.label(OLD[1]) == "PGD ε=0.005 α=0.002 ×3 r2 rs"        # a stored dict labels alike
    assert R.label(OLD[3]) == "APGD-CE ε=0.03 ×100" and R.label(OLD[0]) == "FGSM ε=0.005"
    assert R.label({"name": "not-registered", "eps": 0.1}) == "NOT-REGISTERED" and R.label(None) == "—"
    s = R.AttackSpec.make("pgd", 0.01, steps=4)
    assert s.alpha == R.default_alpha(0.01, 4) and math.isclose(s.alpha, 2.5 * 0.01 / 4)
    assert R.get("PGD").title and R.get("apgd").label == "APGD-CE"


@pytest.mark.parametrize("name,opts,words", [
    ("apgd", dict(alpha=0.1), "step size"),
    ("apgd", dict(queries=10), "apgd takes no --queries"),
    ("pgd", dict(keep="worst"), "--keep must be one of"),
    ("pgd", dict(steps=0), "--steps must be at least 1"),
    ("bim", dict(random_start=True), "random start"),
    ("nope", {}, "unknown attack 'nope'"),
])
def test_validation_is_one_clear_message(name, opts, words):
    with pytest.raises(RdmError, match=words):
        R.AttackSpec.make(name, 0.1, **opts)


def test_attack_param_parsing():
    assert R.parse_params(["a=1", "b-c = x"]) == {"a": "1", "b_c": "x"}
    for bad in (["a"], ["=1"], ["a=1", "a=2"]):
        with pytest.raises(RdmError):
            R.parse_params(bad)
    with pytest.raises(RdmError, match="both"):
        R.spec_from_options("pgd", 0.1, steps=3, params=["steps=4"])
    assert R.spec_from_options("pgd", 0.1, params=["steps=4"]).steps == 4
    with pytest.raises(RdmError, match="expected int"):
        R.spec_from_options("pgd", 0.1, params=["steps=four"])


# --------------------------------------------------------------------------- a toy attack, one class
class Nudge(R.Attack):
    """Moves every pixel by ε in a fixed direction: no gradient, only the registry's plumbing."""

    name = "toy-nudge"
    label = "Nudge"
    title = "toy: x + direction·ε"
    params = (R.Param("direction", int, 1, "+1 or −1", choices=(-1, 1)),)
    seen_training: list[bool] = []

    def forward(self, model, x, y, row_ids):
        Nudge.seen_training.append(model.training)       # the base put the model in eval mode
        lo, hi = A.eps_bounds(x, self.eps)
        return A.project(x + self.direction * self.eps, lo, hi)


@pytest.fixture
def toy():
    R.register(Nudge)
    Nudge.seen_training.clear()
    yield Nudge
    R.unregister(Nudge.name)


def test_a_toy_attack_runs_through_rdm_eval_and_rdm_attack(toy, tmp_path, phantom_set):
    ck = make_ckpt(tmp_path / "m.ckpt", preset="brain", seed=0)
    s = phantom_set("test.h5", preset="brain", n=12, shape=(3, 16, 16))
    res = runner.invoke(eval_app, [str(ck), str(s), "--attack", "toy-nudge", "--eps", "0.1",
                                   "--attack-param", "direction=-1", "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    r = json.loads(res.stdout)["results"][1]
    assert r["attack"]["name"] == "toy-nudge" and r["attack"]["direction"] == -1
    assert r["attack"]["description"] == "Nudge(eps=0.1, direction=-1, seed=0)"
    assert R.label(r["attack"]) == "Nudge ε=0.1" and r["protocol"] == "white-box"
    assert 0 < r["metrics"]["adversarial"]["linf_mean"] <= 0.1 + 1e-7
    assert Nudge.seen_training and not any(Nudge.seen_training)
    out = tmp_path / "adv.h5"
    res = runner.invoke(attack_app, [str(ck), str(s), "--attack", "toy-nudge", "--eps", "0.05", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.stderr
    with pytest.raises(RdmError, match="choices|one of"):
        R.AttackSpec.make("toy-nudge", 0.1, direction=2)
    assert R.cli_flags(R.AttackSpec.make("toy-nudge", 0.1, direction=-1)) == [
        "--attack", "toy-nudge", "--eps", "0.1", "--attack-param", "direction=-1"]


def test_unknown_attack_is_a_usage_error(tmp_path):
    res = runner.invoke(eval_app, ["m.ckpt", "s.h5", "--attack", "toy-nudge", "--eps", "0.1"])
    assert res.exit_code == 2 and "toy-nudge" in res.stderr and "Traceback" not in res.stderr


def test_registering_twice_is_refused_unless_replacing(toy):
    class Other(Nudge):
        pass

    with pytest.raises(ValueError):
        R.register(Other)
    assert R.register(Other, replace=True) is Other and R.get("toy-nudge") is Other
