"""Every crafted set records the split and the sha256 of the clean set it was crafted from, and the
training commands check them against the training set: a set crafted from test or validation
images is refused whatever the files are called and wherever they were moved."""

from __future__ import annotations

import shutil

import h5py
import pytest
from typer.testing import CliRunner

from helpers import error_line, make_ckpt, phantoms, tiny_preset
from rdm.api.attack import attack_set
from rdm.attacks import options as ao
from rdm.data.sets import SetReader, sha256_file

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("crafted")
    pre = tiny_preset(d)
    train = phantoms(d / "train.h5", pre, 30, seed=0)
    held = phantoms(d / "holdout.h5", pre, 18, seed=5)          # a test split under another name
    with h5py.File(held, "r+") as f:
        f.attrs["split"] = "test"
    other = phantoms(d / "other.h5", pre, 18, seed=6)           # no split recorded, not the training set
    ck = make_ckpt(d / "m.ckpt", preset=str(pre), size=(24, 24))
    specs = ao.specs_from("fgsm", [0.02])
    advs = {}
    for name, src in (("held", held), ("other", other), ("own", train)):
        advs[name] = attack_set(ck, src, specs, [d / f"adv-{name}.h5"], device="cpu").paths[0]
    held_sha = sha256_file(held)
    shutil.move(held, d / "moved-away.h5")                      # the source is gone from where it was
    return dict(d=d, pre=pre, train=train, advs=advs, held_sha=held_sha)


def test_the_crafted_set_records_split_and_source_hash(world):
    with SetReader(world["advs"]["held"]) as r:
        src = r.info.provenance["source_set"]
    assert src["split"] == "test" and src["sha256"] == world["held_sha"]


def _train(app_name: str, world, adv, out, *extra):
    import importlib

    app = importlib.import_module(f"rdm_tools.{app_name}").app
    return runner.invoke(app, [str(world["train"]), "--adv", str(adv), "--preset", str(world["pre"]),
                               "--epochs", "1", "--device", "cpu", "-q", "-o", str(out), *extra])


@pytest.mark.parametrize("command", ["advtrain", "finetune"])
def test_sets_crafted_from_held_out_or_other_sets_are_refused(world, tmp_path, command):
    extra = ["--init", "random"] if command == "finetune" else []
    line = error_line(_train(command, world, world["advs"]["held"], tmp_path / "a.ckpt", *extra), 1)
    assert "test split" in line and "--allow-held-out-adv" in line
    line = error_line(_train(command, world, world["advs"]["other"], tmp_path / "b.ckpt", *extra), 1)
    assert "not from the training set" in line
    assert not list(tmp_path.iterdir())


def test_own_sets_train_and_the_flag_still_overrides(world, tmp_path):
    res = _train("advtrain", world, world["advs"]["own"], tmp_path / "own.ckpt")
    assert res.exit_code == 0, res.stderr
    res = _train("advtrain", world, world["advs"]["held"], tmp_path / "forced.ckpt", "--allow-held-out-adv")
    assert res.exit_code == 0, res.stderr
