"""Where a run happened is recorded: checkpoints' training metadata and rdm-eval reports carry
``environment`` with the same four keys."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import torch

from rdm.api.train import Common, train_cnn
from rdm.data.checkpoint import read_raw
from rdm.environment import cpu_name, environment
from rdm_tools.eval import app as eval_app

from helpers import phantoms, tiny_preset

KEYS = {"device", "device_name", "torch", "precision"}


def test_training_and_evaluation_record_the_same_environment(tmp_path):
    preset = tiny_preset(tmp_path)
    train = phantoms(tmp_path / "train.h5", preset, 24, 0)
    ck = train_cnn(train, output=tmp_path / "m.ckpt",
                   c=Common(epochs=1, batch_size=12, device="cpu", preset=str(preset), quiet=True))
    env = read_raw(ck)["meta"]["environment"]
    assert env == {"device": "cpu", "device_name": cpu_name(), "torch": torch.__version__, "precision": "fp32"}
    res = CliRunner().invoke(eval_app, [str(ck), str(train), "--json", "-q", "--device", "cpu"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["environment"] == env
    assert set(environment("cpu", "bf16")) == KEYS and environment("cpu", "bf16")["precision"] == "bf16"
    assert cpu_name() and "\n" not in cpu_name()
