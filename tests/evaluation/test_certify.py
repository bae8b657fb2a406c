"""Randomized smoothing: CERTIFY against the closed form of a linear classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rdm.evaluation.certify import (ABSTAIN, certified_accuracy, certify, check_params, linf_to_l2,
                         lower_confidence_bound)
from rdm.errors import RdmError

SIGMA = 0.25


class Linear(nn.Module):
    """One logit ``w·x + b``: class 1 where positive. Under N(0, σ²I) noise the top class has
    probability Φ(|w·x + b| / (σ‖w‖)), so the exact smoothed radius is |w·x + b| / ‖w‖."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w = nn.Parameter(w.clone(), requires_grad=False)
        self.b = b

    def forward(self, x):
        return (x.flatten(1) @ self.w.flatten()).unsqueeze(1) + self.b


def _points(model: Linear, dists: list[float]) -> torch.Tensor:
    """Images at signed distances ``dists`` from the decision boundary."""
    w = model.w.flatten()
    unit = w / w.norm()
    x0 = torch.full_like(w, 0.5)
    x0 = x0 - ((x0 @ w + model.b) / w.norm()) * unit            # on the boundary
    return torch.stack([x0 + d * unit for d in dists]).reshape(len(dists), *model.w.shape)


def test_certified_radius_matches_the_linear_closed_form():
    torch.manual_seed(0)
    model = Linear(torch.randn(1, 4, 4), 0.3)
    dists = [0.05, 0.1, 0.2, -0.15, 0.3]                        # 0.2σ … 1.2σ, both sides
    c = certify(model, _points(model, dists), 2, sigma=SIGMA, n0=100, n=20_000, alpha=0.001, batch_size=4096)
    true = np.abs(dists)
    assert list(c.pred) == [1 if d > 0 else 0 for d in dists]
    assert np.all(c.radius <= true + 1e-9)                      # a certificate never overclaims here
    assert np.all(c.radius >= true - 0.1 * SIGMA)               # and at n = 20,000 it is tight


def test_far_points_are_capped_by_n_and_boundary_points_abstain():
    torch.manual_seed(1)
    model = Linear(torch.randn(1, 3, 3), -0.1)
    c = certify(model, _points(model, [5 * SIGMA, 0.0]), 2, sigma=SIGMA, n0=50, n=2000, alpha=0.01,
                batch_size=512)
    from scipy.stats import norm

    cap = SIGMA * norm.ppf(0.01 ** (1 / 2000))                  # all n samples agree: p̲ = α^(1/n)
    assert c.radius[0] == pytest.approx(cap, rel=1e-6)
    assert c.pred[1] == ABSTAIN and c.radius[1] == 0.0


def test_rows_get_the_same_answer_in_any_batch():
    torch.manual_seed(2)
    model = Linear(torch.randn(1, 4, 4), 0.0)
    x = _points(model, [0.02, 0.1, -0.05, 0.2])
    full = certify(model, x, 2, sigma=SIGMA, n0=20, n=500, alpha=0.01, seed=7)
    part = certify(model, x[2:], 2, sigma=SIGMA, n0=20, n=500, alpha=0.01, seed=7, row_ids=[2, 3])
    assert np.array_equal(full.count[2:], part.count) and np.array_equal(full.pred[2:], part.pred)


def test_model_mode_is_restored():
    model = Linear(torch.randn(1, 2, 2), 0.0)
    model.train()
    certify(model, torch.rand(1, 1, 2, 2), 2, sigma=SIGMA, n0=5, n=10)
    assert model.training


def test_clopper_pearson_lower_bound_and_certified_accuracy():
    # k = n: the bound solves p^n = α
    assert lower_confidence_bound(100, 100, 0.05) == pytest.approx(0.05 ** (1 / 100))
    assert lower_confidence_bound(0, 100, 0.05) == 0.0
    # against statsmodels' two-sided interval at 2α where present, else a known value
    assert lower_confidence_bound(60, 100, 0.025) == pytest.approx(0.4972, abs=2e-4)
    acc = certified_accuracy(np.array([1, 0, ABSTAIN, 1]), np.array([0.5, 0.1, 0.0, 0.2]),
                             np.array([1, 0, 1, 0]), [0.0, 0.15, 0.6])
    assert acc == {"0": 0.5, "0.15": 0.25, "0.6": 0.0}
    assert linf_to_l2(0.005, (3, 64, 64)) == pytest.approx(0.005 * math.sqrt(3 * 64 * 64))


