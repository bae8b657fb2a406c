"""White-box attacks: against an independent hand-written reference, exact constraints,
model hygiene, and strength ordering on a CNN trained on phantoms."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rdm.attacks.registry import AttackSpec, names, run_attack, run_attack_sweep
from rdm.attacks.functions import apgd_ce, attack_mode, eps_bounds, fgsm, fgsm_sweep, pgd
from rdm.errors import RdmError
from rdm.models import CNN
from rdm.prep.synthetic import generate

from helpers import Tiny, data, exactly_inside


# --------------------------------------------------------------------------- independent reference
def ref_loss(model, x, y):
    """Loss written separately from rdm: BCE on the single logit, CE otherwise (sum over rows)."""
    out = model(x)
    if out.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(out[:, 0], y.float(), reduction="sum")
    return F.cross_entropy(out, y, reduction="sum")


def ref_grad(model, x, y):
    m = copy.deepcopy(model).eval()
    xr = x.clone().requires_grad_(True)
    ref_loss(m, xr, y).backward()
    return xr.grad.detach()


def ref_fgsm(model, x, y, eps):
    g = ref_grad(model, x, y)
    return torch.clamp(torch.clamp(x + eps * g.sign(), x - eps, x + eps), 0, 1)


def ref_bim(model, x, y, eps, alpha, steps):
    xa = x.clone()
    for _ in range(steps):
        g = ref_grad(model, xa, y)
        xa = xa + alpha * g.sign()
        xa = torch.clamp(torch.max(torch.min(xa, x + eps), x - eps), 0, 1)
    return xa


HEADS = [dict(k=2, binary=True), dict(k=3, binary=False)]


@pytest.mark.parametrize("head", HEADS, ids=["binary", "multiclass"])
@pytest.mark.parametrize("eps", [0.002, 0.005, 0.05])
def test_fgsm_matches_reference(head, eps):
    model = Tiny(k=head["k"], binary=head["binary"], seed=1)
    x, y = data(k=head["k"])
    torch.testing.assert_close(fgsm(model, x, y, eps), ref_fgsm(model, x, y, eps), atol=1e-6, rtol=0)


@pytest.mark.parametrize("head", HEADS, ids=["binary", "multiclass"])
@pytest.mark.parametrize("eps,alpha,steps", [(0.005, 0.002, 3), (0.005, 0.02, 3), (0.03, 0.01, 7)])
def test_pgd_without_random_start_matches_reference(head, eps, alpha, steps):
    model = Tiny(k=head["k"], binary=head["binary"], seed=2)
    x, y = data(k=head["k"], seed=3)
    ours = pgd(model, x, y, eps, alpha, steps)
    torch.testing.assert_close(ours, ref_bim(model, x, y, eps, alpha, steps), atol=1e-6, rtol=0)
    spec = AttackSpec.make("bim", eps, alpha=alpha, steps=steps)
    assert torch.equal(run_attack(spec, model, x, y), ours)


def test_fgsm_sweep_is_fgsm_at_each_eps():
    model = Tiny(k=3, seed=4)
    x, y = data(k=3)
    eps = [0.0, 0.002, 0.01, 0.2]
    for e, xa in zip(eps, list(fgsm_sweep(model, x, y, eps)), strict=True):
        assert torch.equal(xa, fgsm(model, x, y, e))
    specs = [AttackSpec.make("fgsm", e) for e in eps]
    for e, a in zip(eps, list(run_attack_sweep(specs, model, x, y)), strict=True):      # the registry's sweep against the reference
        torch.testing.assert_close(a, ref_fgsm(model, x, y, e), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- exact constraints


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), binary=st.booleans(), k=st.integers(2, 4),
       eps=st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.002, 0.005, 1 / 255, 0.1, 0.5, 1.0])),
       alpha=st.floats(1e-4, 0.5), steps=st.integers(1, 4), which=st.sampled_from(["fgsm", "pgd", "apgd"]),
       random_start=st.booleans())
def test_eps_ball_and_box_hold_exactly(seed, binary, k, eps, alpha, steps, which, random_start):
    k = 2 if binary else k
    model = Tiny(k=k, binary=binary, seed=seed)
    x, y = data(n=4, k=k, seed=seed)
    x[1] = torch.round(x[1] * 255) / 255              # 8-bit grey levels
    if which == "fgsm":
        xa = fgsm(model, x, y, eps)
    elif which == "pgd":
        xa = pgd(model, x, y, eps, alpha, steps, random_start=random_start, restarts=2, seed=seed)
    else:
        xa = apgd_ce(model, x, y, eps, steps=steps + 2, seed=seed)
    exactly_inside(x, xa, eps)


def test_fgsm_one_step_stays_in_the_ball_on_awkward_values():
    """FGSM's bound-free step (ε − 2⁻²²) on the values where rounding bites: near 0, near 1, 8-bit
    grey levels, and floats whose sum with ε rounds up; every sign of the gradient."""
    from rdm.attacks.functions import FGSM_SHRINK

    vals = [0.0, 1.0, 2.0 ** -30, 1 - 2.0 ** -24, 0.5, 0.5 - 2.0 ** -25] + [i / 255 for i in range(256)]
    g = torch.Generator().manual_seed(0)
    vals += torch.rand(4000, generator=g).tolist()
    base = torch.tensor(vals, dtype=torch.float32)

    class Lin(torch.nn.Module):     # the input gradient of each pixel is its weight: all signs
        def __init__(self, n):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(n, generator=g))
            self.w.data[::7] = 0.0

        def forward(self, x):
            z = (x.flatten(1) * self.w).sum(1, keepdim=True)
            return torch.cat([z, -z], 1)

    x = base.view(1, 1, 1, -1)
    model = Lin(x.numel())
    for eps in (0.002, 0.005, 1 / 255, 0.03, 0.1, 1 / 3, 1.0, 3 * FGSM_SHRINK):
        xa = fgsm(model, x, torch.tensor([0]), eps)
        exactly_inside(x, xa, eps)
        d = (xa.double() - x.double()).abs().flatten()
        moved = model.w.detach() != 0
        # the step is ε less at most a few ulps wherever the box leaves room for it
        xd = x.double().flatten()
        full = moved & (xd >= eps) & (xd <= 1 - eps)
        if eps < 0.5:
            assert int(full.sum()) > 100
            assert float((eps - d[full]).max()) <= 4 * FGSM_SHRINK
        assert bool((d[~moved] == 0).all())


def test_eps_bounds_round_inward():
    x = torch.rand(10_000, generator=torch.Generator().manual_seed(0))
    for eps in (0.002, 0.005, 0.1, 1 / 3):
        lo, hi = eps_bounds(x, eps)
        exactly_inside(x, hi, eps)
        exactly_inside(x, lo, eps)
        assert bool((lo <= x).all()) and bool((x <= hi).all())
        # tight: at most one float32 ulp inside the exact bound
        assert float((hi.double() - torch.clamp(x.double() + eps, max=1)).abs().max()) < 1e-7


@pytest.mark.parametrize("which", ["fgsm", "pgd", "bim", "apgd"])
def test_eps_zero_returns_x_unchanged(which):
    model = Tiny(k=3, seed=5)
    x, y = data(k=3)
    spec = AttackSpec.make(which, 0.0, steps=3, random_start=(which == "pgd"))
    xa = run_attack(spec, model, x, y)
    assert torch.equal(xa, x)
    assert torch.equal(model(xa).argmax(1), model(x).argmax(1))


# --------------------------------------------------------------------------- model hygiene
@pytest.mark.parametrize("which", ["fgsm", "pgd", "apgd"])
@pytest.mark.parametrize("train_mode", [True, False])
def test_mode_restored_and_no_parameter_grads(which, train_mode):
    model = Tiny(k=3, seed=6, dropout=0.5)
    frozen = model.conv.bias
    frozen.requires_grad_(False)                        # mixed flags must come back as they were
    model.train(train_mode)
    x, y = data(k=3)
    spec = AttackSpec.make(which, 0.03, steps=3, random_start=True)
    a = run_attack(spec, model, x, y)
    b = run_attack(spec, model, x, y)                   # eval mode: dropout off, so deterministic
    assert torch.equal(a, b)
    assert model.training is train_mode
    assert all(p.grad is None for p in model.parameters())
    assert frozen.requires_grad is False
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "conv.bias")
    assert not a.requires_grad


def test_attack_mode_restores_on_error():
    model = Tiny().train()
    with pytest.raises(RuntimeError):
        with attack_mode(model):
            assert not model.training and not any(p.requires_grad for p in model.parameters())
            raise RuntimeError("boom")
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_input_tensor_is_not_modified():
    model = Tiny(k=3)
    x, y = data(k=3)
    x0 = x.clone()
    pgd(model, x, y, 0.1, 0.05, 3, random_start=True)
    apgd_ce(model, x, y, 0.1, 5)
    assert torch.equal(x, x0)


# --------------------------------------------------------------------------- seeding
def test_random_start_seeded_per_row_not_per_batch():
    model = Tiny(k=3, seed=7)
    x, y = data(n=8, k=3)
    ids = np.arange(100, 108)
    full = pgd(model, x, y, 0.05, 0.01, 2, random_start=True, restarts=2, seed=3, row_ids=ids)
    perm = np.array([5, 1, 7, 0, 3, 2, 6, 4])
    part = pgd(model, x[perm], y[perm], 0.05, 0.01, 2, random_start=True, restarts=2, seed=3, row_ids=ids[perm])
    torch.testing.assert_close(part, full[perm], atol=1e-6, rtol=0)
    a = apgd_ce(model, x, y, 0.05, 6, seed=3, row_ids=ids)
    b = apgd_ce(model, x[:3], y[:3], 0.05, 6, seed=3, row_ids=ids[:3])
    torch.testing.assert_close(b, a[:3], atol=1e-6, rtol=0)
    other = pgd(model, x, y, 0.05, 0.01, 2, random_start=True, seed=4, row_ids=ids)
    assert not torch.equal(other, pgd(model, x, y, 0.05, 0.01, 2, random_start=True, seed=3, row_ids=ids))


def _lowbias32(v: int) -> int:
    """Wellons' lowbias32 in plain 32-bit arithmetic (Python ints), the reference of the tensor mixer."""
    v ^= v >> 16
    v = (v * 0x7FEB352D) & 0xFFFFFFFF
    v ^= v >> 15
    v = (v * 0x846CA68B) & 0xFFFFFFFF
    return v ^ (v >> 16)


