"""Ctrl-C while a command starts (importing torch and its neighbours): one line, exit 130, nothing
written, wherever it lands; never dropped (the run going on to the end) and never a traceback.

The interrupt is sent a set time after torch's shared library appears in the process (read from
/proc), so it lands inside ``import torch`` however loaded the machine is. (A Ctrl-C in the first
milliseconds, before the interpreter has run a line of the command, ends the process by the signal
itself: nothing written either.)"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BIN, make_ckpt, phantoms, tiny_preset, tool_env

DELAYS = (0.0, 0.15, 0.4)     # seconds after torch's library is mapped into the process: inside `import torch`


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("sigint")
    pre = tiny_preset(d)
    return dict(d=d, pre=pre, train=phantoms(d / "train.h5", pre, 30, seed=0),
                ck=make_ckpt(d / "m.ckpt", preset=str(pre), size=(24, 24)))


def _torch_mapped(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _interrupted(args: list, delay: float, out_dir) -> subprocess.CompletedProcess:
    """Run ``args``; ``delay`` seconds after torch's shared library appears in it, press Ctrl-C."""
    p = subprocess.Popen([str(a) for a in args], env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    t0 = time.monotonic()
    while not _torch_mapped(p.pid) and p.poll() is None and time.monotonic() - t0 < 60:
        time.sleep(0.005)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(args, p.returncode, out, err)


@pytest.mark.parametrize("command", ["rdm-train-cnn", "rdm-attack"])
def test_ctrl_c_at_start_up_is_one_line_130_nothing_written(world, tmp_path, command):
    for k, delay in enumerate(DELAYS):
        out = tmp_path / f"run{k}"
        out.mkdir()
        if command == "rdm-train-cnn":
            args = [BIN / command, world["train"], "--preset", world["pre"], "--epochs", 10000, "--device", "cpu",
                    "-o", out / "m.ckpt"]
        else:
            args = [BIN / command, world["ck"], world["train"], "--attack", "pgd", "--eps", 0.01,
                    "--steps", 100000, "--device", "cpu", "-o", out / "adv.h5"]
        t0 = time.monotonic()
        res = _interrupted(args, delay, out)
        assert res.returncode == 130, (delay, res.returncode, res.stderr[-2000:])
        assert res.stderr.strip().splitlines() == ["error: interrupted"], (delay, res.stderr[-2000:])
        assert res.stdout == "" and list(out.iterdir()) == [], (delay, list(out.iterdir()))
        assert time.monotonic() - t0 < 60
