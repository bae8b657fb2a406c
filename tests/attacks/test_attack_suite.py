"""The white-box suite: exact constraints of every new attack, the losses by hand, Square's search and
query budget, APGD-T against APGD-CE, the aa cascade against the reference AutoAttack, and
rdm-eval's evaluation attacks (no work on lost rows, per-row results that pair and merge)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from rdm.attacks import losses as L
from rdm.attacks.registry import AttackSpec, run_attack, run_attack_sweep
from rdm.attacks.functions import apgd, apgd_ce, pgd
from rdm.attacks.autoattack import STAGES, apgd_targeted, autoattack
from rdm.models import CNN, as_class_logits
from rdm.attacks.per_row import attack_for_eval
from rdm.prep.synthetic import generate
from rdm.attacks.square import square_linf
from rdm_tools.eval import app as eval_app

from helpers import Tiny, data, exactly_inside, make_ckpt

runner = CliRunner()


# --------------------------------------------------------------------------- exact constraints
SMALL = {"apgd-margin": lambda m, x, y, e: apgd(m, x, y, e, 4, loss="margin", restarts=2, seed=1),
         "apgd-dlr": lambda m, x, y, e: apgd(m, x, y, e, 4, loss="dlr", seed=1),
         "apgd-t": lambda m, x, y, e: apgd_targeted(m, x, y, e, 4, seed=1),
         "square": lambda m, x, y, e: square_linf(m, x, y, e, 30, seed=1, restarts=2),
         "aa": lambda m, x, y, e: autoattack(m, x, y, e, steps=3, queries=20, seed=1)[0]}


@pytest.mark.parametrize("which", list(SMALL))
@pytest.mark.parametrize("k,binary", [(2, True), (3, False), (4, False)], ids=["binary", "3", "4"])
@pytest.mark.parametrize("eps", [0.002, 1 / 255, 0.1, 0.5, 1.0])
def test_eps_ball_and_box_hold_exactly(which, k, binary, eps):
    if which == "apgd-dlr" and k < 3:
        pytest.skip("DLR needs 3 classes")
    model = Tiny(k=k, binary=binary, seed=3)
    x, y = data(n=6, k=k, seed=4)
    x[1] = torch.round(x[1] * 255) / 255                 # 8-bit grey levels
    x0 = x.clone()
    xa = SMALL[which](model, x, y, eps)
    exactly_inside(x, xa, eps)
    assert torch.equal(x, x0) and not xa.requires_grad


@pytest.mark.parametrize("name", ["apgd-t", "square", "aa"])
def test_mode_restored_and_no_parameter_grads(name):
    model = Tiny(k=3, seed=6, dropout=0.5).train()
    x, y = data(k=3)
    spec = AttackSpec.make(name, 0.05, **({"queries": 20} if name != "apgd-t" else {}),
                           **({"steps": 3} if name != "square" else {}))
    a, b = run_attack(spec, model, x, y), run_attack(spec, model, x, y)
    assert torch.equal(a, b) and model.training
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_losses_by_hand():
    z = torch.tensor([[3.0, 1.0, 0.0, -2.0], [0.5, 2.0, 1.5, 1.0]])
    y = torch.tensor([0, 2])
    assert torch.allclose(L.margin(z, y), torch.tensor([1 - 3.0, 2 - 1.5]))
    assert torch.allclose(L.dlr(z, y), torch.tensor([-(3 - 1) / (3 - 0.0), -(1.5 - 2) / (2 - 1.0)]))
    t = torch.tensor([3, 1])
    # AutoAttack's targeted DLR: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)
    assert torch.allclose(L.dlr_targeted(z, y, t), torch.tensor([-(3 + 2) / (3 - (0 - 2) / 2),
                                                                 -(1.5 - 2) / (2 - (1 + 0.5) / 2)]))
    z3 = z[:, :3]                                       # 3 classes: z_π1 − z_π3
    assert torch.allclose(L.dlr_targeted(z3, y, torch.tensor([1, 1])),
                          torch.tensor([-(3 - 1) / (3 - 0.0), -(1.5 - 2) / (2 - 0.5)]))
    zb = as_class_logits(torch.tensor([[2.0], [-1.0]]))  # a binary head's single logit
    yb = torch.tensor([0, 0])
    assert torch.allclose(L.margin(zb, yb), torch.tensor([2.0, -1.0]))
    assert torch.allclose(L.dlr_targeted(zb, yb, torch.tensor([1, 1])), L.margin(zb, yb))
    assert torch.allclose(L.ce(zb, yb), F.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0]),
                                                                           torch.zeros(2), reduction="none"))
    with pytest.raises(Exception, match="3 classes"):
        L.dlr(zb, yb)


# --------------------------------------------------------------------------- trained phantom models
def _phantoms(n: int, k: int, seed: int):
    x, y, _ = generate(n, k, (1, 16, 16), seed=seed, brightness=0.0)
    return torch.from_numpy(x), torch.from_numpy(y)


def _train(k: int, epochs: int = 12) -> nn.Module:
    torch.manual_seed(0)
    x, y = _phantoms(320, k, 11)
    model = CNN(1, 16, 16, k, hidden=[32], filters=12)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


@pytest.fixture(scope="module")
def three():
    m = _train(3)
    x, y = _phantoms(96, 3, 12)
    return m, x, y


@pytest.fixture(scope="module")
def four():
    m = _train(4)
    x, y = _phantoms(96, 4, 12)
    return m, x, y


def _wrong(model, x, y) -> torch.Tensor:
    with torch.no_grad():
        return as_class_logits(model(x)).argmax(1) != y


def test_square_margin_falls_with_queries_within_its_budget(three, monkeypatch):
    monkeypatch.setattr("rdm.attacks.square.SEARCH_ROWS", 10**6)       # one search: `count` is then per query
    model, x, y = three
    right = ~_wrong(model, x, y)
    x, y = x[right], y[right]
    counts = {}
    margins = {}
    for q in (20, 200):
        counts[q] = []
        xa = square_linf(model, x, y, 0.02, q, seed=5, count=counts[q])
        with torch.no_grad():
            margins[q] = -L.margin(as_class_logits(model(xa)), y)       # z_y − max other
        assert len(counts[q]) <= q                                        # the query budget
        assert all(a >= b for a, b in zip(counts[q], counts[q][1:]))     # rows only leave the search
    # the longer search is the shorter one continued: never a higher margin, lower on average
    assert bool((margins[200] <= margins[20] + 1e-6).all())
    assert float(margins[200].mean()) < float(margins[20].mean())
    with torch.no_grad():
        start = -L.margin(as_class_logits(model(x)), y)
    assert float(margins[20].mean()) < float(start.mean())
    # rows that are still right after the search used the whole budget
    assert len(counts[200]) == 200 or _wrong(model, square_linf(model, x, y, 0.02, 200, seed=5), y).all()


def test_square_in_pieces_is_the_same_search(three, monkeypatch):
    # on CPU the rows are searched SEARCH_ROWS at a time: the same points and the same forward passes
    # as one search of all rows (each row draws from its own generator), restarts included, and the
    # compiled copy is asked for once per piece on the whole search's row-queries
    import rdm.attacks.square as sq

    model, x, y = three
    asked = []
    real = sq.query_model
    monkeypatch.setattr(sq, "query_model", lambda m, xs, rq: asked.append((xs.shape[0], rq)) or real(m, xs, rq))
    runs = {}
    for rows in (10**6, 7):
        monkeypatch.setattr(sq, "SEARCH_ROWS", rows)
        count: list[int] = []
        asked.clear()
        runs[rows] = (square_linf(model, x, y, 0.05, 25, seed=3, restarts=2, count=count), sum(count), list(asked))
    whole, pieces = runs[10**6], runs[7]
    assert torch.equal(whole[0], pieces[0]) and whole[1] == pieces[1]
    assert not torch.equal(whole[0], x) and _wrong(model, whole[0], y).sum() > _wrong(model, x, y).sum()
    n0 = len(x)                                                          # the first restart searches every row
    assert whole[2][0] == (n0, n0 * 25)
    first = pieces[2][:-(-n0 // 7)]                                      # its pieces: ⌈n0 / 7⌉ searches
    assert [n for n, _ in first] == [min(7, n0 - k) for k in range(0, n0, 7)]
    assert {rq for _, rq in first} == {n0 * 25}


def test_square_restarts_return_the_lowest_margin_point_of_any_restart(three):
    # a row no restart fools gets the lowest-margin point over all restarts, not the last one's
    model, x, y = three
    right = ~_wrong(model, x, y)
    x, y = x[right], y[right]
    eps, q = 0.01, 15

    def margins(xa):
        with torch.no_grad():
            return -L.margin(as_class_logits(model(xa)), y)             # z_y − max other

    first = margins(square_linf(model, x, y, eps, q, seed=5))
    second = margins(square_linf(model, x, y, eps, q, seed=5, first_restart=1))
    both = margins(square_linf(model, x, y, eps, q, seed=5, restarts=2))
    alive = (first > 0) & (second > 0)                                   # neither restart fools
    assert int(alive.sum()) >= 5 and bool((second[alive] > first[alive]).any())   # the case exists
    assert torch.allclose(both[alive], torch.minimum(first, second)[alive])


def test_apgd_t_fools_about_as_many_rows_as_apgd_ce(three):
    # APGD-T is a full-strength attack: within 3 row-ε pairs of APGD-CE's fooled rows at the same
    # budget per target. Not "at least as many": with the old per-row generator start, seeds 0–4 gave
    # CE 37–38 and APGD-T 36–37 fooled pairs (the strict test held only by a tie at seed 0); with the
    # counter-based start CE 38 and APGD-T 37 at each of seeds 0–4.
    model, x, y = three
    right = ~_wrong(model, x, y)
    x, y = x[right], y[right]
    ce = t = 0
    for eps in (0.01, 0.02, 0.03):
        ce += int(_wrong(model, apgd_ce(model, x, y, eps, 30, seed=0), y).sum())
        t += int(_wrong(model, apgd_targeted(model, x, y, eps, 30, seed=0), y).sum())
    assert ce > 0 and t >= ce - 3, (t, ce)


def test_the_cascade_records_which_stage_fooled_each_row(four):
    model, x, y = four
    xa, by = autoattack(model, x, y, 0.02, steps=20, queries=200, seed=0)
    wrong = _wrong(model, xa, y)
    assert torch.equal(wrong, by != -1)                    # robust rows are exactly the unfooled ones
    assert torch.equal(by == 0, _wrong(model, x, y))       # "clean": misclassified with no attack
    assert set(by.tolist()) <= {-1, 0, 1, 2, 3}
    # the first stage is APGD-CE itself: it fools the same rows run alone on the rows right on clean
    right = ~_wrong(model, x, y)
    alone = _wrong(model, apgd(model, x[right], y[right], 0.02, 20, seed=0, row_ids=np.flatnonzero(right.numpy())),
                   y[right])
    assert torch.equal(alone, (by[right] == 1))
    # more budget never leaves more rows robust
    _, by2 = autoattack(model, x, y, 0.02, steps=40, queries=400, seed=0)
    assert int((by2 == -1).sum()) <= int((by == -1).sum()) + 1


def test_cascade_is_at_least_as_strong_as_the_reference_autoattack(four):
    """The reference's standard cascade (APGD-CE, APGD-T, FAB-T, Square) adapted to 4 classes
    (3 targets); both get the same budgets (Square 500 queries here, to keep the test short)."""
    aa = pytest.importorskip("pyautoattack")
    model, x, y = four

    class Logits(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, z):
            return as_class_logits(self.m(z))

    x, y = x[:64], y[:64]
    ours, theirs = [], []
    for eps in (0.015,):
        ref = aa.AutoAttack(Logits(model), attacks=["apgd-ce", "apgd-t", "fab-t", "square"], version="custom",
                            eps=eps, seed=0)
        ref.apgd_targeted.n_target_classes = ref.fab.n_target_classes = 3
        ref.square.n_queries = 500
        ref.logger.disabled = True
        x_ref, _ = ref.run_standard_evaluation(x, y, batch_size=500)
        theirs.append(1 - float(_wrong(model, x_ref, y).float().mean()))
        xo, by = autoattack(model, x, y, eps, queries=500, seed=0)
        ours.append(float((by == -1).float().mean()))
        exactly_inside(x, xo, eps)
    assert all(o <= t + 0.01 for o, t in zip(ours, theirs)), (ours, theirs)
    assert max(theirs) > 0.05           # the comparison is not empty: some rows survive the reference


# --------------------------------------------------------------------------- evaluation attacks
class Counting(nn.Module):
    """Counts the rows of every forward pass, split into passes with and without a gradient."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m
        self.grad_rows = 0
        self.rows = 0

    def forward(self, x):
        if torch.is_grad_enabled():
            self.grad_rows += x.shape[0]
        else:
            self.rows += x.shape[0]
        return self.m(x)


