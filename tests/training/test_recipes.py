"""The TRADES, MART, fast-AT and Gaussian-noise training pieces, on a tiny CNN."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from rdm.errors import RdmError
from rdm.models import build, classification_loss, cnn_arch
from rdm.data.presets import load_preset
from rdm.training.recipes import Mart, Trades, _kl, make, paired_dropout, trades_adversary
from rdm.training.loop import Classification

EPS = 0.03


def _model(preset="brain", seed=0):
    p = dataclasses.replace(load_preset(preset), size=(16, 16))
    torch.manual_seed(seed)
    return build(cnn_arch(p)), p


def _batch(p, n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand((n, *p.shape), generator=g), "y": torch.randint(0, p.num_classes, (n,), generator=g)}


@pytest.mark.parametrize("recipe", ["fast", "trades", "mart"])
def test_adversarial_recipes_stay_in_the_eps_ball_and_restore_the_mode(recipe):
    model, p = _model()
    model.train()
    b = _batch(p)
    transform, _, rec = make(recipe, Classification(), eps=EPS, steps=3, seed=5)
    out = transform(model, b, 1, 0)
    x_adv = out.get("x_adv", out["x"])
    assert model.training
    assert float((x_adv - b["x"]).abs().max()) <= EPS + 1e-7
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert float((x_adv - b["x"]).abs().max()) > EPS / 2          # it moved
    again = transform(model, b, 1, 0)
    assert torch.equal(again.get("x_adv", again["x"]), x_adv)     # seeded by (seed, epoch, step)
    if recipe == "fast":
        assert rec["alpha"] == pytest.approx(1.25 * EPS) and rec["steps"] == 1


def test_trades_adversary_raises_the_kl():
    model, p = _model()
    b = _batch(p)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        clean = model.eval()(b["x"])
    start = trades_adversary(model, b["x"], EPS, EPS / 4, 0, torch.Generator().manual_seed(0))
    x_adv = trades_adversary(model, b["x"], EPS, EPS / 4, 5, g)
    with torch.no_grad():
        assert float(_kl(clean, model(x_adv)).sum()) > float(_kl(clean, model(start)).sum())


def test_trades_and_mart_losses():
    model, p = _model()
    b = _batch(p)
    base = Classification()
    same = {**b, "x_adv": b["x"].clone()}
    model.eval()                                                   # no batch-norm statistics in play
    with torch.no_grad():
        ce = float(classification_loss(model(b["x"]), b["y"]))
        assert float(Trades(base, beta=6.0).loss(model, same)[0]) == pytest.approx(ce, rel=1e-5)   # KL(x‖x) = 0
        adv = {**b, "x_adv": 1 - b["x"]}                       # far apart: KL > 0
        assert float(Trades(base, beta=6.0).loss(model, adv)[0]) > float(Trades(base, beta=0.0).loss(model, adv)[0])
        # MART's boosted CE on x' at β = 0, against a direct computation
        logits = model(adv["x_adv"])
        prob = F.softmax(logits, 1)
        wrong = prob.masked_fill(F.one_hot(b["y"], prob.shape[1]).bool(), -1).argmax(1)
        expect = F.cross_entropy(logits, b["y"]) + F.nll_loss(torch.log(1.0001 - prob + 1e-12), wrong)
        assert float(Mart(base, beta=0.0).loss(model, adv)[0]) == pytest.approx(float(expect), rel=1e-5)
    loss, stats = Mart(base, beta=6.0).loss(model.train(), adv)
    loss.backward()
    assert all(q.grad is not None for q in model.parameters() if q.requires_grad)
    assert 0 <= int(stats["correct"]) <= len(b["y"])
    assert Trades(base, 1.0).summary({"loss": 1.0, "accuracy": 0.5, "balanced_accuracy": 0.5}) == \
        base.summary({"loss": 1.0, "accuracy": 0.5, "balanced_accuracy": 0.5})


def test_a_clean_image_and_its_adversarial_twin_share_the_dropout_mask():
    """Leukaemia's CNN has dropout .5: with a mask per row, TRADES' KL(f(x) ‖ f(x')) of an image with
    itself was not 0 in training mode (it measured the dropout noise, 8× the adversarial KL at
    ε = .005 on the real set). Paired, it is exactly 0, dropout still drops, and the hooks go away."""
    model, p = _model("leukemia")
    assert any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())
    b = _batch(p, n=16)
    same = {**b, "x_adv": b["x"].clone()}
    model.train()
    clean, adv = Trades.logits(model, same)
    assert torch.equal(clean, adv)
    again, _ = Trades.logits(model, same)
    assert not torch.equal(clean, again)                           # a new mask each pass
    torch.manual_seed(3)
    loss6 = float(Trades(Classification(), 6.0).loss(model, same)[0].detach())
    torch.manual_seed(3)
    assert loss6 == float(Trades(Classification(), 0.0).loss(model, same)[0].detach())    # β·KL(x ‖ x) = 0
    torch.manual_seed(3)
    both = model(torch.cat([b["x"], b["x"]]))                      # outside: a mask per row, as before
    assert not torch.equal(both[:16], both[16:])
    torch.manual_seed(3)
    with paired_dropout(model, 16):
        both = model(torch.cat([b["x"], b["x"]]))
    assert torch.equal(both[:16], both[16:])
    # the mask keeps the layer's scale: the mean over many passes is the eval-mode output
    with torch.no_grad(), paired_dropout(model, 16):
        mean = torch.stack([model(torch.cat([b["x"], b["x"]]))[:16] for _ in range(400)]).mean(0)
    model.eval()
    with torch.no_grad():
        ref = model(b["x"])
    assert torch.allclose(mean, ref, atol=0.15 * float(ref.abs().max()) + 1e-3)
    model2 = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Dropout2d(0.5))
    with pytest.raises(RdmError, match="Dropout2d"):
        with paired_dropout(model2, 1):
            pass


def test_gaussian_noise_is_seeded_and_has_its_sigma():
    model, p = _model()
    b = _batch(p, n=64)
    t, _, rec = make("gaussian", Classification(), sigma=0.25, seed=3)
    a, a2, other = t(model, b, 2, 7)["x"], t(model, b, 2, 7)["x"], t(model, b, 2, 8)["x"]
    assert torch.equal(a, a2) and not torch.equal(a, other)
    assert float((a - b["x"]).std()) == pytest.approx(0.25, rel=0.05)
    assert rec == {"sigma": 0.25}
