"""Hostile files: malformed checkpoints and sets get our words (a mutation fuzz,
in-process), a full disk is one line, odd file names and manifest disagreements in rdm-prep."""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rdm.data.checkpoint import load_checkpoint
from rdm.errors import RdmError
from rdm.data.sets import SetReader, validate_set
from helpers import BIN, error_line, make_ckpt, tool_env

runner = CliRunner()


def one_line(e: RdmError) -> str:
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


# --------------------------------------------------------------------------- 9. malformed checkpoints
def _mutations(meta: dict, rng: random.Random):
    """Random edits of a checkpoint's metadata: drop, retype or blow up a value, at any depth."""
    odd = [None, "x", -1, 0, 10 ** 12, 1.5, float("nan"), [], {}, [10 ** 9], {"a": 1}, True, "🙂" * 3]

    def paths(obj, prefix=()):
        yield prefix
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from paths(v, prefix + (k,))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                yield from paths(v, prefix + (i,))

    every = [p for p in paths(meta) if p]
    while True:
        m = json.loads(json.dumps(meta))
        for _ in range(rng.choice((1, 1, 2, 3))):
            p = rng.choice(every)
            parent = m
            try:
                for k in p[:-1]:
                    parent = parent[k]
                if rng.random() < 0.25 and isinstance(parent, dict):
                    parent.pop(p[-1], None)
                else:
                    v = parent[p[-1]]
                    parent[p[-1]] = (v * 1000 + 7 if isinstance(v, int) and not isinstance(v, bool) and rng.random() < 0.4
                                     else rng.choice(odd))
            except (KeyError, IndexError, TypeError):
                continue
        yield m


def test_checkpoint_metadata_fuzz_one_line_bounded_memory(tmp_path):
    path = make_ckpt(tmp_path / "m.ckpt")
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta"])
    rng = random.Random(0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused = loaded = 0
    target = tmp_path / "fuzz.ckpt"
    gen = _mutations(meta, rng)
    for i in range(300):
        b = dict(blob)
        if i % 10 == 9:          # the structure around the metadata, too
            key = rng.choice(["format", "meta", "state_dict", "trainer"])
            b[key] = rng.choice([None, "x", 3, {"w": "not a tensor"}, [1, 2]])
        else:
            b["meta"] = json.dumps(next(gen))
        torch.save(b, target)
        try:
            load_checkpoint(target)
            loaded += 1
        except RdmError as e:
            assert str(target) in one_line(e)
            refused += 1
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert refused > 150 and refused + loaded == 300
    assert grown_mb < 400, grown_mb


def _rezipped(src: Path, dst: Path, rng: random.Random) -> None:
    """``src``'s archive with a random non-empty subset of its entries compressed (deflate or bzip2)."""
    import zipfile

    with zipfile.ZipFile(src) as zin:
        entries = [(i.filename, zin.read(i)) for i in zin.infolist()]
    chosen = set(rng.sample(range(len(entries)), rng.randint(1, len(entries))))
    with zipfile.ZipFile(dst, "w") as zout:
        for k, (name, data) in enumerate(entries):
            kind = rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2]) if k in chosen else zipfile.ZIP_STORED
            zout.writestr(name, data, compress_type=kind)


def test_checkpoint_values_and_archive_fuzz_every_one_refused(tmp_path):
    """Non-finite values in any weight or buffer, and compressed archive entries: every mutant is
    refused in one line naming the file (and the tensor), none loads."""
    path = make_ckpt(tmp_path / "m.ckpt")
    blob = torch.load(path, weights_only=True)
    floats = [k for k, v in blob["state_dict"].items() if v.is_floating_point()]
    rng = random.Random(2)
    target = tmp_path / "fuzz.ckpt"
    for i in range(60):
        if i % 3 == 2:
            _rezipped(path, target, rng)
            words = "compressed"
        else:
            sd = {k: v.clone() for k, v in blob["state_dict"].items()}
            name = rng.choice(floats)
            for _ in range(rng.choice((1, 1, 3))):
                sd[name].view(-1)[rng.randrange(sd[name].numel())] = rng.choice(
                    [float("nan"), float("inf"), -float("inf")])
            torch.save({**blob, "state_dict": sd}, target)
            words = name
        with pytest.raises(RdmError) as e:
            load_checkpoint(target)
        assert str(target) in one_line(e.value) and words in str(e.value), (i, str(e.value))


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.update(arch="cnn"), "'arch' must be an object"),                 # was: 'str' … 'get'
    (lambda m: m.pop("input_shape"), "'input_shape'"),                           # was: KeyError
    (lambda m: m["arch"]["args"].update(hidden=[10 ** 8]), "parameters"),        # was: a 36 TB allocation
    (lambda m: m["arch"]["args"].update(height=9), "weights do not fit"),
    (lambda m: m.update(input_shape=[1, 99, 99]), "input_shape"),
])
@pytest.mark.parametrize("probe", ["real", "meta"])
def test_tampered_checkpoints_named_in_our_words(tmp_path, monkeypatch, edit, words, probe):
    """Refused in the same words whether the shape probe runs one real image or the meta ghost (a model
    whose activations would be too large to run for real); an untampered one loads either way."""
    import rdm.data.checkpoint as ck

    if probe == "meta":
        monkeypatch.setattr(ck, "PROBE_VALUES", 0)
    load_checkpoint(make_ckpt(tmp_path / "good.ckpt"))
    path = make_ckpt(tmp_path / "m.ckpt")
    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta"])
    edit(meta)
    blob["meta"] = json.dumps(meta)
    torch.save(blob, path)
    with pytest.raises(RdmError) as e:
        load_checkpoint(path)
    assert words in one_line(e.value)


