"""The training commands through their CLIs: stdout, errors, rdm-pretrain-dcae."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from rdm.data.checkpoint import load_checkpoint
from rdm.data.sets import SetReader
from rdm_tools.pretrain_dcae import app as dcae_app
from rdm_tools.train_cnn import app as cnn_app
from helpers import noisy_copy, phantoms, small_train_val, tiny_preset

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return small_train_val(tmp_path_factory.mktemp("cli"))


def run(app, args):
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def one_line_error(code, out, err, *needles):
    assert code == 1, (code, out, err)
    assert out == ""
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error")]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in errors[0], errors[0]


def test_train_cnn_prints_only_the_path(data, tmp_path):
    out = tmp_path / "m.ckpt"
    code, so, se = run(cnn_app, [data["train"], "--val", data["val"], "--preset", data["preset"],
                                 "--epochs", 1, "--device", "cpu", "-o", out])
    assert code == 0, se
    assert so.strip() == str(out) and out.exists()
    assert "epoch 1/1" in se


def test_preset_comes_from_the_set(tmp_path):
    tr = phantoms(tmp_path / "lung.h5", "lung", 32, seed=0)
    out = tmp_path / "m.ckpt"
    code, so, se = run(cnn_app, [tr, "--epochs", 1, "--device", "cpu", "-q", "-o", out])
    assert code == 0, se
    ck = load_checkpoint(out)
    assert ck.meta["preset"]["name"] == "lung" and ck.input_shape == (1, 52, 52)
    assert ck.meta["arch"]["args"]["binary"] is True and ck.meta["val"] is None


@pytest.mark.parametrize("case", ["channels", "size", "classes", "missing", "preset"])
def test_bad_sets_fail_in_one_line_and_write_nothing(data, tmp_path, case):
    out = tmp_path / "m.ckpt"
    train, extra = data["train"], []
    if case == "channels":
        train, needle = phantoms(tmp_path / "rgb.h5", data["preset"], 16, 0, shape=(3, 16, 16)), "3 channels"
    elif case == "size":
        train, needle = phantoms(tmp_path / "big.h5", data["preset"], 16, 0, shape=(1, 20, 20)), "20×20"
    elif case == "classes":
        train, needle = phantoms(tmp_path / "lung.h5", "lung", 16, 0, shape=(1, 16, 16)), "classes"
    elif case == "missing":
        train, needle = tmp_path / "nope.h5", "no such file"
    else:
        extra, needle = ["--preset", "nosuch"], "unknown preset"
    if case != "preset":
        extra = ["--preset", data["preset"]]
    code, so, se = run(cnn_app, [train, *extra, "--epochs", 1, "--device", "cpu", "-o", out])
    one_line_error(code, so, se, needle)
    assert not out.exists() and not (tmp_path / "m.ckpt.partial").exists()


# --------------------------------------------------------------------------- DCAE
def test_pretrain_dcae_reconstructs_clean_from_adversarial(tmp_path):
    pre = tiny_preset(tmp_path)                     # 24×24: learns steadily in a few epochs
    data = {"preset": pre, "train": phantoms(tmp_path / "train.h5", pre, 128, seed=0),
            "val": phantoms(tmp_path / "val.h5", pre, 48, seed=1)}
    adv = noisy_copy(tmp_path / "adv.h5", data["train"], eps=0.08)
    vadv = noisy_copy(tmp_path / "vadv.h5", data["val"], eps=0.08, seed=1)
    out = tmp_path / "dcae.ckpt"
    code, so, se = run(dcae_app, [data["train"], adv, "--val", data["val"], "--val-adv", vadv,
                                  "--preset", data["preset"], "--epochs", 10, "--lr", 3e-3, "--batch-size", 16,
                                  "--device", "cpu", "-o", out])
    assert code == 0, se
    assert so.strip() == str(out) and "psnr" in se
    ck = load_checkpoint(out, expect_kind="dcae")
    m = ck.meta
    assert m["recipe"]["name"] == "dcae" and m["recipe"]["adversarial_sets"] == [str(adv)]
    assert set(m["datasets"]) == {str(p) for p in (data["train"], adv, data["val"], vadv)}
    assert {"mse", "psnr"} <= set(m["val"]) and all("psnr" in h["val"] for h in m["history"])
    # better than the best constant image (the training mean) on held-out adversarial rows
    with SetReader(vadv) as a, SetReader(data["val"]) as s:
        xa, xc = a.read(0, a.n)["x"], s.read(0, s.n)["x"]
    with SetReader(data["train"]) as t:
        mean_img = t.read(0, t.n)["x"].mean(0)
    import torch
    with torch.no_grad():
        rec = ck.model(torch.from_numpy(xa)).numpy()
    assert np.mean((rec - xc) ** 2) < 0.8 * np.mean((mean_img - xc) ** 2)
    assert m["val"]["psnr"] > 10 * np.log10(1 / np.mean((mean_img - xc) ** 2))


@pytest.mark.parametrize("case", ["no_source_index", "other_source", "bad_labels"])
def test_pretrain_dcae_refuses_adversarial_sets_that_do_not_fit(data, tmp_path, case):
    if case == "no_source_index":
        adv, needle = noisy_copy(tmp_path / "a.h5", data["train"], with_source=False), "source_index"
    elif case == "other_source":
        adv, needle = noisy_copy(tmp_path / "a.h5", data["val"]), "was not made from"
    else:  # no input hashes recorded: matched by labels, which here disagree
        adv = noisy_copy(tmp_path / "a.h5", data["train"], record_input=False,
                         source_index=np.roll(np.arange(128), 1))
        needle = "has label"
    out = tmp_path / "dcae.ckpt"
    code, so, se = run(dcae_app, [data["train"], adv, "--preset", data["preset"], "--epochs", 1,
                                  "--device", "cpu", "-o", out])
    one_line_error(code, so, se, needle)
    assert not out.exists()


def test_patience_flag_sets_the_stopping_rule_over_the_presets(data, tmp_path):
    """--patience replaces the preset's (3 in the tiny preset): the grid's one stopping rule reaches the loop."""
    from rdm.data.checkpoint import read_raw

    out = tmp_path / "p.ckpt"
    code, _, se = run(cnn_app, [data["train"], "--val", data["val"], "--preset", data["preset"], "--epochs", 30,
                                "--lr", 0.05, "--patience", 1, "--device", "cpu", "-q", "-o", out])
    assert code == 0, se
    m = read_raw(out)["meta"]
    assert m["recipe"]["patience"] == 1
    assert m["stopped_early"] and m["epochs_run"] == m["best_epoch"] + 1 < 30


@pytest.mark.parametrize("tool", ["train-cnn", "pretrain-dcae", "finetune", "advtrain"])
def test_a_negative_patience_is_a_usage_error_on_every_training_command(data, tmp_path, tool):
    from rdm_tools.advtrain import app as adv_app
    from rdm_tools.finetune import app as ft_app

    app, extra = {"train-cnn": (cnn_app, []), "pretrain-dcae": (dcae_app, []),
                  "finetune": (ft_app, ["--init", "random"]), "advtrain": (adv_app, ["--online", "pgd", "--eps", 0.01])}[tool]
    r = runner.invoke(app, [str(a) for a in [data["train"], *extra, "--preset", data["preset"], "--patience", -1,
                                             "--device", "cpu", "-o", tmp_path / "x.ckpt"]])
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().splitlines()[-1].startswith("error: --patience must be 0")
    assert not (tmp_path / "x.ckpt").exists()
