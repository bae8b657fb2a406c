"""The one protocol every raw-data reader of ``rdm-prep`` follows.

A reader is built with its sources and the preset's classes and shape, then::

    scan = reader.scan()            # Scan: entries, bad inputs, provenance, index-file hashes, notes
    x, sha = reader.load(entry)     # C×H×W float32 in [0, 1], sha256 of the bytes read ("" if none)
    reader.hashes                   # sha256 of files read while loading (e.g. CT volumes)
    reader.close()

File names are kept by their bytes: an id or a message shows a name that is not UTF-8 with
``\\xNN`` escapes (:func:`display_name`), so no odd name can stop a run or a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rdm.prep.images import BadInput, display_name  # noqa: F401  (display_name: re-exported for the readers)


@dataclass
class Entry:
    id: str          # stored in the set's `id` column
    label: int
    group: str
    ref: object      # reader-specific: a path, (path, header, world, line), ...


@dataclass
class Scan:
    entries: list[Entry]
    bad: list[BadInput] = field(default_factory=list)
    extra: dict = field(default_factory=dict)          # provenance fields: source, layout, group_col, ...
    hashes: dict[str, str] = field(default_factory=dict)  # sha256 of index files (manifest, candidates)
    notes: list[str] = field(default_factory=list)     # what the user should hear (files left out, ...)


class Reader(Protocol):
    hashes: dict[str, str]

    def scan(self) -> Scan: ...

    def load(self, entry: Entry) -> tuple[np.ndarray, str]: ...

    def close(self) -> None: ...
