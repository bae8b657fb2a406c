"""Hostile input and faults: outputs never destroy inputs, held-out images never
reach training unasked, exit codes, RDM_THREADS, stale temporary files, odd file names,
manifest disagreements, --version and --help, progress in logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rdm.data.atomic import atomic_output, check_outputs, remove_stale_temps, temp_path_for
from rdm.errors import RdmError, UsageError
from rdm.data.sets import SetReader, SetWriter, make_provenance, sha256_file
from helpers import BIN, TOOLS, error_line, make_ckpt, phantoms, tiny_preset, tool_env

runner = CliRunner()


def invoke(app, *args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


# --------------------------------------------------------------------------- 1. data loss
@pytest.fixture
def model_and_set(tmp_path, phantom_set):
    ck = make_ckpt(tmp_path / "m.ckpt")
    s = phantom_set("victim.h5", preset="lung", n=12, shape=(1, 16, 16))
    return ck, s


@pytest.mark.parametrize("target", ["set", "model", "symlink", "hardlink"])
def test_eval_output_never_replaces_an_input(model_and_set, tmp_path, target):
    from rdm_tools.eval import app

    ck, s = model_and_set
    before = {p: p.read_bytes() for p in (ck, s)}
    out = {"set": s, "model": ck}.get(target)
    if target == "symlink":
        out = tmp_path / "link.h5"
        out.symlink_to(s)
    elif target == "hardlink":
        out = tmp_path / "hard.h5"
        os.link(s, out)
    line = error_line(invoke(app, ck, s, "-o", out, "-q", "--device", "cpu"), 2)
    assert "would overwrite the input" in line
    assert {p: p.read_bytes() for p in (ck, s)} == before


def test_output_guard_covers_training_history_and_recorded_sources(tmp_path, phantom_set):
    from rdm.data.atomic import check_outputs

    s = phantom_set("a.h5", preset="lung", n=6, shape=(1, 16, 16))
    with pytest.raises(UsageError, match="would overwrite the input"):
        check_outputs([tmp_path / "new.ckpt", s], [s])
    with pytest.raises(UsageError, match="is a directory"):
        check_outputs([tmp_path], [s])
    check_outputs([tmp_path / "new.ckpt", None], [s, None, tmp_path / "missing.h5"])   # no error
    from rdm_tools.train_cnn import app

    line = error_line(invoke(app, s, "-o", tmp_path / "m.ckpt", "--history", s, "--device", "cpu"), 2)
    assert "would overwrite the input" in line and s.read_bytes()[:4] == b"\x89HDF"


# --------------------------------------------------------------------------- 2. test leakage
def _split_set(path: Path, preset: Path, split: str, seed: int) -> Path:
    from rdm.data.presets import load_preset
    from rdm.prep.synthetic import generate

    p = load_preset(str(preset))
    x, y, _ = generate(24, p.num_classes, p.shape, seed=seed)
    with SetWriter(path, shape=p.shape, classes=p.classes, modality=p.modality, preset=p.name,
                   provenance=make_provenance(command="t"), attrs={"split": split}) as w:
        w.append(x, y)
    return path


def _adv_of(path: Path, clean: Path) -> Path:
    with SetReader(clean) as r:
        d, info = r.read(0, r.n), r.info
    prov = make_provenance(command="rdm-attack", source_set={"path": str(clean), "sha256": sha256_file(clean), "n": info.n})
    with SetWriter(path, shape=info.shape, classes=info.classes, modality=info.modality, preset=info.preset,
                   provenance=prov, columns=["source_index"]) as w:
        w.append(np.clip(d["x"] + 0.01, 0, 1), d["y"], source_index=np.arange(info.n))
    return path


@pytest.fixture
def splits(tmp_path):
    pre = tiny_preset(tmp_path)
    return pre, {s: _split_set(tmp_path / f"{s}.h5", pre, s, i) for i, s in enumerate(("train", "val", "test"))}


def test_advtrain_refuses_adversarial_sets_made_from_test_or_val(tmp_path, splits):
    from rdm_tools.advtrain import app

    pre, sets = splits
    for split in ("test", "val"):
        adv = _adv_of(tmp_path / f"adv-{split}.h5", sets[split])
        out = tmp_path / f"m-{split}.ckpt"
        line = error_line(invoke(app, sets["train"], "--adv", adv, "--preset", pre, "--epochs", 1,
                                 "--device", "cpu", "-q", "-o", out), 1)
        assert f"adv-{split}.h5: crafted from the {split} split ({sets[split]})" in line
        assert "--allow-held-out-adv" in line and not out.exists()
    # the source file gone: its name still says where it came from
    adv = _adv_of(tmp_path / "adv-test.h5", sets["test"])
    sets["test"].rename(tmp_path / "elsewhere.h5")
    res = invoke(app, sets["train"], "--adv", adv, "--preset", pre, "--epochs", 1, "--device", "cpu", "-q",
                 "-o", tmp_path / "m.ckpt")
    assert "crafted from the test split" in error_line(res, 1)
    # made from the training split: accepted; from test with the explicit flag: accepted
    ok = _adv_of(tmp_path / "adv-train.h5", sets["train"])
    res = invoke(app, sets["train"], "--adv", ok, "--preset", pre, "--epochs", 1, "--device", "cpu", "-q",
                 "-o", tmp_path / "ok.ckpt")
    assert res.exit_code == 0, res.stderr
    res = invoke(app, sets["train"], "--adv", adv, "--allow-held-out-adv", "--preset", pre, "--epochs", 1,
                 "--device", "cpu", "-q", "-o", tmp_path / "allowed.ckpt")
    assert res.exit_code == 0, res.stderr


def test_finetune_refuses_held_out_adversarial_sets(tmp_path, splits):
    from rdm_tools.finetune import app

    pre, sets = splits
    adv = _adv_of(tmp_path / "adv-val.h5", sets["val"])
    dcae = tmp_path / "dcae.ckpt"
    dcae.write_bytes(b"never read: the guard comes first")
    line = error_line(invoke(app, sets["train"], "--dcae", dcae, "--adv", adv, "--preset", pre, "--epochs", 1,
                             "--device", "cpu", "-o", tmp_path / "r.ckpt"), 1)
    assert "crafted from the val split" in line


# --------------------------------------------------------------------------- 5. RDM_THREADS
@pytest.mark.parametrize("value", ["abc", "0", "-2"])
def test_bad_rdm_threads_is_one_line_exit_2(value):
    for args in (["--help"], ["x.h5", "-o", "y.ckpt"]):
        r = subprocess.run([str(BIN / "rdm-train-cnn"), *args], capture_output=True, text=True, timeout=60,
                           env={**tool_env(), "RDM_THREADS": value})
        assert r.returncode == 2 and r.stderr.startswith("error: RDM_THREADS=") and r.stderr.count("\n") == 1, r.stderr
        assert r.stdout == ""


@pytest.mark.parametrize("value", ["yes", "2"])
def test_bad_rdm_compile_is_one_line_exit_2(value):
    r = subprocess.run([str(BIN / "rdm-eval"), "x.ckpt", "x.h5"], capture_output=True, text=True, timeout=60,
                       env={**tool_env(), "RDM_COMPILE": value})
    assert r.returncode == 2 and r.stderr.startswith("error: RDM_COMPILE=") and r.stderr.count("\n") == 1, r.stderr
    assert r.stdout == ""


# --------------------------------------------------------------------------- 6. stale temp files
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    target = tmp_path / "x.h5"
    host = temp_path_for(target).name.split(".tmp-")[1].rsplit("-", 2)[0]
    dead, live = _dead_pid(), os.getppid()
    stale = [tmp_path / f".x.h5.tmp-{host}-{dead}-0123abcd", tmp_path / f".x.h5.tmp-{dead}-89abcdef"]
    keep = [tmp_path / f".x.h5.tmp-{host}-{live}-0123abcd", tmp_path / f".x.h5.tmp-otherhost-{dead}-0123abcd",
            tmp_path / f".y.h5.tmp-{host}-{dead}-0123abcd"]
    for p in stale + keep:
        p.write_bytes(b"half")
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert remove_stale_temps(target) == []


def test_sigterm_removes_the_temporary_output(tmp_path, phantom_set):
    ck = make_ckpt(tmp_path / "m.ckpt")
    s = phantom_set("t.h5", preset="lung", n=64, shape=(1, 16, 16))
    out = tmp_path / "adv"
    out.mkdir()
    p = subprocess.Popen([str(BIN / "rdm-attack"), ck, s, "--attack", "pgd", "--eps", "0.01", "--steps", "100000",
                          "--batch-size", "4", "--device", "cpu", "-o", out / "a.h5"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tool_env())
    deadline = time.monotonic() + 60
    while not list(out.iterdir()) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert list(out.iterdir()), "the temporary output never appeared"
    p.terminate()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert list(out.iterdir()) == [] and "Traceback" not in err


def test_a_second_sigterm_while_exiting_ends_quietly(tmp_path):
    # `timeout` then `pkill` (or a scheduler killing twice): the second SIGTERM lands in the exit hooks
    # (torch's finalizers there on a real run); it must end the process, 143, with no traceback
    script = tmp_path / "slow_exit.py"
    script.write_text(
        "import atexit, signal, sys, time\n"
        "from rdm import cli\n"
        "signal.signal(signal.SIGTERM, cli._on_sigterm)\n"
        "def slow():\n"
        "    sys.stderr.write('exiting\\n'); sys.stderr.flush(); time.sleep(60)\n"
        "atexit.register(slow)\n"
        "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
        "time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True, env=tool_env())
    assert p.stderr.readline() == "ready\n"
    p.terminate()
    assert p.stderr.readline() == "exiting\n"
    t0 = time.monotonic()
    p.terminate()
    err = p.stderr.read()
    p.wait(timeout=30)
    assert p.returncode == 143 and time.monotonic() - t0 < 30
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_a_partial_is_kept_unless_restart(tmp_path):
    from rdm_tools.train_cnn import app

    pre = tiny_preset(tmp_path)
    train = phantoms(tmp_path / "train.h5", pre, 24, 0)
    out = tmp_path / "m.ckpt"
    partial = tmp_path / "m.ckpt.partial"
    partial.write_bytes(b"left by a killed run")
    res = invoke(app, train, "--preset", pre, "--epochs", 1, "--device", "cpu", "-q", "-o", out)
    line = error_line(res, 2)
    assert "--resume" in line and "--restart" in line and str(partial) in line
    assert partial.read_bytes() == b"left by a killed run" and not out.exists()
    res = invoke(app, train, "--preset", pre, "--epochs", 1, "--device", "cpu", "-q", "-o", out, "--restart")
    assert res.exit_code == 0, res.stderr
    assert f"discarding {out}.partial" in res.stderr and out.exists() and not partial.exists()


# --------------------------------------------------------------------------- 7. exit codes
@pytest.mark.parametrize("args", [["--epochs", 0], ["--batch-size", 0], ["--lr", -1]])
def test_bad_training_values_exit_2(tmp_path, args):
    from rdm_tools.train_cnn import app

    pre = tiny_preset(tmp_path)
    train = phantoms(tmp_path / "train.h5", pre, 12, 0)
    line = error_line(invoke(app, train, "--preset", pre, *args, "--device", "cpu", "-o", tmp_path / "m.ckpt"), 2)
    assert args[0] in line


def test_bad_shard_and_batch_values_exit_2(model_and_set):
    from rdm_tools.eval import app

    ck, s = model_and_set
    assert "--batch-size" in error_line(invoke(app, ck, s, "--batch-size", 0, "--device", "cpu", "-q"), 2)
    assert "--shard" in error_line(invoke(app, ck, s, "--shard", "3/2", "--device", "cpu", "-q"), 2)


# --------------------------------------------------------------------------- 11. smaller
def test_every_command_has_version_and_a_fast_help():
    import rdm

    for tool in TOOLS:
        r = subprocess.run([str(BIN / tool), "--version"], capture_output=True, text=True, timeout=60, env=tool_env())
        assert r.returncode == 0 and r.stdout.strip() == f"{tool} (rdm) {rdm.__version__}", (tool, r.stdout, r.stderr)
        r = subprocess.run([str(BIN / tool), "--help"], capture_output=True, text=True, timeout=60, env=tool_env())
        assert r.returncode == 0 and "--version" in r.stdout, (tool, r.stderr)
        # fast: no torch on the way to --help (importing it is what made --help take 8-14 s on a busy
        # machine); checked by what --help imports, not by a wall time that depends on the load
        mod = f"rdm_tools.{tool[4:].replace('-', '_')}"
        probe = subprocess.run([sys.executable, "-c", f"import sys; sys.argv = ['{tool}', '--help']; import {mod}\n"
                                f"try:\n    {mod}.main()\nexcept SystemExit:\n    pass\n"
                                "print('torch' in sys.modules, file=sys.stderr)"],
                               capture_output=True, text=True, timeout=60, env=tool_env())
        assert "--version" in probe.stdout and probe.stderr.strip().splitlines()[-1] == "False", (tool, probe.stderr)


def test_eval_of_an_autoencoder_says_evaluate_not_attack(tmp_path, phantom_set):
    from rdm_tools.eval import app

    ck = make_ckpt(tmp_path / "dcae.ckpt", kind="dcae")
    s = phantom_set("t.h5", preset="lung", n=6, shape=(1, 16, 16))
    line = error_line(invoke(app, ck, s, "--device", "cpu", "-q"), 1)
    assert "dcae checkpoint" in line and "attack a" not in line


def test_progress_lines_when_stderr_is_not_a_terminal(model_and_set, tmp_path):
    from rdm_tools.attack import app

    ck, s = model_and_set
    env = {"RDM_PROGRESS_SECONDS": "0", "RDM_NO_PBAR": ""}
    res = invoke(app, ck, s, "--attack", "fgsm", "--eps", "0.01", "--batch-size", "4", "--device", "cpu",
                 "-o", tmp_path / "a.h5", env=env)
    assert res.exit_code == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("fgsm: ")]
    assert len(lines) >= 3 and lines[-1].startswith("fgsm: 12/12 (100%)"), res.stderr


# --------------------------------------------------------------------------- once per run
def test_a_set_is_validated_and_hashed_once_per_run(model_and_set, tmp_path, monkeypatch):
    """rdm-eval of a clean set, its adversarial set and an on-the-fly attack streams the
    clean set's pixels once and hashes it once."""
    import hashlib

    from rdm.data import provenance

    from rdm.data import sets
    from rdm_tools.attack import app as attack_app
    from rdm_tools.eval import app as eval_app

    ck, s = model_and_set
    adv = tmp_path / "adv.h5"
    assert invoke(attack_app, ck, s, "--attack", "fgsm", "--eps", "0.01", "--device", "cpu", "-q", "-o", adv).exit_code == 0
    provenance._SHA_CACHE.clear()
    sets._VALUES_OK.clear()
    hashed, scanned = [], []

    class Np:                                   # numpy, counting the value scans of rdm.data.sets
        def __getattr__(self, k):
            return getattr(np, k)

        def isfinite(self, a):
            scanned.append(a.shape)
            return np.isfinite(a)

    real = hashlib.sha256

    class Hashlib:
        def sha256(self, *a):
            hashed.append(1)
            return real(*a)

    monkeypatch.setattr(sets, "np", Np())
    monkeypatch.setattr(provenance, "hashlib", Hashlib())
    res = invoke(eval_app, ck, s, adv, "--attack", "fgsm", "--eps", "0.02", "--device", "cpu", "-q")
    assert res.exit_code == 0, res.stderr
    assert len(hashed) == 3                    # the checkpoint, the clean set, the adversarial set
    assert len(scanned) == 2                   # the clean set's pixels, the adversarial set's pixels


def test_a_reader_that_stops_early_ends_the_helper_quietly():
    """``python -m rdm.pipeline.grid cells | head -1`` printed a BrokenPipeError traceback: now nothing on
    stderr, exit 141 (the shell's code for a writer whose pipe closed)."""
    p = subprocess.Popen([sys.executable, "-m", "rdm.pipeline.grid", "cells", "--mode", "tables", "--seeds", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env())
    assert p.stdout.readline().startswith(b"0\t")
    p.stdout.close()                                   # more than a pipe's 64 KiB is still to come
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == ""
