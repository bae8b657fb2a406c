"""Image-folder trees: one sub-folder per class, an optional ``labels.csv`` manifest.

Layout::

    SOURCE/
      labels.csv            optional: path,label[,metadata...] (path relative to SOURCE)
      <class>/…/*.png|jpg   any depth below the class folder; hidden files are ignored

Without a manifest every non-hidden file under a class folder is an image of that
class (a file Pillow cannot read is a bad input, not silently skipped). With one, the
manifest is authoritative: its rows are the images, its ``label`` the class, and
its group column (``--group-col``, else the preset's ``group_col`` if present) the
group; an empty group cell makes the image its own group. Folder names and labels
go through ``--class-map SRC=DST`` before they are matched to the preset's classes.

If no sub-folder of SOURCE names a class and SOURCE holds exactly one sub-folder,
that folder is taken as the root: the Kaggle leukemia download (``<dir>/Original/<class>``)
works given either ``<dir>`` or ``<dir>/Original``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import RdmError
from .images import BadInput, decode_image, read_input

MANIFEST = "labels.csv"


@dataclass
class Entry:
    id: str          # stored in the set's `id` column
    label: int
    group: str
    ref: object      # reader-specific: a path, (path, key), ...


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))


def find_root(source: Path, classes: Sequence[str], class_map: Mapping[str, str]) -> Path:
    """SOURCE itself, or its only sub-folder when SOURCE has no class folders and no manifest."""
    if (source / MANIFEST).is_file():
        return source
    subs = _subdirs(source)
    names = {class_map.get(p.name, p.name) for p in subs}
    if not names & set(classes) and len(subs) == 1 and _subdirs(subs[0]):
        return subs[0]
    return source


def scan(source: Path, classes: Sequence[str], class_map: Mapping[str, str],
         group_col: str | None, preset_group_col: str = "") -> tuple[Path, list[Entry], list[BadInput], dict]:
    """Entries of an image-folder tree; bad rows (missing files) come back separately."""
    root = find_root(source, classes, class_map)
    manifest = root / MANIFEST
    if manifest.is_file():
        entries, bad, info = _scan_manifest(root, manifest, classes, class_map, group_col, preset_group_col)
    else:
        if group_col:
            raise RdmError(f"{root}: --group-col {group_col} needs a {MANIFEST} manifest, and there is none")
        entries, bad, info = _scan_folders(root, classes, class_map)
    if not entries and not bad:
        raise RdmError(f"{root}: no images found")
    return root, entries, bad, info


def _class_index(name: str, classes: Sequence[str], class_map: Mapping[str, str]) -> int | None:
    mapped = class_map.get(name, name)
    return classes.index(mapped) if mapped in classes else None


def _scan_folders(root: Path, classes, class_map) -> tuple[list[Entry], list[BadInput], dict]:
    subs = _subdirs(root)
    if not subs:
        raise RdmError(f"{root}: no class folders (expected one sub-folder per class: {', '.join(classes)})")
    entries: list[Entry] = []
    seen: dict[int, list[str]] = {}
    for d in subs:
        k = _class_index(d.name, classes, class_map)
        if k is None:
            raise RdmError(f"{d}: unknown class folder '{d.name}' (classes: {', '.join(classes)}; "
                           f"map it with --class-map {d.name}=CLASS)")
        files = sorted(p for p in d.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(d).parts))
        if not files:
            raise RdmError(f"{d}: class folder is empty")
        seen.setdefault(k, []).append(d.name)
        for p in files:
            rel = p.relative_to(root).as_posix()
            entries.append(Entry(id=rel, label=k, group=rel, ref=p))
    missing = [c for i, c in enumerate(classes) if i not in seen]
    if missing:
        raise RdmError(f"{root}: no folder for class {', '.join(repr(c) for c in missing)}")
    return entries, [], {"layout": "folders", "group_col": None}


def _scan_manifest(root: Path, manifest: Path, classes, class_map, group_col, preset_group_col):
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RdmError(f"{manifest}: cannot read the manifest ({e})") from None
    for col in ("path", "label"):
        if col not in header:
            raise RdmError(f"{manifest}: no '{col}' column (columns: {', '.join(header)})")
    if group_col:
        if group_col not in header:
            raise RdmError(f"{manifest}: no '{group_col}' column for --group-col (columns: {', '.join(header)})")
        gcol = group_col
    else:
        gcol = preset_group_col if preset_group_col and preset_group_col in header else None
    entries: list[Entry] = []
    bad: list[BadInput] = []
    ids: set[str] = set()
    for i, r in enumerate(rows, start=2):  # line 1 is the header
        rel = (r.get("path") or "").strip()
        if not rel:
            raise RdmError(f"{manifest}: line {i}: empty path")
        k = _class_index((r.get("label") or "").strip(), classes, class_map)
        if k is None:
            raise RdmError(f"{manifest}: line {i}: unknown class '{r.get('label')}' (classes: "
                           f"{', '.join(classes)}; map it with --class-map {r.get('label')}=CLASS)")
        if rel in ids:
            raise RdmError(f"{manifest}: line {i}: '{rel}' is listed twice")
        ids.add(rel)
        p = root / rel
        if not p.is_file():
            bad.append(BadInput(str(p), f"listed in {MANIFEST} (line {i}) but missing"))
            continue
        g = (r.get(gcol) or "").strip() if gcol else ""
        entries.append(Entry(id=rel, label=k, group=g or rel, ref=p))
    return entries, bad, {"layout": "manifest", "group_col": gcol, "manifest": manifest}


def load(entry: Entry, shape: tuple[int, int, int]) -> tuple[np.ndarray, str]:
    """Decode one image; returns (C×H×W array, sha256 of the file's bytes)."""
    p = Path(entry.ref)
    data = read_input(p)
    return decode_image(data, str(p), shape), hashlib.sha256(data).hexdigest()
