"""Model cards: one JSON per evaluated model, ``results/models/<modality>-<model>.json``, in the spirit
of RobustBench's model entries, so a number can be compared across papers and tools.

A card says what was attacked and how hard (threat model, ε in [0, 1] pixels, in grey levels ε·255
and, for CT, in Hounsfield units of the preset's ``[intensity]`` window, as the report), on what
(dataset and the sha256 of the raw data's source stamp, split and seed, rows), with what result
(clean and robust accuracy per attack suite, per seed and their mean, each with the metrics file and
result index it came from: the same numbers the report shows), and what the model is and cost
(training recipe and settings, seconds from ``timings.jsonl``). Noise-trained models add their
certified L2 accuracy (:mod:`.certified`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rdm.pipeline.certified import base_clean, summary as certified_summary
from rdm.pipeline.labels import attack_label, eps_values, model_label, units_of
from rdm.pipeline.plan import SPLITS, SUBSET, Cell, set_path, source_stamp_path, stage_name
from rdm.pipeline.results import View

CARD = "rdm-model-card/1"
#: the result families a card lists as robust accuracy (the ε sweeps stay in the report)
SUITES = ("transfer", "whitebox", "matched-transfer", "matched")


def _number(x: View, cells: list[Cell]) -> dict[str, Any] | None:
    """Accuracy and balanced accuracy over the seeds of one cell, each seed with its file."""
    per = []
    for c in cells:
        r = x.get(c)
        if r is not None and r.metric("accuracy") is not None:
            per.append({"seed": c.seed, "accuracy": r.metric("accuracy"),
                        "balanced_accuracy": r.metric("balanced_accuracy"), "rows": r.n, "file": r.file,
                        "index": r.index})
    if not per:
        return None
    mean = lambda k: sum(p[k] for p in per) / len(per)  # noqa: E731
    return {"accuracy": mean("accuracy"), "balanced_accuracy": mean("balanced_accuracy"),
            "rows": per[0]["rows"], "seeds": [p["seed"] for p in per], "per_seed": per}


def _eps_of(x: View, c: Cell) -> float | None:
    if c.eps is not None:
        return c.eps
    return (x.matched or {}).get(c.eps_from) if c.eps_from else None


def _dataset(x: View, work: Path) -> dict[str, Any]:
    from rdm.data.sets import SetReader, sha256_file

    spec = x.plan.modalities[x.m]
    stamp = work / source_stamp_path(x.m)
    demo = x.plan.mode == "demo"
    d: dict[str, Any] = {"name": "synthetic phantoms (rdm-prep synthetic)" if demo else spec.get("source"),
                         "preset": spec.get("preset"),
                         "sha256": hashlib.sha256(stamp.read_bytes()).hexdigest() if stamp.exists() else None,
                         "sha256_of": f"{source_stamp_path(x.m)} (sha256 of every raw file)" if stamp.exists() else None,
                         "split_seed": x.plan.seeds[0], "rows": {}, "sets_sha256": {}}
    for split in (*SPLITS, SUBSET):
        p = work / set_path(x.m, split)
        if p.exists():
            with SetReader(p) as r:
                d["rows"][split] = r.n
                d.setdefault("classes", list(r.info.classes))
            d["sets_sha256"][split] = sha256_file(p)
    return d


def _training(x: View, work: Path, model: str, stages: dict[str, float]) -> dict[str, Any]:
    from rdm.data.checkpoint import read_raw
    from rdm.errors import RdmError

    spec = x.plan.models.get(model)
    t: dict[str, Any] = {"grid_recipe": spec.recipe if spec else None, "settings": dict(spec.options) if spec else {},
                         "recipe": None, "epochs_run": None, "cost_s": {}}
    for seed in x.plan.seeds:
        sec = stages.get(stage_name(x.m, model, seed))
        if sec is not None:
            t["cost_s"][str(seed)] = sec
    t["cost_s_total"] = sum(t["cost_s"].values()) if t["cost_s"] else None
    p = work / x.p.model_file(model)
    if p.exists():
        try:
            meta = read_raw(p)["meta"]
            t.update(recipe=meta.get("recipe"), epochs_run=meta.get("epochs_run", len(meta.get("history") or [])),
                     kind=meta.get("kind"))
        except RdmError as e:
            t["problem"] = str(e)
    return t


def card(x: View, work: Path, model: str, stages: dict[str, float]) -> dict[str, Any]:
    """The card of one model of one modality."""
    clean = x.p.clean(model) or base_clean(x, model)
    units = units_of(x.plan.modalities[x.m]["preset"])
    robust = []
    for c in x.p.cells:
        if c.model != model or c.seed != x.plan.seeds[0] or c.family not in SUITES:
            continue
        num = _number(x, x.p.seeds_of(c))
        eps = _eps_of(x, c)
        robust.append({"suite": c.attack.name, "attack": attack_label(c.attack, eps), "protocol": c.protocol,
                       "matched_eps": c.eps_from is not None, "on": c.rows, **eps_values(eps, units),
                       **(num or {"accuracy": None})})
    eps_all = sorted({r["eps"] for r in robust if r.get("eps") is not None})
    threat = [{"norm": "Linf", "eps": [eps_values(e, units) for e in eps_all],
               **({"intensity": {"unit": units["unit"], "window": units["window"]}} if units.get("unit") else {})}]
    cert = certified_summary(x).get(model)
    if cert is not None:
        threat.append({"norm": "L2", "certified": True, "radii": sorted(float(r) for r in cert["certified_accuracy"])})
    clean_num = {"on": clean.rows if clean else None, **(_number(x, x.p.seeds_of(clean)) or {"accuracy": None})}
    # the seeds behind the card's numbers (a partial grid can have fewer than the plan's)
    seeds = sorted({s for r in (clean_num, *robust) for s in r.get("seeds", ())})
    return {"card": CARD, "modality": x.m, "model": model, "label": model_label(model),
            "dataset": _dataset(x, work), "seeds": seeds, "seeds_planned": list(x.plan.seeds), "threat_model": threat,
            "clean": clean_num, "robust": robust, "certified": cert, "training": _training(x, work, model, stages)}


def models_of(x: View) -> list[str]:
    """Every model the grid evaluates in this modality (defended, controls, noise-trained)."""
    ms = [*x.plan.eval_models, *x.plan.controls, *(m for m, _ in x.plan.certify.models)]
    return list(dict.fromkeys(ms))


def write_all(views: dict[str, View], work: Path, out_dir: Path, stages: dict[str, float]) -> list[str]:
    """Write every card under ``out_dir`` (atomically); their paths."""
    import json

    from rdm.data.atomic import atomic_output

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for m, x in views.items():
        for model in models_of(x):
            p = out_dir / f"{m}-{model}.json"
            with atomic_output(p) as tmp:
                Path(tmp).write_text(json.dumps(card(x, Path(work), model, stages), indent=1, default=str) + "\n")
            paths.append(str(p))
    return paths
