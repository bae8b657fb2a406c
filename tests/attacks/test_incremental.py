"""rdm.attacks.incremental: Square's queries on an rdm CNN answered from the window's patch alone give the
model's own logits, keep the activations of the current points right as candidates are kept, and
leave the search where the model would have taken it; anything it cannot answer falls back."""

from __future__ import annotations

import pytest
import torch

from rdm.attacks import incremental
from rdm.models import CNN, Normalize
from rdm.attacks.square import square_linf

from helpers import Tiny, exactly_inside


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("RDM_COMPILE", raising=False)


def _cnn(c: int, h: int, w: int, k: int, seed: int, binary: bool = False) -> CNN:
    torch.manual_seed(seed)
    m = CNN(c, h, w, k, hidden=(16,), dropout=0.3, binary=binary, filters=8).eval()
    # a non-trivial normalisation, as the real models carry their training set's mean and std
    m.normalize = Normalize(c, [0.3 + 0.1 * i for i in range(c)], [0.2 + 0.05 * i for i in range(c)])
    return m


def _with_window(x, vh, vw, s, win):
    out = x.clone()
    for i in range(x.shape[0]):
        out[i, :, vh[i]:vh[i] + s, vw[i]:vw[i] + s] = win[i].permute(2, 0, 1)
    return out


# sizes that pool evenly and unevenly (13 → 6 → 3 → 1 drops a row and column at each level)
@pytest.mark.parametrize("c,h,w,k,binary", [(3, 24, 24, 4, False), (1, 13, 13, 2, True), (2, 17, 22, 3, False)])
def test_answers_what_the_model_computes_and_keeps_its_activations(c, h, w, k, binary):
    model = _cnn(c, h, w, k, seed=c + h, binary=binary)
    g = torch.Generator().manual_seed(h)
    n = 7
    cur = torch.rand(n, c, h, w, generator=g)
    eng = incremental.Engine(model)
    with torch.no_grad():
        assert torch.allclose(eng.start(cur), model(cur), atol=1e-5)
        for step, s in enumerate([min(h, w), 9, 5, 3, 2, 1, 4, 1]):
            alive = torch.randperm(n, generator=g)[: n - step % 3]        # some rows sit out
            vh = torch.randint(0, h - s + 1, (alive.numel(),), generator=g)
            vw = torch.randint(0, w - s + 1, (alive.numel(),), generator=g)
            vh[0], vw[0] = 0, w - s                                         # a corner and an edge
            vh[-1] = h - s
            win = torch.rand(alive.numel(), s, s, c, generator=g)
            cand = _with_window(cur[alive], vh, vw, s, win)
            logits, patches = eng.query(alive, vh, vw, s, win)
            assert torch.allclose(logits, model(cand), atol=1e-5), (s, (logits - model(cand)).abs().max())
            take = torch.rand(alive.numel(), generator=g) < 0.6
            eng.accept(alive, take, patches)
            cur[alive[take]] = cand[take]
        # the activations kept by accepting candidates are those of the current points
        fresh = incremental.Engine(model)
        fresh.start(cur)
        for kept, want in zip(eng.acts, fresh.acts):
            assert torch.allclose(kept, want, atol=1e-5)


