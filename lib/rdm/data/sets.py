"""The set format: one set (clean or adversarial) per HDF5 file.

Datasets
    x             float32  N×C×H×W, values in [0, 1] (float: ε = 0.002 is half a grey level)
    y             int64    N, labels indexing ``classes``
    group         str      N, optional: patient or duplicate group (rows that share a split)
    id            str      N, optional: original file name
    source_index  int64    N, optional: row of the clean set an adversarial image came from
    <extra>       any 1-D  N, optional per-row values (e.g. ``linf``, ``l2``, ``success``)

Attributes
    classes       list of class names, in label order
    modality      e.g. "MRI"
    preset        preset name, e.g. "brain"
    provenance    JSON: command, version, arguments, seed, sha256 of every input file
    preset_json   optional, JSON: the full preset (``rdm-prep`` writes it; derived sets inherit it)
    intensity     optional, JSON: how raw values were mapped to [0, 1] (window, unit, counts)
    split_id      optional: one id shared by the three sets of one ``rdm-prep`` run (and sets
                  derived from them); commands given several sets refuse two different ids
    prep_inputs   optional: a hash of the raw inputs of that run; a checkpoint trained on one split
                  of these images refuses a set of another split of the same images

Files are chunked by batches of rows and gzip-compressed (readable by HDFView and
pandas), written through :func:`rdm.data.atomic.atomic_output`, and read in batches.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import h5py
import numpy as np

from rdm.data.atomic import atomic_output
from rdm.data.guard import require_regular_file
from rdm.errors import RdmError
# hashes and provenance live in rdm.data.provenance; re-exported for the callers of rdm.data.sets
from rdm.data.provenance import FILE_CACHES, file_identity, jsonable, make_provenance, sha256_bytes, sha256_file  # noqa: F401

REQUIRED_ATTRS = ("classes", "modality", "preset", "provenance")
SPLIT_ID_ATTR = "split_id"
PREP_INPUTS_ATTR = "prep_inputs"    # a hash of the raw inputs one rdm-prep run read (same images, same hash)
INHERITED_ATTRS = ("preset_json", "intensity", SPLIT_ID_ATTR, PREP_INPUTS_ATTR)   # what a derived set copies
OPTIONAL_COLUMNS = ("group", "id", "source_index")
DEFAULT_CHUNK_ROWS = 128
_STR = h5py.string_dtype(encoding="utf-8")


# Sane bounds, checked before anything is allocated: a tampered file cannot ask for terabytes.
MAX_ROWS = 10_000_000
MAX_CHANNELS = 16
MAX_SIDE = 8192
MAX_ROW_ELEMENTS = 1 << 26          # C·H·W of one image (256 MB as float32)
VALIDATE_BYTES = 64 << 20           # the value check reads about this much per batch


# --------------------------------------------------------------------------- provenance
_VALUES_OK: set[tuple] = set()
FILE_CACHES.append(_VALUES_OK)


def recorded_sources(paths: Sequence[os.PathLike | str]) -> list[Path]:
    """The clean source sets that adversarial sets name in their provenance (to guard -o)."""
    out = []
    for p in paths:
        try:
            with SetReader(p) as r:
                src = (r.info.provenance.get("source_set") or {}).get("path")
        except (RdmError, OSError):
            continue
        if isinstance(src, str) and src:
            out.append(Path(src))
    return out


def channel_mean(path: os.PathLike | str, batch_size: int = 1024) -> list[float]:
    """Per-channel mean of a set's ``x``, streamed in batches (float64 sums)."""
    with SetReader(path) as r:
        tot = np.zeros(r.info.shape[0], dtype=np.float64)
        for b in r.batches(batch_size, names=("x",)):
            tot += b["x"].sum(axis=(0, 2, 3), dtype=np.float64)
        px = r.n * r.info.shape[1] * r.info.shape[2]
    return [float(v) for v in tot / max(px, 1)]


