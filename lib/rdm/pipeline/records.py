"""What a run used and what it cost: rows per class and split, the models trained, wall time per stage.
Every file is found through the plan's path functions."""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any, Iterable

from rdm.pipeline.labels import pct
from rdm.pipeline.plan import SUBSET, model_path, parse_stage, set_path
from rdm.pipeline.tables import DASH, Entry, Part, Table, words


def data_table(work: Path, m: str) -> tuple[Table | None, dict]:
    """The rows per class and split of the sets under ``work`` (:func:`data_table_of` of their facts)."""
    from rdm.pipeline.shipped import set_facts

    sets = {s: set_facts(Path(work) / set_path(m, s)) for s in ("train", "val", "test", SUBSET)
            if (Path(work) / set_path(m, s)).exists()}
    return data_table_of(m, sets)


def data_table_of(m: str, sets: dict[str, dict]) -> tuple[Table | None, dict]:
    """Rows per class and split from the sets' facts (:func:`rdm.pipeline.shipped.collect`)."""
    info: dict[str, Any] = {}
    rows = []
    classes: list[str] = []
    for split in ("train", "val", "test", SUBSET):
        f = sets.get(split)
        if f is None:
            continue
        if "problem" in f:
            info.setdefault("problems", []).append(f["problem"])
            continue
        classes, counts = f["classes"], f["counts"]
        rows.append((split, counts))
        info[split] = {"n": int(sum(counts)), "per_class": dict(zip(classes, counts))}
        if split == "train":
            info["provenance"] = dict(f.get("provenance") or {})
    if not rows:
        return None, info
    info["classes"] = classes
    t = Table(f"data-{m}", f"Data used, {m} (rows per class and split)", ["Split"] + classes + ["total"])
    for split, counts in rows:
        t.add(split, [Entry([Part(c, v, count=True)]) for c, v in zip(classes, counts)] +
              [Entry([Part("total", sum(counts), count=True)])])
    return t, info


def device_of(meta: dict) -> str | None:
    """Where a model was trained: ``environment.device_name`` (``device``), or None when the checkpoint
    does not record it."""
    env = meta.get("environment")
    if not isinstance(env, dict) or not env.get("device"):
        return None
    name = env.get("device_name")
    return f"{name} ({env['device']})" if name else str(env["device"])


def models_table(work: Path, m: str, models: Iterable[str], seeds: Iterable[int] = (0,)) -> tuple[Table | None, dict]:
    """One row per model and seed of the checkpoints under ``work`` (:func:`models_table_of`)."""
    from rdm.pipeline.shipped import checkpoint_facts, mse_floor, ckpt_key

    models, seeds = list(models), list(seeds)
    ck = {ckpt_key(n, s): checkpoint_facts(Path(work) / model_path(m, n, s), Path(work))
          for n in models for s in seeds if (Path(work) / model_path(m, n, s)).exists()}
    floor = mse_floor(Path(work), m) if any((c.get("val") or {}).get("mse") is not None for c in ck.values()) else None
    return models_table_of(m, ck, models, seeds, floor)


