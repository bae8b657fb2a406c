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
so the three files appear together or not at all.

Every reader follows one protocol (:mod:`rdm.prep.reader`). Nothing here prints: the command
passes ``warn`` (notes such as files left out) and ``progress`` (a progress object).

Provenance records the command, arguments, seed and split, the sha256 of the
manifest / candidates file, and for the images one combined sha256: the sha256 of
the sorted lines ``<sha256 of file>  <id>`` over every image read (so any changed,
added or removed image changes it), plus the file count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rdm import __version__
from rdm.data.atomic import atomic_outputs, check_outputs
from rdm.errors import RdmError, UsageError
from rdm.data.presets import Preset
from rdm.data.sets import SetWriter, make_provenance, sha256_bytes
from rdm.prep.images import BadInput
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
    seed: int = 0,
    n: int | None = None,
    command: str | None = None,
    arguments: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
    progress=None,
) -> PrepResult:
    """Read, split and write one preset's sets; returns the paths and the counts table."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise RdmError(f"{outdir}: exists and is not a folder")
    class_map = dict(class_map or {})
    warn = warn or (lambda m: None)
    shape = preset.shape
    classes = list(preset.classes)
    cand = Path(candidates) if candidates else None
    kind = detect(sources, cand)
    if n is not None and kind != "synthetic":
        raise UsageError("--n only applies to the 'synthetic' source")
    if group_cap is not None and group_similar is None:
        raise UsageError("--group-cap caps the groups of --group-similar: give both")

    input_hashes: dict[str, str] = {}
    extra: dict[str, Any] = {"source_kind": kind}
    skipped: list[BadInput] = []

    if kind == "synthetic":
        from rdm.prep.synthetic import generate

        count = 600 if n is None else int(n)
        if count < 3:
            raise UsageError(f"--n {count}: need at least 3 images for a train/val/test split")
        x, y, groups = generate(count, len(classes), shape, seed=seed)
        ids = np.array([f"synthetic-{i:05d}" for i in range(count)], dtype=object)
        groups = np.asarray(groups, dtype=object)
        extra["n"] = count
    else:
        reader = make_reader(kind, sources, preset, class_map=class_map, group_col=group_col,
                             candidates=cand, label_source=label_source)
        sc = reader.scan()
        extra.update(sc.extra)
        input_hashes.update(sc.hashes)
        for note in sc.notes:
            warn(note)
        entries, bad = sc.entries, sc.bad
        if bad and not skip_bad:
            raise _first_bad(bad)
        skipped.extend(bad)
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
        input_hashes.update(reader.hashes)
        if file_lines:
            combined = sha256_bytes("\n".join(sorted(file_lines)).encode())
            input_hashes[f"{len(file_lines)} files (sha256 of sorted '<sha256>  <id>' lines)"] = combined
        keep = np.flatnonzero(ok)
        if len(keep) != len(entries):
            x = x[keep]
        entries = [entries[i] for i in keep]
        y = np.array([e.label for e in entries], dtype=np.int64)
        groups = np.array([e.group for e in entries], dtype=object)
        ids = np.array([e.id for e in entries], dtype=object)

    counts = np.bincount(y, minlength=len(classes)) if len(y) else np.zeros(len(classes), np.int64)
    empty = [c for c, k in zip(classes, counts) if k == 0]
    if empty:
        raise RdmError(f"no usable images of class {', '.join(repr(c) for c in empty)}")
    if group_similar is not None:
        # no patient ids: near-duplicate images (within RMS τ, transitively) share a group, so
        # slices of one patient or shots of one field cannot straddle two splits
        from rdm.evaluation.audit import similarity_groups

        before = len(set(groups.tolist()))
        # capped: single linkage in order of distance, no group past group_cap images nor across classes
        groups = similarity_groups(x, float(group_similar), groups, cap=group_cap,
                                   labels=None if group_cap is None else y)
        extra["group_similar"] = {"tau": float(group_similar), "cap": group_cap, "groups_before": before,
                                  "groups_after": len(set(groups.tolist()))}
    split = grouped_stratified_split(y, groups, preset.split, len(classes), seed=seed)
    table = split_table(y, split, len(classes))
    if (table.sum(0) == 0).any():
        raise RdmError(f"too few images ({len(y)}) for a train/val/test split with ratios {preset.split}")
    straddling = _straddling(groups, split)
    if straddling:  # cannot happen by construction; a guard, not a feature
        raise RdmError(f"internal error: {straddling} groups straddle two splits")
    target = class_targets(counts, split_totals(len(y), preset.split))

    prov = make_provenance(command=command, arguments=arguments or {}, seed=seed, input_hashes=input_hashes,
                           preset=preset.as_dict(), split_counts=table.tolist(), **extra)
    prov["rdm_version"] = __version__
    targets = [outdir / name for name in OUT_NAMES]
    check_outputs(targets, [*(s for s in sources if s != "synthetic"), cand])
    with atomic_outputs(targets) as temps:
        for s, tmp in enumerate(temps):
            rows = np.flatnonzero(split == s)
            with SetWriter(tmp, shape=shape, classes=classes, modality=preset.modality, preset=preset.name,
                           provenance=prov, columns=["group", "id"], atomic=False,
                           attrs={"split": SPLITS[s], "split_ratios": dict(preset.split)}) as w:
                for b0 in range(0, len(rows), WRITE_BATCH):
                    r = rows[b0:b0 + WRITE_BATCH]
                    w.append(x[r], y[r], group=groups[r], id=ids[r])
    return PrepResult(paths=targets, classes=classes, table=table, target=target, kind=kind,
                      skipped=skipped, n_groups=len(set(groups.tolist())), straddling=straddling)


def make_reader(kind: str, sources: Sequence[str | os.PathLike], preset: Preset, *, class_map: Mapping[str, str],
                group_col: str | None = None, candidates: Path | None = None,
                label_source: str | None = None) -> Reader:
    """The reader of a detected source kind (imagefolder, mat, luna16)."""
    classes, shape = list(preset.classes), preset.shape
    if kind != "imagefolder" and label_source is not None:
        raise UsageError("--label-source only applies to an image-folder tree with a labels.csv")
    if kind == "imagefolder":
        from rdm.prep.imagefolder import ImageFolder

        return ImageFolder(Path(sources[0]), classes, class_map, shape, group_col, preset.group_col, label_source)
    if kind == "mat":
        from rdm.prep.matfiles import MatFiles

        return MatFiles([Path(s) for s in sources], classes, class_map, shape)
    from rdm.prep.luna16 import Luna16

    return Luna16(Path(sources[0]), classes, class_map, shape, candidates)


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
