"""``rdm-prep``: raw images -> ``train.h5 val.h5 test.h5`` for one preset.

Sources (detected in this order):

* the word ``synthetic``: procedural phantoms (:mod:`rdm.prep.synthetic`);
* ``.mat`` files, or a folder of them: the figshare brain-tumour dataset (:mod:`rdm.prep.matfiles`);
* a folder with ``*.mhd`` volumes and a ``candidates.csv`` (or ``--candidates``): LUNA16
  (:mod:`rdm.prep.luna16`);
* any other folder: an image-folder tree (:mod:`rdm.prep.imagefolder`).

Every input is decoded before anything is written. A bad input (unreadable or
truncated image, a manifest row naming a missing file, a .mat without ``cjdata``, a
candidate outside its volume) stops the run with ``error: <file>: <problem>`` and
leaves the output folder untouched; ``skip_bad`` drops such inputs and lists them.
The decoded images are held in one preallocated N×C×H×W float32 array (the paper's
sets are 90-160 MB at preset size), then split (:mod:`rdm.prep.split`) and written
in batches through :class:`rdm.data.sets.SetWriter` inside :func:`rdm.data.atomic.atomic_outputs`,
so the three files appear together or not at all (a failed rename puts the old ones back).

Each set carries the full preset (attribute ``preset_json``, so later commands need no preset
file), how pixel values were mapped to [0, 1] (``intensity``: 8-bit /255, 16-bit and float
through the preset's window, per kind of image with counts) and the prep's ``split_id``, which
the training commands check across the sets they are given. Images of another size than the
preset's are resized and counted (a note says how many and from what sizes) or, with
``resize=False``, refused.

Every reader follows one protocol (:mod:`rdm.prep.reader`). Nothing here prints: the command
passes ``warn`` (notes such as files left out) and ``progress`` (a progress object).

Provenance records the command, arguments, seed and split, the sha256 of the
manifest / candidates file, and for the images one combined sha256: the sha256 of
the sorted lines ``<sha256 of file>  <id>`` over every image read (so any changed,
added or removed image changes it), plus the file count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rdm import __version__
from rdm.data.atomic import atomic_outputs, check_outputs
from rdm.errors import RdmError, UsageError
from rdm.data.presets import PRESET_ATTR, Preset, preset_json
from rdm.data.sets import PREP_INPUTS_ATTR, SPLIT_ID_ATTR, SetWriter, make_provenance, sha256_bytes
from rdm.prep.images import BadInput, Decode
from rdm.prep.reader import Reader
from rdm.prep.split import SPLITS, class_targets, grouped_stratified_split, split_table, split_totals

OUT_NAMES = tuple(f"{s}.h5" for s in SPLITS)
WRITE_BATCH = 256


@dataclass
class PrepResult:
    paths: list[Path]
    classes: list[str]
    table: np.ndarray                 # counts, class × split
    target: np.ndarray                # the ratios' targets, class × split
    kind: str
    skipped: list[BadInput] = field(default_factory=list)
    n_groups: int = 0
    straddling: int = 0


def detect(sources: Sequence[str | os.PathLike], candidates: Path | None = None) -> str:
    srcs = [str(s) for s in sources]
    if not srcs:
        raise RdmError("no SOURCE given")
    if srcs == ["synthetic"]:
        return "synthetic"
    paths = [Path(s) for s in srcs]
    for p in paths:
        if not p.exists():
            raise RdmError(f"{p}: no such file or folder")
    if all(p.is_file() and p.suffix.lower() == ".mat" for p in paths):
        return "mat"
    if len(paths) > 1:
        raise UsageError("several SOURCEs are only accepted as a list of .mat files")
    p = paths[0]
    if p.is_file():
        raise RdmError(f"{p}: expected a folder, a .mat file or the word 'synthetic'")
    if candidates is not None or ((p / "candidates.csv").is_file() and any(p.rglob("*.mhd"))):
        return "luna16"
    if any(q.suffix.lower() == ".mat" for q in p.iterdir() if q.is_file()) and not any(
            q.is_dir() and not q.name.startswith(".") for q in p.iterdir()):
        return "mat"
    return "imagefolder"


@dataclass
class Images:
    """Decoded images and what the sets record about them."""

    x: np.ndarray                     # N×C×H×W float32 in [0, 1]
    y: np.ndarray
    groups: np.ndarray
    ids: np.ndarray
    input_hashes: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: list[BadInput] = field(default_factory=list)
    intensity: dict[str, Any] = field(default_factory=dict)


def prepare(
    sources: Sequence[str | os.PathLike],
    preset: Preset,
    outdir: str | os.PathLike,
    *,
    group_col: str | None = None,
    class_map: Mapping[str, str] | None = None,
    candidates: str | os.PathLike | None = None,
    skip_bad: bool = False,
    label_source: str | None = None,
    group_similar: float | None = None,
    group_cap: int | None = None,
    resize: bool = True,
    seed: int = 0,
    n: int | None = None,
    command: str | None = None,
    arguments: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
    progress=None,
) -> PrepResult:
    """Read, split and write one preset's sets; returns the paths and the counts table.

    ``resize=False`` refuses (as a bad input) every image whose size is not the preset's."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise RdmError(f"{outdir}: exists and is not a folder")
    warn = warn or (lambda m: None)
    cand = Path(candidates) if candidates else None
    kind = detect(sources, cand)
    if n is not None and kind != "synthetic":
        raise UsageError("--n only applies to the 'synthetic' source")
    if group_cap is not None and group_similar is None:
        raise UsageError("--group-cap caps the groups of --group-similar: give both")
    if kind == "synthetic":
        im = synthetic_images(preset, n, seed)
    else:
        reader = make_reader(kind, sources, preset, class_map=dict(class_map or {}), group_col=group_col,
                             candidates=cand, label_source=label_source, resize=resize)
        im = read_images(reader, preset.shape, skip_bad=skip_bad, warn=warn, progress=progress)
    im.extra = {"source_kind": kind, **im.extra}
    check_classes(im.y, list(preset.classes))
    if group_similar is not None:
        regroup_similar(im, float(group_similar), group_cap)
    split, table, target = split_images(im, preset, seed)
    targets = [outdir / name for name in OUT_NAMES]
    check_outputs(targets, [*(s for s in sources if s != "synthetic"), cand])
    write_sets(targets, im, split, preset, split_provenance(im, preset, table, seed, command, arguments), seed)
    return PrepResult(paths=targets, classes=list(preset.classes), table=table, target=target, kind=kind,
                      skipped=im.skipped, n_groups=len(set(im.groups.tolist())), straddling=0)