@pytest.mark.parametrize("spec", [AttackSpec.make("pgd", 0.02, steps=5, restarts=3, random_start=True),
                                  AttackSpec.make("apgd", 0.02, steps=10, restarts=3)], ids=["pgd", "apgd"])
def test_evaluation_attacks_skip_lost_rows_same_robust_accuracy_less_work(three, spec, monkeypatch):
    model, x, y = three
    ids = np.arange(len(y))
    old, new = Counting(model), Counting(model)
    # the path before restart skipping: every restart on every row
    import rdm.attacks.functions as attacks_mod
    with monkeypatch.context() as m:
        m.setattr(attacks_mod, "_unfooled", lambda bf: torch.arange(len(bf), device=bf.device))
        x_every = run_attack_sweep([spec], Counting(model), x, y, ids)[0]
    x_old = run_attack_sweep([spec], old, x, y, ids)[0]             # rdm-attack: every row, lost restarts skipped
    assert torch.equal(x_old, x_every)                              # skipping restarts changes no output
    pc = as_class_logits(model(x)).argmax(1).detach().numpy()
    ((x_new, _),) = attack_for_eval([spec], new, x, y, ids, pc)
    right = pc == y.numpy()
    robust_old = right & ~_wrong(model, x_old, y).numpy()
    robust_new = ~_wrong(model, x_new, y).numpy()
    assert np.array_equal(robust_old, robust_new)
    # rows right on the clean image get exactly the old images; the others are not attacked at all
    assert torch.equal(x_new[~torch.from_numpy(right)], x[~torch.from_numpy(right)])
    assert torch.allclose(x_new[torch.from_numpy(right)], x_old[torch.from_numpy(right)], atol=1e-6, rtol=0)
    # the work in forward+backward rows: every restart on every row would be restarts × steps × N; the
    # first restart runs on the rows right on the clean image only and each later one on the rows no
    # restart has fooled yet
    n_steps = spec.steps + (1 if spec.name == "apgd" else 0)
    before = spec.restarts * n_steps * len(y)
    one, single = Counting(model), dataclasses.replace(spec, restarts=1)
    attack_for_eval([single], one, x, y, ids, pc)
    if spec.name == "pgd":
        assert n_steps * len(y) <= old.grad_rows < before       # rdm-attack: every row, fooled rows skip restarts
        assert n_steps * int(right.sum()) <= new.grad_rows < old.grad_rows
        # one restart: exactly the rows right on the clean image, once per step
        assert one.grad_rows == n_steps * int(right.sum())
    else:       # APGD: a row fooled within a run also takes no further step of it
        assert new.grad_rows <= old.grad_rows < before
        assert int(right.sum()) <= one.grad_rows <= n_steps * int(right.sum())


