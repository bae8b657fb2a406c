"""rdm-eval: metrics equal scikit-learn on the model's own predictions, protocols named right,
clean source found or overridden, one-line errors, atomic -o."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from typer.testing import CliRunner

from rdm.data.checkpoint import load_checkpoint
from rdm.models import predict
from rdm.data.presets import load_preset
from rdm.data.sets import SetReader
from rdm_tools.attack import app as attack_app
from rdm_tools.eval import app as eval_app

from helpers import files, make_ckpt, one_line_error

runner = CliRunner()


def ev(*args):
    return runner.invoke(eval_app, [str(a) for a in args])


def attack(*args):
    res = runner.invoke(attack_app, [str(a) for a in args])
    assert res.exit_code == 0, res.stderr
    return Path(res.stdout.strip())


@pytest.fixture
def setup(tmp_path, phantom_set):
    ck = make_ckpt(tmp_path / "m.ckpt", preset="brain", seed=0)
    other = make_ckpt(tmp_path / "other.ckpt", preset="brain", seed=1)
    s = phantom_set("test.h5", preset="brain", n=24, shape=(3, 16, 16))
    return tmp_path, ck, other, s


def test_clean_metrics_equal_sklearn_on_model_predictions(setup):
    d, ck, _, s = setup
    res = ev(ck, s, "--json", "--batch-size", "5")
    assert res.exit_code == 0, res.stderr
    rep = json.loads(res.stdout)
    (r,) = rep["results"]
    assert r["protocol"] == "clean" and "adversarial" not in r["metrics"]
    model = load_checkpoint(ck).model
    with SetReader(s) as rd:
        b = rd.read(0, rd.n)
    with torch.no_grad():
        p = predict(model(torch.from_numpy(b["x"]))).numpy()
    y = b["y"]
    m = r["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, p, average="macro", labels=[0, 1, 2], zero_division=0))
    assert m["confusion"] == skm.confusion_matrix(y, p, labels=[0, 1, 2]).tolist()
    assert rep["model_sha256"] == load_checkpoint(ck).sha256
    assert rep["classes"] == list(load_preset("brain").classes)


def test_protocols_white_box_transfer_and_on_the_fly(setup):
    d, ck, other, s = setup
    adv = attack(ck, s, "--attack", "pgd", "--eps", "0.05", "--alpha", "0.02", "--steps", "3", "-o", d / "adv.h5")
    res = ev(ck, s, adv, "--attack", "pgd", "--eps", "0.05", "--alpha", "0.02", "--steps", "3", "--json")
    assert res.exit_code == 0, res.stderr
    rs = json.loads(res.stdout)["results"]
    assert [r["protocol"] for r in rs] == ["clean", "white-box", "white-box"]
    fly, stored = rs[1], rs[2]
    assert fly.get("on_the_fly") and Path(stored["set"]) == adv
    # the same attack run on the fly or stored gives the same numbers
    assert fly["metrics"]["confusion"] == stored["metrics"]["confusion"]
    assert fly["metrics"]["adversarial"]["attack_success_rate"] == pytest.approx(
        stored["metrics"]["adversarial"]["attack_success_rate"])
    with SetReader(adv) as r:
        n_succ, n_right = int(r.column("success").sum()), int((r.column("pred_clean") == r.column("y")).sum())
    a = stored["metrics"]["adversarial"]
    assert (a["fooled"], a["clean_correct"]) == (n_succ, n_right)
    assert 0 < a["linf_mean"] <= 0.05 + 1e-7 and 0 < a["ssim_mean"] < 1 and a["psnr_mean"] > 0
    res = ev(other, adv, "--json")
    (t,) = json.loads(res.stdout)["results"]
    assert t["protocol"] == "transfer" and t["crafted_on"]["sha256"] != json.loads(res.stdout)["model_sha256"]


def test_source_from_provenance_override_and_missing(setup):
    d, ck, _, s = setup
    adv = attack(ck, s, "--attack", "fgsm", "--eps", "0.03", "-o", d / "adv.h5")
    moved = d / "elsewhere.h5"
    shutil.move(s, moved)
    before = files(d)
    msg = one_line_error(ev(ck, adv, "--json"))
    assert "--source" in msg and "test.h5" in msg
    assert "no such" in one_line_error(ev(ck, adv, "--source", d / "nope.h5"))
    res = ev(ck, adv, "--source", moved, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["results"][0]["source"] == str(moved)
    wrong = d / "wrong.h5"
    from helpers import write_phantom_set
    write_phantom_set(wrong, preset="brain", n=24, seed=9, shape=(3, 16, 16))
    assert "crafted from" in one_line_error(ev(ck, adv, "--source", wrong))
    assert files(d) == before | {"wrong.h5"}


def test_output_file_and_errors(setup, phantom_set):
    d, ck, _, s = setup
    out = d / "metrics" / "m.json"
    res = ev(ck, s, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    assert json.loads(out.read_text())["results"][0]["metrics"]["n"] == 24
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    lung = phantom_set("lung.h5", preset="lung", n=8, shape=(1, 16, 16))
    before = files(d)
    assert "channel" in one_line_error(ev(ck, lung, "-o", d / "x.json"))
    assert "no such" in one_line_error(ev(ck, d / "none.h5", "-o", d / "x.json"))
    assert "together" in one_line_error(ev(ck, s, "--attack", "fgsm"), 2)
    assert "eps" in one_line_error(ev(ck, s, "--attack", "fgsm", "--eps", "2"), 2)
    dcae = make_ckpt(d / "ae.ckpt", preset="brain", kind="dcae")
    assert "dcae" in one_line_error(ev(dcae, s))
    assert files(d) == before | {"ae.ckpt"}


def test_masking_warnings_flag_rising_accuracy_and_high_accuracy_at_large_eps():
    """rdm-eval's warnings are the report's checks (rdm.pipeline.claims): a rise counts beyond
    2 points AND two standard errors, and a high accuracy at the largest ε ≥ .1."""
    from rdm.api.eval import masking_warnings

    def r(eps, acc, protocol="white-box", n=100):
        return {"set": "t.h5", "protocol": protocol, "attack": {"name": "pgd", "eps": eps, "steps": 10},
                "metrics": {"accuracy": acc, "n": n}}

    assert masking_warnings([r(0.01, 0.5), r(0.03, 0.2), r(0.3, 0.0)]) == []
    w = masking_warnings([r(0.01, 0.3), r(0.03, 0.6), r(0.3, 0.5)])
    assert len(w) == 2 and "RISES from 30.0 % at ε=.01 to 60.0 %" in w[0] and "50.0 % accuracy at ε=.3" in w[1]
    assert w[0].startswith("t.h5: white-box PGD-10 ")
    assert masking_warnings([r(0.01, 0.3, "transfer"), r(0.03, 0.6, "transfer")]) == []
    # within noise: 3 points on 100 rows (the old eval-only rule, 2 points, flagged this), 10 on 20 rows
    assert masking_warnings([r(0.01, 0.30), r(0.03, 0.33)]) == []
    assert masking_warnings([r(0.01, 0.3, n=20), r(0.03, 0.4, n=20)]) == []
    assert masking_warnings([r(0.01, 0.3, n=2000), r(0.03, 0.33, n=2000)]) != []


def test_sets_from_one_source_share_its_clean_forward_passes(setup, monkeypatch):
    """Every ε of a transfer sweep comes from the same clean rows: the model sees each clean row
    once per run, and each set's numbers equal those of a run that evaluates it alone."""
    from rdm.api import eval as eval_api

    d, ck, other, s = setup
    advs = [attack(ck, s, "--attack", "fgsm", "--eps", e, "-o", d / f"a{e}.h5") for e in ("0.02", "0.05")]
    alone = [json.loads(ev(other, a, "--json", "--batch-size", "7").stdout)["results"][0] for a in advs]
    seen = []
    real = eval_api._predict
    monkeypatch.setattr(eval_api, "_predict", lambda m, x, dev: (seen.append(len(x)), real(m, x, dev))[1])
    rep = eval_api.evaluate(other, advs, batch_size=7)
    # 24 adversarial rows per set + the 24 clean rows once (not twice)
    assert sum(seen) == 24 * 2 + 24
    for r, a in zip(rep["results"], alone):
        assert r["counts"] == a["counts"] and r["protocol"] == "transfer"