def mse_to_constant(path: os.PathLike | str, mean: list[float], batch_size: int = 1024) -> float:
    """MSE of answering the per-channel constant ``mean`` for every pixel of a set's ``x``, streamed."""
    mu = np.asarray(mean, dtype=np.float64).reshape(1, -1, 1, 1)
    sq, px = 0.0, 0
    with SetReader(path) as r:
        for b in r.batches(batch_size, names=("x",)):
            sq += float(((b["x"] - mu) ** 2).sum())
            px += b["x"].size
    return sq / max(px, 1)


# --------------------------------------------------------------------------- writing
class SetWriter:
    """Append batches of rows to a new set file; the file appears only on ``close()``.

    >>> with SetWriter("train.h5", shape=(3, 64, 64), classes=["a", "b"], modality="MRI",
    ...                preset="brain", provenance=make_provenance(seed=0)) as w:
    ...     w.append(x, y, group=g)
    """

    def __init__(
        self,
        path: os.PathLike | str,
        *,
        shape: Sequence[int],
        classes: Sequence[str],
        modality: str,
        preset: str,
        provenance: Mapping[str, Any],
        columns: Sequence[str] = (),
        extras: Mapping[str, Any] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        attrs: Mapping[str, Any] | None = None,
        compression: int = 1,
        atomic: bool = True,
    ):
        """``atomic=False``: write ``path`` itself (the caller already writes to a temporary path)."""
        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) != 3:
            raise RdmError(f"{self.path}: image shape must be C×H×W, got {self.shape}")
        self.classes = [str(c) for c in classes]
        unknown = set(columns) - set(OPTIONAL_COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}")
        self.columns = tuple(columns)
        self.extras = dict(extras or {})
        self.n = 0
        self._ctx = atomic_output(self.path) if atomic else nullcontext(self.path)
        self._tmp = self._ctx.__enter__()
        self._closed = False
        self._f = None
        self._ds: dict[str, h5py.Dataset] = {}
        try:
            self._f = h5py.File(self._tmp, "w")
            c = max(1, int(chunk_rows))
            gz = dict(compression="gzip", compression_opts=compression, shuffle=True)
            self._f.create_dataset("x", shape=(0, *self.shape), maxshape=(None, *self.shape),
                                   dtype=np.float32, chunks=(c, *self.shape), **gz)
            self._f.create_dataset("y", shape=(0,), maxshape=(None,), dtype=np.int64,
                                   chunks=(max(c, 1024),), **gz)
            for col in self.columns:
                dt = np.int64 if col == "source_index" else _STR
                self._f.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dt,
                                       chunks=(max(c, 1024),), **gz)
            for name, dt in self.extras.items():
                self._f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt,
                                       chunks=(max(c, 1024),))
            # one handle per dataset for the writer's life: a handle dropped after a failed write
            # would flush (and fail) again on its own, before _discard can silence the file
            self._ds = {name: self._f[name] for name in ("x", "y", *self.columns, *self.extras)}
            self._f.attrs["classes"] = np.array(self.classes, dtype=_STR)
            self._f.attrs["modality"] = str(modality)
            self._f.attrs["preset"] = str(preset)
            self._f.attrs["provenance"] = json.dumps(jsonable(dict(provenance)))
            self._f.attrs["format"] = "rdm-set/1"
            for k, v in (attrs or {}).items():
                self._f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(jsonable(v))
        except BaseException as e:
            self._abort(e)
            raise

    def append(self, x, y, **cols) -> None:
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64).reshape(-1)
        k = x.shape[0]
        if x.shape[1:] != self.shape:
            raise RdmError(f"{self.path}: batch has shape {x.shape[1:]}, set expects {self.shape}")
        if y.shape[0] != k:
            raise ValueError("x and y differ in length")
        missing = [c for c in (*self.columns, *self.extras) if c not in cols]
        if missing:
            raise ValueError(f"append() is missing columns {missing}")
        n0, n1 = self.n, self.n + k
        ds = self._ds
        ds["x"].resize(n1, axis=0)
        ds["x"][n0:n1] = x
        ds["y"].resize(n1, axis=0)
        ds["y"][n0:n1] = y
        for name in (*self.columns, *self.extras):
            v = np.asarray(cols[name])
            if v.shape[0] != k:
                raise ValueError(f"column {name} has {v.shape[0]} rows, batch has {k}")
            if name in ("group", "id"):
                v = np.array([str(s) for s in v], dtype=object)
            ds[name].resize(n1, axis=0)
            ds[name][n0:n1] = v
        self.n = n1

    def set_attr(self, key: str, value: Any) -> None:
        self._f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(jsonable(value))

    def close(self) -> Path:
        if self._closed:
            return self.path
        self._closed = True
        try:
            self._f.flush()     # a full disk fails here, while HDF5 can still close the file cleanly
        except BaseException as e:
            self._discard()
            if not self._ctx.__exit__(type(e), e, e.__traceback__):
                raise
            return self.path
        self._f.close()
        self._ds = {}
        self._ctx.__exit__(None, None, None)
        return self.path

    def _discard(self) -> None:
        """Close the HDF5 file without writing another byte: a file whose write failed (a full
        disk) cannot be flushed, and HDF5 would retry at exit and crash the interpreter. Its
        descriptor is pointed at /dev/null first; the temporary file is removed by the caller."""
        if self._f is None:
            return
        try:
            fd = self._f.id.get_vfd_handle()
            nul = os.open(os.devnull, os.O_WRONLY)
            os.dup2(nul, fd)
            os.close(nul)
        except Exception:
            pass
        try:
            self._f.close()
        except Exception:
            pass
        self._ds = {}

    def _abort(self, exc: BaseException) -> None:
        if self._closed:
            return
        self._closed = True
        self._discard()
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)   # removes the temporary file

    def __enter__(self) -> "SetWriter":
        return self

    def __exit__(self, et, ev, tb) -> None:
        if et is None:
            self.close()
        else:
            self._abort(ev)


