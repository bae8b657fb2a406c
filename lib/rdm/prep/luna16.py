"""LUNA16 CT volumes (``.mhd`` + ``.raw``) and ``candidates.csv`` -> 2-D axial patches.

For each candidate row (``seriesuid,coordX,coordY,coordZ,class``; an optional
``candidate_index`` column names the patch) the series' volume is found by file
stem anywhere below SOURCE (``subset0/…/<seriesuid>.mhd``). The MetaImage header is
parsed here (``NDims``, ``DimSize``, ``ElementSpacing``, ``Offset``/``Origin``,
``TransformMatrix``, ``ElementType``, ``ElementDataFile`` incl. ``LOCAL``,
``HeaderSize``, byte order, ``CompressedData``). World (mm) -> voxel:
``index = D⁻¹(world − origin) / spacing``, rounded (D is the identity in LUNA16).
The patch is the axial slice through the candidate, H×W voxels of the preset's size
centred on it at native in-plane spacing (no resampling), padded with air
(−1000 HU) where it leaves the scan; HU are clipped to the preset's ``[intensity] window``
(the lung preset's [−1000, 400]; that window when the preset has none) and scaled to
[0, 1]. Group = seriesuid, label = the ``class`` column (0, 1 index the preset's classes; ``--class-map 1=nodule`` renames). Candidates of series with no volume
below SOURCE are left out with a warning (users often hold only some subsets).
"""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rdm.errors import RdmError
from rdm.data.sets import sha256_file
from rdm.prep.images import BadInput, Decode
from rdm.prep.reader import Entry, Scan, display_name

HU_MIN, HU_MAX = -1000.0, 400.0      # the lung preset's [intensity] window (a test keeps them equal)
MET_TYPES = {
    "MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2",
    "MET_UINT": "u4", "MET_INT": "i4", "MET_ULONG_LONG": "u8", "MET_LONG_LONG": "i8",
    "MET_FLOAT": "f4", "MET_DOUBLE": "f8",
}


