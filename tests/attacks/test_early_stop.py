"""APGD stops working on a row once it is fooled within a run: the same adversarial images and outcome
as running every row every step, with far fewer rows through the model at a large ε."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rdm.attacks import functions as F


class Counting(nn.Module):
    """A tiny CNN that counts the rows it is shown."""

    def __init__(self, classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, classes))
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.net(x)


def _data(n: int = 40, classes: int = 3):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("eps", [0.001, 0.02, 0.2])
@pytest.mark.parametrize("loss", ["ce", "dlr-targeted"])
def test_early_stop_returns_the_same_images_and_outcome(eps, loss):
    model = Counting().eval()
    x, y = _data()
    target = (y + 1) % 3 if loss == "dlr-targeted" else None
    kw = dict(loss=loss, target=target, restarts=2, seed=3, row_ids=list(range(100, 140)))
    a = F.apgd(model, x, y, eps, 20, **kw)
    b = F.apgd(model, x, y, eps, 20, early_stop=False, **kw)
    assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(model(a).argmax(1) != y, model(b).argmax(1) != y)
    assert (a - x).abs().max() <= eps


def test_rows_fooled_early_take_no_more_steps():
    model = Counting().eval()
    x, _ = _data()
    with torch.no_grad():
        y = model(x).argmax(1)                 # every row right when clean
    steps = 30
    model.rows = 0
    F.apgd(model, x, y, 0.2, steps, seed=0, early_stop=False)
    every = model.rows
    model.rows = 0
    adv = F.apgd(model, x, y, 0.2, steps, seed=0)
    with torch.no_grad():
        fooled = int((model(adv).argmax(1) != y).sum())
    assert fooled == len(y)                    # every row falls at this ε
    assert every == len(y) * (steps + 1)
    assert model.rows < every / 2              # the fooled rows left the batch
    # at a tiny ε almost no row falls: the work is the same
    model.rows = 0
    F.apgd(model, x, y, 1e-4, steps, seed=0)
    assert model.rows > 0.9 * every
