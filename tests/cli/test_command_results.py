"""The commands' contract with the user: attacks discoverable from --help, results never lost,
rdm-certify certifying at the σ the model was trained with."""

from __future__ import annotations

import ast
import csv
import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rdm.attacks import registry as R
from rdm_tools.attack import app as attack_app
from rdm_tools.certify import app as certify_app
from rdm_tools.eval import app as eval_app

from helpers import make_ckpt

runner = CliRunner()
TOOLS = Path(__file__).resolve().parents[2] / "tools"


def run(app, *args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("app", [attack_app, eval_app], ids=["rdm-attack", "rdm-eval"])
def test_help_lists_every_registered_attack_and_list_attacks_their_settings(app):
    res = run(app, "--help")
    assert res.exit_code == 0
    for name, cls in [(n, R.get(n)) for n in R.names()]:
        assert any(line.split()[:1] == [name] and cls.title[:30] in line for line in res.stdout.splitlines()), name
    assert any(line.split()[:1] == ["aa"] for line in res.stdout.splitlines())
    res = run(app, "--list-attacks")
    assert res.exit_code == 0
    text = res.stdout
    for name in R.names():
        cls = R.get(name)
        block = text.split(f"\n{name} ", 1)[-1] if not text.startswith(f"{name} ") else text
        for p in cls.params:
            assert p.help in block, (name, p.name)
            if p.default is not None and not isinstance(p.default, bool):
                assert f"[default: {p.default}]" in block, (name, p.name)
    assert "--queries INT  Square's query budget per row [default: 5000]" in text


def test_a_newly_registered_attack_appears_in_the_listing():
    class Toy(R.Attack):
        name, label, title = "toy-listed", "Toy", "a toy attack for the listing"
        params = (R.Param("strength", float, 0.5, "how hard it pushes"),)

    R.register(Toy)
    try:
        res = run(eval_app, "--list-attacks")
        assert "toy-listed  Toy: a toy attack for the listing" in res.stdout.replace("    ", "  ")
        assert "--attack-param strength=FLOAT  how hard it pushes [default: 0.5]" in res.stdout
    finally:
        R.unregister("toy-listed")


@pytest.fixture
def lung(tmp_path, phantom_set):
    return tmp_path, make_ckpt(tmp_path / "m.ckpt", preset="lung"), phantom_set("test.h5", n=12, shape=(1, 16, 16))


def test_results_reach_stdout_when_quiet_without_output_or_json(lung):
    d, ck, s = lung
    res = run(eval_app, ck, s, "--attack", "fgsm", "--eps", "0.01", "-q", "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("test.h5 clean: n=12 accuracy ")
    assert lines[1].startswith("test.h5 white-box FGSM ε=0.01: n=12 accuracy ")
    out = d / "r.json"
    res = run(eval_app, ck, s, "-q", "-o", out, "--device", "cpu")
    assert res.stdout.strip() == str(out) and json.loads(out.read_text())["results"]
    res = run(certify_app, ck, s, "--sigma", "0.25", "--n", "20", "--n0", "5", "-q", "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("certified accuracy at σ=0.25 (12 rows, abstain ")


def test_per_row_results_as_csv(lung):
    d, ck, s = lung
    rows = d / "rows.csv"
    res = run(eval_app, ck, s, "--attack", "fgsm", "--eps", "0.01", "-q", "--json", "--rows", rows, "--device", "cpu")
    rep = json.loads(res.stdout)
    with open(rows, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 24 and {r["protocol"] for r in table} == {"clean", "white-box"}
    adv = [r for r in table if r["protocol"] == "white-box"]
    assert [int(r["pred"]) for r in adv] == rep["results"][1]["per_row"]["pred"]
    assert [r["fooled"] == "True" for r in adv] == rep["results"][1]["per_row"]["fooled"]
    try:
        import pandas as pd
    except ImportError:          # pandas is optional: the csv module above read the same file
        return
    assert list(pd.read_csv(rows)["pred"]) == [int(r["pred"]) for r in table]


def noise_ckpt(path: Path, sigma: float | None) -> Path:
    from rdm.data.checkpoint import save_checkpoint
    from rdm.data.presets import load_preset
    from rdm.models import build, cnn_arch

    p = dataclasses.replace(load_preset("lung"), size=(16, 16))
    arch = cnn_arch(p)
    recipe = {"name": "advtrain-gaussian", "gaussian": {"sigma": sigma}} if sigma else {"name": "baseline"}
    return save_checkpoint(path, build(arch), {"kind": "cnn", "arch": arch, "classes": list(p.classes),
                                               "input_shape": list(p.shape), "preset": p.as_dict(), "recipe": recipe})


def test_certify_takes_sigma_from_a_noise_trained_checkpoint_and_warns_on_another(lung):
    d, _, s = lung
    ck = noise_ckpt(d / "noise.ckpt", 0.25)
    fast = ["--n", "20", "--n0", "5", "--device", "cpu", "-q", "--json"]
    res = run(certify_app, ck, s, *fast)
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["settings"]["sigma"] == 0.25 and "warning" not in res.stderr
    res = run(certify_app, ck, s, "--sigma", "0.5", *fast)
    assert res.exit_code == 0 and json.loads(res.stdout)["settings"]["sigma"] == 0.5
    assert "warning: certifying at σ=0.5 a model trained with σ=0.25" in res.stderr
    base = noise_ckpt(d / "base.ckpt", None)
    res = run(certify_app, base, s, "--sigma", "0.25", *fast)
    assert res.exit_code == 0 and "was not trained with Gaussian noise" in res.stderr
    res = run(certify_app, base, s, *fast)
    assert res.exit_code == 2 and "--sigma is required" in res.stderr


def test_tools_are_thin_and_import_no_sibling_tool():
    for path in TOOLS.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | \
                   {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.startswith("rdm_tools")}, path.name
        if path.name != "prep.py":      # prep's reader options are its own
            assert len(path.read_text().splitlines()) <= 100, path.name


def test_listing_the_attacks_imports_no_torch_and_their_choices_match_the_functions():
    import subprocess
    import sys

    code = ("import sys; from rdm.attacks import registry as R; R.catalogue(verbose=True); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    from rdm.attacks import autoattack, functions, zoo

    assert zoo.KEEP_CHOICES == functions.KEEP_CHOICES and zoo.AutoAttackSuite.stages in (None, autoattack.STAGES)
