"""Sets carry their preset: rdm-prep with a custom preset file, the file deleted, then every other
command without --preset."""

from __future__ import annotations

import json

import h5py
import numpy as np
from PIL import Image
from typer.testing import CliRunner

from rdm.data.checkpoint import load_checkpoint
from rdm_tools import advtrain, attack, certify, finetune, pretrain_dcae, train_cnn
from rdm_tools import eval as eval_tool
from rdm_tools import prep

MINE = """name = "mine"
modality = "CT"
classes = ["round", "square"]
channels = 1
size = [16, 16]
split = { train = 0.5, val = 0.25, test = 0.25 }
[intensity]
unit = "HU"
window = [-1000, 400]
[model]
hidden = [16]
[train]
epochs = 1
batch_size = 8
lr = 1e-3
"""


def run(app, *args) -> str:
    r = CliRunner().invoke(app.app, [str(a) for a in args])
    assert r.exit_code == 0, (app.__name__, r.stdout, r.stderr)
    assert "--preset" not in r.stderr and "cannot be loaded" not in r.stderr
    return r.stdout


def test_every_command_runs_without_the_preset_file(tmp_path):
    src = tmp_path / "scans"
    rng = np.random.default_rng(0)
    for k, c in enumerate(("round", "square")):
        (src / c).mkdir(parents=True)
        for i in range(12):
            a = rng.integers(0, 2000, (16, 16)).astype(np.uint16)
            a[4:12, 4:12] += 400 * (k + 1)
            Image.fromarray(a).save(src / c / f"{c}{i}.png")           # 16-bit: through the window
    pre = tmp_path / "mine.toml"
    pre.write_text(MINE)
    out = tmp_path / "out"
    run(prep, src, "--preset", pre, "-o", out, "-q")
    pre.unlink()                                                        # from here on, no preset file
    train, val, test = (out / f"{s}.h5" for s in ("train", "val", "test"))
    with h5py.File(train) as f:
        carried = json.loads(f.attrs["preset_json"])
    assert carried["name"] == "mine" and carried["intensity"]["window"] == [-1000, 400]

    d = tmp_path / "m"
    common = ("--device", "cpu", "-q")
    run(train_cnn, train, "--val", val, "-o", d / "cnn.ckpt", *common)
    run(attack, d / "cnn.ckpt", train, "--attack", "fgsm", "--eps", "0.01", "-o", d / "train-adv.h5", *common)
    run(attack, d / "cnn.ckpt", test, "--attack", "fgsm", "--eps", "0.01", "-o", d / "test-adv.h5", *common)
    with h5py.File(d / "test-adv.h5") as f:
        assert json.loads(f.attrs["preset_json"]) == carried              # derived sets inherit it
    run(pretrain_dcae, train, d / "train-adv.h5", "--val", val, "-o", d / "dcae.ckpt", *common)
    run(finetune, train, "--dcae", d / "dcae.ckpt", "--val", val, "-o", d / "rdmaa.ckpt", *common)
    run(advtrain, train, "--adv", d / "train-adv.h5", "--val", val, "-o", d / "adv.ckpt", *common)
    for ck in ("cnn", "dcae", "rdmaa", "adv"):
        meta = load_checkpoint(d / f"{ck}.ckpt").meta
        assert meta["preset"] == carried, ck
    report = json.loads(run(eval_tool, d / "rdmaa.ckpt", test, d / "test-adv.h5", "--json", *common))
    assert len(report["results"]) == 2
    cert = json.loads(run(certify, d / "cnn.ckpt", test, "--sigma", "0.25", "--n", "20", "--n0", "5", "--json",
                          *common))
    assert cert
