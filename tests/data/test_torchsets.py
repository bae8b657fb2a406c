"""rdm.data.H5Dataset, write_set and columns: rdm sets to and from torch and pandas pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import rdm.data
from rdm.data.sets import SetReader, validate_set
from rdm.errors import RdmError


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    x = rng.random((300, 2, 6, 5), dtype=np.float32)
    y = rng.integers(0, 3, 300)
    return x, y


def test_write_set_makes_a_set_every_command_reads(tmp_path, arrays):
    x, y = arrays
    path = rdm.data.write_set(tmp_path / "mine.h5", torch.from_numpy(x), y, classes=["a", "b", "c"],
                              groups=[f"p{i // 3}" for i in range(300)], ids=[f"img{i}.png" for i in range(300)],
                              modality="CT", preset="mine")
    info = validate_set(path)
    assert (info.n, info.shape, info.classes, info.modality, info.preset) == (300, (2, 6, 5), ["a", "b", "c"], "CT", "mine")
    with SetReader(path) as r:
        b = r.read(0, 300)
    assert np.array_equal(b["x"], x) and np.array_equal(b["y"], y)
    cols = rdm.data.columns(path)
    assert list(cols["group"][:4]) == ["p0", "p0", "p0", "p1"] and cols["id"][7] == "img7.png"
    assert list(cols["label"][:5]) == [["a", "b", "c"][v] for v in y[:5]]
    assert all(len(v) == 300 for v in cols.values())


@pytest.mark.parametrize("bad,msg", [
    (dict(x=np.full((4, 1, 2, 2), 255.0)), "values in \\[0, 1\\]"),
    (dict(y=np.array([0, 1, 2, 3])), "labels must lie in 0…2"),
    (dict(y=np.array([0, 1])), "x has 4 rows, y 2"),
    (dict(x=np.zeros((4, 2))), "N×C×H×W"),
    (dict(x=np.full((4, 1, 2, 2), np.nan)), "finite"),
])
def test_write_set_refuses_bad_arrays_and_leaves_no_file(tmp_path, bad, msg):
    args = {"x": np.zeros((4, 1, 2, 2)), "y": np.array([0, 1, 2, 0]), **bad}
    with pytest.raises(RdmError, match=msg):
        rdm.data.write_set(tmp_path / "bad.h5", args["x"], args["y"], classes=["a", "b", "c"])
    assert list(tmp_path.iterdir()) == []


def test_h5dataset_rows_batches_workers_and_transforms(tmp_path, arrays):
    x, y = arrays
    path = rdm.data.write_set(tmp_path / "s.h5", x, y, classes=["a", "b", "c"], groups=[str(i) for i in range(300)])
    ds = rdm.data.H5Dataset(path)
    assert len(ds) == 300 and ds.classes == ["a", "b", "c"]
    xi, yi = ds[257]
    assert torch.equal(xi, torch.from_numpy(x[257])) and yi == y[257]
    assert torch.equal(ds[-1][0], torch.from_numpy(x[-1]))
    with pytest.raises(IndexError):
        ds[300]
    for workers in (0, 2):
        got = list(DataLoader(ds, batch_size=64, num_workers=workers))
        assert torch.equal(torch.cat([b[0] for b in got]), torch.from_numpy(x))
        assert torch.equal(torch.cat([b[1] for b in got]), torch.from_numpy(y))
    shuffled = DataLoader(ds, batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(0))
    seen = sorted(int(v) for b in shuffled for v in b[1])
    assert seen == sorted(y.tolist())
    flipped = rdm.data.H5Dataset(path, transform=lambda t: 1 - t, target_transform=lambda v: v + 10)
    assert torch.equal(flipped[3][0], 1 - torch.from_numpy(x[3])) and flipped[3][1] == y[3] + 10
    row = rdm.data.H5Dataset(path, as_dict=True)[12]
    assert row["index"] == 12 and row["group"] == "12" and row["y"] == y[12]


def test_h5dataset_opens_no_file_until_read(tmp_path, arrays):
    x, y = arrays
    path = rdm.data.write_set(tmp_path / "s.h5", x[:10], y[:10], classes=["a", "b", "c"])
    ds = rdm.data.H5Dataset(path)
    assert ds._reader is None
    ds[0]
    import pickle

    assert pickle.loads(pickle.dumps(ds))._reader is None     # a spawned worker opens its own handle


def test_columns_read_by_pandas(tmp_path, arrays):
    pd = pytest.importorskip("pandas", reason="pandas is optional")
    x, y = arrays
    path = rdm.data.write_set(tmp_path / "s.h5", x, y, classes=["a", "b", "c"], ids=[f"f{i}" for i in range(300)])
    df = pd.DataFrame(rdm.data.columns(path))
    assert list(df["id"][:2]) == ["f0", "f1"] and isinstance(df["id"][0], str)
