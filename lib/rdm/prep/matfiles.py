"""The figshare brain-tumour dataset (Cheng 2017): one MATLAB v7.3 ``.mat`` file per slice.

A v7.3 ``.mat`` file is HDF5. Fields used: ``cjdata/image`` (int16, 512×512 mostly,
some 256×256), ``cjdata/label`` (1 = meningioma, 2 = glioma, 3 = pituitary) and
``cjdata/PID`` (the patient id as MATLAB chars, stored as uint16 codes), the group:
slices of one patient never straddle two splits. ``cjdata/tumorMask`` is ignored.

MATLAB writes arrays column-major, so h5py sees them transposed; the image is
transposed back. Each image's own min..max is scaled to [0, 1] (the slices have no
common intensity scale), then resized with LANCZOS and clipped to [0, 1]; a preset with an
``[intensity] window`` maps every slice through that window instead.
``--class-map 1=...`` overrides the numeric label's class name.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import h5py
import numpy as np

from rdm.errors import RdmError
from rdm.data.sets import sha256_bytes
from rdm.prep.images import BadInput, Decode, read_input
from rdm.prep.reader import Entry, Scan, display_name

FIGSHARE_LABELS = {1: "meningioma", 2: "glioma", 3: "pituitary"}


def expand(sources: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for s in sources:
        if s.is_dir():
            files.extend(sorted(p for p in s.iterdir() if p.is_file() and p.suffix.lower() == ".mat"
                                and not p.name.startswith(".")))
        else:
            files.append(s)
    if not files:
        raise RdmError(f"{', '.join(map(display_name, sources))}: no .mat files")
    return files


def _open(path: Path, data: bytes | None = None) -> h5py.File:
    try:
        return h5py.File(io.BytesIO(data) if data is not None else path, "r")
    except OSError:
        head = data[:20] if data is not None else _head(path)
        if head.startswith(b"MATLAB 5.0"):
            raise BadInput(display_name(path), "a MATLAB v5 .mat file; only v7.3 (HDF5) files are read, "
                                      "re-save it with save(..., '-v7.3')") from None
        raise BadInput(display_name(path), "not a MATLAB v7.3 (HDF5) .mat file") from None


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(20)
    except OSError:
        return b""


def _field(f: h5py.File, path: Path, name: str) -> h5py.Dataset:
    if "cjdata" not in f or not isinstance(f["cjdata"], h5py.Group):
        raise BadInput(display_name(path), "no 'cjdata' struct (not a figshare brain-tumour file)")
    if name not in f["cjdata"] or not isinstance(f["cjdata"][name], h5py.Dataset):
        raise BadInput(display_name(path), f"no 'cjdata/{name}' field")
    return f["cjdata"][name]


def _pid(ds: h5py.Dataset) -> str:
    v = np.asarray(ds[()]).reshape(-1)
    if v.dtype.kind in "ui":
        return "".join(chr(int(c)) for c in v if int(c) != 0).strip()
    if v.dtype.kind in "SO":
        return "".join(s.decode() if isinstance(s, bytes) else str(s) for s in v).strip()
    return "".join(str(int(c)) for c in v)


class MatFiles:
    """The figshare .mat reader (see :mod:`rdm.prep.reader` for the protocol)."""

    def __init__(self, sources: Sequence[Path], classes: Sequence[str], class_map: Mapping[str, str], shape):
        self.sources, self.classes, self.class_map, self.shape = [Path(s) for s in sources], list(classes), \
            dict(class_map), shape
        self.hashes: dict[str, str] = {}
        self.decode = Decode(shape)

    def scan(self) -> Scan:
        entries: list[Entry] = []
        bad: list[BadInput] = []
        for p in expand(self.sources):
            name = display_name(p)
            try:
                with _open(p) as f:
                    lab = np.asarray(_field(f, p, "label")[()]).reshape(-1)
                    if lab.size != 1 or not np.isfinite(lab[0]) or float(lab[0]) != int(lab[0]):
                        raise BadInput(name, f"cjdata/label is not one integer ({lab.tolist()[:4]})")
                    k = int(lab[0])
                    _field(f, p, "image")
                    pid = _pid(f["cjdata"]["PID"]) if "PID" in f["cjdata"] else ""
            except BadInput as b:
                bad.append(b)
                continue
            cls = self.class_map.get(str(k), FIGSHARE_LABELS.get(k, str(k)))
            cls = self.class_map.get(cls, cls)
            if cls not in self.classes:
                bad.append(BadInput(name, f"label {k} ({cls}) is not a class of the preset "
                                          f"({', '.join(self.classes)}); map it with --class-map {k}=CLASS"))
                continue
            entries.append(Entry(id=display_name(p.name), label=self.classes.index(cls), group=pid or display_name(p.name),
                                 ref=p))
        return Scan(entries, bad, {"source": [display_name(s) for s in self.sources], "group_col": "cjdata/PID"})

    def load(self, entry: Entry) -> tuple[np.ndarray, str]:
        p = Path(entry.ref)
        name = display_name(p)
        data = read_input(p)
        with _open(p, data) as f:
            ds = _field(f, p, "image")
            try:
                img = np.asarray(ds[()], dtype=np.float32)
            except (OSError, TypeError, ValueError) as e:
                raise BadInput(name, f"cannot read cjdata/image ({e})") from None
        if img.ndim != 2 or min(img.shape) < 1:
            raise BadInput(name, f"cjdata/image has shape {img.shape}, expected a 2-D slice")
        img = img.T  # MATLAB is column-major
        if not np.isfinite(img).all():
            raise BadInput(name, "cjdata/image has NaN or inf values")
        if self.decode.window is not None:      # a preset with a window: one scale for every slice
            self.decode.counts["float"] += 1
            return self.decode.floats(img, name, *self.decode.window), sha256_bytes(data)
        self.decode.counts["MRI slice, own min..max"] += 1
        return self.decode.floats(img, name, float(img.min()), float(img.max())), sha256_bytes(data)

    def close(self) -> None:
        return None