def test_random_bytes_and_code_are_not_checkpoints(tmp_path):
    p = tmp_path / "r.ckpt"
    p.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(RdmError) as e:
        load_checkpoint(p)
    assert "pop from empty list" not in one_line(e.value) and "not a readable checkpoint" in str(e.value)


# --------------------------------------------------------------------------- 9. malformed sets
def _set_mutations(src: Path, dst: Path, rng: random.Random) -> int:
    """One random edit of a copy of ``src``; returns which (12-14 must always be refused)."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        op = rng.randrange(15)
        names = list(f.keys())
        name = rng.choice(names)
        if op == 0:
            del f[name]
        elif op == 1:                    # a group where a dataset belongs
            del f[name]
            f.create_group(name)
        elif op == 2:
            data = f[name][()]
            del f[name]
            f[name] = data.reshape(-1)[: max(1, data.size // 3)] if data.ndim else data
        elif op == 3:
            data = f[name][()]
            del f[name]
            f[name] = np.asarray(data, dtype=rng.choice(["int8", "float64", "S4"])) if data.dtype != object \
                else np.zeros(3)
        elif op == 4:
            attr = rng.choice(list(f.attrs.keys()))
            del f.attrs[attr]
        elif op == 5:
            attr = rng.choice(list(f.attrs.keys()))
            f.attrs[attr] = rng.choice([np.int64(3), np.zeros(4), "[1, 2]", "null", b"\xff\xfe"])
        elif op == 6:
            f.attrs["provenance"] = rng.choice(["[]", "3", "{", '"s"'])
        elif op == 7:
            x = f["x"]
            n = x.shape[0]
            del f["x"]
            f.create_dataset("x", shape=(n * 1000, *x.shape[1:]), dtype="float32", chunks=(1, *x.shape[1:]))
        elif op == 8:
            del f["x"]
            f.create_dataset("x", shape=(2, 1, 10 ** 5, 10 ** 5), dtype="float32", chunks=(1, 1, 64, 64))
        elif op == 9:
            f["x"][0, 0, 0, 0] = rng.choice([np.nan, 7.0, -1.0])
        elif op == 10:
            f["y"][0] = rng.choice([-1, 99])
        elif op == 11:
            f[f"extra{rng.randrange(99)}"] = np.zeros((2, 2))
        elif op == 12:                   # non-finite values anywhere in x
            x = f["x"]
            at = tuple(rng.randrange(d) for d in x.shape)
            x[at] = rng.choice([np.nan, np.inf, -np.inf])
        elif op == 13:                   # a dataset rebuilt with the same shape but never written
            d = f[name]
            shape, dtype = d.shape, d.dtype
            del f[name]
            f.create_dataset(name, shape=shape, dtype=dtype, chunks=rng.choice([None, True]) if shape else None)
        else:                            # rows stored compressed by another filter, with a NaN among them
            data = f["x"][()]
            data.reshape(-1)[rng.randrange(data.size)] = np.nan
            del f["x"]
            f.create_dataset("x", data=data, chunks=True, compression=rng.choice(["lzf", "gzip"]))
    return op


def test_set_structure_fuzz_one_line_bounded_memory(tmp_path, phantom_set):
    src = phantom_set("clean.h5", preset="lung", n=16, shape=(1, 16, 16))
    rng = random.Random(1)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused = 0
    for i in range(200):
        dst = tmp_path / f"f{i % 4}.h5"
        op = _set_mutations(src, dst, rng)
        try:
            validate_set(dst)
            with SetReader(dst) as r:
                for b in r.batches(8):
                    pass
        except RdmError as e:
            assert str(dst) in one_line(e)
            refused += 1
        else:
            assert op < 12, f"mutation {op} (non-finite or never-written data) was accepted"
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert refused > 100 and grown_mb < 400, (refused, grown_mb)


def test_x_that_is_a_group_is_named(tmp_path, phantom_set):
    p = phantom_set("s.h5", preset="lung", n=4, shape=(1, 16, 16))
    with h5py.File(p, "r+") as f:
        del f["x"]
        f.create_group("x")
    with pytest.raises(RdmError) as e:
        validate_set(p)
    assert "'x' is not a dataset" in one_line(e.value)


# --------------------------------------------------------------------------- 3. a full disk
def _limit_file_size(nbytes: int):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


def _run_limited(args, nbytes, cwd):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**tool_env(), "PYTHONDONTWRITEBYTECODE": "1"}, preexec_fn=_limit_file_size(nbytes))


def _no_space_line(r, path_part: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no space left on device writing "), r.stderr[-2000:]
    assert path_part in lines[0]


def test_full_disk_prep_attack_train_one_line_nothing_left(tmp_path, phantom_set):
    r = _run_limited([BIN / "rdm-prep", "synthetic", "--preset", "lung", "--n", "600", "-q", "-o", tmp_path / "out"],
                     400_000, tmp_path)
    _no_space_line(r, "out/")
    assert not (tmp_path / "out").exists()
    ck = make_ckpt(tmp_path / "m.ckpt")
    s = phantom_set("t.h5", preset="lung", n=400, shape=(1, 16, 16))
    adv = tmp_path / "adv"
    adv.mkdir()
    r = _run_limited([BIN / "rdm-attack", ck, s, "--attack", "fgsm", "--eps", "0.01", "--device", "cpu", "-q",
                      "-o", adv / "a.h5"], 100_000, tmp_path)
    _no_space_line(r, "a.h5")
    assert list(adv.iterdir()) == []
    from helpers import phantoms, tiny_preset

    pre = tiny_preset(tmp_path)
    train = phantoms(tmp_path / "train.h5", pre, 24, 0)
    r = _run_limited([BIN / "rdm-train-cnn", train, "--preset", pre, "--epochs", "1", "--device", "cpu", "-q",
                      "-o", tmp_path / "ck" / "m.ckpt"], 20_000, tmp_path)
    _no_space_line(r, "m.ckpt")
    assert not (tmp_path / "ck").exists()


def test_full_disk_on_a_real_tiny_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = subprocess.run([str(BIN / "rdm-prep"), "synthetic", "--preset", "lung", "--n", "600", "-q",
                            "-o", str(mnt / "out")], capture_output=True, text=True, timeout=300, env=tool_env())
        _no_space_line(r, "out/")
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# --------------------------------------------------------------------------- 8, 10. rdm-prep
def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 20), value, np.uint8)).save(path, format="PNG")


def _tree(root: Path, n: int = 8) -> Path:
    for c, cls in enumerate(("non-nodule", "nodule")):
        for i in range(n):
            _png(root / cls / f"{cls}-{i}.png", 40 + 100 * c + i)
    return root


def test_non_utf8_file_names_are_kept_by_their_bytes(tmp_path):
    from rdm_tools.prep import app

    root = _tree(tmp_path / "src")
    odd = os.fsdecode(b"nodule/odd-\xff\xfe.png")
    _png(root / odd, 200)
    res = runner.invoke(app, [str(root), "--preset", "lung", "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.stderr
    ids = set()
    for s in ("train", "val", "test"):
        with SetReader(tmp_path / "out" / f"{s}.h5") as r:
            ids |= set(r.column("id"))
    assert "nodule/odd-\\xff\\xfe.png" in ids
    # a bad file with an odd name: --skip-bad names it
    (root / os.fsdecode(b"nodule/bad-\xff.png")).write_bytes(b"not an image")
    res = runner.invoke(app, [str(root), "--preset", "lung", "-o", str(tmp_path / "out2"), "-q", "--skip-bad"])
    assert res.exit_code == 0, res.stderr
    assert "bad-\\xff.png" in res.stderr


def test_manifest_label_against_its_folder_and_unlisted_images(tmp_path):
    from rdm_tools.prep import app

    root = _tree(tmp_path / "src")
    rows = [f"{c}/{c}-{i},{c}" for c in ("non-nodule", "nodule") for i in range(8) if i != 7]
    rows[0] = "non-nodule/non-nodule-0,nodule"            # relabelled against its folder
    (root / "labels.csv").write_text("path,label\n" + "\n".join(r.replace(",", ".png,", 1) for r in rows) + "\n")
    line = error_line(runner.invoke(app, [str(root), "--preset", "lung", "-o", str(tmp_path / "o"), "-q"]), 1)
    assert "labelled 'nodule' but lies in the class folder of 'non-nodule'" in line and "--label-source" in line
    assert not (tmp_path / "o").exists()
    for choice, want in (("manifest", 1), ("folder", 0)):
        out = tmp_path / choice
        res = runner.invoke(app, [str(root), "--preset", "lung", "-o", str(out), "-q", "--label-source", choice])
        assert res.exit_code == 0, res.stderr
        assert "2 image file(s)" in res.stderr and "not in labels.csv" in res.stderr
        label = {}
        for s in ("train", "val", "test"):
            with SetReader(out / f"{s}.h5") as r:
                label.update(zip(r.column("id"), r.column("y")))
        assert label["non-nodule/non-nodule-0.png"] == want and len(label) == 14