# --------------------------------------------------------------------------- reading
@dataclass
class SetInfo:
    path: Path
    n: int
    shape: tuple[int, int, int]
    classes: list[str]
    modality: str
    preset: str
    provenance: dict
    columns: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class SetReader:
    """Read a set in batches without loading it whole.

    >>> with SetReader("test.h5") as s:
    ...     for b in s.batches(256):
    ...         b["x"], b["y"], b.get("source_index")
    """

    def __init__(self, path: os.PathLike | str):
        self.path = require_regular_file(path, "set")     # a FIFO or a device: refused, never waited on
        try:
            self._f = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise RdmError(f"{self.path}: no such file") from None
        except (OSError, ValueError) as e:
            raise RdmError(f"{self.path}: not a readable HDF5 set ({_short(e)})") from None
        try:
            self.info = _info(self.path, self._f)
        except BaseException as e:
            self._f.close()
            if isinstance(e, (OSError, RuntimeError, KeyError, ValueError, TypeError)):
                raise RdmError(f"{self.path}: not a readable rdm set ({_short(e)})") from None
            raise

    # convenience
    @property
    def n(self) -> int:
        return self.info.n

    def __len__(self) -> int:
        return self.info.n

    def has(self, name: str) -> bool:
        return name in self._f

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A whole 1-D column (small: labels, groups, ids), decoded to str where textual."""
        v = self._f[name][start:stop]
        if v.dtype == object or v.dtype.kind == "S":
            v = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in v], dtype=object)
        return v

    def read(self, start: int, stop: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = names or ["x", "y", *[c for c in self.info.columns]]
        out = {}
        for name in names:
            if name not in self._f:
                continue
            if name in ("group", "id"):
                out[name] = self.column(name, start, stop)
            else:
                out[name] = self._f[name][start:stop]
        return out

    def read_rows(self, rows: np.ndarray, names: Sequence[str] = ("x", "y")) -> dict[str, np.ndarray]:
        """Rows in any order (read sorted, returned in the order asked)."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        uniq, inv = np.unique(srt, return_inverse=True)
        out = {}
        for name in names:
            v = self._f[name][uniq] if len(uniq) else self._f[name][:0]
            if name in ("group", "id"):
                v = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in v], dtype=object)
            v = v[inv]
            res = np.empty_like(v)
            res[order] = v
            out[name] = res
        return out

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None,
                names: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
        stop = self.n if stop is None else min(stop, self.n)
        for b0 in range(start, stop, batch_size):
            batch = self.read(b0, min(b0 + batch_size, stop), names)
            batch["index"] = np.arange(b0, min(b0 + batch_size, stop), dtype=np.int64)
            yield batch

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "SetReader":
        return self

    def __exit__(self, *a) -> None:
        self.close()


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__


