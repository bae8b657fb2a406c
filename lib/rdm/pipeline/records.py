"""What a run used and what it cost: rows per class and split, the models trained, wall time per stage.
Every file is found through the plan's path functions."""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any, Iterable

from rdm.errors import RdmError
from rdm.pipeline.labels import pct
from rdm.pipeline.plan import SUBSET, model_path, parse_stage, set_path
from rdm.pipeline.tables import DASH, Entry, Part, Table, words


def data_table(work: Path, m: str) -> tuple[Table | None, dict]:
    from rdm.data.sets import SetReader

    info: dict[str, Any] = {}
    rows = []
    classes: list[str] = []
    for split in ("train", "val", "test", SUBSET):
        p = Path(work) / set_path(m, split)
        if not p.exists():
            continue
        try:
            with SetReader(p) as r:
                classes = r.info.classes
                y = r.column("y")
                counts = [int((y == i).sum()) for i in range(len(classes))]
                prov = r.info.provenance
        except RdmError as e:
            info.setdefault("problems", []).append(str(e))
            continue
        rows.append((split, counts))
        info[split] = {"n": int(sum(counts)), "per_class": dict(zip(classes, counts))}
        if split == "train":
            info["provenance"] = {k: prov.get(k) for k in ("command", "arguments", "seed") if k in prov}
    if not rows:
        return None, info
    info["classes"] = classes
    t = Table(f"data-{m}", f"Data used, {m} (rows per class and split)", ["Split"] + classes + ["total"])
    for split, counts in rows:
        t.add(split, [Entry([Part(c, v, count=True)]) for c, v in zip(classes, counts)] +
              [Entry([Part("total", sum(counts), count=True)])])
    return t, info


def models_table(work: Path, m: str, models: Iterable[str], seeds: Iterable[int] = (0,)) -> tuple[Table | None, dict]:
    """One row per model and seed (``name`` alone with one seed, ``name (seed s)`` with several)."""
    from rdm.data.checkpoint import read_raw

    info: dict[str, Any] = {}
    flagged: list[str] = []
    t = Table(f"models-{m}", f"Models trained, {m}", ["Model", "kind", "recipe", "epochs", "best epoch",
                                                       "val accuracy", "val bal. acc", "val reconstruction",
                                                       "training wall time (s)"])
    seeds = list(seeds)
    for name, seed in ((n, sd) for n in models for sd in seeds):
        p = Path(work) / model_path(m, name, seed)
        name = name if len(seeds) == 1 else f"{name} (seed {seed})"
        if not p.exists():
            continue
        try:
            meta = read_raw(p)["meta"]
        except RdmError as e:
            info[name] = {"problem": str(e)}
            continue
        rec = meta.get("recipe") or {}
        val = meta.get("val") or {}
        hist = meta.get("history") or []
        info[name] = {"kind": meta.get("kind"), "recipe": rec, "epochs_run": meta.get("epochs_run", len(hist)),
                      "best_epoch": meta.get("best_epoch"), "val": val, "wall_time_s": meta.get("wall_time_s"),
                      "stopped_early": bool(meta.get("stopped_early")), "converged": converged(meta)}
        best = meta.get("best_epoch") if meta.get("best_epoch") and hist else None
        if best is not None and info[name]["converged"] is False:
            best = f"{best} = last: NOT CONVERGED"
            flagged.append(name)
        wt = meta.get("wall_time_s")
        recon = "—"
        if val.get("mse") is not None:
            recon, info[name]["mse_mean_image"] = _reconstruction(Path(work), m, val)
        t.add(name, [words(meta.get("kind", "?")), words(rec.get("name", "?") if isinstance(rec, dict) else rec),
                     words(meta.get("epochs_run", len(hist)) if hist or "epochs_run" in meta else "—"),
                     words(best if best is not None else "—"),
                     words(pct(val["accuracy"]) if val.get("accuracy") is not None else "—"),
                     words(pct(val["balanced_accuracy"]) if val.get("balanced_accuracy") is not None else "—"),
                     words(recon),
                     words(f"{wt:.1f}" if isinstance(wt, (int, float)) and hist else "—")])
    if flagged:
        t.notes.append(f"NOT CONVERGED ({', '.join(flagged)}): the best validation epoch is the last one run, so "
                       "more epochs would likely have helped; a comparison with such a model under-trains one side "
                       "(raise the epoch cap in the grid's [training]).")
    if any(i.get("kind") == "dcae" for i in info.values()):
        t.notes.append("val reconstruction: the DCAE's MSE on the validation set against the MSE of answering the "
                       "training set's mean colour everywhere; a DCAE near that floor has learnt little, and its "
                       "encoder is no better a start for RDMAA than a random one.")
    return (t if t.rows else None), info


