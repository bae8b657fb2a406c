"""rdm-prep readers for figshare .mat files and LUNA16 .mhd/.raw volumes, on tiny files the tests write."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from rdm.errors import RdmError
from rdm.prep.api import detect, prepare
from rdm.prep.images import BadInput
from rdm.prep.luna16 import parse_mhd, world_to_voxel
from rdm.data.presets import load_preset
from rdm.data.sets import SetReader
from rdm_tools.prep import app

BRAIN = load_preset("brain")
LUNG = load_preset("lung")


def read_all(outdir: Path) -> dict:
    out = {}
    for s in ("train", "val", "test"):
        with SetReader(outdir / f"{s}.h5") as r:
            out[s] = r.read(0, r.n)
    return out


# --------------------------------------------------------------------------- figshare .mat (v7.3 = HDF5)
def write_mat(path: Path, image: np.ndarray, label: int, pid: str | None):
    """What MATLAB -v7.3 writes for the figshare struct: column-major arrays, chars as uint16."""
    with h5py.File(path, "w") as f:
        g = f.create_group("cjdata")
        g["image"] = image.T.astype(np.int16)
        g["label"] = np.array([[float(label)]])
        if pid is not None:
            g["PID"] = np.array([[ord(c)] for c in pid], dtype=np.uint16)
        g["tumorMask"] = np.zeros(image.T.shape, np.uint8)


def mat_folder(root: Path, n_patients=6, per_patient=3) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    k = 0
    for p in range(n_patients):
        label = p % 3 + 1
        for _ in range(per_patient):
            h, w = (16, 16) if k % 2 else (12, 20)
            img = rng.integers(0, 900, (h, w)).astype(np.int16)
            img[: h // 2] += 2000  # the top half is bright, in MATLAB's orientation
            write_mat(root / f"{k + 1}.mat", img, label, f"MRN{100 + p}")
            k += 1
    return root


def test_mat_files_labels_groups_orientation(tmp_path):
    src = mat_folder(tmp_path / "mat")
    assert detect([src]) == "mat"
    res = prepare([src], BRAIN, tmp_path / "out", seed=0)
    assert res.kind == "mat" and res.table.sum() == 18 and res.n_groups == 6
    names = {1: "meningioma", 2: "glioma", 3: "pituitary"}
    where = {}
    for s, d in read_all(tmp_path / "out").items():
        assert d["x"].shape[1:] == BRAIN.shape
        for x, y, g, ident in zip(d["x"], d["y"], d["group"], d["id"]):
            patient = int(g[3:]) - 100
            assert BRAIN.classes[y] == names[patient % 3 + 1]
            assert where.setdefault(g, s) == s  # a patient never straddles
            assert x[:, :28].mean() > x[:, 36:].mean() + 0.3  # not transposed
            assert x.min() >= 0 and x.max() <= 1
            assert ident.endswith(".mat")


def test_mat_files_as_a_list_and_class_map(tmp_path):
    src = mat_folder(tmp_path / "mat")
    files = sorted(src.glob("*.mat"))
    res = prepare(files, BRAIN, tmp_path / "out", class_map={"1": "glioma", "2": "meningioma"})
    d = read_all(tmp_path / "out")
    lab = {i: BRAIN.classes[y] for s in d.values() for i, y in zip(s["id"], s["y"])}
    assert lab["1.mat"] == "glioma" and lab["4.mat"] == "meningioma" and lab["7.mat"] == "pituitary"
    assert res.table.sum() == 18


@pytest.mark.parametrize("case, message", [
    ("no-cjdata", "no 'cjdata' struct"),
    ("no-image", "no 'cjdata/image' field"),
    ("v5", "MATLAB v5 .mat file"),
    ("not-hdf5", "not a MATLAB v7.3 (HDF5) .mat file"),
    ("label-4", "label 4 (4) is not a class of the preset"),
])
def test_bad_mat_file(tmp_path, case, message):
    src = mat_folder(tmp_path / "mat")
    bad = src / "zz.mat"
    if case == "no-cjdata":
        with h5py.File(bad, "w") as f:
            f["other"] = np.zeros(3)
    elif case == "no-image":
        with h5py.File(bad, "w") as f:
            f.create_group("cjdata")["label"] = np.array([[1.0]])
    elif case == "v5":
        bad.write_bytes(b"MATLAB 5.0 MAT-file, Platform: GLNXA64" + bytes(200))
    elif case == "not-hdf5":
        bad.write_text("hello")
    elif case == "label-4":
        write_mat(bad, np.zeros((8, 8), np.int16), 4, "X")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [str(src), "--preset", "brain", "-o", str(out), "-q"])
    assert res.exit_code == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ") and message in lines[0], res.stderr
    assert not out.exists()
    res = CliRunner().invoke(app, [str(src), "--preset", "brain", "-o", str(out), "-q", "--skip-bad"])
    assert res.exit_code == 0 and "skipped 1 bad input" in res.stderr
    assert sum(SetReader(out / f"{s}.h5").n for s in ("train", "val", "test")) == 18


def test_mat_without_pid_is_its_own_group(tmp_path):
    src = tmp_path / "mat"
    src.mkdir()
    for k in range(9):
        write_mat(src / f"{k}.mat", np.full((8, 8), k, np.int16), k % 3 + 1, None)
    res = prepare([src], BRAIN, tmp_path / "out")
    assert res.n_groups == 9


# --------------------------------------------------------------------------- LUNA16 .mhd/.raw
SPACING = (0.7, 0.8, 2.5)
ORIGIN = (-100.0, -50.0, -300.0)
DIMS = (30, 24, 5)  # x, y, z


def write_volume(root: Path, uid: str, vol: np.ndarray, *, header_extra="", etype="MET_SHORT",
                 truncate=False) -> Path:
    """vol is z×y×x int16 HU; writes <uid>.mhd + <uid>.raw as LUNA16 does."""
    root.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = vol.shape
    (root / f"{uid}.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n"
        f"Offset = {ORIGIN[0]} {ORIGIN[1]} {ORIGIN[2]}\nCenterOfRotation = 0 0 0\n"
        "AnatomicalOrientation = RAI\n"
        f"ElementSpacing = {SPACING[0]} {SPACING[1]} {SPACING[2]}\nDimSize = {nx} {ny} {nz}\n"
        f"{header_extra}ElementType = {etype}\nElementDataFile = {uid}.raw\n")
    data = vol.astype("<i2").tobytes()
    (root / f"{uid}.raw").write_bytes(data[: len(data) // 2] if truncate else data)
    return root / f"{uid}.mhd"


def world(i, j, k):
    return [ORIGIN[0] + i * SPACING[0], ORIGIN[1] + j * SPACING[1], ORIGIN[2] + k * SPACING[2]]


def luna_folder(root: Path, n_series=6, per_series=4, extra_rows=()):
    rows = []
    idx = 0
    for s in range(n_series):
        uid = f"1.3.6.1.{s}"
        vol = np.full(DIMS[::-1], -1000, np.int16)
        for c in range(per_series):
            i, j, k = 3 + 6 * c, 6 + 2 * c, c % DIMS[2]
            vol[k, j, i] = 400
            vol[k, j, i + 1] = -300
            rows.append([idx, uid, *world(i, j, k), int(c % 2 == 0)])
            idx += 1
        write_volume(root / f"subset{s % 2}", uid, vol)
    rows += list(extra_rows)
    with open(root / "candidates.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["candidate_index", "seriesuid", "coordX", "coordY", "coordZ", "class"])
        w.writerows(rows)
    return root


def test_parse_mhd_and_world_to_voxel(tmp_path):
    mhd = write_volume(tmp_path, "u", np.zeros(DIMS[::-1], np.int16))
    h = parse_mhd(mhd)
    assert h["dims"] == list(DIMS) and np.allclose(h["spacing"], SPACING) and np.allclose(h["origin"], ORIGIN)
    assert h["dtype"] == np.dtype("<i2")
    np.testing.assert_allclose(world_to_voxel(world(7, 3, 2), h), [7, 3, 2], atol=1e-9)


def test_luna16_patches(tmp_path):
    src = luna_folder(tmp_path / "luna")
    assert detect([src]) == "luna16"
    res = prepare([src], LUNG, tmp_path / "out", seed=0)
    assert res.kind == "luna16" and res.table.sum() == 24 and res.n_groups == 6
    h, w = LUNG.size
    where = {}
    for s, d in read_all(tmp_path / "out").items():
        for x, y, g, ident in zip(d["x"], d["y"], d["group"], d["id"]):
            c = int(ident[4:10]) % 4
            assert LUNG.classes[y] == ("nodule" if c % 2 == 0 else "non-nodule")
            assert ident.endswith("_" + g) and where.setdefault(g, s) == s
            assert x.shape == (1, h, w)
            assert x[0, h // 2, w // 2] == pytest.approx(1.0)            # 400 HU
            assert x[0, h // 2, w // 2 + 1] == pytest.approx(700 / 1400)  # -300 HU
            assert x.sum() == pytest.approx(1.0 + 0.5)                   # air and padding are 0


def test_luna16_candidate_outside_volume_and_missing_series(tmp_path):
    uid = "1.3.6.1.0"
    src = luna_folder(tmp_path / "luna", extra_rows=[[99, uid, *world(5, 5, 40), 0], [100, "9.9.9", 0, 0, 0, 1]])
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [str(src), "--preset", "lung", "-o", str(out), "-q"])
    assert res.exit_code == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "lies outside the volume" in lines[0] and uid in lines[0]
    assert not out.exists()
    res = CliRunner().invoke(app, [str(src), "--preset", "lung", "-o", str(out), "-q", "--skip-bad"])
    assert res.exit_code == 0, res.stderr
    assert "1 of 26 candidates have no .mhd volume" in res.stderr and "skipped 1 bad input" in res.stderr
    assert sum(SetReader(out / f"{s}.h5").n for s in ("train", "val", "test")) == 24


def test_luna16_bad_volume(tmp_path):
    src = luna_folder(tmp_path / "luna")
    write_volume(src / "subset0", "1.3.6.1.0", np.zeros(DIMS[::-1], np.int16), truncate=True)
    with pytest.raises(RdmError, match=r"1\.3\.6\.1\.0\.raw: is truncated"):
        prepare([src], LUNG, tmp_path / "out")
    res = prepare([src], LUNG, tmp_path / "out", skip_bad=True)
    assert res.table.sum() == 20 and len(res.skipped) == 4


@pytest.mark.parametrize("extra, etype, message", [
    ("", "MET_WEIRD", "ElementType MET_WEIRD is not supported"),
    ("NDims = 2\n", "MET_SHORT", "NDims = 2"),
])
def test_parse_mhd_errors(tmp_path, extra, etype, message):
    mhd = write_volume(tmp_path, "u", np.zeros(DIMS[::-1], np.int16), header_extra=extra, etype=etype)
    with pytest.raises(BadInput, match=message):
        parse_mhd(mhd)


def test_luna16_with_candidates_option(tmp_path):
    src = luna_folder(tmp_path / "luna")
    cand = tmp_path / "my.csv"
    (src / "candidates.csv").rename(cand)
    assert detect([src], cand) == "luna16"
    res = prepare([src], LUNG, tmp_path / "out", candidates=cand)
    assert res.table.sum() == 24