def _info(path: Path, f: h5py.File) -> SetInfo:
    """The set's schema, checked before anything is read: types, required names, sane bounds."""
    for name in ("x", "y"):
        if name not in f:
            raise RdmError(f"{path}: not an rdm set (no '{name}' dataset)")
        if not isinstance(f.get(name, getlink=True), h5py.HardLink) or not isinstance(f[name], h5py.Dataset):
            raise RdmError(f"{path}: '{name}' is not a dataset")
    missing = [a for a in REQUIRED_ATTRS if a not in f.attrs]
    if missing:
        raise RdmError(f"{path}: missing attribute '{missing[0]}'")
    x, y = f["x"], f["y"]
    if x.ndim != 4:
        raise RdmError(f"{path}: x must be N×C×H×W, has {x.ndim} dimensions {x.shape}")
    n, c, h, w = (int(v) for v in x.shape)
    if x.dtype.kind != "f":
        raise RdmError(f"{path}: x has dtype {x.dtype}, expected float32 in [0, 1]")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise RdmError(f"{path}: y must be a 1-D int64 array, has dtype {y.dtype} shape {y.shape}")
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and c * h * w <= MAX_ROW_ELEMENTS):
        raise RdmError(f"{path}: images of {c}×{h}×{w} are out of bounds (at most {MAX_CHANNELS} channels, "
                       f"{MAX_SIDE}×{MAX_SIDE} pixels)")
    if n > MAX_ROWS:
        raise RdmError(f"{path}: {n} rows is out of bounds (at most {MAX_ROWS})")
    if y.shape[0] != n:
        raise RdmError(f"{path}: x has {n} rows but y has {y.shape[0]}")
    try:
        classes = [_attr_str(v) for v in np.atleast_1d(f.attrs["classes"])]
        modality, preset, prov = (_attr_str(f.attrs[k]) for k in ("modality", "preset", "provenance"))
    except (TypeError, ValueError, UnicodeDecodeError):
        raise RdmError(f"{path}: attribute 'classes', 'modality', 'preset' or 'provenance' is not text") from None
    try:
        prov = json.loads(prov)
    except ValueError:
        raise RdmError(f"{path}: attribute 'provenance' is not JSON") from None
    if not isinstance(prov, dict):
        raise RdmError(f"{path}: attribute 'provenance' is not a JSON object")
    columns = [k for k in f.keys() if k not in ("x", "y")]
    for col in columns:
        if not isinstance(f.get(col, getlink=True), h5py.HardLink):
            raise RdmError(f"{path}: '{col}' is a link to another file or name, not a dataset of this file")
        if not isinstance(f[col], h5py.Dataset):
            raise RdmError(f"{path}: '{col}' is not a dataset")
    for name in ("x", "y", *columns):
        _check_stored(path, name, f[name])
    attrs = {}
    for k, v in f.attrs.items():
        if k not in REQUIRED_ATTRS:
            try:
                attrs[k] = _attr_str(v) if isinstance(v, (bytes, str)) else v
            except UnicodeDecodeError:
                raise RdmError(f"{path}: attribute '{k}' is not UTF-8") from None
    return SetInfo(path=path, n=n, shape=(c, h, w), classes=classes, modality=modality, preset=preset,
                   provenance=prov, columns=columns, attrs=attrs)


