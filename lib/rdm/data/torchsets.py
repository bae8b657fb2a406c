"""rdm sets to and from other pipelines: a torch ``Dataset`` over a set, a writer from arrays, columns.

* :class:`H5Dataset` reads an rdm set as a ``torch.utils.data.Dataset`` (``(x, y)`` per row, or a
  dict with every column), block by block, with an optional transform; each DataLoader worker
  opens the file itself on its first read, so ``num_workers > 0`` is safe.
* :func:`write_set` makes a set from arrays (numpy or torch) in the format every ``rdm-*``
  command reads (``rdm.data.sets``), written atomically.
* :func:`columns` gives a set's per-row columns (labels, groups, ids, adversarial extras) as
  numpy arrays with strings decoded: ``pandas.DataFrame(columns("test.h5"))``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rdm.data.sets import SetReader, SetWriter, make_provenance, validate_set
from rdm.errors import RdmError

__all__ = ["H5Dataset", "write_set", "columns"]

#: rows read at once by :class:`H5Dataset` (a multiple of the sets' 128-row chunks)
BLOCK_ROWS = 256


class H5Dataset:
    """A torch ``Dataset`` over an rdm set: ``dataset[i]`` is ``(x, y)`` (x a float32 tensor C×H×W
    in [0, 1], y an int), or with ``as_dict=True`` a dict of every column of row ``i``
    (``x``, ``y``, ``index`` and ``group``/``id``/``source_index``/extras where the set has them).

    ``transform`` is applied to ``x`` (a tensor) before it is returned (torchvision and MONAI
    array transforms work); ``target_transform`` to ``y``. Rows are read in blocks of
    :data:`BLOCK_ROWS` and the last block is kept, so sequential access (a DataLoader without
    shuffling) reads each chunk once; a DataLoader's batch fetch (``__getitems__``) reads its
    rows in one sorted pass. The HDF5 file is opened on the first read in each process (a
    DataLoader worker gets its own handle) and never at construction."""

    def __init__(self, path: os.PathLike | str, *, transform: Callable | None = None,
                 target_transform: Callable | None = None, as_dict: bool = False):
        self.path = Path(path)
        self.info = validate_set(self.path, check_values=False)
        self.classes = list(self.info.classes)
        self.transform, self.target_transform, self.as_dict = transform, target_transform, as_dict
        self._reader: SetReader | None = None
        self._pid: int | None = None
        self._block: tuple[int, dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return self.info.n

    def __getstate__(self) -> dict[str, Any]:     # a pickled copy (a spawned worker) opens its own file
        return {**self.__dict__, "_reader": None, "_pid": None, "_block": None}

    def _open(self) -> SetReader:
        if self._reader is None or self._pid != os.getpid():
            self._reader = SetReader(self.path)     # a forked worker must not share the parent's handle
            self._pid = os.getpid()
            self._block = None
        return self._reader

    def _names(self) -> list[str]:
        return ["x", "y", *self.info.columns] if self.as_dict else ["x", "y"]

    def _row(self, data: Mapping[str, np.ndarray], j: int, index: int):
        import torch

        x = torch.from_numpy(np.array(data["x"][j], dtype=np.float32))
        y = int(data["y"][j])
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        if not self.as_dict:
            return x, y
        out = {k: (v[j].item() if isinstance(v[j], np.generic) else v[j]) for k, v in data.items()
               if k not in ("x", "y")}
        return {"x": x, "y": y, "index": index, **out}

    def _check(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of {self.path.name}: the set has {len(self)} rows")
        return i

    def __getitem__(self, i: int):
        i = self._check(i)
        reader = self._open()
        start = i - i % BLOCK_ROWS
        if self._block is None or self._block[0] != start:
            self._block = (start, reader.read(start, min(start + BLOCK_ROWS, len(self)), self._names()))
        return self._row(self._block[1], i - start, i)

    def __getitems__(self, rows: Sequence[int]) -> list:
        rows = [self._check(i) for i in rows]
        data = self._open().read_rows(np.asarray(rows, dtype=np.int64), self._names())
        return [self._row(data, j, i) for j, i in enumerate(rows)]

    def close(self) -> None:
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader, self._block = None, None

    def __repr__(self) -> str:
        return f"H5Dataset({str(self.path)!r}, n={len(self)}, classes={self.classes})"


def _numpy(a, what: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as e:
        raise RdmError(f"write_set: {what} is not an array ({e})") from None


def write_set(path: os.PathLike | str, x, y, *, classes: Sequence[str], groups: Sequence | None = None,
              ids: Sequence | None = None, modality: str = "unknown", preset: str = "custom",
              provenance: Mapping[str, Any] | None = None, batch_size: int = 1024) -> Path:
    """Write the images ``x`` (N×C×H×W, or N×H×W for one channel; float values in [0, 1]) with
    labels ``y`` (N integers indexing ``classes``) as an rdm set at ``path``, atomically (the file
    appears complete or not at all). ``groups`` (patient or duplicate group per row: rows that must
    stay in one split) and ``ids`` (a name per row) are optional columns; ``modality`` and
    ``preset`` are recorded as attributes, ``provenance`` (default: this call) as JSON.

    Bad input (values outside [0, 1], NaN, labels outside the classes, lengths that differ)
    raises :class:`rdm.errors.RdmError` before anything is written. Returns ``path``."""
    x, y = _numpy(x, "x"), _numpy(y, "y")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise RdmError(f"write_set: x must be N×C×H×W (or N×H×W), got shape {tuple(x.shape)}")
    if x.dtype.kind not in "fiub":
        raise RdmError(f"write_set: x has dtype {x.dtype}, expected numbers")
    y = y.reshape(-1)
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise RdmError(f"write_set: y must hold integer labels, got dtype {y.dtype}")
    classes = [str(c) for c in classes]
    if len(classes) < 2:
        raise RdmError(f"write_set: classes must name at least 2 classes, got {classes}")
    if len(y) != len(x):
        raise RdmError(f"write_set: x has {len(x)} rows, y {len(y)}")
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise RdmError(f"write_set: labels must lie in 0…{len(classes) - 1} (one per class), "
                       f"got {int(y.min())}…{int(y.max())}")
    if x.size and not np.isfinite(x).all():
        raise RdmError(f"write_set: x must hold finite values in [0, 1]; it has {int((~np.isfinite(x)).sum())} "
                       "NaN or infinite values")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise RdmError(f"write_set: x must hold finite values in [0, 1] (got {x.min():g}…{x.max():g}); "
                       "scale the images first, e.g. x / 255")
    cols = {}
    for name, v in (("group", groups), ("id", ids)):
        if v is not None:
            v = _numpy(v, name).reshape(-1)
            if len(v) != len(x):
                raise RdmError(f"write_set: {name}s has {len(v)} rows, x {len(x)}")
            cols[name] = v
    prov = provenance if provenance is not None else make_provenance(command="rdm.data.write_set")
    with SetWriter(path, shape=x.shape[1:], classes=classes, modality=modality, preset=preset,
                   provenance=prov, columns=list(cols)) as w:
        for s in range(0, len(x), int(batch_size)):
            e = s + int(batch_size)
            w.append(x[s:e].astype(np.float32, copy=False), y[s:e].astype(np.int64),
                     **{k: v[s:e] for k, v in cols.items()})
    return Path(path)


def columns(path: os.PathLike | str) -> dict[str, np.ndarray]:
    """Every per-row column of a set except the images (``y``, ``group``, ``id``,
    ``source_index`` and an adversarial set's extras such as ``linf`` or ``success``), strings
    decoded, plus ``label`` (the class name of ``y``): ``pandas.DataFrame(columns(path))``."""
    with SetReader(path) as r:
        out = {"y": r.column("y")}
        out["label"] = np.asarray(r.info.classes, dtype=object)[out["y"]] if r.n else np.array([], dtype=object)
        for name in r.info.columns:
            out[name] = r.column(name)
    return out