def converged(meta: dict) -> bool | None:
    """Whether a trained model's best validation epoch came before its last one (None: not trained
    here, e.g. a composed purifier, or no history). Early stopping ends ``patience`` epochs after the
    best one, so a model it stopped has converged by this test; one that ran to its epoch cap with
    its best epoch last has not."""
    hist = meta.get("history") or []
    best, run = meta.get("best_epoch"), meta.get("epochs_run", len(hist))
    if not hist or not best or not run:
        return None
    return int(best) < int(run)


def _reconstruction(work: Path, m: str, val: dict) -> tuple[str, float | None]:
    """('MSE a (mean image b), PSNR c dB', b) for a DCAE; b is recomputed from the sets for
    checkpoints written before validation reported it."""
    ref = val.get("mse_mean_image")
    tr, va = work / set_path(m, "train"), work / set_path(m, "val")
    if ref is None and tr.exists() and va.exists():
        from rdm.data.sets import channel_mean, mse_to_constant

        ref = mse_to_constant(va, channel_mean(tr))
    txt = f"MSE {val['mse']:.4f}" + (f" (mean image {ref:.4f})" if ref is not None else "")
    return txt + (f", PSNR {val['psnr']:.1f} dB" if val.get("psnr") is not None else ""), ref


def timings(work: Path, models: Iterable[str]) -> tuple[list[Table], dict]:
    """Wall time per modality and stage kind, and per stage, from ``timings.jsonl`` (the latest
    successful run of each stage; failed runs counted apart)."""
    p = Path(work) / "timings.jsonl"
    if not p.exists():
        return [], {"missing": str(p)}
    last: "OrderedDict[str, float]" = OrderedDict()
    failed = 0
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("rc", 0) != 0:
            failed += 1
            continue
        last[rec["stage"]] = float(rec["seconds"])   # a re-run stage counts once, its latest run
    models = list(models)
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    detail: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for stage, sec in last.items():
        m, kind, what = parse_stage(stage, models)
        per[m or "(all)"][kind] += sec
        detail[m or "(all)"][what] += sec
    kinds = ["prep", "train", "attack", "eval", "other", "report"]
    kinds = [k for k in kinds if any(k in d for d in per.values())]
    t = Table("wall-time", "Wall time per modality and stage kind (seconds, latest successful run of each stage)",
              ["Modality"] + kinds + ["total"])
    total = 0.0
    for m, d in per.items():
        s = sum(d.values())
        total += s
        t.add(m, [words(f"{d[k]:.0f}") if k in d else DASH for k in kinds] + [words(f"{s:.0f}")])
    t.add("total", [words(f"{sum(d.get(k, 0) for d in per.values()):.0f}") for k in kinds] + [words(f"{total:.0f}")])
    t.notes.append(f"{len(last)} stages; total {total / 60:.1f} min" + (f"; {failed} failed runs not counted" if failed else ""))
    t2 = Table("wall-time-stages", "Wall time of each stage (seconds; evaluation summed per model)",
               ["Modality / stage", "seconds"])
    for m, d in detail.items():
        for s, sec in d.items():
            t2.add(f"{m} / {s}", [words(f"{sec:.1f}")])
    return [t, t2], {"per_modality": {m: dict(d) for m, d in per.items()}, "stages": dict(last),
                     "total_s": total, "failed_runs": failed}
