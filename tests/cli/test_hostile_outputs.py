"""The output guard (rdm.data.guard), walked over every command and every output option.

Every option of every ``rdm-*`` command that names a path is found by introspection of the
commands themselves: an output (metavar OUT / OUT_DIR) must be refused (exit 2, the input
byte-identical) when it names one of the command's inputs, by path, symbolic or hard link, or
lies inside a folder the command reads; a path option that is neither a known input nor marked
as an output fails the walk, so a new output option cannot slip by unguarded.

Streams: ``-o -`` is stdout; a character device, a FIFO or a symbolic link to one is written
into, never replaced; a training checkpoint (which keeps OUTPUT.partial beside it) and a block
device are refused. The devices, FIFOs and links are made here, in tmp_path.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from helpers import error_line, make_ckpt, noisy_copy, phantoms, tiny_preset


runner = CliRunner()
COMMANDS = ("prep", "train_cnn", "pretrain_dcae", "finetune", "advtrain", "attack", "eval", "certify")
OUTPUT_METAVARS = ("OUT", "OUT_DIR")      # rdm.cli.OUT, rdm.cli.OUT_DIR
# every path-valued parameter that a command only reads (anything else must be marked as an output)
KNOWN_INPUTS = {
    "prep": {"source", "candidates", "preset"},
    "train_cnn": {"train", "val", "preset"},
    "pretrain_dcae": {"train", "adv", "val", "val_adv", "preset"},
    "finetune": {"train", "dcae", "val", "adv", "cnn", "preset"},
    "advtrain": {"train", "val", "adv", "preset"},
    "attack": {"inputs"},
    "eval": {"model", "sets", "source"},
    "certify": {"model", "sets"},
}


def _command(name: str):
    return typer.main.get_command(importlib.import_module(f"rdm_tools.{name}").app)


def _is_path_param(p) -> bool:
    """A parameter that takes a path: typed Path, or a name that may be a file (--preset, prep's sources)."""
    return "Path" in str(p.type_descriptor.annotation) or p.name in ("preset", "source")


def output_options() -> dict[tuple[str, str], str]:
    """(command, parameter name) → its first flag, for every output option of every command."""
    out = {}
    for name in COMMANDS:
        for p in _command(name).params:
            if _is_path_param(p) and p.metavar in OUTPUT_METAVARS:
                out[(name, p.name)] = p.opts[0]
    return out


def test_every_path_option_is_an_input_or_a_guarded_output():
    for name in COMMANDS:
        for p in _command(name).params:
            if _is_path_param(p) and p.metavar not in OUTPUT_METAVARS:
                assert p.name in KNOWN_INPUTS[name], (
                    f"rdm-{name} {p.opts[0]}: a path option that is neither a known input nor marked as an output "
                    "(metavar OUT); outputs must go through the output guard")
    assert len(output_options()) >= 12


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("guard")
    pre = tiny_preset(d)
    train = phantoms(d / "train.h5", pre, 30, seed=0)
    val = phantoms(d / "val.h5", pre, 15, seed=1)
    adv = noisy_copy(d / "adv.h5", train, eps=0.03)
    ck = make_ckpt(d / "m.ckpt", preset=str(pre), size=(24, 24))
    dcae = make_ckpt(d / "dcae.ckpt", preset=str(pre), size=(24, 24), kind="dcae")
    part = d / "part.json"
    part.write_text("{}\n")
    tree = d / "tree"
    for cls in ("a", "b"):
        (tree / cls).mkdir(parents=True)
        for i in range(3):
            (tree / cls / f"{cls}{i}.png").write_bytes(b"\x89PNG not really an image " + bytes([i]))
    return dict(d=d, pre=pre, train=train, val=val, adv=adv, ck=ck, dcae=dcae, part=part, tree=tree,
                img=tree / "a" / "a0.png")


def scenarios(w) -> dict[tuple[str, str], list[tuple[list, Path]]]:
    """For each output option: (arguments with OUT where the output goes, the input it is aimed at)."""
    O = "OUT"
    pre, tr, va, adv, ck, dcae, part = (w[k] for k in ("pre", "train", "val", "adv", "ck", "dcae", "part"))
    common = ["--preset", pre, "--epochs", 1, "--device", "cpu", "-q"]
    other = w["d"] / "elsewhere"
    return {
        ("prep", "output"): [([w["tree"], "--preset", "lung", "-o", O], w["tree"]),
                             ([w["tree"], "--preset", "lung", "-o", O], w["tree"] / "a")],
        ("prep", "preview"): [([w["tree"], "--preset", "lung", "-o", other, "--preview", O], w["img"])],
        ("train_cnn", "output"): [([tr, "--val", va, *common, "-o", O], tr), ([tr, *common, "-o", O], pre)],
        ("train_cnn", "history"): [([tr, "--val", va, *common, "-o", other / "m.ckpt", "--history", O], va)],
        ("pretrain_dcae", "output"): [([tr, adv, *common, "-o", O], adv)],
        ("pretrain_dcae", "history"): [([tr, adv, *common, "-o", other / "d.ckpt", "--history", O], tr)],
        ("finetune", "output"): [([tr, "--dcae", dcae, *common, "-o", O], dcae)],
        ("finetune", "history"): [([tr, "--dcae", dcae, *common, "-o", other / "f.ckpt", "--history", O], pre)],
        ("advtrain", "output"): [([tr, "--adv", adv, *common, "-o", O], adv)],
        ("advtrain", "history"): [([tr, "--adv", adv, *common, "-o", other / "a.ckpt", "--history", O], tr)],
        ("attack", "output"): [([ck, va, "--attack", "fgsm", "--eps", 0.01, "--device", "cpu", "-q", "-o", O], ck),
                               ([adv, adv, "--merge", "-o", O], adv)],
        ("eval", "output"): [([ck, va, "--device", "cpu", "-q", "-o", O], va),
                             ([part, part, "--merge", "-q", "-o", O], part)],
        ("eval", "rows"): [([ck, va, "--device", "cpu", "-q", "--rows", O], va),
                           ([part, part, "--merge", "-q", "--rows", O], part)],
        ("certify", "output"): [([ck, va, "--sigma", 0.1, "--n", 10, "--n0", 5, "--device", "cpu", "-q", "-o", O], ck),
                                ([part, part, "--merge", "-q", "-o", O], part)],
    }


def _digest(p: Path) -> str:
    if p.is_dir():
        return json.dumps(sorted((str(q.relative_to(p)), _digest(q)) for q in p.rglob("*") if q.is_file()))
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _aims(target: Path, tmp: Path) -> list[Path]:
    """The input itself, a symbolic link to it, and (for a file) a hard link to it, outside its folder."""
    tmp.mkdir(parents=True, exist_ok=True)
    sym = tmp / f"sym-{target.name}"
    sym.symlink_to(target)
    aims = [target, sym]
    if target.is_file():
        hard = tmp / f"hard-{target.name}"
        os.link(target, hard)
        aims.append(hard)
    return aims


def test_every_output_option_refuses_every_input(world, tmp_path):
    found = output_options()
    table = scenarios(world)
    assert set(found) == set(table), (
        f"output options without a guard scenario here: {sorted(set(found) - set(table))}; "
        f"scenarios of options that no longer exist: {sorted(set(table) - set(found))}")
    for (name, param), cases in table.items():
        app = importlib.import_module(f"rdm_tools.{name}").app
        for k, (args, target) in enumerate(cases):
            before = _digest(target)
            for aim in _aims(target, tmp_path / f"{name}-{param}-{k}"):
                res = runner.invoke(app, [str(aim if a == "OUT" else a) for a in args])
                assert res.exit_code == 2, (name, param, aim, res.stderr)
                line = error_line(res, 2)
                assert found[(name, param)] in line, (name, param, line)
                assert _digest(target) == before, (name, param, aim)
                assert not (world["d"] / "elsewhere").exists() or not any((world["d"] / "elsewhere").iterdir())


def test_prep_preview_inside_the_source_tree_is_refused(world):
    from rdm_tools.prep import app

    before = world["img"].read_bytes()
    res = runner.invoke(app, [str(world["tree"]), "--preset", "lung", "-o", str(world["d"] / "p"),
                              "--preview", str(world["tree"] / "b" / "new.png")])
    assert "folder" in error_line(res, 2)
    assert world["img"].read_bytes() == before and not (world["tree"] / "b" / "new.png").exists()


def test_two_outputs_may_not_be_one_file(world, tmp_path):
    from rdm_tools.train_cnn import app

    out = tmp_path / "m.ckpt"
    res = runner.invoke(app, [str(world["train"]), "--preset", str(world["pre"]), "--epochs", "1", "-q",
                              "--device", "cpu", "-o", str(out), "--history", str(out)])
    assert "same file" in error_line(res, 2) and not out.exists()


# --------------------------------------------------------------------------- streams
def _char_device(path: Path) -> Path:
    """A character device node with /dev/null's numbers, made here (never the machine's /dev)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node here ({e})")
    return path


def _eval(world, out, *extra):
    from rdm_tools.eval import app

    return runner.invoke(app, [str(world["ck"]), str(world["val"]), "--device", "cpu", "-q", "-o", str(out), *extra])


def test_a_character_device_and_a_link_to_it_are_written_into_not_replaced(world, tmp_path):
    dev = _char_device(tmp_path / "null")
    link = tmp_path / "stdout"
    link.symlink_to(dev)
    for out in (dev, link):
        res = _eval(world, out)
        assert res.exit_code == 0, res.stderr
        assert stat.S_ISCHR(os.lstat(dev).st_mode) and os.lstat(link).st_mode and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "stdout"]     # no temporary left beside them


def test_a_fifo_gets_the_bytes_and_stays_a_fifo(world, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}

    def read():
        with open(fifo, "rb") as f:
            got["data"] = f.read()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    res = _eval(world, fifo)
    t.join(timeout=60)
    assert res.exit_code == 0, res.stderr
    assert json.loads(got["data"])["model"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dash_is_stdout(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _eval(world, "-")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["model"] and list(tmp_path.iterdir()) == []      # no file named '-'
    assert "--json" in error_line(_eval(world, "-", "--json"), 2)


def test_attack_into_a_device_keeps_the_device(world, tmp_path):
    from rdm_tools.attack import app

    dev = _char_device(tmp_path / "null")
    res = runner.invoke(app, [str(world["ck"]), str(world["val"]), "--attack", "fgsm", "--eps", "0.01",
                              "--device", "cpu", "-q", "-o", str(dev)])
    assert res.exit_code == 0, res.stderr
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


def test_a_checkpoint_or_a_block_device_is_refused_as_a_stream(world, tmp_path):
    from rdm_tools.train_cnn import app

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    res = runner.invoke(app, [str(world["train"]), "--preset", str(world["pre"]), "--epochs", "1", "-q",
                              "--device", "cpu", "-o", str(fifo)])
    assert "device or a pipe" in error_line(res, 2) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    blk = tmp_path / "disk"
    try:
        os.mknod(blk, stat.S_IFBLK | 0o600, os.makedev(7, 250))
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node here ({e})")
    res = _eval(world, blk)
    assert "not a regular file" in error_line(res, 2) and stat.S_ISBLK(os.lstat(blk).st_mode)
