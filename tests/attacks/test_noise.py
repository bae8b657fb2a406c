"""The random-sign-noise control (``--attack noise``): exact ε-ball and [0, 1], per-row seeding that
does not depend on the batch, no model call at all, and both commands take it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import Tiny, data, exactly_inside, make_ckpt
from rdm.attacks import registry as R
from rdm.attacks.functions import eps_bounds, uniform_rows
from rdm.data.sets import SetReader, validate_set


def noise(x, eps, seed=0, row_ids=None, model=None):
    return R.get("noise").make(eps, seed=seed).attack()(model or Tiny(), x, torch.zeros(x.shape[0]), row_ids)


@pytest.mark.parametrize("eps", [0.002, 0.005, 0.3])
def test_every_pixel_is_a_vertex_of_the_clipped_eps_ball(eps):
    x, _ = data(n=5, c=3, hw=8)
    xa = noise(x, eps)
    exactly_inside(x, xa, eps)
    lo, hi = eps_bounds(x, eps)
    assert bool(((xa == lo) | (xa == hi)).all())            # x ± ε, clipped to [0, 1]: nothing in between
    inner = (x > eps) & (x < 1 - eps)
    up = xa > x
    assert 0.35 < float(up[inner].float().mean()) < 0.65    # both signs, about half each
    assert noise(x, 0.0).equal(x)


def test_same_row_same_signs_in_any_batch_and_other_seeds_differ():
    x, _ = data(n=6)
    full = noise(x, 0.01, seed=4)
    rows = [4, 1]
    part = noise(x[rows], 0.01, seed=4, row_ids=rows)
    assert part.equal(full[rows])
    assert noise(x, 0.01, seed=4).equal(full)                 # deterministic
    assert not noise(x, 0.01, seed=5).equal(full)
    # rows differ from one another, and from a PGD random start of the same rows (restart 0)
    assert not full[0].equal(full[1])
    start = torch.where(uniform_rows(x.shape, 4, list(range(6)), 0) < 0.5, -1.0, 1.0)
    assert not torch.equal(torch.sign(full - x)[x.gt(0.01) & x.lt(0.99)], start[x.gt(0.01) & x.lt(0.99)])


def test_no_model_call_no_gradient_mode_restored():
    class Refuses(Tiny):
        def forward(self, x):
            raise AssertionError("the noise control must not run the model")

    m = Refuses(dropout=0.5).train()
    x, _ = data(n=4)
    xa = noise(x, 0.02, model=m)
    exactly_inside(x, xa, 0.02)
    assert m.training and all(p.grad is None and p.requires_grad for p in m.parameters())
    assert R.get("noise").make(0.02).attack().passes(4) == 0


def test_rdm_attack_crafts_and_rdm_eval_evaluates_noise(tmp_path, phantom_set):
    from rdm_tools.attack import app as attack_app
    from rdm_tools.eval import app as eval_app

    ck = make_ckpt(tmp_path / "m.ckpt")
    s = phantom_set("test.h5", preset="lung", n=12, shape=(1, 16, 16))
    run = CliRunner()
    out = tmp_path / "noise.h5"
    res = run.invoke(attack_app, [str(ck), str(s), "--attack", "noise", "--eps", "0.03", "--seed", "2",
                                  "--batch-size", "5", "-o", str(out), "-q"])
    assert res.exit_code == 0, res.stderr
    info = validate_set(out, expect_shape=(1, 16, 16))
    assert info.provenance["attack"]["name"] == "noise"
    with SetReader(out) as r, SetReader(s) as src:
        xa, x = r.read(0, 12)["x"], src.read(0, 12)["x"]
    direct = noise(torch.from_numpy(x), 0.03, seed=2).numpy()
    assert np.array_equal(xa, direct)                              # batches of 5 give the whole-set rows
    res = run.invoke(attack_app, [str(ck), str(s), "--attack", "noise", "--eps", "0.03", "--steps", "3",
                                  "-o", str(tmp_path / "x.h5")])
    assert res.exit_code == 2 and "noise takes no --steps" in res.stderr
    rep_path = tmp_path / "ev.json"
    res = run.invoke(eval_app, [str(ck), str(s), "--attack", "noise", "--eps", "0.03", "--seed", "2",
                                "-o", str(rep_path), "-q"])
    assert res.exit_code == 0, res.stderr
    clean, fly = json.loads(rep_path.read_text())["results"]
    assert fly["attack"]["name"] == "noise" and fly["protocol"] == "white-box"
    assert len(fly["per_row"]["pred"]) == 12 and fly["per_row"]["pred_clean"] == clean["per_row"]["pred"]
