"""rdm-advtrain --recipe fast|trades|mart|gaussian on phantoms: they train, are seeded, resume,
and the adversarial ones resist white-box PGD at their ε better than standard training."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from rdm.data.checkpoint import load_checkpoint
from rdm.data.sets import SetReader
from rdm.api.advtrain import advtrain
from rdm.api.train import Common, train_cnn
from rdm_tools.advtrain import app
from helpers import phantoms, same_weights, tiny_preset, weights

runner = CliRunner()
EPS = 0.03


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipes")
    pre = tiny_preset(d)
    return {"dir": d, "preset": pre, "train": phantoms(d / "train.h5", pre, 256, seed=0),
            "val": phantoms(d / "val.h5", pre, 96, seed=1), "test": phantoms(d / "test.h5", pre, 120, seed=2),
            "c": Common(preset=str(pre), quiet=True, device="cpu", command="test", epochs=8)}


def _c(data, **kw):
    return Common(**{**data["c"].__dict__, **kw})


def _pgd_accuracy(ckpt, test, eps=EPS) -> float:
    from rdm.attacks.functions import pgd

    ck = load_checkpoint(ckpt)
    with SetReader(test) as r:
        b = r.read(0, r.n, ["x", "y"])
    x, y = torch.from_numpy(b["x"]), torch.from_numpy(b["y"])
    x_adv = pgd(ck.model, x, y, eps, eps / 4, 10, random_start=True, seed=0)
    with torch.no_grad():
        return float((ck.model.eval()(x_adv).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def standard(data):
    return train_cnn(data["train"], output=data["dir"] / "std.ckpt", val=data["val"], c=_c(data))


@pytest.mark.slow
@pytest.mark.parametrize("recipe,kw", [
    ("fast", dict(eps=EPS)),
    ("trades", dict(eps=EPS, steps=3, beta=6.0)),
    ("mart", dict(eps=EPS, steps=3, beta=6.0)),
])
def test_adversarial_recipes_beat_standard_training_under_pgd(data, standard, recipe, kw):
    out = advtrain(data["train"], output=data["dir"] / f"{recipe}.ckpt", val=data["val"], recipe=recipe,
                   c=_c(data), **kw)
    meta = load_checkpoint(out).meta
    assert meta["recipe"]["name"] == f"advtrain-{recipe}" and meta["recipe"][recipe]["eps"] == EPS
    robust, base = _pgd_accuracy(out, data["test"]), _pgd_accuracy(standard, data["test"])
    assert robust > base + 0.05, (recipe, robust, base)


def test_same_seed_same_weights_and_resume(data, tmp_path):
    small = phantoms(tmp_path / "small.h5", data["preset"], 64, seed=3)
    kw = dict(recipe="trades", eps=0.03, steps=2, beta=3.0)
    a = advtrain(small, output=tmp_path / "a.ckpt", c=_c(data, epochs=2), **kw)
    b = advtrain(small, output=tmp_path / "b.ckpt", c=_c(data, epochs=2), **kw)
    assert same_weights(weights(a), weights(b))
    # one epoch, then resumed to two: the same weights as two epochs at once
    advtrain(small, output=tmp_path / "r.ckpt", c=_c(data, epochs=1), **kw)
    r = advtrain(small, output=tmp_path / "r.ckpt", c=_c(data, epochs=2, resume=True), **kw)
    assert same_weights(weights(r), weights(a))
    g = advtrain(small, output=tmp_path / "g.ckpt", recipe="gaussian", sigma=0.25, c=_c(data, epochs=1))
    assert load_checkpoint(g).meta["recipe"]["gaussian"] == {"sigma": 0.25}
    plain = train_cnn(small, output=tmp_path / "p.ckpt", c=_c(data, epochs=1))
    assert not same_weights(weights(g), weights(plain))


@pytest.mark.parametrize("args,needle", [
    (["--recipe", "trades"], "--eps"),
    (["--recipe", "gaussian"], "--sigma"),
    (["--recipe", "gaussian", "--sigma", "0.1", "--eps", "0.01"], "not --eps"),
    (["--recipe", "fast", "--eps", "0.01", "--alpha", "0.01"], "drop --alpha"),
    (["--recipe", "mart", "--eps", "0.01", "--beta", "-1"], "--beta"),
    (["--recipe", "trades", "--eps", "0.01", "--online", "pgd"], "--online pgd"),
    (["--recipe", "free", "--eps", "0.01"], "choose from"),
])
def test_bad_recipe_settings_exit_2_in_one_line(data, tmp_path, args, needle):
    out = tmp_path / "x.ckpt"
    r = runner.invoke(app, [str(data["train"]), "--preset", str(data["preset"]), *args, "-o", str(out)])
    assert r.exit_code == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert not out.exists()
