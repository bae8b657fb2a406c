"""Image-folder trees: one sub-folder per class, an optional ``labels.csv`` manifest.

Layout::

    SOURCE/
      labels.csv            optional: path,label[,metadata...] (path relative to SOURCE)
      <class>/…/*.png|jpg   any depth below the class folder; hidden files are ignored

Without a manifest every non-hidden file under a class folder is an image of that
class (a file Pillow cannot read is a bad input, not silently skipped; so are a symbolic
link to a missing file and a FIFO, socket or device, which are never opened). Files are
decoded by suffix (:func:`rdm.prep.reader.file_decoder`): DICOM ``.dcm`` and NIfTI ``.nii``/``.nii.gz``
slices as well as anything Pillow reads.

One file is one image, however it is reached: the same file twice in a class folder (a
symbolic or hard link) is read once, with a note; in the folders of two classes it is an error. With one, the
manifest is authoritative: its rows are the images, its ``label`` the class, and
its group column (``--group-col``, else the preset's ``group_col`` if present) the
group; an empty group cell makes the image its own group. Folder names and labels
go through ``--class-map SRC=DST`` before they are matched to the preset's classes.

Manifest paths are resolved (``./a/x.png``, ``a//x.png``, ``b/../a/x.png`` and a symbolic
link all name one file): a path that leads outside SOURCE, by ``..``, an absolute path or a
symbolic link, is refused (exit 1, even with ``--skip-bad``), and two rows that reach the same file
(also through a symbolic or hard link) are an error. The stored ``id`` is the path as
normalised from the manifest.

A manifest row whose path, as written or as resolved, lies in a class folder of another
class is an error (the folder and the manifest disagree); ``label_source="manifest"`` or
``"folder"`` (``--label-source``) says which one wins. Image files under SOURCE that the manifest does not list are left out and
reported in one note.

If no sub-folder of SOURCE names a class and SOURCE holds exactly one sub-folder,
that folder is taken as the root: the Kaggle leukemia download (``<dir>/Original/<class>``)
works given either ``<dir>`` or ``<dir>/Original``.
"""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from rdm.errors import RdmError, UsageError
from rdm.data.sets import sha256_bytes, sha256_file
from rdm.prep.images import BadInput, Decode, read_input
from rdm.prep.reader import Entry, Scan, display_name, file_decoder

MANIFEST = "labels.csv"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm", ".dcm", ".nii",
                  ".gz"}
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
                 group_col: str | None = None, preset_group_col: str = "", label_source: str | None = None,
                 decode: Decode | None = None):
        if label_source is not None and label_source not in LABEL_SOURCES:
            raise UsageError(f"--label-source {label_source}: expected {' or '.join(LABEL_SOURCES)}")
        self.source, self.classes, self.class_map, self.shape = Path(source), list(classes), dict(class_map), shape
        self.group_col, self.preset_group_col, self.label_source = group_col, preset_group_col, label_source
        self.hashes: dict[str, str] = {}
        self.decode = decode or Decode(shape)

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
        name = display_name(entry.ref)
        return file_decoder(name)(data, name, self.decode), sha256_bytes(data)

    def close(self) -> None:
        return None


def _class_index(name: str, classes: Sequence[str], class_map: Mapping[str, str]) -> int | None:
    mapped = class_map.get(name, name)
    return classes.index(mapped) if mapped in classes else None


