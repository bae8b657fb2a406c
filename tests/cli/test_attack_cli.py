"""rdm-attack: outputs, provenance, one-line errors with nothing written, shards and merge."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from rdm.data.sets import SetReader, sha256_file, validate_set
from rdm_tools.attack import app

from helpers import files, make_ckpt, one_line_error

runner = CliRunner()


@pytest.fixture
def setup(tmp_path, phantom_set):
    ck = make_ckpt(tmp_path / "m.ckpt")
    s = phantom_set("test.h5", preset="lung", n=20, shape=(1, 16, 16))
    return tmp_path, ck, s


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_pgd_writes_a_valid_adversarial_set(setup):
    d, ck, s = setup
    out = d / "adv.h5"
    res = run(ck, s, "--attack", "pgd", "--eps", "0.03", "--alpha", "0.01", "--steps", "3",
              "--random-start", "--restarts", "2", "--seed", "5", "--batch-size", "7", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    info = validate_set(out, expect_shape=(1, 16, 16), require=("source_index", "linf", "l2", "success"))
    with SetReader(out) as r, SetReader(s) as src:
        assert np.array_equal(r.column("source_index"), np.arange(20))
        assert np.array_equal(r.column("y"), src.column("y"))
        assert list(r.column("id")) == list(src.column("id"))
        x, xs = r.read(0, 20)["x"], src.read(0, 20)["x"]
        linf = r.column("linf")
        assert np.allclose(linf, np.abs(x - xs).reshape(20, -1).max(1)) and linf.max() <= 0.03 + 1e-7
        assert r._f["linf"].dtype == np.float32 and r._f["success"].dtype == np.bool_
        succ, pc, pa = r.column("success"), r.column("pred_clean"), r.column("pred_adv")
        y = r.column("y")
        assert np.array_equal(succ, (pc == y) & (pa != y))
    prov = info.provenance
    assert prov["attack"]["name"] == "pgd" and prov["attack"]["restarts"] == 2 and prov["seed"] == 5
    assert prov["source_model"]["sha256"] == sha256_file(ck)
    assert prov["source_set"]["sha256"] == sha256_file(s) and Path(prov["source_set"]["path"]) == s.resolve()
    assert info.attrs["protocol_model_sha256"] == sha256_file(ck)
    assert "PGD" in json.loads(info.attrs["attack"])["description"]


def test_same_seed_same_bytes(setup):
    d, ck, s = setup
    xs = []
    for name in ("a.h5", "b.h5"):
        assert run(ck, s, "--attack", "pgd", "--eps", "0.05", "--steps", "2", "--random-start",
                   "--seed", "1", "-o", d / name).exit_code == 0
        with h5py.File(d / name) as f:
            xs.append(f["x"][:])
    assert np.array_equal(*xs)


def test_fgsm_sweep_pattern_and_directory(setup):
    d, ck, s = setup
    res = run(ck, s, "--attack", "fgsm", "--eps", "0.002", "--eps", "0.05", "-o", d / "f-{eps}.h5")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == [str(d / "f-0.002.h5"), str(d / "f-0.05.h5")]
    single = run(ck, s, "--attack", "fgsm", "--eps", "0.05", "-o", d / "one.h5")
    assert single.exit_code == 0
    with h5py.File(d / "f-0.05.h5") as a, h5py.File(d / "one.h5") as b:
        assert np.array_equal(a["x"][:], b["x"][:])
    (d / "out").mkdir()
    res = run(ck, s, "--attack", "bim", "--eps", "0.01", "--eps", "0.02", "--steps", "2", "-o", d / "out")
    assert res.exit_code == 0, res.stderr
    assert sorted(files(d / "out")) == ["test-bim-0.01.h5", "test-bim-0.02.h5"]


@pytest.mark.parametrize("args,needle", [
    (["--attack", "pgd", "--eps", "-0.1"], "eps"),
    (["--attack", "fgsm", "--eps", "1.5"], "eps"),
    (["--attack", "pgd", "--eps", "0.1", "--steps", "0"], "steps"),
    (["--attack", "pgd", "--eps", "0.1", "--alpha", "0"], "alpha"),
    (["--attack", "pgd", "--eps", "0.1", "--alpha", "-0.01"], "alpha"),
    (["--attack", "pgd", "--eps", "0.1", "--restarts", "0"], "restarts"),
    (["--attack", "bim", "--eps", "0.1", "--random-start"], "random start"),
    (["--attack", "fgsm", "--eps", "0.1", "--eps", "0.2"], "{eps}"),
    (["--attack", "fgsm", "--eps", "0.1", "--shard", "3/2"], "shard"),
    (["--attack", "fgsm", "--eps", "0.1", "--shard", "x"], "shard"),
    (["--attack", "fgsm", "--eps", "0.1", "--batch-size", "0"], "batch"),
    (["--eps", "0.1"], "--attack"),
    (["--attack", "fgsm", "--eps", "0.1", "--steps", "5"], "fgsm takes no --steps"),
])
def test_bad_parameters_one_line_nothing_written(setup, args, needle):
    d, ck, s = setup
    before = files(d)
    msg = one_line_error(run(ck, s, *args, "-o", d / "adv.h5"), 2)     # bad usage: exit 2
    assert needle in msg
    assert files(d) == before


def test_bad_inputs_one_line_nothing_written(setup, tmp_path, phantom_set):
    d, ck, s = setup
    dcae = make_ckpt(d / "ae.ckpt", kind="dcae")
    rgb = phantom_set("rgb.h5", preset="brain", n=6, shape=(3, 16, 16))
    junk = d / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    before = files(d)
    assert "dcae" in one_line_error(run(dcae, s, "--attack", "fgsm", "--eps", "0.1", "-o", d / "o.h5"))
    assert "channel" in one_line_error(run(ck, rgb, "--attack", "fgsm", "--eps", "0.1", "-o", d / "o.h5"))
    assert "no such" in one_line_error(run(d / "none.ckpt", s, "--attack", "fgsm", "--eps", "0.1", "-o", d / "o.h5"))
    assert "no such" in one_line_error(run(ck, d / "none.h5", "--attack", "fgsm", "--eps", "0.1", "-o", d / "o.h5"))
    one_line_error(run(junk, s, "--attack", "fgsm", "--eps", "0.1", "-o", d / "o.h5"))
    assert run(ck, s, "--attack", "fgsm", "--eps", "0.1", "-o", d / "adv.h5").exit_code == 0
    assert "adversarial" in one_line_error(run(ck, d / "adv.h5", "--attack", "fgsm", "--eps", "0.1",
                                               "-o", d / "o.h5"))
    assert files(d) == before | {"adv.h5"}
    assert run(ck, s, "--attack", "nope", "--eps", "0.1", "-o", d / "o.h5").exit_code == 2


def test_shards_merge_to_the_unsharded_set(setup):
    d, ck, s = setup
    common = ["--attack", "pgd", "--eps", "0.05", "--steps", "2", "--random-start", "--seed", "3",
              "--batch-size", "4"]
    assert run(ck, s, *common, "-o", d / "full.h5").exit_code == 0
    parts = []
    for i in range(3):
        p = d / f"part{i}.h5"
        res = run(ck, s, *common, "--shard", f"{i}/3", "-o", p)
        assert res.exit_code == 0, res.stderr
        with SetReader(p) as r:
            n0, n1 = i * 20 // 3, (i + 1) * 20 // 3
            assert np.array_equal(r.column("source_index"), np.arange(n0, n1))
            assert r.info.provenance["shard"] == {"index": i, "count": 3, "start": n0, "stop": n1}
        parts.append(p)
    res = run("--merge", parts[2], parts[0], parts[1], "-o", d / "merged.h5")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(d / "merged.h5")
    with h5py.File(d / "full.h5") as a, h5py.File(d / "merged.h5") as b:
        for k in ("x", "y", "source_index", "linf", "success", "id"):
            assert np.array_equal(a[k][:], b[k][:]), k
        assert b.attrs["protocol_model_sha256"] == a.attrs["protocol_model_sha256"]
    before = files(d)
    assert "missing" in one_line_error(run("--merge", parts[0], parts[1], "-o", d / "m2.h5"))
    assert "twice" in one_line_error(run("--merge", parts[0], parts[0], parts[1], parts[2], "-o", d / "m2.h5"))
    assert run(ck, s, *[("4" if a == "3" else a) for a in common], "--shard", "1/3", "-o", d / "other.h5").exit_code == 0
    assert "seed" in one_line_error(run("--merge", parts[0], d / "other.h5", parts[2], "-o", d / "m2.h5"))
    assert "shard part" in one_line_error(run("--merge", d / "full.h5", "-o", d / "m2.h5"))
    assert files(d) == before | {"other.h5"}
