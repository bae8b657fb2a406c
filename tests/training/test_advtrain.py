"""rdm-advtrain: the paper's recipe (clean ∪ adversarial sets) and on-line PGD (Madry et al.)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rdm.data.checkpoint import load_checkpoint, read_raw
from rdm.api.advtrain import advtrain
from rdm.api.train import Common
from rdm_tools.advtrain import app
from helpers import accuracy, noisy_copy, phantoms, same_weights, tiny_preset, weights

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("adv")
    pre = tiny_preset(d)
    tr = phantoms(d / "train.h5", pre, 384, seed=0)
    return {"dir": d, "preset": pre, "train": tr, "val": phantoms(d / "val.h5", pre, 150, seed=1),
            "test": phantoms(d / "test.h5", pre, 150, seed=2), "adv": noisy_copy(d / "adv.h5", tr, eps=0.03),
            "c": Common(preset=str(pre), quiet=True, device="cpu", command="test")}


def _c(data, **kw):
    return Common(**{**data["c"].__dict__, **kw})


def test_paper_recipe_doubles_the_data_and_beats_chance(data, tmp_path):
    out = advtrain(data["train"], output=tmp_path / "a.ckpt", val=data["val"], adv=[data["adv"]], c=_c(data))
    m = read_raw(out)["meta"]
    assert m["kind"] == "cnn" and m["recipe"]["name"] == "advtrain-paper"
    assert m["recipe"]["adversarial_sets"] == [str(data["adv"])] and str(data["adv"]) in m["datasets"]
    assert accuracy(out, data["test"]) > 0.55                # chance is 1/3


def test_online_pgd_is_seeded_and_beats_chance(data, tmp_path):
    pytest.importorskip("rdm.attacks.functions")
    kw = dict(val=data["val"], online="pgd", eps=0.01, steps=1)
    a = advtrain(data["train"], output=tmp_path / "a.ckpt", c=_c(data, epochs=8), **kw)
    m = load_checkpoint(a).meta
    assert m["recipe"]["name"] == "advtrain-online"
    assert m["recipe"]["online"] == {"attack": "pgd", "eps": 0.01, "alpha": pytest.approx(0.025), "steps": 1,
                                     "random_start": True}
    assert accuracy(a, data["test"]) > 0.5                   # chance is 1/3
    # same seed, same weights; and the attack changes training (not the clean run's weights)
    small = phantoms(tmp_path / "small.h5", data["preset"], 64, seed=3)
    kw = dict(online="pgd", eps=0.02, steps=2)
    b = advtrain(small, output=tmp_path / "b.ckpt", c=_c(data, epochs=1), **kw)
    b2 = advtrain(small, output=tmp_path / "b2.ckpt", c=_c(data, epochs=1), **kw)
    assert same_weights(weights(b), weights(b2))
    from rdm.api.train import train_cnn
    clean = train_cnn(small, output=tmp_path / "c.ckpt", c=_c(data, epochs=1))
    assert not same_weights(weights(b), weights(clean))


@pytest.mark.parametrize("args,needle,code", [
    ([], "either --adv", 2),
    (["--adv", "ADV", "--online", "pgd", "--eps", "0.01"], "either --adv", 2),
    (["--online", "pgd"], "--eps", 2),
    (["--online", "fgsm", "--eps", "0.01"], "only 'pgd'", 2),
    (["--adv", "RGB"], "3 channels", 1),
])
def test_bad_recipes_fail_in_one_line(data, tmp_path, args, needle, code):
    rgb = phantoms(tmp_path / "rgb.h5", data["preset"], 16, 0, shape=(3, 24, 24))
    args = [{"ADV": str(data["adv"]), "RGB": str(rgb)}.get(a, a) for a in args]
    out = tmp_path / "x.ckpt"
    r = runner.invoke(app, [str(data["train"]), "--preset", str(data["preset"]), *args, "-o", str(out)])
    assert r.exit_code == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert not out.exists() and r.stdout == ""