def _check_stored(path: Path, name: str, d: h5py.Dataset) -> None:
    """Refuse data that is not stored in this file, or never was: a virtual dataset (its rows live
    in other files, which may be gone), external raw storage, or rows never written (an unchunked
    dataset with no storage, a chunked one with missing chunks). HDF5 reads all of these as the
    fill value, which would be a blank image or label 0 instead of an error."""
    if d.is_virtual:
        raise RdmError(f"{path}: '{name}' is a virtual dataset (its rows live in other files); refused")
    if d.external:
        raise RdmError(f"{path}: '{name}' keeps its data in external files; refused")
    if not d.size:
        return
    if d.chunks is None:
        if d.id.get_storage_size() == 0:
            raise RdmError(f"{path}: '{name}' was never written (no data stored; it would read as blank)")
    elif d.id.get_num_chunks() * int(np.prod(d.chunks)) < d.size:
        raise RdmError(f"{path}: '{name}' has rows that were never written (a truncated or tampered file)")


def _attr_str(v: Any) -> str:
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode()
    if isinstance(v, (str, np.str_)):
        return str(v)
    raise TypeError(f"expected a string, got {type(v).__name__}")


# --------------------------------------------------------------------------- validation
def validate_set(
    path: os.PathLike | str,
    *,
    expect_shape: Sequence[int] | None = None,
    expect_classes: Sequence[str] | None = None,
    require: Sequence[str] = (),
    check_values: bool = True,
    batch_size: int = 1024,
    what: str | None = None,
) -> SetInfo:
    """Check a set file and return its :class:`SetInfo`, or raise one-line :class:`RdmError`.

    Checks: readable HDF5; the schema (:func:`_info`); ``x`` float32; ``y`` int64 of the same
    length; every column 1-D of N rows; every value of ``x`` finite and in [0, 1] (streamed,
    once per process while the file is unchanged); labels in range; ``expect_*`` match;
    ``require``d columns present. ``what`` names the expectation's source in messages.
    """
    path = Path(path)
    if not path.exists():
        raise RdmError(f"{path}: no such file")
    try:
        return _validate(path, expect_shape, expect_classes, require, check_values, batch_size, what)
    except (OSError, RuntimeError, KeyError) as e:     # HDF5 on a damaged file: still one line
        raise RdmError(f"{path}: cannot read the set ({_short(e)})") from None