def test_the_tensor_mixer_is_32_bit_lowbias32_without_int64_overflow():
    from rdm.attacks.functions import _mix32_

    rng = np.random.default_rng(0)
    vals = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, *rng.integers(0, 1 << 32, 200).tolist()]
    got = _mix32_(torch.tensor(vals, dtype=torch.int64)).tolist()
    assert got == [_lowbias32(v) for v in vals]


def test_uniform_rows_are_uniform_on_0_1():
    from scipy.stats import kstest

    from rdm.attacks.functions import uniform_rows

    u = uniform_rows((64, 3, 8, 8), 0, range(64))
    assert u.dtype == torch.float32 and float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert torch.equal(u * 2 ** 24, (u * 2 ** 24).round())           # 24-bit multiples, exact
    flat = u.flatten().double().numpy()
    assert kstest(flat, "uniform").pvalue > 1e-3
    assert abs(flat.mean() - 0.5) < 0.01 and abs(flat.var() - 1 / 12) < 0.005
    # rows are not copies or shifts of each other: adjacent rows and adjacent elements uncorrelated
    r = u.reshape(64, -1).double()
    assert abs(float(torch.corrcoef(torch.stack([r[:-1].flatten(), r[1:].flatten()]))[0, 1])) < 0.05
    assert abs(float(torch.corrcoef(torch.stack([r[:, :-1].flatten(), r[:, 1:].flatten()]))[0, 1])) < 0.05