@pytest.mark.parametrize("kw, msg", [
    (dict(sigma=0.0), "sigma"), (dict(sigma=-1.0), "sigma"), (dict(n0=200, n=100), "n0"),
    (dict(alpha=0.0), "alpha"), (dict(alpha=1.0), "alpha"), (dict(batch_size=0), "batch-size"),
])
def test_bad_settings_are_one_clear_error(kw, msg):
    args = dict(sigma=0.25, n0=10, n=100, alpha=0.001, batch_size=10) | kw
    with pytest.raises(RdmError, match=msg):
        check_params(**args)


def test_a_set_certified_in_shards_equals_one_run(tmp_path, phantom_set):
    import dataclasses

    import json

    from rdm.evaluation.certify import certify_set, merge_certificate_files
    from rdm.data.checkpoint import save_checkpoint
    from rdm.models import build, cnn_arch
    from rdm.data.presets import load_preset

    p = dataclasses.replace(load_preset("lung"), size=(16, 16))
    torch.manual_seed(0)
    arch = cnn_arch(p)
    ck = save_checkpoint(tmp_path / "m.ckpt", build(arch), {"kind": "cnn", "arch": arch, "classes": list(p.classes),
                                                           "input_shape": list(p.shape), "preset": p.as_dict()})
    s = phantom_set("test.h5", preset="lung", n=10, shape=(1, 16, 16))
    kw = dict(sigma=0.25, n0=10, n=200, alpha=0.01, batch_size=64, eps=[0.005])
    whole = certify_set(ck, s, **kw)
    paths = []
    for i in (2, 0, 1):
        paths.append(tmp_path / f"part{i}.json")
        paths[-1].write_text(json.dumps(certify_set(ck, s, shard=(i, 3), **kw)))
    merged = merge_certificate_files(paths)
    assert merged["per_row"] == whole["per_row"]
    assert merged["certified_accuracy"] == whole["certified_accuracy"]
    assert whole["eps_l2"] == {"0.005": pytest.approx(0.005 * 16)}
    assert f"{0.005 * 16:g}" in whole["certified_accuracy"]
    with pytest.raises(RdmError, match="missing"):
        merge_certificate_files(paths[:2])
    other = tmp_path / "other.json"
    other.write_text(json.dumps(certify_set(ck, s, shard=(0, 3), **(kw | {"sigma": 0.5}))))
    with pytest.raises(RdmError, match="another model, set, settings"):
        merge_certificate_files([*paths[:2], other])
    bad = json.loads(paths[0].read_text())              # shard 2's part claiming rows it did not certify
    bad["per_row"]["rows"] = [r - 1 for r in bad["per_row"]["rows"]]
    paths[0].write_text(json.dumps(bad))
    with pytest.raises(RdmError, match="not those of shard 2/3"):
        merge_certificate_files(paths)


def test_rdm_certify_cli_writes_a_report_and_refuses_bad_settings(tmp_path, phantom_set):
    import dataclasses
    import json

    from typer.testing import CliRunner

    from rdm.data.checkpoint import save_checkpoint
    from rdm.models import build, cnn_arch
    from rdm.data.presets import load_preset
    from rdm_tools.certify import app

    p = dataclasses.replace(load_preset("lung"), size=(16, 16))
    arch = cnn_arch(p)
    ck = save_checkpoint(tmp_path / "m.ckpt", build(arch), {"kind": "cnn", "arch": arch, "classes": list(p.classes),
                                                           "input_shape": list(p.shape), "preset": p.as_dict()})
    s = phantom_set("test.h5", preset="lung", n=6, shape=(1, 16, 16))
    run = CliRunner().invoke
    out = tmp_path / "c.json"
    r = run(app, [str(ck), str(s), "--sigma", "0.25", "--n", "100", "--n0", "10", "--eps", "0.005",
                  "--device", "cpu", "-q", "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(out)
    rep = json.loads(out.read_text())
    assert len(rep["per_row"]["radius"]) == 6 and rep["settings"]["sigma"] == 0.25
    for args, needle in [(["--sigma", "0"], "sigma"), (["--sigma", "0.25", "--n0", "200", "--n", "100"], "n0"),
                         (["--sigma", "0.25", "--alpha", "1.5"], "alpha"), ([], "--sigma is required")]:
        bad = tmp_path / "bad.json"
        r = run(app, [str(ck), str(s), *args, "-o", str(bad)])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and needle in lines[0], (args, r.stderr)
        assert not bad.exists()
    r = run(app, [str(ck), str(s), "--sigma", "0.25", "-o", str(s)])      # never overwrite an input
    assert r.exit_code == 2 and s.stat().st_size > 0