def _validate(path, expect_shape, expect_classes, require, check_values, batch_size, what) -> SetInfo:
    with SetReader(path) as r:
        f, info = r._f, r.info
        if info.n == 0:
            raise RdmError(f"{path}: the set is empty")
        x, y = f["x"], f["y"]
        if x.dtype != np.float32:
            raise RdmError(f"{path}: x has dtype {x.dtype}, expected float32 in [0, 1]")
        if y.dtype != np.int64:
            raise RdmError(f"{path}: y must be a 1-D int64 array, has dtype {y.dtype} shape {y.shape}")
        if not info.classes or any(not c for c in info.classes):
            raise RdmError(f"{path}: attribute 'classes' is empty")
        for col in info.columns:
            if f[col].ndim != 1 or f[col].shape[0] != info.n:
                raise RdmError(f"{path}: column '{col}' has {f[col].shape[0] if f[col].ndim else 0} rows"
                               f"{'' if f[col].ndim == 1 else f' and {f[col].ndim} dimensions'}, x has {info.n}")
        for col in require:
            if col not in f:
                raise RdmError(f"{path}: has no '{col}' column")
        src = f" but {what} expects" if what else ", expected"
        if expect_shape is not None and tuple(expect_shape) != info.shape:
            es = tuple(expect_shape)
            if es[0] != info.shape[0]:
                raise RdmError(f"{path}: has {_ch(info.shape[0])}{src} {es[0]}")
            raise RdmError(f"{path}: images are {_fmt(info.shape)}{src} {_fmt(es)}")
        if expect_classes is not None and list(expect_classes) != info.classes:
            raise RdmError(f"{path}: classes {info.classes}{src} {list(expect_classes)}")
        yv = y[:]
        if yv.min() < 0 or yv.max() >= info.num_classes:
            bad = int(yv.min() if yv.min() < 0 else yv.max())
            raise RdmError(f"{path}: label {bad} out of range for {info.num_classes} classes")
        key = file_identity(path)
        if check_values and key not in _VALUES_OK:
            rows = max(1, min(int(batch_size), VALIDATE_BYTES // (4 * int(np.prod(info.shape)))))
            for b0 in range(0, info.n, rows):
                xb = x[b0:b0 + rows]
                if not np.isfinite(xb).all():
                    row = b0 + int(np.argwhere(~np.isfinite(xb))[0][0])
                    raise RdmError(f"{path}: x has NaN or inf (row {row})")
                lo, hi = float(xb.min()), float(xb.max())
                if lo < 0.0 or hi > 1.0:
                    row = b0 + int(np.argwhere((xb < 0) | (xb > 1))[0][0])
                    raise RdmError(f"{path}: x has values outside [0, 1] (row {row}: min {lo:.4g}, max {hi:.4g})")
            _VALUES_OK.add(key)
        return info


def _ch(c: int) -> str:
    return f"{c} channel" + ("" if c == 1 else "s")


def _fmt(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def copy_attrs_for_derived(info: SetInfo) -> dict:
    """Attributes a derived set (adversarial, shard) inherits from its source."""
    return dict(classes=info.classes, modality=info.modality, preset=info.preset)


def inherited_attrs(info: SetInfo) -> dict:
    """The optional attributes a derived set carries over (full preset, intensity mapping, split id)."""
    return {k: info.attrs[k] for k in INHERITED_ATTRS if k in info.attrs}


def set_preset(info: SetInfo):
    """The full :class:`~rdm.data.presets.Preset` a set carries (``preset_json``), or None."""
    from rdm.data.presets import PRESET_ATTR, preset_from_json

    text = info.attrs.get(PRESET_ATTR)
    return None if text is None else preset_from_json(str(text), str(info.path))


def prep_of(info: SetInfo) -> dict | None:
    """What a checkpoint records of the rdm-prep run its training set came from (None: unknown)."""
    sid, inputs = info.attrs.get(SPLIT_ID_ATTR), info.attrs.get(PREP_INPUTS_ATTR)
    return {SPLIT_ID_ATTR: str(sid), PREP_INPUTS_ATTR: str(inputs)} if sid and inputs else None


def prep_conflict(trained: Any, info: SetInfo) -> str | None:
    """Why a set may hold a checkpoint's training rows: the same raw images split by another
    rdm-prep run (``trained`` is the checkpoint's ``prep`` record); None when it cannot."""
    mine = prep_of(info)
    if not isinstance(trained, dict) or mine is None:
        return None
    if trained.get(PREP_INPUTS_ATTR) == mine[PREP_INPUTS_ATTR] and trained.get(SPLIT_ID_ATTR) != mine[SPLIT_ID_ATTR]:
        return (f"split id {mine[SPLIT_ID_ATTR]}, but the model was trained on split {trained.get(SPLIT_ID_ATTR)} "
                "of the same images (another rdm-prep run): its rows may be training rows")
    return None


def check_same_prep(infos: Sequence[SetInfo]) -> None:
    """Refuse sets of two different ``rdm-prep`` runs (different ``split_id``): a train set of
    one split beside a val or test set of another would put the same images on both sides."""
    seen: SetInfo | None = None
    for info in infos:
        sid = info.attrs.get(SPLIT_ID_ATTR)
        if sid is None:
            continue
        if seen is None:
            seen = info
        elif sid != seen.attrs[SPLIT_ID_ATTR]:
            raise RdmError(f"{info.path} and {seen.path} come from two different rdm-prep runs (split id {sid} vs "
                           f"{seen.attrs[SPLIT_ID_ATTR]}): their images may overlap; use the sets of one run")