def _ev(*args):
    res = runner.invoke(eval_app, [str(a) for a in args])
    assert res.exit_code == 0, res.stderr
    return res


def test_rdm_eval_aa_per_row_results_pair_and_merge(tmp_path, phantom_set):
    ck = make_ckpt(tmp_path / "m.ckpt", preset="brain", seed=0)
    s = phantom_set("test.h5", preset="brain", n=16, shape=(3, 16, 16))
    flags = ["--attack", "aa", "--eps", "0.03", "--steps", "5", "--queries", "30", "--seed", "3"]
    _ev(ck, s, *flags, "-o", tmp_path / "full.json", "-q")
    text = (tmp_path / "full.json").read_text()
    rep = json.loads(text)
    clean, fly = rep["results"]
    assert fly["attack"]["name"] == "aa" and fly["on_the_fly"]
    pc, pr = clean["per_row"], fly["per_row"]
    assert pc["index"] == pr["index"] == list(range(16)) and pc["y"] == pr["y"]
    assert pr["pred_clean"] == pc["pred"]                              # the two cells pair by row
    n_right = sum(p == t for p, t in zip(pc["pred"], pc["y"]))
    assert pr["fooled"] == [pc_ == t and p != t for pc_, p, t in zip(pr["pred_clean"], pr["pred"], pr["y"])]
    # fooled_by: "clean" for rows wrong on clean, a stage for fooled rows, null for robust rows
    assert all((b == "clean") == (c != t) for b, c, t in zip(pr["fooled_by"], pr["pred_clean"], pr["y"]))
    assert all(b in (None, "clean", *STAGES) for b in pr["fooled_by"])
    assert all((b is None) == (p == t) for b, p, t in zip(pr["fooled_by"], pr["pred"], pr["y"]))
    acc = fly["metrics"]["accuracy"]
    assert acc == pytest.approx(pr["fooled_by"].count(None) / 16)
    assert fly["metrics"]["adversarial"]["fooled"] == sum(pr["fooled"]) <= n_right
    assert '"index": [0, 1, 2,' in text                                 # per-row lists on one line
    # shards: the merged per-row lists are the unsharded ones
    parts = []
    for i in range(2):
        parts.append(tmp_path / f"p{i}.json")
        _ev(ck, s, *flags, "--shard", f"{i}/2", "-o", parts[-1], "-q")
    _ev("--merge", *parts, "-o", tmp_path / "merged.json", "-q")
    merged = json.loads((tmp_path / "merged.json").read_text())
    for a, b in zip(rep["results"], merged["results"]):
        assert a["per_row"] == b["per_row"]
