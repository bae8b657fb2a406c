"""Data-parallel training under torchrun: ``torchrun --nproc-per-node 2 rdm-train-cnn …`` on CPU
(gloo) ends with the weights of a single-process run with the same global batch and seed (to
float tolerance; the last global batch of an epoch is odd-sized on purpose, so one rank gets one
row less, and the last batch of all has a single row, so one rank gets none); only rank 0 writes.
``--online pgd`` adversarial training runs under it too. The tiny preset has no dropout (the lung
and brain presets have none either; see rdm.training.distributed on the leukemia head's dropout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rdm.data.checkpoint import read_raw
from helpers import small_train_val, weights

dist = pytest.importorskip("torch.distributed")
if not (dist.is_available() and dist.is_gloo_available()):
    pytest.skip("torch.distributed with gloo is unavailable", allow_module_level=True)

BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", "RDM_THREADS": "1"}


def _torchrun(tool: str, *args, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           str(BIN / tool), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())


def _single(tool: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env=_env())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 49 rows, global batch 16: batches of 16, 16, 16, 1 -> the last one leaves rank 1 empty
    return small_train_val(tmp_path_factory.mktemp("ddp"), 49, 20)


def test_two_ranks_match_one_process(data):
    d = data["dir"]
    common = [data["train"], "--val", data["val"], "--preset", data["preset"], "--epochs", "3",
              "--batch-size", "16", "--seed", "3", "--device", "cpu", "-q"]
    one = _single("rdm-train-cnn", *common, "-o", d / "one.ckpt")
    assert one.returncode == 0, one.stderr[-2000:]
    two = _torchrun("rdm-train-cnn", *common[:-1], "-o", d / "two.ckpt")      # not quiet: rank 0 logs
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = weights(d / "one.ckpt"), weights(d / "two.ckpt")
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), (k, (a[k] - b[k]).abs().max())
    ma, mb = read_raw(d / "one.ckpt")["meta"], read_raw(d / "two.ckpt")["meta"]
    assert ma["best_epoch"] == mb["best_epoch"] and ma["epochs_run"] == mb["epochs_run"] == 3
    for ha, hb in zip(ma["history"], mb["history"]):   # train metrics are over the global batches
        assert hb["train"]["accuracy"] == pytest.approx(ha["train"]["accuracy"])
        assert hb["train"]["loss"] == pytest.approx(ha["train"]["loss"], rel=1e-4)
        assert hb["val"]["balanced_accuracy"] == pytest.approx(ha["val"]["balanced_accuracy"])
    # rank 0 alone writes and prints: the path once on stdout, no partial left behind, no other file
    assert two.stdout.split() == [str(d / "two.ckpt")]
    assert sorted(p.name for p in d.iterdir() if p.suffix in (".ckpt", ".partial")) == ["one.ckpt", "two.ckpt"]
    assert two.stderr.count("epoch 1/3  train") == 1 and two.stderr.count(f"wrote {d / 'two.ckpt'}") == 1


def test_different_global_batch_gives_different_weights(data):
    """The comparison above can fail: a per-rank batch of 16 (global 32) is another run."""
    d = data["dir"]
    if not (d / "one.ckpt").exists():
        pytest.skip("needs test_two_ranks_match_one_process")
    r = _single("rdm-train-cnn", data["train"], "--val", data["val"], "--preset", data["preset"], "--epochs", "3",
                "--batch-size", "32", "--seed", "3", "--device", "cpu", "-q", "-o", d / "b32.ckpt")
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = weights(d / "one.ckpt"), weights(d / "b32.ckpt")
    assert any(not torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


@pytest.mark.parametrize("recipe", [["--online", "pgd"], ["--recipe", "trades", "--beta", "6"]],
                         ids=["online-pgd", "trades"])
def test_online_adversarial_training_under_torchrun(data, recipe):
    d = data["dir"]
    out = d / f"adv-{recipe[1]}.ckpt"
    r = _torchrun("rdm-advtrain", data["train"], *recipe, "--eps", "0.03", "--steps", "2",
                  "--preset", data["preset"], "--epochs", "1", "--batch-size", "16", "--seed", "0",
                  "--device", "cpu", "-q", "-o", out)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = read_raw(out)["meta"]
    assert meta["recipe"]["name"] == {"pgd": "advtrain-online"}.get(recipe[1], f"advtrain-{recipe[1]}")
    assert meta["epochs_run"] == 1
    assert not out.with_name(out.name + ".partial").exists()