def synthetic_images(preset: Preset, n: int | None, seed: int) -> Images:
    """Procedural phantoms (values already in [0, 1])."""
    from rdm.prep.synthetic import generate

    count = 600 if n is None else int(n)
    if count < 3:
        raise UsageError(f"--n {count}: need at least 3 images for a train/val/test split")
    x, y, groups = generate(count, preset.num_classes, preset.shape, seed=seed)
    ids = np.array([f"synthetic-{i:05d}" for i in range(count)], dtype=object)
    return Images(x, np.asarray(y, dtype=np.int64), np.asarray(groups, dtype=object), ids, extra={"n": count},
                  intensity={"synthetic": "procedural phantoms, values in [0, 1]"})


def read_images(reader: Reader, shape: tuple[int, int, int], *, skip_bad: bool,
                warn: Callable[[str], None], progress=None) -> Images:
    """Scan and decode every input of ``reader`` into one array; bad inputs stop the run unless
    ``skip_bad``. Notes (files left out, images resized) go to ``warn``."""
    sc = reader.scan()
    for note in sc.notes:
        warn(note)
    if sc.bad and not skip_bad:
        raise _first_bad(sc.bad)
    entries, skipped = sc.entries, list(sc.bad)
    x = np.empty((len(entries), *shape), dtype=np.float32)
    ok = np.zeros(len(entries), dtype=bool)
    file_lines: list[str] = []
    task = progress.add_task("reading", total=len(entries), info="") if progress is not None else None
    try:
        for i, e in enumerate(entries):
            try:
                x[i], sha = reader.load(e)
                ok[i] = True
                if sha:
                    file_lines.append(f"{sha}  {e.id}")
            except BadInput as b:
                if not skip_bad:
                    raise
                skipped.append(b)
            if task is not None:
                progress.advance(task)
    finally:
        reader.close()
    hashes = {**sc.hashes, **reader.hashes}
    if file_lines:
        combined = sha256_bytes("\n".join(sorted(file_lines)).encode())
        hashes[f"{len(file_lines)} files (sha256 of sorted '<sha256>  <id>' lines)"] = combined
    decode = getattr(reader, "decode", None)
    note = decode.resize_note() if decode is not None else None
    if note:
        warn(note)
    keep = np.flatnonzero(ok)
    entries = [entries[i] for i in keep]
    return Images(x if len(keep) == len(ok) else x[keep], np.array([e.label for e in entries], dtype=np.int64),
                  np.array([e.group for e in entries], dtype=object), np.array([e.id for e in entries], dtype=object),
                  input_hashes=hashes, extra=dict(sc.extra), skipped=skipped,
                  intensity=decode.record() if decode is not None else {})


