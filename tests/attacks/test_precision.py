"""--precision bf16: the attacks keep the ε-ball and [0, 1] exact, robust accuracy stays near fp32 on a
trained model, the training commands record it; the GPU SSIM path equals scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rdm.api import eval as eval_api
from rdm.attacks.registry import AttackSpec
from rdm.attacks.functions import apgd_ce, fgsm, pgd
from rdm.data.checkpoint import load_checkpoint
from rdm.errors import RdmError
from rdm.evaluation.metrics import _ssim_psnr_torch, ssim_psnr
from rdm.precision import autocast, check_precision
from rdm.data.sets import SetReader
from rdm.api.train import Common, train_cnn
from rdm_tools.attack import app as attack_app
from helpers import TINY, phantoms, tiny_preset

from helpers import one_line_error


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("bf16")
    pre = tiny_preset(d, TINY.replace("size = [24, 24]", "size = [16, 16]"))
    tr = phantoms(d / "train.h5", pre, 240, seed=0)
    te = phantoms(d / "test.h5", pre, 120, seed=2)
    ck = train_cnn(tr, output=d / "m.ckpt",
                   c=Common(epochs=4, quiet=True, device="cpu", preset=str(pre), command="t"))
    return {"dir": d, "preset": pre, "train": tr, "test": te, "ckpt": ck}


def _exact_ball(xa: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert xa.dtype == torch.float32
    assert float((xa - x).abs().max()) <= np.float32(eps)                  # in float32
    assert float((xa.double() - x.double()).abs().max()) <= eps            # and in float64
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1


def test_bf16_attacks_keep_the_eps_ball_and_range_exact(trained):
    model = load_checkpoint(trained["ckpt"]).model
    with SetReader(trained["test"]) as r:
        b = r.read(0, 64)
    x, y = torch.from_numpy(b["x"]), torch.from_numpy(b["y"])
    for eps in (0.002, 0.03, 0.3):
        with autocast("cpu", "bf16"):
            outs = [fgsm(model, x, y, eps), pgd(model, x, y, eps, eps / 4, 5, random_start=True, seed=1),
                    apgd_ce(model, x, y, eps, 6, seed=1)]
        for xa in outs:
            _exact_ball(xa, x, eps)
    # the bf16 pass really ran in bf16: its gradient differs from the fp32 one somewhere
    with autocast("cpu", "bf16"):
        a16 = pgd(model, x, y, 0.03, 0.01, 3)
    assert not torch.equal(a16, pgd(model, x, y, 0.03, 0.01, 3))


def test_bf16_robust_accuracy_stays_close_to_fp32(trained):
    specs = [AttackSpec.make("pgd", 0.06, steps=5), AttackSpec.make("fgsm", 0.06)]
    acc = {}
    for prec in ("fp32", "bf16"):
        for spec in specs:
            rep = eval_api.evaluate(trained["ckpt"], [trained["test"]], specs=[spec], device="cpu",
                                    precision=prec)
            clean, adv = rep["results"]
            assert adv.get("precision", "fp32") == prec
            acc[prec, spec.name] = adv["metrics"]["accuracy"]
            acc["clean"] = clean["metrics"]["accuracy"]
    assert acc["clean"] - acc["fp32", "pgd"] > 0.1              # the attack does something
    for a in ("pgd", "fgsm"):                                   # 120 rows: within 3 rows (2.5 points)
        assert abs(acc["fp32", a] - acc["bf16", a]) <= 3 / 120 + 1e-9, acc


def test_precision_is_checked_with_a_one_line_error(trained, tmp_path):
    assert check_precision("BF16") == "bf16" and check_precision(None) == "fp32"
    with pytest.raises(RdmError, match="fp32 or bf16"):
        check_precision("fp16")
    res = CliRunner().invoke(attack_app, [str(trained["ckpt"]), str(trained["test"]), "--attack", "fgsm",
                                          "--eps", "0.01", "-o", str(tmp_path / "a.h5"), "--precision", "fp16"])
    assert "fp32 or bf16" in one_line_error(res)
    assert not (tmp_path / "a.h5").exists()


def test_bf16_attack_command_writes_float32_images_in_the_ball(trained, tmp_path):
    out = tmp_path / "a.h5"
    res = CliRunner().invoke(attack_app, [str(trained["ckpt"]), str(trained["test"]), "--attack", "pgd",
                                          "--eps", "0.01", "--steps", "3", "-o", str(out), "--precision",
                                          "bf16", "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.stderr
    with SetReader(out) as a, SetReader(trained["test"]) as c:
        assert a.info.provenance["arguments"]["precision"] == "bf16"
        _exact_ball(torch.from_numpy(a.read(0, a.n)["x"]), torch.from_numpy(c.read(0, c.n)["x"]), 0.01)


def test_bf16_training_records_its_precision(trained, tmp_path):
    c = dict(epochs=1, quiet=True, device="cpu", preset=str(trained["preset"]), command="t")
    a = load_checkpoint(train_cnn(trained["train"], output=tmp_path / "a.ckpt", c=Common(precision="bf16", **c)))
    b = load_checkpoint(train_cnn(trained["train"], output=tmp_path / "b.ckpt", c=Common(**c)))
    assert a.meta["recipe"]["precision"] == "bf16" and "precision" not in b.meta["recipe"]
    assert all(v.dtype == torch.float32 for v in a.model.state_dict().values() if v.is_floating_point())
    assert math.isfinite(a.meta["history"][0]["train"]["loss"])


@pytest.mark.parametrize("shape", [(9, 1, 16, 16), (5, 3, 12, 9)])
def test_device_ssim_psnr_equals_scikit_image(shape):
    rng = np.random.default_rng(0)
    x = rng.random(shape, dtype=np.float32)
    xa = np.clip(x + 0.02 * np.sign(rng.standard_normal(shape)), 0, 1).astype(np.float32)
    xa[0] = x[0]                                                       # an unchanged row: PSNR = ∞
    s0, p0 = ssim_psnr(xa, x)                                          # scikit-image, per image
    s1, p1 = _ssim_psnr_torch(torch.from_numpy(xa), torch.from_numpy(x))
    assert np.allclose(s0, s1, rtol=0, atol=1e-12)
    assert np.array_equal(np.isinf(p0), np.isinf(p1)) and np.isinf(p1[0])
    assert np.allclose(p0[1:], p1[1:], rtol=1e-12)


def test_bf16_cascade_decides_with_the_reported_predictions(trained, tmp_path):
    runner = CliRunner()
    """Under bf16 the aa cascade must decide "fooled" as the fp32 report does: every row it calls
    robust is right in the report, every row it calls fooled is wrong; and a bf16 part never
    merges with an fp32 part."""
    import json

    from rdm_tools.eval import app as eval_app

    flags = ["--attack", "aa", "--eps", "0.05", "--steps", "5", "--queries", "40", "--device", "cpu", "-q"]
    out = tmp_path / "bf16.json"
    r = runner.invoke(eval_app, [str(trained["ckpt"]), str(trained["test"]), *flags, "--precision", "bf16",
                                 "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    pr = json.loads(out.read_text())["results"][1]["per_row"]
    assert all((b is None) == (p == t) for b, p, t in zip(pr["fooled_by"], pr["pred"], pr["y"]))
    parts = []
    for i, prec in enumerate(("fp32", "bf16")):
        parts.append(tmp_path / f"p{i}.json")
        r = runner.invoke(eval_app, [str(trained["ckpt"]), str(trained["test"]), *flags, "--precision", prec,
                                     "--shard", f"{i}/2", "-o", str(parts[-1])])
        assert r.exit_code == 0, r.stderr
    r = runner.invoke(eval_app, ["--merge", *map(str, parts), "-o", str(tmp_path / "m.json")])
    assert r.exit_code == 1 and "precision" in r.stderr and not (tmp_path / "m.json").exists()
