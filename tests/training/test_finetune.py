"""rdm-finetune: the DCAE encoder carried into the CNN, --freeze-encoder, --purify, bad inputs."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from rdm.data.checkpoint import load_checkpoint, read_raw, save_checkpoint
from rdm.models import DCAE, build
from rdm.api.train import Common, finetune, pretrain_dcae, train_cnn
import rdm.api.train as train_api
from rdm_tools.finetune import app
from helpers import TINY, accuracy, phantoms, tiny_preset

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft")
    pre = tiny_preset(d)
    c = Common(preset=str(pre), quiet=True, device="cpu", command="test")
    tr = phantoms(d / "train.h5", pre, 384, seed=0)
    va = phantoms(d / "val.h5", pre, 150, seed=1)
    dcae = pretrain_dcae(tr, output=d / "dcae.ckpt", val=va, c=Common(**{**c.__dict__, "epochs": 2}))
    cnn = train_cnn(tr, output=d / "cnn.ckpt", val=va, c=Common(**{**c.__dict__, "epochs": 2}))
    return {"dir": d, "preset": pre, "train": tr, "val": va, "test": phantoms(d / "test.h5", pre, 150, seed=2),
            "dcae": dcae, "cnn": cnn, "c": c}


def enc(sd):
    return {k: v for k, v in sd.items() if k.startswith("encoder.")}


def _c(data, **kw):
    return Common(**{**data["c"].__dict__, **kw})


def test_finetune_starts_from_the_dcae_encoder_and_beats_chance(data, tmp_path, monkeypatch):
    seen = {}
    real_fit = train_api.fit

    def spy(model, *a, **k):          # the model as the loop receives it, before any step
        seen["enc"] = {n: v.detach().clone() for n, v in enc(model.state_dict()).items()}
        seen["head"] = {n: v.detach().clone() for n, v in model.state_dict().items() if n.startswith("head.")}
        return real_fit(model, *a, **k)

    monkeypatch.setattr(train_api, "fit", spy)
    out = finetune(data["train"], dcae=data["dcae"], output=tmp_path / "ft.ckpt", val=data["val"], c=_c(data))
    d_enc = enc(read_raw(data["dcae"])["state_dict"])
    assert set(seen["enc"]) == set(d_enc) and all(torch.equal(seen["enc"][k], d_enc[k]) for k in d_enc)
    after = read_raw(out)
    # default: the encoder is fine-tuned too (the paper's "fine-tuning of parameters")
    assert any(not torch.equal(after["state_dict"][k], d_enc[k]) for k in d_enc)
    m = after["meta"]
    assert m["kind"] == "cnn" and m["recipe"]["name"] == "rdmaa" and m["recipe"]["freeze_encoder"] is False
    assert m["parent"]["path"] == str(data["dcae"]) and len(m["parent"]["sha256"]) == 64
    assert accuracy(out, data["test"]) > 0.55            # chance is 1/3


def test_freeze_encoder_keeps_the_dcae_weights_bit_identical(data, tmp_path):
    out = finetune(data["train"], dcae=data["dcae"], output=tmp_path / "fz.ckpt", val=data["val"],
                   freeze_encoder=True, c=_c(data, epochs=2))
    d_enc = enc(read_raw(data["dcae"])["state_dict"])
    sd = read_raw(out)["state_dict"]
    assert all(torch.equal(sd[k], d_enc[k]) for k in d_enc)
    assert read_raw(out)["meta"]["recipe"]["freeze_encoder"] is True


def _input_grad(model, x, y):
    from rdm.models import classification_loss
    x = x.clone().requires_grad_(True)
    classification_loss(model(x), y).backward()
    return x.grad


def test_purified_composite_loads_and_gradients_flow_through_the_dcae(data, tmp_path):
    out = tmp_path / "pur.ckpt"
    r = runner.invoke(app, [str(data["train"]), "--dcae", str(data["dcae"]), "--purify", "--cnn", str(data["cnn"]),
                            "--val", str(data["val"]), "--preset", str(data["preset"]), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(out)
    ck = load_checkpoint(out)
    assert ck.kind == "purified" and ck.meta["arch"]["name"] == "purified"
    assert ck.meta["arch"]["dcae"] == read_raw(data["dcae"])["meta"]["arch"]
    assert {p["path"] for p in ck.meta["parents"]} == {str(data["dcae"]), str(data["cnn"])}
    assert 0 <= ck.meta["val"]["accuracy"] <= 1
    # the composite is exactly CNN(DCAE(x)) of the two parents
    dc, cn = load_checkpoint(data["dcae"]).model, load_checkpoint(data["cnn"]).model
    x = torch.rand(8, 1, 24, 24)
    y = torch.arange(8) % 3
    with torch.no_grad():
        assert torch.allclose(ck.model(x), cn(dc(x)))
    g = _input_grad(ck.model, x, y)
    assert g.abs().sum() > 0
    # the gradient depends on the DCAE's weights: it flows through the purifier
    with torch.no_grad():
        ck.model.dcae.out.weight.mul_(0.5)
    ck.model.zero_grad()
    g2 = _input_grad(ck.model, x, y)
    assert not torch.allclose(g, g2)


def test_purify_after_finetuning(data, tmp_path):
    out = finetune(data["train"], dcae=data["dcae"], output=tmp_path / "pf.ckpt", val=data["val"], purify=True,
                   c=_c(data, epochs=1))
    ck = load_checkpoint(out)
    assert ck.kind == "purified" and ck.meta["recipe"]["name"] == "purified"
    assert ck.meta["recipe"]["cnn_recipe"] == "rdmaa" and "val_cnn" in ck.meta


def _fail(args, tmp_path, needle):
    out = tmp_path / "x.ckpt"
    r = runner.invoke(app, [str(a) for a in args] + ["-o", str(out)])
    assert r.exit_code == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert r.stdout == "" and not out.exists()


def test_dcae_pointing_at_a_cnn_checkpoint(data, tmp_path):
    _fail([data["train"], "--dcae", data["cnn"], "--preset", data["preset"]], tmp_path, "is a cnn checkpoint")


def test_corrupt_and_foreign_checkpoints(data, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(read_raw.__module__.encode() * 10)
    _fail([data["train"], "--dcae", bad, "--preset", data["preset"]], tmp_path, "not a readable checkpoint")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data["dcae"].read_bytes()[:4000])
    _fail([data["train"], "--dcae", cut, "--preset", data["preset"]], tmp_path, "not a readable checkpoint")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    _fail([data["train"], "--dcae", foreign, "--preset", data["preset"]], tmp_path, "not an rdm checkpoint")


def test_dcae_whose_encoder_does_not_fit(data, tmp_path):
    # right input shape, but 32 encoder filters: transfer_encoder refuses the copy
    arch = {"name": "dcae", "args": {"in_channels": 1, "height": 24, "width": 24, "filters": 32}}
    p = save_checkpoint(tmp_path / "d32.ckpt", build(arch), {"kind": "dcae", "arch": arch,
                        "classes": ["a", "b", "c"], "input_shape": [1, 24, 24]})
    _fail([data["train"], "--dcae", p, "--preset", data["preset"]], tmp_path, "encoder")
    # a DCAE for another input shape
    arch = {"name": "dcae", "args": {"in_channels": 3, "height": 24, "width": 24}}
    p = save_checkpoint(tmp_path / "d3.ckpt", DCAE(3, 24, 24), {"kind": "dcae", "arch": arch,
                        "classes": ["a", "b", "c"], "input_shape": [3, 24, 24]})
    _fail([data["train"], "--dcae", p, "--preset", data["preset"]], tmp_path, "expects 3")


def test_set_that_does_not_fit_the_preset(data, tmp_path):
    rgb = phantoms(tmp_path / "rgb.h5", data["preset"], 16, 0, shape=(3, 24, 24))
    _fail([rgb, "--dcae", data["dcae"], "--preset", data["preset"]], tmp_path, "3 channels")
    _fail([data["train"], "--dcae", data["dcae"], "--preset", data["preset"], "--adv", rgb], tmp_path,
          "3 channels")


def test_init_random_is_rdmaas_schedule_without_the_dcae_and_trains_the_baselines_weights(data, tmp_path):
    """The ablation 'scratch': rdm-finetune --init random differs from rdm-train-cnn in nothing but
    the recipe's name, so with the same seed and settings it gives the baseline's weights; RDMAA
    (the DCAE's encoder) does not."""
    c = _c(data, epochs=2)
    scratch = finetune(data["train"], dcae=None, init="random", output=tmp_path / "s.ckpt", val=data["val"], c=c)
    base = read_raw(data["cnn"])["state_dict"]
    s = read_raw(scratch)
    assert set(s["state_dict"]) == set(base) and all(torch.equal(s["state_dict"][k], base[k]) for k in base)
    assert s["meta"]["recipe"]["name"] == "scratch" and s["meta"]["recipe"]["encoder_from"] == "random"
    assert s["meta"]["parent"] is None
    rdmaa = finetune(data["train"], dcae=data["dcae"], output=tmp_path / "r.ckpt", val=data["val"], c=c)
    assert not all(torch.equal(read_raw(rdmaa)["state_dict"][k], base[k]) for k in base)


@pytest.mark.parametrize("args,needle", [(["--init", "random", "--dcae", "DCAE"], "drop --dcae"),
                                         ([], "--dcae is required"),
                                         (["--init", "random", "--purify"], "--purify"),
                                         (["--init", "zeros"], "--init zeros")])
def test_init_and_dcae_must_agree(data, tmp_path, args, needle):
    args = [str(data["dcae"]) if a == "DCAE" else a for a in args]
    r = runner.invoke(app, [str(data["train"]), *args, "-o", str(tmp_path / "x.ckpt"), "--device", "cpu"])
    assert r.exit_code == 2 and needle in r.stderr.strip().splitlines()[-1], (r.stdout, r.stderr)
    assert not (tmp_path / "x.ckpt").exists()
