"""The DCAE's start: output bias at the data's mean colour, so dark (or bright) images do not collapse it.

On the real brain MRI set (mean pixel 0.15) the DCAE with PyTorch's default output bias fell into
the flat tail of its sigmoid within 20 steps and output one constant image for good (val MSE 0.050,
worse than the mean image's 0.026). These tests rebuild that failure on small dark phantoms.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rdm.data.checkpoint import load_checkpoint
from rdm.models import DCAE
from rdm.data.sets import SetWriter, channel_mean, make_provenance, mse_to_constant
from rdm.training.loop import Reconstruction
from rdm_tools.pretrain_dcae import app as dcae_app
from helpers import TINY, tiny_preset

runner = CliRunner()
DARK = TINY.replace("channels = 1", "channels = 3").replace("size = [24, 24]", "size = [32, 32]")


def dark_images(n: int, seed: int, c: int = 3, s: int = 32) -> np.ndarray:
    """Mostly black: a dim noisy disc ("head") and one bright blob ("tumour"); mean pixel ≈ 0.11."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:s, 0:s] / s
    x = np.zeros((n, c, s, s), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(.3, .7, 2)
        r = rng.uniform(.25, .4)
        head = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r) * rng.uniform(.2, .4)
        by, bx = rng.uniform(.3, .7, 2)
        blob = np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * rng.uniform(.03, .08) ** 2)) * rng.uniform(.4, .8)
        x[i] = np.clip(head * (1 + .2 * rng.standard_normal((s, s))) + blob, 0, 1)
    return x


def write(path, x, seed):
    with SetWriter(path, shape=x.shape[1:], classes=["a", "b", "c"], modality="test", preset="tiny",
                   provenance=make_provenance(command="test", seed=seed)) as w:
        w.append(x, np.arange(len(x)) % 3)
    return path


@pytest.fixture(scope="module")
def dark(tmp_path_factory):
    d = tmp_path_factory.mktemp("dark")
    tr, va = dark_images(256, 0), dark_images(64, 1)
    return {"preset": tiny_preset(d, DARK), "train": write(d / "train.h5", tr, 0), "val": write(d / "val.h5", va, 1),
            "mean": tr.mean(axis=(0, 2, 3)), "ref": float(((va - tr.mean(axis=(0, 2, 3), keepdims=True)) ** 2).mean())}


def _pretrain(dark, out):
    r = runner.invoke(dcae_app, [str(a) for a in (dark["train"], "--val", dark["val"], "--preset", dark["preset"],
                                                  "--epochs", 3, "--batch-size", 32, "--lr", 1e-3,
                                                  "--device", "cpu", "-o", out)])
    return r.exit_code, r.stderr, load_checkpoint(out, expect_kind="dcae").meta["val"] if r.exit_code == 0 else None


def test_channel_mean_and_mean_image_mse_stream_to_numpys_values(dark):
    assert channel_mean(dark["train"], batch_size=7) == pytest.approx(dark["mean"].tolist(), abs=1e-6)
    # what the report recomputes for DCAE checkpoints written before validation reported it
    assert mse_to_constant(dark["val"], dark["mean"].tolist(), batch_size=5) == pytest.approx(dark["ref"], rel=1e-6)


@pytest.mark.parametrize("m", [0.1, 0.5, 0.9])
def test_untrained_dcae_starts_near_the_mean_colour(m):
    torch.manual_seed(0)
    net = DCAE(3, 32, 32)
    net.start_at_mean([m] * 3)
    out = net(torch.rand(8, 3, 32, 32)).detach()
    assert abs(out.mean().item() - m) < 0.05
    with pytest.raises(Exception, match="channel means"):
        net.start_at_mean([m])


def test_dark_images_are_learnt_and_the_mean_image_is_reported(dark, tmp_path):
    code, err, val = _pretrain(dark, tmp_path / "d.ckpt")
    assert code == 0, err
    assert val["mse_mean_image"] == pytest.approx(dark["ref"], rel=1e-4)
    assert val["mse"] < 0.6 * val["mse_mean_image"]
    assert "barely beats" not in err


def test_without_the_start_the_dark_set_collapses_and_the_command_warns(dark, tmp_path, monkeypatch):
    """The failure the start fixes, so that this file fails if the fix stops mattering or goes."""
    monkeypatch.setattr(DCAE, "start_at_mean", lambda self, mean: None)
    code, err, val = _pretrain(dark, tmp_path / "d.ckpt")
    assert code == 0, err
    assert val["mse"] > val["mse_mean_image"]              # one constant, darker than the mean image
    assert "warning: the DCAE barely beats a constant image" in " ".join(err.split())


def test_warning_threshold():
    r = Reconstruction([0.5])
    assert r.warning({"mse": 0.004, "mse_mean_image": 0.01}) is None
    assert "barely beats" in r.warning({"mse": 0.006, "mse_mean_image": 0.01})
    assert r.warning({"mse": 0.5}) is None                    # no reference: nothing to say