def check_classes(y: np.ndarray, classes: list[str]) -> None:
    counts = np.bincount(y, minlength=len(classes)) if len(y) else np.zeros(len(classes), np.int64)
    empty = [c for c, k in zip(classes, counts) if k == 0]
    if empty:
        raise RdmError(f"no usable images of class {', '.join(repr(c) for c in empty)}")


def regroup_similar(im: Images, tau: float, cap: int | None) -> None:
    """No patient ids: near-duplicate images (within RMS τ, transitively) share a group, so slices
    of one patient or shots of one field cannot straddle two splits. Capped: single linkage in
    order of distance, no group past ``cap`` images nor across classes."""
    from rdm.evaluation.audit import similarity_groups

    before = len(set(im.groups.tolist()))
    im.groups = similarity_groups(im.x, tau, im.groups, cap=cap, labels=None if cap is None else im.y)
    im.extra["group_similar"] = {"tau": tau, "cap": cap, "groups_before": before,
                                 "groups_after": len(set(im.groups.tolist()))}


def split_images(im: Images, preset: Preset, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grouped, stratified split: (split index per row, counts class × split, targets)."""
    k = preset.num_classes
    split = grouped_stratified_split(im.y, im.groups, preset.split, k, seed=seed)
    table = split_table(im.y, split, k)
    if (table.sum(0) == 0).any():
        raise RdmError(f"too few images ({len(im.y)}) for a train/val/test split with ratios {preset.split}")
    straddling = _straddling(im.groups, split)
    if straddling:  # cannot happen by construction; a guard, not a feature
        raise RdmError(f"internal error: {straddling} groups straddle two splits")
    target = class_targets(np.bincount(im.y, minlength=k), split_totals(len(im.y), preset.split))
    return split, table, target


def split_provenance(im: Images, preset: Preset, table: np.ndarray, seed: int, command: str | None,
                     arguments: Mapping[str, Any] | None) -> dict:
    prov = make_provenance(command=command, arguments=arguments or {}, seed=seed, input_hashes=im.input_hashes,
                           preset=preset.as_dict(), split_counts=table.tolist(), **im.extra)
    prov["rdm_version"] = __version__
    return prov


def inputs_id(im: Images, preset: Preset, seed: int) -> str:
    """A hash of what was read (the sha256 values of every input, not their paths, so a moved
    folder is the same input); for synthetic phantoms, what generated them."""
    what = (sorted(im.input_hashes.values()) if im.input_hashes else
            {"synthetic": im.extra.get("n"), "seed": int(seed), "shape": list(preset.shape)})
    return sha256_bytes(json.dumps(what, sort_keys=True).encode())[:16]


def split_id(inputs: str, im: Images, split: np.ndarray) -> str:
    """One id for the three sets of one prep: the sha256 of the inputs and the row → split
    assignment. The same images split the same way get the same id (whatever the preset's other
    settings); sets of two different splits have different ids, so commands can refuse to mix them."""
    rows = [[str(i), int(s)] for i, s in zip(im.ids.tolist(), split.tolist())]
    return sha256_bytes(json.dumps({"inputs": inputs, "rows": rows}).encode())[:16]


def write_sets(targets: list[Path], im: Images, split: np.ndarray, preset: Preset, prov: dict, seed: int) -> None:
    """The three sets, all or nothing (:func:`rdm.data.atomic.atomic_outputs`); each carries the
    full preset, the intensity mapping and the prep's split id."""
    inputs = inputs_id(im, preset, seed)
    common = {"split_ratios": dict(preset.split), PRESET_ATTR: preset_json(preset), "intensity": im.intensity,
              SPLIT_ID_ATTR: split_id(inputs, im, split), PREP_INPUTS_ATTR: inputs}
    with atomic_outputs(targets) as temps:
        for s, tmp in enumerate(temps):
            rows = np.flatnonzero(split == s)
            with SetWriter(tmp, shape=preset.shape, classes=list(preset.classes), modality=preset.modality,
                           preset=preset.name, provenance=prov, columns=["group", "id"], atomic=False,
                           attrs={"split": SPLITS[s], **common}) as w:
                for b0 in range(0, len(rows), WRITE_BATCH):
                    r = rows[b0:b0 + WRITE_BATCH]
                    w.append(im.x[r], im.y[r], group=im.groups[r], id=im.ids[r])


def make_reader(kind: str, sources: Sequence[str | os.PathLike], preset: Preset, *, class_map: Mapping[str, str],
                group_col: str | None = None, candidates: Path | None = None,
                label_source: str | None = None, resize: bool = True) -> Reader:
    """The reader of a detected source kind (imagefolder, mat, luna16)."""
    classes, shape = list(preset.classes), preset.shape
    decode = Decode(shape, preset.intensity, resize=resize)
    if kind != "imagefolder" and label_source is not None:
        raise UsageError("--label-source only applies to an image-folder tree with a labels.csv")
    if kind == "imagefolder":
        from rdm.prep.imagefolder import ImageFolder

        return ImageFolder(Path(sources[0]), classes, class_map, shape, group_col, preset.group_col, label_source,
                           decode=decode)
    if kind == "mat":
        from rdm.prep.matfiles import MatFiles

        reader = MatFiles([Path(s) for s in sources], classes, class_map, shape)
    else:
        from rdm.prep.luna16 import Luna16

        reader = Luna16(Path(sources[0]), classes, class_map, shape, candidates)
    reader.decode = decode
    return reader


def _straddling(groups: np.ndarray, split: np.ndarray) -> int:
    seen: dict[str, int] = {}
    bad = set()
    for g, s in zip(groups.tolist(), split.tolist()):
        if seen.setdefault(g, s) != s:
            bad.add(g)
    return len(bad)


def _first_bad(bad: list[BadInput]) -> RdmError:
    more = f" (and {len(bad) - 1} more bad inputs; --skip-bad skips them)" if len(bad) > 1 else ""
    return RdmError(f"{bad[0]}{more}")


def summary_table(res: PrepResult):
    """A Rich table: counts per class × split, totals, and the ratios' targets."""
    from rich.table import Table

    t = Table(title=f"rdm-prep: {res.table.sum()} images, {res.n_groups} groups", title_justify="left")
    t.add_column("class")
    for s in SPLITS:
        t.add_column(s, justify="right")
    t.add_column("total", justify="right")
    for c, row, trow in zip(res.classes, res.table, res.target):
        cells = [f"{v}" if v == tv else f"{v} (target {tv})" for v, tv in zip(row, trow)]
        t.add_row(c, *cells, str(row.sum()))
    tot = res.table.sum(0)
    t.add_row("total", *[str(v) for v in tot], str(tot.sum()), style="bold")
    return t
