"""Honest preprocessing: resizes are counted and can be refused; 16-bit, float, DICOM and NIfTI
values go through the preset's intensity window (not each image's min..max), and the set
records the mapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rdm.data.sets import SetReader
from rdm_tools.prep import app

from helpers import CT_PRESET

CT = CT_PRESET
PLAIN = CT.split("[intensity]")[0]
LO, HI = -1000.0, 400.0


def prep(tmp_path, src, text=CT, *more):
    pre = tmp_path / "p.toml"
    pre.write_text(text)
    r = CliRunner().invoke(app, [str(src), "--preset", str(pre), "-o", str(tmp_path / "out"), "-q", *map(str, more)])
    return r


def rows(out: Path) -> tuple[dict[str, np.ndarray], dict]:
    """id -> image (H×W), and the sets' intensity record."""
    got, rec = {}, None
    for s in ("train", "val", "test"):
        with SetReader(out / f"{s}.h5") as r:
            d = r.read(0, r.n)
            rec = json.loads(r.info.attrs["intensity"])
            for i, x in zip(d["id"], d["x"]):
                got[str(i)] = x[0]
    return got, rec


def window(v) -> np.ndarray:
    return np.clip((np.asarray(v, np.float64) - LO) / (HI - LO), 0, 1)


def write_tree(src: Path, save, n: int = 4):
    """``save(path_stem, values)`` writes one image of the given H×W values per file."""
    rng = np.random.default_rng(0)
    vals = {}
    for c in ("a", "b"):
        (src / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            v = rng.integers(-1200, 700, (8, 8)).astype(np.int16)
            vals[f"{c}/{c}{i}"] = v
            save(src / c / f"{c}{i}", v)
    return vals


# --------------------------------------------------------------------------- resizing
def test_resized_images_are_counted_and_no_resize_refuses(tmp_path):
    src = tmp_path / "src"
    for c in ("a", "b"):
        (src / c).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8) if i else (32, 24), 100).save(src / c / f"{c}{i}.png")
    r = prep(tmp_path, src, PLAIN)
    assert r.exit_code == 0, r.stderr
    assert "resized 2 image(s) to 8x8 from 32x24 (2)" in r.stderr
    err = [ln for ln in prep(tmp_path, src, PLAIN, "--no-resize").stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "32x24" in err[0] and "a0.png" in err[0]
    r = prep(tmp_path, src, PLAIN, "--no-resize", "--skip-bad")
    assert r.exit_code == 0 and "a0.png" in r.stderr and "b0.png" in r.stderr
    assert len(rows(tmp_path / "out")[0]) == 6


# --------------------------------------------------------------------------- 16-bit and float
def test_16_bit_pngs_go_through_the_window_not_min_max(tmp_path):
    src = tmp_path / "src"
    # stored values are the unit's (HU shifted to be non-negative would need a preset offset: here
    # the values themselves lie in [0, 2000] and the window picks [-1000, 400] of them)
    vals = write_tree(src, lambda p, v: Image.fromarray((v.astype(np.int32) + 1200).astype(np.uint16))
                      .save(p.with_suffix(".png")))
    r = prep(tmp_path, src)
    assert r.exit_code == 0, r.stderr
    got, rec = rows(tmp_path / "out")
    for k, v in vals.items():
        np.testing.assert_allclose(got[k + ".png"], window(v.astype(np.float64) + 1200), atol=1e-6)
    assert rec["window"] == [LO, HI] and rec["unit"] == "HU" and rec["kinds"]["16-bit"]["images"] == 8
    # no window: the type's range, so one value means the same in every image
    prep(tmp_path, src, PLAIN)
    got, rec = rows(tmp_path / "out")
    for k, v in vals.items():
        np.testing.assert_allclose(got[k + ".png"], (v.astype(np.float64) + 1200) / 65535, atol=1e-6)
    assert rec["window"] is None and rec["kinds"]["16-bit"]["mapping"] == "value / 65535"


def test_float_images_need_a_window_or_values_in_0_1(tmp_path):
    src = tmp_path / "src"
    vals = write_tree(src, lambda p, v: Image.fromarray(v.astype(np.float32), mode="F").save(p.with_suffix(".tif")))
    r = prep(tmp_path, src)
    assert r.exit_code == 0, r.stderr
    got, _ = rows(tmp_path / "out")
    for k, v in vals.items():
        np.testing.assert_allclose(got[k + ".tif"], window(v), atol=1e-6)
    r = prep(tmp_path, src, PLAIN)
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(err) == 1 and "no [intensity] window" in err[0]


# --------------------------------------------------------------------------- DICOM and NIfTI
def write_dicom(path: Path, stored: np.ndarray, slope: float, intercept: float) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"       # CT image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "CT"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = pydicom.valuerep.DSfloat(slope), pydicom.valuerep.DSfloat(intercept)
    ds.PixelData = stored.astype("<i2").tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_slices_map_hu_through_the_window(tmp_path):
    pytest.importorskip("pydicom")
    src = tmp_path / "src"
    slope, intercept = 2.0, -1024.0
    stored = write_tree(src, lambda p, v: write_dicom(p.with_suffix(".dcm"), (v + 1024) // 2, slope, intercept))
    r = prep(tmp_path, src)
    assert r.exit_code == 0, r.stderr
    got, rec = rows(tmp_path / "out")
    for k, v in stored.items():
        hu = ((v.astype(np.int64) + 1024) // 2) * slope + intercept
        np.testing.assert_allclose(got[k + ".dcm"], window(hu), atol=1e-6)
    assert rec["kinds"]["dicom"]["images"] == 8 and "RescaleSlope" in rec["kinds"]["dicom"]["mapping"]
    r = prep(tmp_path, src, PLAIN)                       # DICOM without a window: refused, one line
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(err) == 1 and "[intensity] window" in err[0]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_slices_apply_scl_slope_and_inter(tmp_path, suffix):
    nib = pytest.importorskip("nibabel")
    src = tmp_path / "src"

    def save(p, v):
        img = nib.Nifti1Image(((v.astype(np.int32) + 1024) // 2).astype(np.int16)[:, :, None], np.eye(4))
        img.header.set_slope_inter(2.0, -1024.0)
        nib.save(img, str(p) + suffix)

    stored = write_tree(src, save)
    r = prep(tmp_path, src)
    assert r.exit_code == 0, r.stderr
    got, rec = rows(tmp_path / "out")
    for k, v in stored.items():
        hu = ((v.astype(np.int64) + 1024) // 2) * 2.0 - 1024.0
        np.testing.assert_allclose(got[k + suffix], window(hu), atol=1e-6)
    assert rec["kinds"]["nifti"]["images"] == 8


def test_a_damaged_dicom_file_is_a_bad_input(tmp_path):
    pytest.importorskip("pydicom")
    src = tmp_path / "src"
    write_tree(src, lambda p, v: write_dicom(p.with_suffix(".dcm"), v, 1.0, 0.0))
    (src / "a" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    r = prep(tmp_path, src)
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(err) == 1 and "broken.dcm" in err[0]
    assert prep(tmp_path, src, CT, "--skip-bad").exit_code == 0