def parse_mhd(path: Path) -> dict:
    """The header fields needed to read a 3-D volume; :class:`BadInput` if unusable."""
    try:
        text = path.read_bytes()
    except OSError as e:
        raise BadInput(display_name(path), f"cannot read ({e.strerror or e})") from None
    fields: dict[str, str] = {}
    header_bytes = 0
    for raw in text.split(b"\n"):
        header_bytes += len(raw) + 1
        line = raw.decode("latin-1").strip()
        if not line:
            continue
        key, sep, val = line.partition("=")
        if not sep:
            raise BadInput(display_name(path), f"not a MetaImage header (line '{line[:40]}')")
        key, val = key.strip(), val.strip()
        fields[key] = val
        if key == "ElementDataFile":
            break

    def nums(key, n, default=None, typ=float):
        if key not in fields:
            if default is None:
                raise BadInput(display_name(path), f"header has no {key}")
            return list(default)
        try:
            v = [typ(t) for t in fields[key].split()]
        except ValueError:
            raise BadInput(display_name(path), f"{key} = {fields[key]!r} is not {n} numbers") from None
        if len(v) != n:
            raise BadInput(display_name(path), f"{key} has {len(v)} values, expected {n}")
        return v

    ndims = nums("NDims", 1, default=[3], typ=int)[0]
    if ndims != 3:
        raise BadInput(display_name(path), f"NDims = {ndims}, expected a 3-D volume")
    dims = nums("DimSize", 3, typ=int)
    spacing = nums("ElementSpacing", 3, default=nums("ElementSize", 3, default=[1, 1, 1]))
    origin = nums("Offset", 3, default=nums("Origin", 3, default=nums("Position", 3, default=[0, 0, 0])))
    tm = nums("TransformMatrix", 9, default=nums("Rotation", 9, default=np.eye(3).ravel()))
    etype = fields.get("ElementType", "")
    if etype not in MET_TYPES:
        raise BadInput(display_name(path), f"ElementType {etype or '(none)'} is not supported")
    if int(fields.get("ElementNumberOfChannels", "1")) != 1:
        raise BadInput(display_name(path), "more than one channel per voxel is not supported")
    msb = (fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False")).lower() == "true")
    data_file = fields.get("ElementDataFile")
    if not data_file:
        raise BadInput(display_name(path), "header has no ElementDataFile")
    if min(dims) < 1 or min(spacing) <= 0:
        raise BadInput(display_name(path), f"DimSize {dims} / ElementSpacing {spacing} are not positive")
    D = np.array(tm, dtype=np.float64).reshape(3, 3)
    if abs(np.linalg.det(D)) < 1e-6:
        raise BadInput(display_name(path), "TransformMatrix is singular")
    return {
        "dims": dims, "spacing": np.array(spacing, float), "origin": np.array(origin, float), "direction": D,
        "dtype": np.dtype(MET_TYPES[etype]).newbyteorder(">" if msb else "<"),
        "data_file": data_file, "local_offset": header_bytes,
        "header_size": int(fields.get("HeaderSize", "0")),
        "compressed": fields.get("CompressedData", "False").lower() == "true",
    }


def world_to_voxel(world: Sequence[float], hdr: dict) -> np.ndarray:
    """(x, y, z) mm -> (i, j, k) voxel index (float): D⁻¹(world − origin) / spacing."""
    d = np.linalg.solve(hdr["direction"], np.asarray(world, float) - hdr["origin"])
    return d / hdr["spacing"]


def read_volume(mhd: Path, hdr: dict) -> np.ndarray:
    """The volume as a z×y×x array (memory-mapped when uncompressed)."""
    nx, ny, nz = hdr["dims"]
    dt = hdr["dtype"]
    nbytes = nx * ny * nz * dt.itemsize
    local = hdr["data_file"].upper() == "LOCAL"
    raw = mhd if local else mhd.parent / hdr["data_file"]
    if not raw.is_file():
        raise BadInput(display_name(mhd), f"data file {raw.name} is missing")
    size = raw.stat().st_size
    if hdr["compressed"]:
        blob = raw.read_bytes()[hdr["local_offset"] if local else max(hdr["header_size"], 0):]
        try:
            blob = zlib.decompress(blob)
        except zlib.error as e:
            raise BadInput(display_name(raw), f"cannot decompress ({e})") from None
        if len(blob) != nbytes:
            raise BadInput(display_name(raw), f"holds {len(blob)} bytes, the header needs {nbytes}")
        return np.frombuffer(blob, dtype=dt).reshape(nz, ny, nx)
    offset = hdr["local_offset"] if local else (size - nbytes if hdr["header_size"] == -1 else hdr["header_size"])
    if offset < 0 or size - offset < nbytes:
        raise BadInput(display_name(raw), f"is truncated: {size - max(offset, 0)} bytes of data, the header needs {nbytes}")
    return np.memmap(raw, dtype=dt, mode="r", offset=offset, shape=(nz, ny, nx))


def patch(vol: np.ndarray, ijk: np.ndarray, h: int, w: int) -> np.ndarray | None:
    """The h×w axial patch (HU, air-padded) centred on voxel ``ijk``; None if outside the volume."""
    nz, ny, nx = vol.shape
    i, j, k = (int(np.rint(v)) for v in ijk)
    if not (0 <= i < nx and 0 <= j < ny and 0 <= k < nz):
        return None
    out = np.full((h, w), HU_MIN, dtype=np.float32)
    r0, c0 = j - h // 2, i - w // 2
    rs, re = max(r0, 0), min(r0 + h, ny)
    cs, ce = max(c0, 0), min(c0 + w, nx)
    out[rs - r0:re - r0, cs - c0:ce - c0] = vol[k, rs:re, cs:ce]
    return out


def scan(root: Path, classes: Sequence[str], class_map: Mapping[str, str], candidates: Path | None = None) -> Scan:
    cand = candidates or root / "candidates.csv"
    if not cand.is_file():
        raise RdmError(f"{cand}: no such candidates file")
    try:
        with open(cand, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RdmError(f"{cand}: cannot read ({e})") from None
    need = ["seriesuid", "coordX", "coordY", "coordZ", "class"]
    miss = [c for c in need if c not in header]
    if miss:
        raise RdmError(f"{cand}: no '{miss[0]}' column (columns: {', '.join(header)})")
    volumes: dict[str, Path] = {}
    for p in sorted(root.rglob("*.mhd")):
        if p.stem in volumes:
            raise RdmError(f"{p}: series {p.stem} also at {volumes[p.stem]}")
        volumes[p.stem] = p
    entries: list[Entry] = []
    bad: list[BadInput] = []
    headers: dict[str, dict | BadInput] = {}
    no_volume = 0
    for line, r in enumerate(rows, start=2):
        uid = r["seriesuid"].strip()
        cls = r["class"].strip()
        name = class_map.get(cls)
        if name is None:
            try:
                name = classes[int(cls)]
            except (ValueError, IndexError):
                raise RdmError(f"{cand}: line {line}: class '{cls}' is not an index of {list(classes)}; "
                               f"map it with --class-map {cls}=CLASS") from None
        if name not in classes:
            raise RdmError(f"{cand}: line {line}: class '{name}' is not one of {list(classes)}")
        try:
            world = [float(r[c]) for c in ("coordX", "coordY", "coordZ")]
        except ValueError:
            raise RdmError(f"{cand}: line {line}: coordinates are not numbers") from None
        if uid not in volumes:
            no_volume += 1
            continue
        if uid not in headers:
            try:
                headers[uid] = parse_mhd(volumes[uid])
            except BadInput as b:
                headers[uid] = b
                bad.append(b)
        if isinstance(headers[uid], BadInput):
            continue
        idx = (r.get("candidate_index") or "").strip() or str(line - 2)
        cid = f"cand{int(idx):06d}_{uid}" if idx.isdigit() else f"cand{idx}_{uid}"
        entries.append(Entry(id=cid, label=list(classes).index(name), group=uid,
                             ref=(volumes[uid], headers[uid], world, line)))
    entries.sort(key=lambda e: (str(e.ref[0]), e.ref[3]))
    notes = [f"{no_volume} of {len(rows)} candidates have no .mhd volume under {display_name(root)}; left out"
             ] if no_volume else []
    if not entries and not bad:
        raise RdmError(f"{display_name(root)}: none of the {len(rows)} candidates has its series' .mhd volume here")
    return Scan(entries, bad, {"source": display_name(root), "group_col": "seriesuid", "candidates": str(cand)},
                {str(cand): sha256_file(cand)}, notes)


class Luna16:
    """The LUNA16 reader (see :mod:`rdm.prep.reader`): loads patches series by series, keeping one
    volume open; hashes each volume it reads."""

    def __init__(self, root: Path, classes: Sequence[str], class_map: Mapping[str, str], shape,
                 candidates: Path | None = None):
        self.root, self.classes, self.class_map, self.candidates = Path(root), list(classes), dict(class_map), candidates
        self.shape = shape
        self.decode = Decode(shape)
        self.hashes: dict[str, str] = {}
        self._uid: Path | None = None
        self._vol = None
        self._err: BadInput | None = None

    def scan(self) -> Scan:
        return scan(self.root, self.classes, self.class_map, self.candidates)

    def load(self, entry: Entry) -> tuple[np.ndarray, str]:
        mhd, hdr, world, line = entry.ref
        if self._uid != mhd:
            self._vol, self._err, self._uid = None, None, mhd
            try:
                self._vol = read_volume(mhd, hdr)
            except BadInput as b:
                self._err = b
            else:
                self.hashes[str(mhd)] = sha256_file(mhd)
                raw = mhd if hdr["data_file"].upper() == "LOCAL" else mhd.parent / hdr["data_file"]
                self.hashes[str(raw)] = sha256_file(raw)
        if self._err is not None:
            raise BadInput(self._err.file, f"{self._err.problem} (candidate {entry.id})")
        _, h, w = self.shape
        ijk = world_to_voxel(world, hdr)
        p = patch(self._vol, ijk, h, w)
        if p is None:
            raise BadInput(display_name(mhd), f"candidate {entry.id} (candidates line {line}, world {world} mm, "
                                     f"voxel {np.round(ijk, 1).tolist()}) lies outside the volume")
        self.decode.counts["CT patch, HU window"] += 1
        lo, hi = self.decode.window or (HU_MIN, HU_MAX)      # the preset's window; the lung preset's by default
        return self.decode.floats(p, str(entry.id), lo, hi), ""

    def close(self) -> None:
        self._vol = None