def models_table_of(m: str, checkpoints: dict[str, dict], models: Iterable[str], seeds: Iterable[int] = (0,),
                    mse_floor: float | None = None) -> tuple[Table | None, dict]:
    """One row per model and seed (``name`` alone with one seed, ``name (seed s)`` with several), from the
    checkpoints' facts (:func:`rdm.pipeline.shipped.collect`); ``mse_floor``: the validation MSE of the
    training set's mean colour, for DCAEs whose metadata lacks it."""
    from rdm.pipeline.shipped import ckpt_key

    info: dict[str, Any] = {}
    flagged: list[str] = []
    t = Table(f"models-{m}", f"Models trained, {m}", ["Model", "kind", "recipe", "epochs", "best epoch",
                                                       "val accuracy", "val bal. acc", "val reconstruction",
                                                       "training wall time (s)", "trained on"])
    seeds = list(seeds)
    devices: dict[str, str] = {}
    for name, seed in ((n, sd) for n in models for sd in seeds):
        meta = checkpoints.get(ckpt_key(name, seed))
        name = name if len(seeds) == 1 else f"{name} (seed {seed})"
        if meta is None:
            continue
        if "problem" in meta:
            info[name] = {"problem": meta["problem"]}
            continue
        rec = meta.get("recipe") or {}
        val = meta.get("val") or {}
        hist = meta.get("history") or []
        dev = device_of(meta)
        info[name] = {"kind": meta.get("kind"), "recipe": rec, "epochs_run": meta.get("epochs_run", len(hist)),
                      "best_epoch": meta.get("best_epoch"), "val": val, "wall_time_s": meta.get("wall_time_s"),
                      "stopped_early": bool(meta.get("stopped_early")), "converged": converged(meta),
                      "environment": meta.get("environment"),
                      **({} if dev else {"environment_reason": "the checkpoint does not record where it was trained"})}
        if dev:
            devices[name] = dev
        best = meta.get("best_epoch") if meta.get("best_epoch") and hist else None
        if best is not None and info[name]["converged"] is False:
            best = f"{best} = last: NOT CONVERGED"
            flagged.append(name)
        wt = meta.get("wall_time_s")
        recon = "—"
        if val.get("mse") is not None:
            recon, info[name]["mse_mean_image"] = _reconstruction(val, mse_floor)
        t.add(name, [words(meta.get("kind", "?")), words(rec.get("name", "?") if isinstance(rec, dict) else rec),
                     words(meta.get("epochs_run", len(hist)) if hist or "epochs_run" in meta else "—"),
                     words(best if best is not None else "—"),
                     words(pct(val["accuracy"]) if val.get("accuracy") is not None else "—"),
                     words(pct(val["balanced_accuracy"]) if val.get("balanced_accuracy") is not None else "—"),
                     words(recon),
                     words(f"{wt:.1f}" if isinstance(wt, (int, float)) and hist else "—"),
                     words(dev or "not recorded")])
    if flagged:
        t.notes.append(f"NOT CONVERGED ({', '.join(flagged)}): the best validation epoch is the last one run, so "
                       "more epochs would likely have helped; a comparison with such a model under-trains one side "
                       "(raise the epoch cap in the grid's [training]).")
    if any(i.get("kind") == "dcae" for i in info.values()):
        t.notes.append("val reconstruction: the DCAE's MSE on the validation set against the MSE of answering the "
                       "training set's mean colour everywhere; a DCAE near that floor has learnt little, and its "
                       "encoder is no better a start for RDMAA than a random one.")
    if len(set(devices.values())) > 1:
        t.notes.append("TRAINED ON DIFFERENT DEVICES (" + "; ".join(f"{d}: {', '.join(n for n, v in devices.items() if v == d)}"
                                                             for d in dict.fromkeys(devices.values())) +
                       "): every comparison of this modality pairs models trained on different devices.")
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


def _reconstruction(val: dict, floor: float | None) -> tuple[str, float | None]:
    """('MSE a (mean image b), PSNR c dB', b) for a DCAE; b is ``floor`` (recomputed from the sets) for
    checkpoints written before validation reported it."""
    ref = val.get("mse_mean_image")
    if ref is None:
        ref = floor
    txt = f"MSE {val['mse']:.4f}" + (f" (mean image {ref:.4f})" if ref is not None else "")
    return txt + (f", PSNR {val['psnr']:.1f} dB" if val.get("psnr") is not None else ""), ref


def timings(work: Path, models: Iterable[str]) -> tuple[list[Table], dict]:
    """Wall time per modality and stage kind, and per stage, from ``timings.jsonl`` (the latest
    successful run of each stage; failed runs counted apart)."""
    p = Path(work) / "timings.jsonl"
    if not p.exists():
        return [], {"missing": "timings.jsonl"}
    return timings_of(p.read_text(), models)


def timings_of(text: str, models: Iterable[str]) -> tuple[list[Table], dict]:
    """:func:`timings` of ``timings.jsonl``'s text."""
    last: "OrderedDict[str, float]" = OrderedDict()
    failed = 0
    for line in text.splitlines():
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