def file_key(p: Path) -> tuple[int, int] | None:
    """(device, inode) of the file ``p`` reaches (following links); None if it cannot be reached."""
    try:
        st = os.stat(p)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def not_regular(p: Path) -> str | None:
    """Why ``p`` is not a readable regular file (a dangling link, FIFO, socket, device), or None."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return "a symbolic link to a missing file" if p.is_symlink() else "missing"
    except OSError as e:
        return f"cannot be reached ({e.strerror or e})"
    if stat.S_ISREG(st.st_mode):
        return None
    kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
    return f"{kind}, not an image file"


def _class_files(d: Path) -> tuple[list[Path], list[BadInput]]:
    """Visible files under class folder ``d`` (any depth), and the entries that are not files."""
    files, bad = [], []
    for p in sorted(d.rglob("*")):
        if any(part.startswith(".") for part in p.relative_to(d).parts):
            continue
        if p.is_dir() and not p.is_symlink():
            continue
        why = not_regular(p)
        if why is None:
            files.append(p)
        elif why != "a folder, not an image file":
            bad.append(BadInput(display_name(p), why))
    return files, bad


def _scan_folders(root: Path, classes, class_map) -> Scan:
    subs = _subdirs(root)
    if not subs:
        raise RdmError(f"{root}: no class folders (expected one sub-folder per class: {', '.join(classes)})")
    entries: list[Entry] = []
    bad: list[BadInput] = []
    seen: dict[int, list[str]] = {}
    first: dict[tuple[int, int], Entry] = {}
    twice: list[str] = []
    for d in subs:
        k = _class_index(d.name, classes, class_map)
        if k is None:
            name = display_name(d.name)
            raise RdmError(f"{display_name(d)}: unknown class folder '{name}' (classes: {', '.join(classes)}; "
                           f"map it with --class-map {name}=CLASS)")
        files, not_files = _class_files(d)
        if not files and not not_files:
            raise RdmError(f"{display_name(d)}: class folder is empty")
        bad.extend(not_files)
        seen.setdefault(k, []).append(d.name)
        for p in files:
            rel = display_name(p.relative_to(root).as_posix())
            e = Entry(id=rel, label=k, group=rel, ref=p)
            other = first.setdefault(file_key(p), e)
            if other is e:
                entries.append(e)
            elif other.label != k:
                raise RdmError(f"{display_name(root)}: {other.id} and {rel} are the same file (a symbolic or hard "
                               f"link) in the class folders of '{classes[other.label]}' and '{classes[k]}'")
            else:
                twice.append(f"{rel} (= {other.id})")
    missing = [c for i, c in enumerate(classes) if i not in seen]
    if missing:
        raise RdmError(f"{display_name(root)}: no folder for class {', '.join(repr(c) for c in missing)}")
    notes = [f"{len(twice)} file(s) are links to a file already read and were read once: {twice[0]}"
             + (f" and {len(twice) - 1} more" if len(twice) > 1 else "")] if twice else []
    return Scan(entries, bad, {"layout": "folders", "group_col": None}, notes=notes)


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
    rows_of: dict[object, tuple[int, str]] = {}      # normalised path or file key -> (line, path)
    real_root = Path(os.path.realpath(root))
    for i, r in enumerate(rows, start=2):  # line 1 is the header
        raw = (r.get("path") or "").strip()
        if not raw:
            raise RdmError(f"{manifest}: line {i}: empty path")
        k = _class_index((r.get("label") or "").strip(), classes, class_map)
        if k is None:
            raise RdmError(f"{manifest}: line {i}: unknown class '{r.get('label')}' (classes: "
                           f"{', '.join(classes)}; map it with --class-map {r.get('label')}=CLASS)")
        rel, real = _inside(root, real_root, raw, f"{manifest}: line {i}")
        p = root / rel
        key = file_key(p)
        for ident in (rel, key):
            if ident is not None and ident in rows_of:
                j, other = rows_of[ident]
                how = "" if other == raw else f" (as '{other}')" if ident == rel else \
                    f" ('{other}', the same file by a symbolic or hard link)"
                raise RdmError(f"{manifest}: line {i}: '{raw}' is listed twice: also on line {j}{how}")
            if ident is not None:
                rows_of[ident] = (i, raw)
        k = _folder_label(root, real_root, rel, real, k, classes, class_map, label_source, f"{manifest}: line {i}")
        why = not_regular(p)
        if why is not None:
            what = "but missing" if why in ("missing", "a symbolic link to a missing file") else f"but {why}"
            bad.append(BadInput(display_name(p), f"listed in {MANIFEST} (line {i}) {what}"))
            continue
        g = (r.get(gcol) or "").strip() if gcol else ""
        entries.append(Entry(id=rel, label=k, group=g or rel, ref=p))
    notes = []
    listed = {key for key in rows_of if isinstance(key, tuple)}
    unlisted = sorted(display_name(p.relative_to(root).as_posix()) for p in root.rglob("*")
                      if _is_image_name(p.name) and p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(root).parts)
                      and file_key(p) not in listed)
    if unlisted:
        notes.append(f"{len(unlisted)} image file(s) under {display_name(root)} are not in {MANIFEST} and were "
                     f"left out (first: {unlisted[0]})")
    return Scan(entries, bad, {"layout": "manifest", "group_col": gcol}, {str(manifest): sha256_file(manifest)},
                notes)


def _is_image_name(name: str) -> bool:
    low = name.lower()
    return Path(low).suffix in IMAGE_SUFFIXES and (not low.endswith(".gz") or low.endswith(".nii.gz"))


def _inside(root: Path, real_root: Path, raw: str, where: str) -> tuple[str, Path]:
    """``raw`` (a manifest path) normalised relative to ``root``, and the file it resolves to;
    a path that leads outside ``root`` as written or through a link is refused."""
    norm = os.path.normpath(os.path.join(root, raw))
    rel = os.path.relpath(norm, root)
    real = Path(os.path.realpath(norm))
    outside = rel in (os.curdir, os.pardir) or rel.startswith(os.pardir + os.sep)
    if not outside and real != real_root and real_root not in real.parents:
        outside = True
    if outside:
        raise RdmError(f"{where}: '{raw}' lies outside the source folder {display_name(root)} "
                       "(manifest paths are relative to it and may not leave it, also not through a link)")
    return Path(rel).as_posix(), real


def _folder_label(root: Path, real_root: Path, rel: str, real: Path, k: int, classes, class_map,
                  label_source: str | None, where: str) -> int:
    """The label, checked against the class folder the path lies in, as written and as resolved."""
    tops = [rel.split("/")[0] if "/" in rel else None]
    rparts = real.relative_to(real_root).parts
    tops.append(rparts[0] if len(rparts) > 1 else None)
    for top in tops:
        kf = _class_index(top, classes, class_map) if top is not None and (root / top).is_dir() else None
        if kf is None or kf == k:
            continue
        if label_source is None:
            raise RdmError(f"{where}: '{rel}' is labelled '{classes[k]}' but lies in the class folder of "
                           f"'{classes[kf]}' (--label-source manifest or folder picks one)")
        if label_source == "folder":
            return kf
    return k
