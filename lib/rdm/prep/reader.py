"""The one protocol every raw-data reader of ``rdm-prep`` follows.

A reader is built with its sources and the preset's classes and shape, then::

    scan = reader.scan()            # Scan: entries, bad inputs, provenance, index-file hashes, notes
    x, sha = reader.load(entry)     # C×H×W float32 in [0, 1], sha256 of the bytes read ("" if none)
    reader.hashes                   # sha256 of files read while loading (e.g. CT volumes)
    reader.decode                   # the Decode used: resizes met, intensity mapping (for the set)
    reader.close()

Image files are decoded by suffix (:func:`file_decoder`): ``.dcm`` by pydicom, ``.nii`` and
``.nii.gz`` by nibabel (:mod:`rdm.prep.medical`, the optional ``medical`` extra), any other file by
Pillow. A decoder takes the file's bytes, its display name and the run's
:class:`~rdm.prep.images.Decode` (the preset's shape and intensity window) and returns the
C×H×W array; adding a format is one entry in :data:`FILE_DECODERS`.

File names are kept by their bytes: an id or a message shows a name that is not UTF-8 with
``\\xNN`` escapes (:func:`display_name`), so no odd name can stop a run or a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from rdm.prep.images import BadInput, Decode, display_name  # noqa: F401  (display_name: re-exported for the readers)

FileDecoder = Callable[[bytes, str, Decode], np.ndarray]


def _pillow(data: bytes, name: str, decode: Decode) -> np.ndarray:
    return decode.image(data, name)


def _dicom(data: bytes, name: str, decode: Decode) -> np.ndarray:
    from rdm.prep.medical import dicom_slice
    return dicom_slice(data, name, decode)


def _nifti(data: bytes, name: str, decode: Decode) -> np.ndarray:
    from rdm.prep.medical import nifti_slice
    return nifti_slice(data, name, decode)


# suffix (lower case, longest first wins) -> decoder; anything else goes to Pillow
FILE_DECODERS: dict[str, FileDecoder] = {".dcm": _dicom, ".nii": _nifti, ".nii.gz": _nifti}
MEDICAL_SUFFIXES = tuple(FILE_DECODERS)


def file_decoder(name: str) -> FileDecoder:
    """The decoder for a file name, by its suffix."""
    low = name.lower()
    for suffix in sorted(FILE_DECODERS, key=len, reverse=True):
        if low.endswith(suffix):
            return FILE_DECODERS[suffix]
    return _pillow


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
    decode: Decode      # the preset's shape and window; counts resizes and the mapping per kind of image

    def scan(self) -> Scan: ...

    def load(self, entry: Entry) -> tuple[np.ndarray, str]: ...

    def close(self) -> None: ...
