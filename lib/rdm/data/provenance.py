"""What made a file: content hashes (each file read once per process while unchanged) and the
provenance record every set and checkpoint carries (command, version, arguments, seed, the
sha256 of every input)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rdm import __version__


def file_identity(path: os.PathLike | str) -> tuple:
    """A file's identity for the per-run caches: same path, inode, size and mtime = same bytes."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


_SHA_CACHE: dict[tuple, str] = {}
#: every per-process cache keyed by :func:`file_identity` (emptied by :func:`forget_files`)
FILE_CACHES: list = [_SHA_CACHE]


def forget_files() -> None:
    """Empty the per-process file caches (hashes, validated sets): what a process that runs one step
    after another (the grid's worker pool) does between steps, so that a file rewritten with the same
    size, a reused inode and an mtime within the clock's granularity never hits a stale entry."""
    for cache in FILE_CACHES:
        cache.clear()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: os.PathLike | str, bufsize: int = 1 << 20) -> str:
    """sha256 of a file's bytes; each file is read once per process while it is unchanged."""
    key = file_identity(path)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(bufsize):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def make_provenance(
    *,
    command: str | None = None,
    arguments: Mapping[str, Any] | None = None,
    seed: int | None = None,
    inputs: Sequence[os.PathLike | str] = (),
    input_hashes: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict:
    """What made a file: command line, version, arguments, seed, sha256 of every input."""
    hashes = dict(input_hashes or {})
    for p in inputs:
        p = Path(p)
        if p.is_file():
            hashes[str(p)] = sha256_file(p)
    prov = {
        "command": command if command is not None else " ".join(sys.argv),
        "rdm_version": __version__,
        "arguments": {k: jsonable(v) for k, v in (arguments or {}).items()},
        "seed": seed,
        "inputs": hashes,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    prov.update({k: jsonable(v) for k, v in extra.items()})
    return prov


def jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "value"):  # enums
        return jsonable(v.value)
    if isinstance(v, np.generic):
        return v.item()
    return str(v)
