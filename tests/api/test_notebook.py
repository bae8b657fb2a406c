"""rdm.evaluate / rdm.attack / rdm.certify on a user's own nn.Module and data in every form."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rdm
from rdm.errors import RdmError, UsageError

EPS = 0.03


class UserNet(nn.Module):
    """A classifier of the user's own (not an rdm model): conv, pool, linear, 3 classes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.head(nn.functional.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


@pytest.fixture(scope="module")
def user():
    torch.manual_seed(0)
    model = UserNet()
    x = torch.rand(40, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)          # every clean row right: rdm and torchattacks attack the same rows
    return model, x, y


def forms(x, y, tmp_path):
    path = rdm.data.write_set(tmp_path / "mine.h5", x, y, classes=["0", "1", "2"])
    return {"tensors": (x, y), "TensorDataset": TensorDataset(x, y),
            "DataLoader": DataLoader(TensorDataset(x, y), batch_size=16), "rdm set": path}


def torchattacks_preds(model, x, y, name):
    ta = pytest.importorskip("torchattacks", reason="torchattacks==3.5.1 is installed by `make install` "
                                                    "(without its dependencies, which would replace torch)")
    atk = ta.FGSM(model, eps=EPS) if name == "fgsm" else ta.PGD(model, eps=EPS, alpha=0.01, steps=5,
                                                               random_start=False)
    adv = atk(x, y)
    with torch.no_grad():
        return model(adv).argmax(1).numpy()


@pytest.mark.parametrize("attack,params", [("fgsm", {}), ("pgd", {"alpha": 0.01, "steps": 5})])
def test_robust_accuracy_equals_torchattacks_row_for_row_for_every_data_form(user, tmp_path, attack, params):
    model, x, y = user
    want = torchattacks_preds(model, x, y, attack)
    assert 0 < (want == y.numpy()).mean() < 1          # the attack fools some rows, not all
    for form, data in forms(x, y, tmp_path).items():
        ev = rdm.evaluate(model, data, attack=attack, eps=EPS, **params)
        assert ev.clean.accuracy.value == 1.0, form
        r = ev.robust
        assert np.array_equal(r.pred, want), form
        assert r.accuracy.value == pytest.approx((want == y.numpy()).mean()), form
        assert r.accuracy.low <= r.accuracy.value <= r.accuracy.high
        assert np.array_equal(r.fooled, want != y.numpy()), form
        assert r.metrics["accuracy"] == pytest.approx(r.accuracy.value)


def test_the_standard_suite_runs_on_every_data_form_and_reports_stages(user, tmp_path):
    model, x, y = user
    got = {}
    for form, data in forms(x[:12], y[:12], tmp_path).items():
        ev = rdm.evaluate(model, data, attack="aa", eps=EPS, steps=3, queries=20)
        r = ev.robust
        assert r.attack["name"] == "aa" and len(r.pred) == 12
        stages = ev.report["results"][1]["per_row"]["fooled_by"]
        assert len(stages) == 12 and set(stages) <= {None, "apgd-ce", "apgd-t", "square"}
        got[form] = r.pred.tolist()
    assert len({json.dumps(v) for v in got.values()}) == 1      # the same rows, whatever the form


def test_to_json_is_the_report_rdm_eval_writes(user, tmp_path):
    model, x, y = user
    out = tmp_path / "rep.json"
    ev = rdm.evaluate(model, (x, y), attack="fgsm", eps=[0.01, EPS], output=out)
    assert out.read_text() == ev.to_json()
    rep = json.loads(ev.to_json())
    assert [r["protocol"] for r in rep["results"]] == ["clean", "white-box", "white-box"]
    assert rep["results"][0]["set"] == "<data>" and len(rep["results"][0]["set_sha256"]) == 64
    assert set(rep["environment"]) == {"device", "device_name", "torch", "precision"}
    assert [r.eps for r in ev.attacks] == [0.01, EPS]
    # the same data gives the same report (its set hash is of the contents, not of a temporary file)
    again = rdm.evaluate(model, TensorDataset(x, y), attack="fgsm", eps=[0.01, EPS])
    assert again.to_json() == ev.to_json()


def test_adversarial_images_are_returned_in_the_input_range(user):
    model, x, y = user
    ev = rdm.evaluate(model, (x * 255, y), attack="pgd", eps=EPS, steps=5, alpha=0.01, input_range=(0, 255),
                      mean=0.0, std=255.0, return_adversarial=True)
    plain = rdm.evaluate(model, (x, y), attack="pgd", eps=EPS, steps=5, alpha=0.01, return_adversarial=True)
    xa = ev.robust.adversarial
    assert xa.shape == x.shape and float(xa.max()) <= 255
    assert float((xa - x * 255).abs().max()) <= EPS * 255 * (1 + 1e-5)
    assert np.array_equal(ev.robust.pred, plain.robust.pred)
    with torch.no_grad():
        assert np.array_equal(model(xa / 255).argmax(1).numpy(), ev.robust.pred)


def test_attack_returns_every_rows_image_and_certify_certifies(user):
    model, x, y = user
    a = rdm.attack(model, (x, y), attack="fgsm", eps=EPS)
    assert a.adversarial.shape == x.shape
    assert np.array_equal(a.pred, torchattacks_preds(model, x, y, "fgsm"))
    assert float(a.linf.max()) <= EPS * (1 + 1e-6)
    assert a.success_rate == pytest.approx(a.success.mean())
    c = rdm.certify(model, (x[:8], y[:8]), sigma=0.25, n=200, n0=20)
    assert c.pred.shape == (8,) and (c.radius >= 0).all()
    assert json.loads(c.to_json())["settings"]["sigma"] == 0.25


def test_inputs_outside_the_declared_range_and_bad_arguments_are_one_line_errors(user):
    model, x, y = user
    with pytest.raises(RdmError, match=r"outside input_range=\(0, 1\)"):
        rdm.evaluate(model, (x * 255, y))
    with pytest.raises(RdmError, match="outside input_range"):
        rdm.evaluate(model, ((x - 0.5) / 0.25, y), attack="fgsm", eps=EPS)
    with pytest.raises(RdmError, match="labels 0…5"):
        rdm.evaluate(model, (x[:6], torch.arange(6)))
    with pytest.raises(UsageError, match="attack and eps go together"):
        rdm.evaluate(model, (x, y), attack="pgd")
    with pytest.raises(UsageError, match="unknown attack"):
        rdm.evaluate(model, (x, y), attack="nope", eps=EPS)
    with pytest.raises(RdmError, match="expected \\(x, y\\) tensors"):
        rdm.evaluate(model, 42)


def test_importing_rdm_imports_no_torch():
    code = "import sys, rdm; assert 'torch' not in sys.modules; rdm.evaluate; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
