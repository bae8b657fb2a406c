"""What the report reads, gathered once, and the files under ``results/`` that carry it.

The report reads the metrics files (every cell's per-row predictions and fooled flags), the
certificates, ``matched.json``, the sets (rows per class and split, their sha256, which rows the
seeded subset holds), the checkpoints (training metadata, the device each model was trained on),
the leakage audits and ``timings.jsonl``. :func:`collect` gathers everything but the metrics files
into plain data (the *facts*); :func:`ship` writes it beside the report::

    grid.toml                      the grid the run used
    timings.jsonl                  the stage timings
    cells/<m>-s<seed>.json.xz      every metrics file, certificate and matched.json of that modality
                                   and seed, by its path in the work folder (xz-compressed JSON)
    cells/inputs.json.xz           the run's parameters and the facts

and :func:`load` reads them back, so ``python -m rdm.report --from results`` rebuilds the report
without the work folder. Every path stored is relative to the work folder; the absolute paths that
the commands record (``set``, ``source``, ``model``) are made relative to it when shipped.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path
from typing import Any

from rdm.errors import RdmError
from rdm.pipeline.plan import (SPLITS, SUBSET, Plan, audit_path, matched_path, model_path, set_path,
                               source_stamp_path)

CELLS = "cells"
INPUTS = f"{CELLS}/inputs.json.xz"
GRID = "grid.toml"
TIMINGS = "timings.jsonl"
FORMAT = "rdm-shipped-run/1"
#: the training metadata a checkpoint's facts keep (no weights, no absolute paths)
META_KEYS = ("kind", "arch", "recipe", "history", "best_epoch", "epochs_run", "stopped_early", "val", "wall_time_s",
             "seed", "parameters", "environment", "rdm_version")


def cells_file(m: str, seed: int) -> str:
    """``cells/lung-s0.json.xz``: the metrics files of one modality and seed, relative to the results folder."""
    return f"{CELLS}/{m}-s{seed}.json.xz"


def ckpt_key(model: str, seed: int) -> str:
    return f"{model}@{seed}"


# --------------------------------------------------------------------------- gathering
def set_facts(p: Path) -> dict[str, Any]:
    from rdm.data.sets import SetReader, sha256_file

    try:
        with SetReader(p) as r:
            classes = list(r.info.classes)
            y = r.column("y")
            prov = r.info.provenance
            d: dict[str, Any] = {"n": int(r.n), "classes": classes, "shape": list(r.info.shape),
                                 "counts": [int((y == i).sum()) for i in range(len(classes))],
                                 "provenance": {k: prov.get(k) for k in ("command", "arguments", "seed") if k in prov}}
    except RdmError as e:
        return {"problem": str(e)}
    d["provenance"] = {k: v for k, v in d["provenance"].items() if k != "command"}
    d["sha256"] = sha256_file(p)
    return d


def _parameters(meta: dict[str, Any]) -> int | None:
    arch = meta.get("arch")
    if not isinstance(arch, dict):
        return None
    try:
        from rdm.models import build

        return int(sum(p.numel() for p in build(arch).parameters()))
    except Exception:           # an architecture this version cannot build: the card says why
        return None


def checkpoint_facts(p: Path, work: Path) -> dict[str, Any]:
    from rdm.data.checkpoint import read_raw

    try:
        meta = read_raw(p)["meta"]
    except RdmError as e:
        return {"problem": relative(str(e), work)}
    d = {k: meta.get(k) for k in META_KEYS if k in meta}
    if "parameters" not in d:
        d["parameters"] = _parameters(meta)
    if "datasets" in meta and isinstance(meta["datasets"], dict):
        d["datasets_sha256"] = sorted(str(v) for v in meta["datasets"].values())
    return relative(d, work)


def mse_floor(work: Path, m: str) -> float | None:
    """The MSE of answering the training set's mean colour on the validation set (a DCAE's floor)."""
    tr, va = work / set_path(m, "train"), work / set_path(m, "val")
    if not (tr.exists() and va.exists()):
        return None
    from rdm.data.sets import channel_mean, mse_to_constant

    try:
        return float(mse_to_constant(va, channel_mean(tr)))
    except (RdmError, OSError, ValueError):
        return None


def collect(plan: Plan, work: str | Path) -> dict[str, Any]:
    """The facts of every modality of ``plan`` (:func:`collect_modality`)."""
    return {m: collect_modality(plan, work, m) for m in plan.run}


def collect_modality(plan: Plan, work: str | Path, m: str) -> dict[str, Any]:
    """The facts of one modality: its sets, source stamp, checkpoints, audit and subset rows."""
    import hashlib

    from rdm.pipeline.steps import subset_index

    work = Path(work)
    f: dict[str, Any] = {"sets": {}, "checkpoints": {}}
    for split in (*SPLITS, SUBSET):
        p = work / set_path(m, split)
        if p.exists():
            f["sets"][split] = relative(set_facts(p), work)
    stamp = work / source_stamp_path(m)
    f["source_sha256"] = hashlib.sha256(stamp.read_bytes()).hexdigest() if stamp.exists() else None
    need_floor = False
    for model in plan.models:
        for seed in plan.seeds:
            p = work / model_path(m, model, seed)
            if p.exists():
                c = checkpoint_facts(p, work)
                f["checkpoints"][ckpt_key(model, seed)] = c
                val = c.get("val") or {}
                need_floor |= val.get("mse") is not None and val.get("mse_mean_image") is None
    f["mse_floor"] = mse_floor(work, m) if need_floor else None
    a = work / audit_path(m)
    if a.exists():
        try:
            f["audit"] = relative(json.loads(a.read_text()), work)
        except ValueError as e:
            f["audit"] = f"unreadable ({audit_path(m)}: {e})"
    else:
        f["audit"] = f"missing ({audit_path(m)})"
    sub, full = work / set_path(m, SUBSET), work / set_path(m, "test")
    try:
        idx = subset_index(sub, full) if sub.exists() and full.exists() else None
    except (RdmError, OSError, ValueError, KeyError):
        idx = None
    f["subset_map"] = None if idx is None else [int(i) for i in idx]
    return f


def relative(obj: Any, *folders: Path) -> Any:
    """``obj`` with the prefix of ``folders`` (the work folder; the results folder) cut from every string
    (absolute or as given; the longest first), such a folder itself written ``.``, and any other absolute
    path (a data folder of the machine that ran it) cut to its last part."""
    roots = {r for w in folders for r in (str(w), str(Path(w).resolve()))}
    prefixes = sorted({r + "/" for r in roots}, key=len, reverse=True)

    def cut(v: Any) -> Any:
        if isinstance(v, str):
            if v in roots:
                return "."
            for p in prefixes:
                v = v.replace(p, "")
            if v.startswith("/") and " " not in v:
                return Path(v).name
            return v
        if isinstance(v, dict):
            return {cut(k): cut(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [cut(x) for x in v]
        return v
    return cut(obj)


# --------------------------------------------------------------------------- shipping
def _dump_xz(path: Path, obj: Any) -> None:
    from rdm.data.atomic import atomic_output

    data = json.dumps(obj, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def _load_xz(path: Path) -> Any:
    try:
        return json.loads(lzma.decompress(path.read_bytes()))
    except (OSError, lzma.LZMAError, ValueError) as e:
        raise RdmError(f"{path}: not a shipped file of the report ({e})") from None


def ship(plan: Plan, work: str | Path, results: str | Path, grid_path: str | Path, facts: dict[str, Any],
         mode: str) -> list[str]:
    """Write grid.toml, timings.jsonl and cells/ under ``results``; the files written (relative)."""
    from rdm.data.atomic import atomic_output

    work, results = Path(work), Path(results)
    written = []
    for m, mp in plan.run.items():
        by_seed: dict[int, dict[str, Any]] = {s: {} for s in plan.seeds}
        files = {(c.seed, c.output) for c in mp.cells} | {(s, matched_path(m, s)) for s in plan.seeds}
        for seed, rel in sorted(files, key=lambda t: (t[0] if t[0] is not None else -1, t[1])):
            p = work / rel
            if not p.exists() or rel in by_seed.get(seed if seed is not None else plan.seeds[0], {}):
                continue
            try:
                doc = json.loads(p.read_text())
            except (ValueError, OSError):
                continue                      # the report lists it as unreadable
            by_seed.setdefault(seed if seed is not None else plan.seeds[0], {})[rel] = relative(doc, work)
        for seed, docs in by_seed.items():
            if docs:
                _dump_xz(results / cells_file(m, seed), docs)
                written.append(cells_file(m, seed))
    _dump_xz(results / INPUTS, {"format": FORMAT, "mode": mode, "seed": plan.seed, "seeds": len(plan.seeds),
                                "tier": plan.tier.name, "modalities": list(plan.run), "facts": facts})
    written.append(INPUTS)
    grid_text = Path(grid_path).read_text() if Path(grid_path).exists() else None
    for name, text in ((GRID, grid_text), (TIMINGS, (work / "timings.jsonl").read_text()
                                           if (work / "timings.jsonl").exists() else None)):
        if text is None:
            continue
        if (results / name).resolve() != (Path(grid_path).resolve() if name == GRID else None):
            with atomic_output(results / name) as tmp:
                Path(tmp).write_text(text)
        written.append(name)
    return written


def load(results: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the run's parameters and facts, every shipped metrics file by its path in the work folder)."""
    results = Path(results)
    if not (results / INPUTS).exists():
        raise RdmError(f"{results}: no {INPUTS} (not a folder `python -m rdm.report` wrote)")
    run = _load_xz(results / INPUTS)
    if not isinstance(run, dict) or run.get("format") != FORMAT:
        raise RdmError(f"{results / INPUTS}: not {FORMAT}")
    docs: dict[str, Any] = {}
    for p in sorted((results / CELLS).glob("*.json.xz")):
        if p.name != Path(INPUTS).name:
            docs.update(_load_xz(p))
    return run, docs
