"""Loading refuses what would read as a working model or a real set but is not one.

- a checkpoint with one NaN or inf weight or buffer (the model would answer one class: a
  majority-rate accuracy and an attack success of 0 %), and a model whose clean logits are
  not finite (eval, attack);
- a checkpoint archive whose entries are compressed or declare more than they store (it could
  inflate a small file to gigabytes before any size check);
- a set whose ``x``/``y`` (or any column) is a virtual dataset, external raw storage, a link to
  another file, or never written: HDF5 reads all of these as blank images and label 0.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import error_line, make_ckpt, phantoms, tiny_preset
from rdm.data.checkpoint import load_checkpoint, read_raw
from rdm.data.sets import SetReader, validate_set
from rdm.errors import RdmError

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("loads")
    pre = tiny_preset(d)
    return dict(d=d, pre=pre, set=phantoms(d / "s.h5", pre, 24, seed=0),
                ck=make_ckpt(d / "m.ckpt", preset=str(pre), size=(24, 24)))


def _edited(src: Path, dst: Path, edit) -> Path:
    blob = torch.load(src, weights_only=True)
    edit(blob["state_dict"])
    torch.save(blob, dst)
    return dst


# --------------------------------------------------------------------------- non-finite weights
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_weight_is_refused_by_name(world, tmp_path, value):
    sd = torch.load(world["ck"], weights_only=True)["state_dict"]
    name = [k for k, v in sd.items() if v.is_floating_point()][-1]       # the head's last tensor

    def edit(s):
        s[name].view(-1)[0] = value
    bad = _edited(world["ck"], tmp_path / "bad.ckpt", edit)
    with pytest.raises(RdmError) as e:
        load_checkpoint(bad)
    assert name in str(e.value) and "NaN or inf" in str(e.value)


def test_a_non_finite_buffer_is_refused(world, tmp_path):
    buffers = [k for k, v in load_checkpoint(world["ck"]).model.named_buffers() if v.is_floating_point()]
    assert buffers                                  # the normalisation layer's mean and std

    def edit(s):
        s[buffers[0]].view(-1)[0] = float("nan")
    with pytest.raises(RdmError) as e:
        load_checkpoint(_edited(world["ck"], tmp_path / "bad.ckpt", edit))
    assert buffers[0] in str(e.value)


@pytest.mark.parametrize("command", ["eval", "attack"])
def test_commands_refuse_a_model_with_a_nan_weight(world, tmp_path, command):
    import importlib

    sd = torch.load(world["ck"], weights_only=True)["state_dict"]
    name = [k for k, v in sd.items() if v.is_floating_point()][-1]
    bad = _edited(world["ck"], tmp_path / "bad.ckpt", lambda s: s[name].view(-1).__setitem__(0, float("nan")))
    app = importlib.import_module(f"rdm_tools.{command}").app
    extra = ["--attack", "fgsm", "--eps", "0.01", "-o", str(tmp_path / "adv.h5")] if command == "attack" else []
    res = runner.invoke(app, [str(bad), str(world["set"]), "--device", "cpu", "-q", *extra])
    assert name in error_line(res, 1) and not (tmp_path / "adv.h5").exists()


@pytest.mark.parametrize("command", ["eval", "attack"])
def test_finite_weights_with_non_finite_logits_are_refused(world, tmp_path, command):
    import importlib

    sd = torch.load(world["ck"], weights_only=True)["state_dict"]
    linear = [k for k, v in sd.items() if v.is_floating_point() and v.dim() == 2]      # the head's linear layers

    def edit(s):
        for k in linear:
            s[k].fill_(1e30)                          # finite weights whose products overflow float32
    bad = _edited(world["ck"], tmp_path / "big.ckpt", edit)
    load_checkpoint(bad)                                                               # loads: weights are finite
    app = importlib.import_module(f"rdm_tools.{command}").app
    extra = ["--attack", "fgsm", "--eps", "0.01", "-o", str(tmp_path / "adv.h5")] if command == "attack" else []
    res = runner.invoke(app, [str(bad), str(world["set"]), "--device", "cpu", "-q", *extra])
    assert "NaN or inf logits" in error_line(res, 1) and not (tmp_path / "adv.h5").exists()


# --------------------------------------------------------------------------- archives that inflate
def _rezip(src: Path, dst: Path, compress=lambda name: True, extra: dict | None = None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            kind = zipfile.ZIP_DEFLATED if compress(info.filename) else zipfile.ZIP_STORED
            zout.writestr(info.filename, data, compress_type=kind)
        for name, data in (extra or {}).items():
            zout.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return dst


def test_a_compressed_entry_is_refused_before_it_is_inflated(world, tmp_path):
    root = zipfile.ZipFile(world["ck"]).namelist()[0].split("/")[0]
    big = _rezip(world["ck"], tmp_path / "bomb.ckpt", compress=lambda n: False,
                 extra={f"{root}/data/999": bytes(64 << 20)})        # 64 MiB of zeros in a few kB
    assert big.stat().st_size < 2 << 20
    with pytest.raises(RdmError) as e:
        read_raw(big)
    assert "compressed" in str(e.value) and "\n" not in str(e.value)
    deflated = _rezip(world["ck"], tmp_path / "deflated.ckpt")       # every entry compressed, nothing else odd
    with pytest.raises(RdmError) as e:
        load_checkpoint(deflated)
    assert "compressed" in str(e.value)


def test_declared_sizes_beyond_the_file_are_refused(world, tmp_path):
    data = bytearray(world["ck"].read_bytes())
    with zipfile.ZipFile(world["ck"]) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    # the central directory's uncompressed size of that entry, made 1 GiB larger than what is stored
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        n = int.from_bytes(data[pos + 28:pos + 30], "little")
        if data[pos + 46:pos + 46 + n].decode(errors="replace") == info.filename:
            data[pos + 24:pos + 28] = (info.file_size + (1 << 30)).to_bytes(4, "little")
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    assert pos != -1
    bad = tmp_path / "liar.ckpt"
    bad.write_bytes(bytes(data))
    with pytest.raises(RdmError) as e:
        read_raw(bad)
    assert "declares" in str(e.value) or "damaged" in str(e.value)


# --------------------------------------------------------------------------- sets read as blank
def _set_like(src: Path, dst: Path, replace: str, make) -> Path:
    """A copy of set ``src`` whose dataset ``replace`` is rebuilt by ``make(f, name, data)``."""
    with h5py.File(src, "r") as s, h5py.File(dst, "w") as f:
        for k, v in s.attrs.items():
            f.attrs[k] = v
        for name in s:
            if name != replace:
                s.copy(name, f)
        make(f, replace, s[replace][()])
    return dst


def test_a_virtual_x_whose_source_is_gone_is_refused(world, tmp_path):
    src = tmp_path / "rows.h5"
    with h5py.File(world["set"], "r") as s, h5py.File(src, "w") as r:
        r["x"] = s["x"][()]

    def make(f, name, data):
        layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
        layout[:] = h5py.VirtualSource(str(src), "x", shape=data.shape)
        f.create_virtual_dataset(name, layout, fillvalue=0)
    bad = _set_like(world["set"], tmp_path / "virtual.h5", "x", make)
    src.unlink()
    for check in (validate_set, SetReader):
        with pytest.raises(RdmError) as e:
            check(bad)
        assert "virtual" in str(e.value)


@pytest.mark.parametrize("name, chunked", [("x", False), ("x", True), ("y", False), ("y", True)])
def test_data_never_written_is_refused(world, tmp_path, name, chunked):
    def make(f, n, data):
        f.create_dataset(n, shape=data.shape, dtype=data.dtype, chunks=True if chunked else None)
    bad = _set_like(world["set"], tmp_path / "blank.h5", name, make)
    with pytest.raises(RdmError) as e:
        validate_set(bad)
    assert "never written" in str(e.value) and f"'{name}'" in str(e.value)


def test_external_storage_and_external_links_are_refused(world, tmp_path):
    raw = tmp_path / "x.raw"
    with h5py.File(world["set"], "r") as s:
        x = s["x"][()]
    raw.write_bytes(x.astype("<f4").tobytes())

    def make(f, n, data):
        f.create_dataset(n, shape=data.shape, dtype="<f4", external=[(str(raw), 0, data.nbytes)])
    bad = _set_like(world["set"], tmp_path / "external.h5", "x", make)
    with pytest.raises(RdmError) as e:
        validate_set(bad)
    assert "external" in str(e.value)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as o:
        o["group"] = np.array(["g"] * 24, dtype=object).astype("S")
    linked = _set_like(world["set"], tmp_path / "linked.h5", "group",
                       lambda f, n, data: f.__setitem__(n, h5py.ExternalLink(str(other), "group")))
    with pytest.raises(RdmError) as e:
        SetReader(linked)
    assert "'group'" in str(e.value) and "link" in str(e.value)
