"""DICOM and NIfTI slices (the optional ``medical`` extra: ``pip install 'rdm-robust[medical]'``).

One file is one 2-D slice: a single-frame DICOM file (``.dcm``), or a NIfTI image (``.nii``,
``.nii.gz``) whose array is H×W or H×W×1. The stored values become physical ones before
anything else: DICOM ``value · RescaleSlope + RescaleIntercept`` (HU for CT; slope 1,
intercept 0 when absent), NIfTI ``value · scl_slope + scl_inter`` (nibabel applies it; none when
the header's slope is 0 or NaN). They are then mapped through the preset's intensity window
(:class:`rdm.prep.images.Decode`), which such files require: a preset without
``[intensity] window`` refuses them. NIfTI arrays are read as stored (first axis = rows).
"""

from __future__ import annotations

import gzip
import io

import numpy as np

from rdm.errors import RdmError
from rdm.prep.images import BadInput, Decode

EXTRA = "pip install 'rdm-robust[medical]'"


def _need_window(name: str, decode: Decode, what: str) -> None:
    if decode.window is None:
        raise RdmError(f"{name}: {what} files need a preset with an [intensity] window (unit and window = [lo, hi]) "
                       "to map their values to [0, 1]")


def dicom_slice(data: bytes, name: str, decode: Decode) -> np.ndarray:
    """One DICOM slice -> C×H×W float32 through the preset's window (HU for CT)."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:
        raise RdmError(f"{name}: reading DICOM needs pydicom: {EXTRA}") from None
    _need_window(name, decode, "DICOM")
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        a = np.asarray(ds.pixel_array)
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except InvalidDicomError:
        raise BadInput(name, "not a DICOM file") from None
    except Exception as e:  # pydicom raises many kinds on damaged or unsupported files
        raise BadInput(name, f"cannot decode DICOM ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") \
            from None
    if a.ndim != 2:
        raise BadInput(name, f"DICOM pixel data has shape {tuple(a.shape)}; one 2-D grey slice per file is read")
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise BadInput(name, f"RescaleSlope {slope} / RescaleIntercept {intercept} is not finite")
    hu = a.astype(np.float64) * slope + intercept
    decode.counts["dicom"] += 1
    return decode.floats(_finite(hu, name), name, *decode.window)


def nifti_slice(data: bytes, name: str, decode: Decode) -> np.ndarray:
    """One NIfTI slice -> C×H×W float32 through the preset's window (scl_slope/scl_inter applied)."""
    try:
        import nibabel
    except ImportError:
        raise RdmError(f"{name}: reading NIfTI needs nibabel: {EXTRA}") from None
    _need_window(name, decode, "NIfTI")
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        img = nibabel.Nifti1Image.from_bytes(raw)
        a = np.asarray(img.dataobj, dtype=np.float64)   # dataobj applies scl_slope / scl_inter
    except Exception as e:  # nibabel and gzip raise many kinds on damaged files
        raise BadInput(name, f"cannot decode NIfTI ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") \
            from None
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise BadInput(name, f"NIfTI array has shape {tuple(a.shape)}; one 2-D slice per file is read")
    decode.counts["nifti"] += 1
    return decode.floats(_finite(a, name), name, *decode.window)


def _finite(a: np.ndarray, name: str) -> np.ndarray:
    bad = int(np.count_nonzero(~np.isfinite(a)))
    if bad:
        raise BadInput(name, f"{bad} pixel(s) are NaN or inf")
    return a
