"""rdm.api.adapter: a user's own nn.Module evaluated by rdm-eval's attacks and statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import rdm.api.adapter
from rdm.api import eval as eval_api
from rdm.attacks.registry import spec_from_options
from rdm.data.checkpoint import load_checkpoint, read_raw, save_checkpoint
from rdm.models import classification_loss
from rdm.errors import RdmError, UsageError
from rdm.data.sets import SetReader

from helpers import Tiny, make_ckpt, write_phantom_set


@pytest.fixture(scope="module")
def lung16(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapter")
    return d, write_phantom_set(d / "test.h5", "lung", n=24, seed=3, shape=(1, 16, 16))


def fit(model: nn.Module, test, steps: int) -> nn.Module:
    """A few Adam steps on the set itself: a model with signal, so the attacks have rows to fool."""
    with SetReader(test) as r:
        b = r.read(0, r.n)
    x, y = torch.from_numpy(b["x"]), torch.from_numpy(b["y"])
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        classification_loss(model(x), y).backward()
        opt.step()
    return model


def _strip(report):
    """The report without what names the model (its path or name)."""
    return {k: v for k, v in report.items() if k not in ("model", "model_kind")}


def test_a_loaded_checkpoint_as_a_module_gives_rdm_evals_report(lung16):
    """The adapter runs rdm-eval's code: the same model handed over as a plain module gives the
    same metrics, per-row results and white-box attack outcome as rdm-eval on the checkpoint."""
    d, test = lung16
    ck = make_ckpt(d / "m.ckpt", "lung", size=(16, 16), seed=1)
    module = fit(load_checkpoint(ck).model, test, 20)
    save_checkpoint(ck, module, read_raw(ck)["meta"])
    kw = dict(batch_size=10, seed=0)
    want = eval_api.evaluate(ck, [test], specs=[spec_from_options("pgd", 0.05, seed=0, steps=3)], **kw)
    got = rdm.api.adapter.evaluate(module, test, attack="pgd", eps=0.05, steps=3, **kw)
    assert [r["protocol"] for r in got["results"]] == ["clean", "white-box"]
    assert got["results"][1]["metrics"]["accuracy"] < got["results"][0]["metrics"]["accuracy"]   # it fooled rows
    for a, b in zip(got["results"], want["results"]):
        assert a["metrics"] == b["metrics"] and a["per_row"] == b["per_row"] and a.get("attack") == b.get("attack")
    assert got["model_sha256"] == rdm.api.adapter.module_sha256(module) != want["model_sha256"]


def test_a_users_own_module_is_evaluated_and_written_like_rdm_eval(lung16, tmp_path):
    d, test = lung16
    model = fit(Tiny(c=1, binary=True, seed=2), test, 40)   # a class rdm knows nothing of, left in train mode
    out = tmp_path / "mine.json"
    rep = rdm.api.adapter.evaluate(model, test, attack="fgsm", eps=[0.01, 0.1], name="mine", output=out)
    assert model.training                                   # its mode is restored
    assert json.loads(out.read_text())["results"][1]["metrics"] == rep["results"][1]["metrics"]
    clean, *adv = rep["results"]
    with SetReader(test) as r:
        x, y = r.read(0, r.n)["x"], r.read(0, r.n)["y"]
    with torch.no_grad():
        pred = (model.eval()(torch.from_numpy(x))[:, 0] > 0).long().numpy()
    assert clean["metrics"]["accuracy"] == pytest.approx(float((pred == y).mean()))
    assert [a["attack"]["eps"] for a in adv] == [0.01, 0.1]
    for a in adv:       # only rows right on clean are attacked; what the attack fooled is counted
        assert a["metrics"]["adversarial"]["linf_max"] <= a["attack"]["eps"] + 1e-7
        right_after = sum(p == t for p, t in zip(a["per_row"]["pred"], a["per_row"]["y"]))
        assert a["metrics"]["accuracy"] == pytest.approx(right_after / len(y))
    assert adv[1]["metrics"]["accuracy"] < clean["metrics"]["accuracy"] - 0.3
    assert rep["model"] == "mine"


class Wrong(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :3]              # 3 logits for a 2-class set


def test_bad_models_and_settings_are_one_line_errors(lung16):
    d, test = lung16
    with pytest.raises(RdmError, match="logits 2×2 or 2×1 are expected"):
        rdm.api.adapter.evaluate(Wrong(), test)
    with pytest.raises(RdmError, match="fails on a batch 2×1×16×16"):
        rdm.api.adapter.evaluate(Tiny(c=3, k=2), test)           # expects 3 channels
    with pytest.raises(RdmError, match="expected a torch.nn.Module"):
        rdm.api.adapter.evaluate(lambda x: x, test)
    with pytest.raises(UsageError):
        rdm.api.adapter.evaluate(Tiny(c=1, k=2), test, attack="pgd")           # no ε
    with pytest.raises(UsageError):
        rdm.api.adapter.evaluate(Tiny(c=1, k=2), test, attack="fgsm", eps=0.01, steps=5)   # FGSM takes no steps
    assert np.isfinite(rdm.api.adapter.evaluate(Tiny(c=1, k=2), test)["results"][0]["metrics"]["accuracy"])
