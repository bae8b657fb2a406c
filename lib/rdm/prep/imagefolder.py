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

A manifest row whose path lies in a class folder of another class is an error (the folder and
the manifest disagree); ``label_source="manifest"`` or ``"folder"`` (``--label-source``) says
which one wins. Image files under SOURCE that the manifest does not list are left out and
reported in one note.

If no sub-folder of SOURCE names a class and SOURCE holds exactly one sub-folder,
that folder is taken as the root: the Kaggle leukemia download (``<dir>/Original/<class>``)
works given either ``<dir>`` or ``<dir>/Original``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rdm.errors import RdmError, UsageError
from rdm.data.sets import sha256_bytes, sha256_file
from rdm.prep.images import BadInput, decode_image, read_input
from rdm.prep.reader import Entry, Scan, display_name

MANIFEST = "labels.csv"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm"}
LABEL_SOURCES = ("manifest", "folder")


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


class ImageFolder:
    """The image-folder reader (see :mod:`rdm.prep.reader` for the protocol)."""

    def __init__(self, source: Path, classes: Sequence[str], class_map: Mapping[str, str], shape,
                 group_col: str | None = None, preset_group_col: str = "", label_source: str | None = None):
        if label_source is not None and label_source not in LABEL_SOURCES:
            raise UsageError(f"--label-source {label_source}: expected {' or '.join(LABEL_SOURCES)}")
        self.source, self.classes, self.class_map, self.shape = Path(source), list(classes), dict(class_map), shape
        self.group_col, self.preset_group_col, self.label_source = group_col, preset_group_col, label_source
        self.hashes: dict[str, str] = {}

    def scan(self) -> Scan:
        """Entries of an image-folder tree; bad rows (missing files) come back separately."""
        root = find_root(self.source, self.classes, self.class_map)
        manifest = root / MANIFEST
        if manifest.is_file():
            sc = _scan_manifest(root, manifest, self.classes, self.class_map, self.group_col,
                                self.preset_group_col, self.label_source)
        else:
            if self.group_col:
                raise RdmError(f"{display_name(root)}: --group-col {self.group_col} needs a {MANIFEST} manifest, "
                               "and there is none")
            sc = _scan_folders(root, self.classes, self.class_map)
        if not sc.entries and not sc.bad:
            raise RdmError(f"{display_name(root)}: no images found")
        sc.extra["source"] = display_name(root)
        return sc

    def load(self, entry: Entry) -> tuple[np.ndarray, str]:
        """Decode one image; returns (C×H×W array, sha256 of the file's bytes)."""
        data = read_input(entry.ref)
        return decode_image(data, display_name(entry.ref), self.shape), sha256_bytes(data)

    def close(self) -> None:
        return None


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
            name = display_name(d.name)
            raise RdmError(f"{display_name(d)}: unknown class folder '{name}' (classes: {', '.join(classes)}; "
                           f"map it with --class-map {name}=CLASS)")
        files = sorted(p for p in d.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(d).parts))
        if not files:
            raise RdmError(f"{display_name(d)}: class folder is empty")
        seen.setdefault(k, []).append(d.name)
        for p in files:
            rel = display_name(p.relative_to(root).as_posix())
            entries.append(Entry(id=rel, label=k, group=rel, ref=p))
    missing = [c for i, c in enumerate(classes) if i not in seen]
    if missing:
        raise RdmError(f"{display_name(root)}: no folder for class {', '.join(repr(c) for c in missing)}")
    return Scan(entries, [], {"layout": "folders", "group_col": None})


def _scan_manifest(root: Path, manifest: Path, classes, class_map, group_col, preset_group_col,
                   label_source: str | None = None) -> Scan:
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
        top = rel.split("/")[0] if "/" in rel else None
        kf = _class_index(top, classes, class_map) if top is not None and (root / top).is_dir() else None
        if kf is not None and kf != k:
            if label_source is None:
                raise RdmError(f"{manifest}: line {i}: '{rel}' is labelled '{classes[k]}' but lies in the class "
                               f"folder of '{classes[kf]}' (--label-source manifest or folder picks one)")
            if label_source == "folder":
                k = kf
        p = root / rel
        if not p.is_file():
            bad.append(BadInput(display_name(p), f"listed in {MANIFEST} (line {i}) but missing"))
            continue
        g = (r.get(gcol) or "").strip() if gcol else ""
        entries.append(Entry(id=rel, label=k, group=g or rel, ref=p))
    notes = []
    unlisted = sorted(display_name(p.relative_to(root).as_posix()) for p in root.rglob("*")
                      if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(root).parts)
                      and p.relative_to(root).as_posix() not in ids)
    if unlisted:
        notes.append(f"{len(unlisted)} image file(s) under {display_name(root)} are not in {MANIFEST} and were "
                     f"left out (first: {unlisted[0]})")
    return Scan(entries, bad, {"layout": "manifest", "group_col": gcol}, {str(manifest): sha256_file(manifest)},
                notes)