def test_uniform_rows_depend_on_seed_row_and_stream_only():
    from rdm.attacks.functions import _hashed_rows, _uniform_rows, uniform_rows

    ids = np.array([0, 5, 2, 10 ** 6, (1 << 32) + 7, 3])
    full = uniform_rows((6, 2, 5, 5), 9, ids, 1)
    perm = [3, 0, 5, 1]
    assert torch.equal(uniform_rows((4, 2, 5, 5), 9, ids[perm], 1), full[perm])     # any batch, any order
    assert torch.equal(uniform_rows((2, 2, 5, 5), 9, torch.tensor(ids[4:]), 1), full[4:])   # a shard
    for chunk in (1, 50, 1 << 20):                                                  # pieces change nothing
        assert torch.equal(_hashed_rows((6, 2, 5, 5), 9, ids, 1, torch.device("cpu"), 2.0 ** -24, 0.0, chunk), full)
    for other in (uniform_rows((6, 2, 5, 5), 10, ids, 1), uniform_rows((6, 2, 5, 5), 9, ids, 2),
                  uniform_rows((6, 2, 5, 5), 9 + (1 << 32), ids, 1)):          # seed, stream, the seed's high bits
        assert (other == full).float().mean() < 0.01
    distinct = full.reshape(6, -1)
    assert all(not torch.equal(distinct[i], distinct[j]) for i in range(6) for j in range(i))
    like = torch.zeros(1, 2, 5, 5).to(memory_format=torch.channels_last)
    noise = _uniform_rows(torch.Size((6, 2, 5, 5)), 9, list(ids), 1, like)
    assert noise.is_contiguous(memory_format=torch.channels_last) and torch.equal(noise, full * 2 - 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_uniform_rows_are_the_same_numbers_on_cuda():
    from rdm.attacks.functions import _uniform_rows, uniform_rows

    ids = [4, 1, 99, 7]
    cpu = uniform_rows((4, 3, 16, 16), 2, ids, 3)
    assert torch.equal(uniform_rows((4, 3, 16, 16), 2, ids, 3, device="cuda").cpu(), cpu)
    like = torch.zeros(1, 3, 16, 16, device="cuda")
    assert torch.equal(_uniform_rows(torch.Size((4, 3, 16, 16)), 2, ids, 3, like).cpu(), cpu * 2 - 1)
    model, (x, y) = Tiny(k=3, seed=7), data(n=4, k=3)
    xa = apgd_ce(copy.deepcopy(model).cuda(), x.cuda(), y.cuda(), 0.05, 4, seed=3, row_ids=ids)
    exactly_inside(x, xa.cpu(), 0.05)


# --------------------------------------------------------------------------- spec
def test_spec_validation_and_description():
    for bad in (dict(eps=-0.1), dict(eps=1.5), dict(eps=0.1, steps=0), dict(eps=0.1, alpha=0.0),
                dict(eps=0.1, alpha=-1.0), dict(eps=0.1, restarts=0)):
        with pytest.raises(RdmError):
            AttackSpec.make("pgd", **bad)
    with pytest.raises(RdmError):
        AttackSpec.make("bim", 0.1, random_start=True)
    with pytest.raises(RdmError):
        AttackSpec.make("nope", 0.1)
    s = AttackSpec.make("pgd", 0.005, alpha=0.002, steps=3, restarts=2, random_start=True, seed=9)
    assert "PGD" in repr(s) and "0.005" in repr(s) and "alpha=0.002" in repr(s)
    assert AttackSpec.from_dict(s.to_dict()) == s
    assert s.to_dict()["name"] == "pgd" and "apgd" in names()
    d = AttackSpec.make("pgd", 0.01)
    assert d.steps == 10 and math.isclose(d.alpha, 2.5 * 0.01 / 10)


# --------------------------------------------------------------------------- strength on a trained model
def _disk_vs_bar(n: int, seed: int, shape=(1, 16, 16)):
    """Phantoms of two very different shapes (classes 0 and 4 of five), relabelled 0/1."""
    x, y, _ = generate(n * 5 // 2, 5, shape, seed=seed, brightness=0.0)  # shape and texture cues only
    keep = (y == 0) | (y == 4)
    return torch.from_numpy(x[keep]), torch.from_numpy((y[keep] == 4).astype(np.int64))


@pytest.fixture(scope="module")
def trained():
    """rdm's CNN (12 filters, one logit) trained for about a second on 16×16 phantoms."""
    torch.manual_seed(0)
    x, y = _disk_vs_bar(256, 11)
    xt, yt = _disk_vs_bar(96, 12)
    model = CNN(1, 16, 16, 2, hidden=[32], binary=True, filters=12)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(14):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(model(x[idx])[:, 0], y[idx].float()).backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    acc = _acc(model, xt, yt)
    assert acc >= 0.85, f"the phantom CNN did not learn (accuracy {acc:.2f})"
    return model, xt, yt


def _acc(model, x, y):
    with torch.no_grad():
        return (model(x)[:, 0] > 0).long().eq(y).float().mean().item()


def test_accuracy_falls_with_eps_and_reaches_zero(trained):
    model, x, y = trained
    # FGSM is one linear step: beyond the model's linear range a larger ε can overshoot,
    # so its monotone fall is checked over moderate ε; PGD must reach ~0 at large ε.
    epss = [0.0, 0.01, 0.02, 0.04, 0.06, 0.1]
    accs = [_acc(model, xa, y) for xa in fgsm_sweep(model, x, y, epss)]
    assert all(b <= a + 1e-9 for a, b in zip(accs, accs[1:])), accs
    assert accs[0] - accs[-1] >= 0.2, accs
    pg = [_acc(model, pgd(model, x, y, e, e / 4, 10), y) for e in (0.03, 0.1, 0.3)]
    assert all(b <= a + 1e-9 for a, b in zip(pg, pg[1:])), pg
    assert pg[-1] <= 0.05, pg


def test_pgd_never_weaker_than_fgsm_and_apgd_at_least_pgd10(trained):
    model, x, y = trained
    epss = [0.01, 0.02, 0.04, 0.08]
    f = [_acc(model, xa, y) for xa in fgsm_sweep(model, x, y, epss)]
    p = [_acc(model, pgd(model, x, y, e, e / 4, 10, random_start=True, restarts=2, seed=0), y) for e in epss]
    p10 = [_acc(model, pgd(model, x, y, e, e / 4, 10), y) for e in epss]
    a = [_acc(model, apgd_ce(model, x, y, e, 20, seed=0), y) for e in epss]
    assert np.mean(p) <= np.mean(f) + 1e-9, (p, f)
    assert np.mean(a) <= np.mean(p10) + 1e-9, (a, p10)
    # keep="best" looks at every iterate: never fools fewer images than the final iterate
    e = 0.02
    best = pgd(model, x, y, e, e / 4, 10, keep="best")
    assert _acc(model, best, y) <= p10[1] + 1e-9


def test_targeted_fgsm_moves_towards_target():
    model = Tiny(k=3, seed=8)
    x, _ = data(n=16, k=3)
    target = torch.full((16,), 2)
    xa = fgsm(model, x, target, 0.1, targeted=True)
    with torch.no_grad():
        before = F.cross_entropy(model(x), target)
        after = F.cross_entropy(model(xa), target)
    assert after < before