def test_square_with_it_takes_the_models_search(monkeypatch):
    """The same points, query budget and fooled rows as the model answering every query, on a model
    where most rows stay robust long enough for the window to shrink to a few pixels."""
    model = _cnn(3, 20, 20, 3, seed=5)
    x = torch.rand(10, 3, 20, 20, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 3                               # three rows misclassified from the start
    monkeypatch.setenv("RDM_COMPILE", "0")
    count_ref: list[int] = []
    ref = square_linf(model, x, y, 0.03, 300, seed=2, count=count_ref)
    monkeypatch.setenv("RDM_COMPILE", "1")
    used = []
    real = incremental.engine
    monkeypatch.setattr(incremental, "engine", lambda *a: used.append(real(*a)) or used[-1])
    count: list[int] = []
    got = square_linf(model, x, y, 0.03, 300, seed=2, count=count)
    assert used and all(e is not None for e in used)      # the engine answered
    exactly_inside(x, got, 0.03)
    assert sum(count) == sum(count_ref) > 3 * 300
    with torch.no_grad():
        assert torch.equal(model(got).argmax(1) != y, model(ref).argmax(1) != y)
    same = (got == ref).flatten(1).all(1)
    assert int(same.sum()) >= 9, int(same.sum())          # a last-bit tie may rarely part one row


def test_a_row_stops_only_when_the_model_itself_is_fooled(monkeypatch):
    """An engine that calls every candidate a fooling one: the model's confirmation keeps every
    robust row searching for its whole budget, and none ends up fooled."""
    model = _cnn(1, 12, 12, 2, seed=9)
    x = torch.rand(5, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    monkeypatch.setenv("RDM_COMPILE", "1")
    real_query = incremental.Engine.query
    calls = []

    def lying(self, alive, vh, vw, s, win):
        calls.append(s)
        logits, patches = real_query(self, alive, vh, vw, s, win)
        if len(calls) == 1:                               # the engine's own check: the truth
            return logits, patches
        return -logits * 100, patches                     # then every row's other class wins
    monkeypatch.setattr(incremental.Engine, "query", lying)
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("the engine was not used"))
    count: list[int] = []
    xa = square_linf(model, x, y, 1e-4, 30, seed=0, count=count)
    with torch.no_grad():
        assert bool((model(xa).argmax(1) == y).all())
    assert sum(count) == 5 * 30 and len(calls) == 1 + 29


def test_what_it_does_not_answer():
    x = torch.rand(2, 3, 16, 16)
    model = _cnn(3, 16, 16, 3, seed=0)
    assert incremental.supports(model, x)
    assert not incremental.supports(Tiny(k=3), torch.rand(2, 1, 8, 8))     # not an rdm CNN
    assert not incremental.supports(model, x.double())
    model.train()
    assert not incremental.supports(model, x)                               # dropout would be live
    model.eval()
    h = model.encoder.conv2.register_forward_hook(lambda *a: None)
    assert not incremental.supports(model, x)                               # a hook sees every layer
    h.remove()
    assert incremental.supports(model, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not incremental.supports(model, x)
    assert not incremental.supports(model, torch.rand(2, 3, 4, 4))         # pooled away


def test_when_it_is_used(monkeypatch):
    model = _cnn(3, 16, 16, 3, seed=0)
    x = torch.rand(4, 3, 16, 16)
    assert incremental.engine(model, x, incremental.MIN_QUERIES - 1) is None     # auto: a short search
    assert incremental.engine(model, x, incremental.MIN_QUERIES) is not None     # however few rows
    assert not incremental.wanted(torch.device("meta"), 10 ** 9)                # CPU only
    monkeypatch.setenv("RDM_COMPILE", "0")
    assert incremental.engine(model, x, 10 ** 9) is None
    monkeypatch.setenv("RDM_COMPILE", "1")
    assert incremental.engine(model, x, 1) is not None
    assert not incremental.wanted(torch.device("meta"), 1)
    # an engine that disagrees with the model on the check is not used
    monkeypatch.setattr(incremental.Engine, "_head", lambda self, f: model.head(torch.flatten(
        f.permute(0, 3, 1, 2), 1)) + 1e-2)
    assert incremental.engine(model, x, 1) is None


def test_whole_candidates_reach_the_model_in_the_fast_layout(monkeypatch):
    """Where the model answers (no engine), the candidates it sees are channels-last like the start
    point: index_select alone would hand it contiguous NCHW (≈ 3× slower convolutions on CPU)."""
    model = _cnn(3, 12, 12, 3, seed=3)
    seen = []
    model.register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    x = torch.rand(4, 3, 12, 12)
    with torch.no_grad():
        y = model(x).argmax(1)
    seen.clear()
    monkeypatch.setenv("RDM_COMPILE", "0")
    square_linf(model, x, y, 1e-4, 5, seed=0)
    assert len(seen) == 5 and all(seen), seen
