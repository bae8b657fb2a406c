"""The set format: round trip, chunking, batch reading, atomic writes, and every validator error."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from rdm.errors import RdmError
from rdm.data.sets import SetReader, SetWriter, make_provenance, sha256_file, validate_set

SHAPE = (1, 8, 8)
CLASSES = ["a", "b", "c"]


def _rows(n, seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, len(CLASSES), n).astype(np.int64)
    return x, y


def _write(path, n=30, batches=(10, 13, 7), chunk_rows=8, seed=0):
    x, y = _rows(n, seed)
    groups = np.array([f"g{i // 3}" for i in range(n)], dtype=object)
    ids = np.array([f"img{i}.png" for i in range(n)], dtype=object)
    prov = make_provenance(command="test", arguments={"k": 1}, seed=seed)
    with SetWriter(path, shape=SHAPE, classes=CLASSES, modality="MRI", preset="brain", provenance=prov,
                   columns=["group", "id"], chunk_rows=chunk_rows) as w:
        b0 = 0
        for b in batches:
            w.append(x[b0:b0 + b], y[b0:b0 + b], group=groups[b0:b0 + b], id=ids[b0:b0 + b])
            b0 += b
    return x, y, groups, ids


def test_round_trip(tmp_path):
    p = tmp_path / "s.h5"
    x, y, groups, ids = _write(p)
    info = validate_set(p, expect_shape=SHAPE, expect_classes=CLASSES, require=["group", "id"])
    assert info.n == 30 and info.shape == SHAPE and info.classes == CLASSES
    assert info.modality == "MRI" and info.preset == "brain"
    assert info.provenance["seed"] == 0 and info.provenance["arguments"] == {"k": 1}
    with SetReader(p) as r:
        got = r.read(0, r.n)
        np.testing.assert_array_equal(got["x"], x)
        np.testing.assert_array_equal(got["y"], y)
        assert list(got["group"]) == list(groups)
        assert list(got["id"]) == list(ids)
        assert got["x"].dtype == np.float32 and got["y"].dtype == np.int64


def test_chunked_and_compressed(tmp_path):
    p = tmp_path / "s.h5"
    _write(p, chunk_rows=8)
    with h5py.File(p, "r") as f:
        assert f["x"].chunks == (8, *SHAPE)
        assert f["x"].compression == "gzip"
        assert f["x"].maxshape[0] is None
        assert f["y"].compression == "gzip"


def test_batches_cover_every_row_once(tmp_path):
    p = tmp_path / "s.h5"
    x, y, *_ = _write(p)
    with SetReader(p) as r:
        bs = list(r.batches(7))
        assert [len(b["y"]) for b in bs] == [7, 7, 7, 7, 2]
        np.testing.assert_array_equal(np.concatenate([b["index"] for b in bs]), np.arange(30))
        np.testing.assert_array_equal(np.concatenate([b["x"] for b in bs]), x)
        part = list(r.batches(4, start=5, stop=14))
        np.testing.assert_array_equal(np.concatenate([b["y"] for b in part]), y[5:14])
        np.testing.assert_array_equal(np.concatenate([b["index"] for b in part]), np.arange(5, 14))


def test_read_rows_keeps_the_order_asked(tmp_path):
    p = tmp_path / "s.h5"
    x, y, groups, ids = _write(p)
    rows = np.array([17, 3, 29, 3, 0, 12])
    with SetReader(p) as r:
        got = r.read_rows(rows, names=("x", "y", "id"))
    np.testing.assert_array_equal(got["x"], x[rows])
    np.testing.assert_array_equal(got["y"], y[rows])
    assert list(got["id"]) == list(ids[rows])


def test_atomic_write_leaves_no_file_on_exception(tmp_path):
    p = tmp_path / "s.h5"
    x, y = _rows(4)
    with pytest.raises(RuntimeError):
        with SetWriter(p, shape=SHAPE, classes=CLASSES, modality="MRI", preset="brain",
                       provenance=make_provenance(command="t")) as w:
            w.append(x, y)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_on_exception(tmp_path):
    p = tmp_path / "s.h5"
    _write(p)
    before = sha256_file(p)
    x, y = _rows(4)
    with pytest.raises(RdmError):
        with SetWriter(p, shape=SHAPE, classes=CLASSES, modality="MRI", preset="brain",
                       provenance=make_provenance(command="t")) as w:
            w.append(x[:, :, :4], y)  # wrong shape
    assert sha256_file(p) == before
    assert [q.name for q in tmp_path.iterdir()] == ["s.h5"]


# --------------------------------------------------------------------------- validator errors
def _raw(path, *, x=None, y=None, attrs=None, drop_attr=None, extra=None):
    """Write a set with h5py directly, so that it can be wrong in one chosen way."""
    xx, yy = _rows(6)
    x = xx if x is None else x
    y = yy if y is None else y
    a = {"classes": np.array(CLASSES, dtype=h5py.string_dtype()), "modality": "MRI", "preset": "brain",
         "provenance": json.dumps({"command": "t"})}
    a.update(attrs or {})
    if drop_attr:
        a.pop(drop_attr)
    with h5py.File(path, "w") as f:
        f["x"] = x
        f["y"] = y
        for k, v in (extra or {}).items():
            f[k] = v
        for k, v in a.items():
            f.attrs[k] = v
    return path


def test_valid_raw_file_passes(tmp_path):
    assert validate_set(_raw(tmp_path / "ok.h5")).n == 6


@pytest.mark.parametrize("case, kwargs, message", [
    ("x float64", dict(x=np.full((6, *SHAPE), 0.5)), "dtype float64"),
    ("x uint8", dict(x=np.zeros((6, *SHAPE), np.uint8)), "dtype uint8"),
    ("x 3-D", dict(x=np.zeros((6, 8, 8), np.float32)), "N×C×H×W"),
    ("y int32", dict(y=np.zeros(6, np.int32)), "1-D int64"),
    ("y 2-D", dict(y=np.zeros((6, 1), np.int64)), "1-D int64"),
    ("above 1", dict(x=np.full((6, *SHAPE), 1.5, np.float32)), "outside [0, 1]"),
    ("below 0", dict(x=np.full((6, *SHAPE), -0.1, np.float32)), "outside [0, 1]"),
    ("label too big", dict(y=np.array([0, 1, 2, 3, 0, 1])), "label 3 out of range for 3 classes"),
    ("label negative", dict(y=np.array([0, -1, 2, 0, 0, 1])), "label -1 out of range"),
    ("y shorter", dict(y=np.zeros(5, np.int64)), "x has 6 rows but y has 5"),
    ("column shorter", dict(extra={"group": np.array(["g"] * 4, dtype=object)}), "column 'group' has 4 rows"),
    ("empty", dict(x=np.zeros((0, *SHAPE), np.float32), y=np.zeros(0, np.int64)), "empty"),
    ("no classes", dict(attrs={"classes": np.array([], dtype=h5py.string_dtype())}), "'classes' is empty"),
    ("provenance not json", dict(attrs={"provenance": "{not json"}), "not JSON"),
])
def test_validator_errors(tmp_path, case, kwargs, message):
    p = _raw(tmp_path / "bad.h5", **kwargs)
    with pytest.raises(RdmError) as e:
        validate_set(p)
    assert message in str(e.value)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_validator_rejects_non_finite(tmp_path, value):
    x = np.full((6, *SHAPE), 0.5, np.float32)
    x[4, 0, 3, 3] = value
    with pytest.raises(RdmError, match=r"NaN or inf \(row 4\)"):
        validate_set(_raw(tmp_path / "bad.h5", x=x))


def test_validator_finds_bad_values_beyond_the_first_batch(tmp_path):
    x = np.full((6, *SHAPE), 0.5, np.float32)
    x[5, 0, 0, 0] = 2.0
    with pytest.raises(RdmError, match=r"row 5"):
        validate_set(_raw(tmp_path / "bad.h5", x=x), batch_size=2)
    assert validate_set(tmp_path / "bad.h5", check_values=False).n == 6


@pytest.mark.parametrize("attr", ["classes", "modality", "preset", "provenance"])
def test_validator_missing_attribute(tmp_path, attr):
    with pytest.raises(RdmError, match=f"missing attribute '{attr}'"):
        validate_set(_raw(tmp_path / "bad.h5", drop_attr=attr))


@pytest.mark.parametrize("name", ["x", "y"])
def test_validator_missing_dataset(tmp_path, name):
    p = tmp_path / "bad.h5"
    _raw(p)
    with h5py.File(p, "a") as f:
        del f[name]
    with pytest.raises(RdmError, match=f"no '{name}' dataset"):
        validate_set(p)


def test_validator_expectations(tmp_path):
    p = _raw(tmp_path / "s.h5")
    with pytest.raises(RdmError, match="has 1 channel but model.ckpt expects 3"):
        validate_set(p, expect_shape=(3, 8, 8), what="model.ckpt")
    with pytest.raises(RdmError, match="images are 1×8×8, expected 1×16×16"):
        validate_set(p, expect_shape=(1, 16, 16))
    with pytest.raises(RdmError, match="classes"):
        validate_set(p, expect_classes=["a", "b"])
    with pytest.raises(RdmError, match="has no 'source_index' column"):
        validate_set(p, require=["source_index"])


def test_validator_missing_file(tmp_path):
    with pytest.raises(RdmError, match="no such file"):
        validate_set(tmp_path / "nope.h5")


def test_validator_not_hdf5(tmp_path):
    p = tmp_path / "text.h5"
    p.write_text("this is not HDF5\n")
    with pytest.raises(RdmError, match="not a readable HDF5 set"):
        validate_set(p)
    with pytest.raises(RdmError, match="not a readable HDF5 set"):
        SetReader(p)


def test_writer_rejects_bad_batches(tmp_path):
    x, y = _rows(4)
    with pytest.raises(ValueError, match="missing columns"):
        with SetWriter(tmp_path / "s.h5", shape=SHAPE, classes=CLASSES, modality="m", preset="p",
                       provenance={}, columns=["group"]) as w:
            w.append(x, y)
    with pytest.raises(ValueError, match="differ in length"):
        with SetWriter(tmp_path / "s.h5", shape=SHAPE, classes=CLASSES, modality="m", preset="p",
                       provenance={}) as w:
            w.append(x, y[:3])
    with pytest.raises(RdmError, match="C×H×W"):
        SetWriter(tmp_path / "s.h5", shape=(8, 8), classes=CLASSES, modality="m", preset="p", provenance={})
    assert list(tmp_path.iterdir()) == []
