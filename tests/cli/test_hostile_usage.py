"""Bad usage is exit 2 with one line, the same way in every command: seeds in one range, every
count bounded (both found by introspection of the commands), ``--device meta``, two ε values
that name one file, RDM_PROGRESS_SECONDS; and inputs that are not regular files (a FIFO given as
a checkpoint or a set) are refused at once instead of blocking the command."""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from helpers import BIN, error_line, make_ckpt, phantoms, tiny_preset, tool_env

runner = CliRunner()
COMMANDS = ("prep", "train_cnn", "pretrain_dcae", "finetune", "advtrain", "attack", "eval", "certify")
SEED_MAX = 2 ** 63 - 1


def _params(name: str):
    return typer.main.get_command(importlib.import_module(f"rdm_tools.{name}").app).params


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("usage")
    pre = tiny_preset(d)
    train = phantoms(d / "train.h5", pre, 30, seed=0)
    ck = make_ckpt(d / "m.ckpt", preset=str(pre), size=(24, 24))
    return dict(d=d, pre=pre, train=train, ck=ck)


def _base(name: str, w) -> list:
    """Arguments that parse for each command (the bad value is added to them)."""
    pre, tr, ck, out = w["pre"], w["train"], w["ck"], w["d"] / "never" / "out"
    common = [tr, "--preset", pre, "--epochs", 1, "--device", "cpu", "-q", "-o", out]
    return {"prep": ["synthetic", "--preset", "lung", "--n", 30, "-o", out],
            "train_cnn": common, "pretrain_dcae": common,
            "finetune": [*common, "--init", "random"], "advtrain": [*common, "--recipe", "gaussian", "--sigma", 0.1],
            "attack": [ck, tr, "--attack", "fgsm", "--eps", 0.01, "--device", "cpu", "-q", "-o", out],
            "eval": [ck, tr, "--device", "cpu", "-q"],
            "certify": [ck, tr, "--sigma", 0.1, "--n", 10, "--n0", 5, "--device", "cpu", "-q"]}[name]


def _invoke(name: str, args: list):
    app = importlib.import_module(f"rdm_tools.{name}").app
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("name", COMMANDS)
def test_one_seed_range_everywhere(world, name):
    seeds = [p for p in _params(name) if p.name == "seed"]
    assert len(seeds) == 1 and (seeds[0].min, seeds[0].max) == (0, SEED_MAX), name
    for bad in (2 ** 63, 2 ** 70, -1):
        res = _invoke(name, [*_base(name, world), "--seed", bad])
        assert res.exit_code == 2 and "--seed" in res.stderr and "Traceback" not in res.stderr, (name, bad, res.stderr)
    assert not (world["d"] / "never").exists()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_count_has_a_maximum(world, name):
    counts = [p for p in _params(name) if "int" in str(p.type_descriptor.annotation) and p.name != "seed"]
    for p in counts:
        assert p.max is not None, f"rdm-{name} {p.opts[0]}: an integer option without a documented maximum"
        res = _invoke(name, [*_base(name, world), p.opts[0], p.max + 1])
        assert res.exit_code == 2 and p.opts[0] in res.stderr, (name, p.opts, res.stderr)
    assert not (world["d"] / "never").exists()


@pytest.mark.parametrize("name", ["train_cnn", "eval", "attack"])
def test_device_meta_is_bad_usage(world, name):
    args = [a if a != "cpu" else "meta" for a in _base(name, world)]
    assert "--device meta" in error_line(_invoke(name, args), 2)


def test_two_eps_values_that_name_one_file_are_bad_usage(world, tmp_path):
    res = _invoke("attack", [world["ck"], world["train"], "--attack", "fgsm", "--eps", 0.01, "--eps", 0.010000000001,
                             "--device", "cpu", "-q", "-o", tmp_path / "adv-{eps}.h5"])
    assert "same file" in error_line(res, 2) and list(tmp_path.iterdir()) == []


def test_progress_seconds_that_is_not_a_number_is_one_line(world):
    res = subprocess.run([str(BIN / "rdm-eval"), str(world["ck"]), str(world["train"]), "--device", "cpu"],
                         env=tool_env(RDM_PROGRESS_SECONDS="abc"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "error: RDM_PROGRESS_SECONDS='abc': expected a number of seconds ≥ 0"], res.stderr


@pytest.mark.parametrize("which", ["checkpoint", "set"])
def test_a_fifo_as_input_is_refused_not_waited_on(world, tmp_path, which):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    hung = threading.Event()
    done = threading.Event()

    def watchdog():        # a reader blocked on the FIFO's open is let go by a writer that opens it
        if done.wait(20):
            return
        hung.set()
        while not done.wait(0.1):      # (again and again: a command may open it more than once)
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    threading.Thread(target=watchdog, daemon=True).start()
    args = [fifo, world["train"]] if which == "checkpoint" else [world["ck"], fifo]
    res = _invoke("eval", [*args, "--device", "cpu", "-q"])
    done.set()
    assert not hung.is_set(), f"rdm-eval waited on a FIFO given as the {which}"
    assert "not a regular file" in error_line(res, 1)
