"""rdm.attacks.compiled: Square's queries go to a compiled copy of the model only where the copy cannot change
the result (it agrees with the model; a row stops only when the model itself is fooled), and any
failure falls back to the model."""

from __future__ import annotations

import pytest
import torch

from rdm.attacks import compiled
from rdm.errors import UsageError
from rdm.attacks.square import square_linf

from helpers import Tiny, data, exactly_inside


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("RDM_COMPILE", raising=False)
    for m in [*compiled._failed, *compiled._used]:
        compiled._failed.discard(m)
        compiled._used.discard(m)


def test_when_it_compiles(monkeypatch):
    cpu = torch.device("cpu")
    assert not compiled.wanted(cpu, compiled.MIN_ROW_QUERIES - 1)
    assert compiled.wanted(cpu, compiled.MIN_ROW_QUERIES)
    assert not compiled.wanted(torch.device("meta"), 10 ** 9)           # auto: CPU only
    monkeypatch.setenv("RDM_COMPILE", "0")
    assert not compiled.wanted(cpu, 10 ** 9)
    monkeypatch.setenv("RDM_COMPILE", "1")
    assert compiled.wanted(cpu, 1) and compiled.wanted(torch.device("meta"), 1)
    monkeypatch.setenv("RDM_COMPILE", "yes")
    with pytest.raises(UsageError, match="RDM_COMPILE"):
        compiled.wanted(cpu, 1)


class _Copy(torch.nn.Module):
    """A stand-in for a compiled copy: the model's logits changed by ``change`` after ``after`` calls."""

    def __init__(self, model, change, after=0):
        super().__init__()
        self.model, self.change, self.after, self.calls = model, change, after, 0

    def forward(self, x):
        self.calls += 1
        z = self.model(x)
        return self.change(z) if self.calls > self.after else z


def test_a_copy_that_disagrees_or_fails_is_not_used(monkeypatch):
    model = Tiny(k=3, seed=1).eval()
    x, _ = data(n=8, k=3, seed=2)
    monkeypatch.setenv("RDM_COMPILE", "1")
    monkeypatch.setattr(torch, "compile", lambda m, **kw: _Copy(m, lambda z: z + torch.tensor([0.0, 0.0, 1e-3])))
    assert compiled.query_model(model, x, 1) is model                       # logits differ by 1e-3
    monkeypatch.setattr(torch, "compile", lambda m, **kw: _Copy(m, lambda z: z))
    assert compiled.query_model(model, x, 1) is model                       # and it is not retried

    other = Tiny(k=3, seed=2).eval()

    def broken(m, **kw):
        raise RuntimeError("no C++ compiler")
    monkeypatch.setattr(torch, "compile", broken)
    assert compiled.query_model(other, x, 1) is other

    third = Tiny(k=3, seed=3).eval()
    monkeypatch.setattr(torch, "compile", lambda m, **kw: _Copy(m, lambda z: z))
    assert isinstance(compiled.query_model(third, x, 1), _Copy) and third in compiled._used
    assert model not in compiled._used and other not in compiled._used


def test_a_row_stops_only_when_the_model_itself_is_fooled(monkeypatch):
    """A copy that agrees on the first batch, then calls every row fooled: without the confirmation
    every row would stop after one query; with it every robust row spends its whole budget."""
    model = Tiny(k=2, seed=4).eval()
    x, _ = data(n=6, k=2, seed=5)
    with torch.no_grad():
        y = model(x).argmax(1)                  # every row right on the clean image
    eps, queries = 1e-4, 25                     # too small an ε to fool any of them
    count_eager: list[int] = []
    square_linf(model, x, y, eps, queries, seed=0, count=count_eager)
    monkeypatch.setenv("RDM_COMPILE", "1")
    # the copy's lie after its first (checked) batch: negated logits, so every row looks fooled
    monkeypatch.setattr(torch, "compile", lambda m, **kw: _Copy(m, torch.neg, after=1))
    count: list[int] = []
    xa = square_linf(model, x, y, eps, queries, seed=0, count=count)
    exactly_inside(x, xa, eps)
    with torch.no_grad():
        assert bool((model(xa).argmax(1) == y).all())
    assert sum(count) == sum(count_eager) == len(x) * queries


def test_compiled_square_finds_the_same_points(monkeypatch):
    """The real thing (Inductor, where a C++ compiler is present): the same search, point for point."""
    model = Tiny(k=3, seed=7).eval()
    x, y = data(n=12, k=3, seed=8)
    ref = square_linf(model, x, y, 0.05, 40, seed=3)
    monkeypatch.setenv("RDM_COMPILE", "1")
    got = square_linf(model, x, y, 0.05, 40, seed=3)
    if model not in compiled._used:
        pytest.skip("torch.compile is not available here (the model itself answered)")
    assert torch.equal(got, ref)


def test_a_stand_in_agrees_only_with_the_same_classes():
    """One rule for the compiled copy and the incremental engine: logits within AGREE and the same
    predicted class, the argmax of several logits or the sign of one."""
    want = torch.tensor([[0.3, 0.30004, -2.0], [1.0, 0.0, 0.5]])
    assert compiled.agrees(want.clone(), want)
    assert not compiled.agrees(want + torch.tensor([0.0, 1e-3, 0.0]), want)          # beyond AGREE
    tie = want.clone()
    tie[0, 1] = 0.29998                                                              # within AGREE, class 0 now
    assert not compiled.agrees(tie, want)
    assert not compiled.agrees(torch.tensor([[-4e-5], [2.0]]), torch.tensor([[4e-5], [2.0]]))   # sign flip
    assert compiled.agrees(torch.tensor([[5e-5], [2.0]]), torch.tensor([[4e-5], [2.0]]))
    assert not compiled.agrees(torch.tensor([[float("nan")], [2.0]]), torch.tensor([[4e-5], [2.0]]))
    assert not compiled.agrees(want[:1], want)                                          # shape
