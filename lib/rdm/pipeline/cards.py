"""Model cards: one JSON per evaluated model, ``results/models/<modality>-<model>.json``, in the spirit
of RobustBench's model entries, so a number can be compared across papers and tools. The schema is
``model-card.schema.json`` beside this module (:data:`SCHEMA`).

A card says what was attacked and how hard (threat model, ε in [0, 1] pixels, in grey levels ε·255
and, for CT, in Hounsfield units of the preset's ``[intensity]`` window, as the report), on what
(dataset, the sha256 of the raw data's source stamp and of each split, rows), with what result (the
headline: clean accuracy and the standard suite's accuracy at the paper's ε and at the matched ε;
then clean and robust accuracy per attack suite and ε, each the mean over the seeds with its 95 %
interval and the rows × seeds behind it, each seed with the shipped file and result it came from:
the same numbers the report shows), and what the model is and cost (architecture, parameter count,
training recipe, epochs, seconds from ``timings.jsonl``, the device it was trained on). Noise-trained
models add their certified L2 accuracy (:mod:`.certified`).

Every ``null`` has a sibling ``<key>_reason`` saying why; every ``file`` is relative to the card's
folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm.pipeline import verdicts as V
from rdm.pipeline.certified import base_clean, summary as certified_summary
from rdm.pipeline.config import PAPER_EPS
from rdm.pipeline.labels import attack_label, eps_values, model_label, same_eps, units_of
from rdm.pipeline.plan import SPLITS, SUBSET, Cell, source_stamp_path, stage_name
from rdm.pipeline.results import Ref, View
from rdm.pipeline.shipped import cells_file, ckpt_key

CARD = "rdm-model-card/2"
SCHEMA = Path(__file__).with_name("model-card.schema.json")
#: the result families a card lists as robust accuracy (the ε sweeps stay in the report)
SUITES = ("transfer", "whitebox", "matched-transfer", "matched")


def _null(d: dict[str, Any], key: str, reason: str) -> None:
    d[key] = None
    d[f"{key}_reason"] = reason


def _eps(eps: float | None, units: dict[str, Any]) -> dict[str, Any]:
    """ε on [0, 1] pixels, in grey levels and (CT) HU, rounded (4 significant digits; HU to 0.1)."""
    v = eps_values(eps, units)
    out: dict[str, Any] = {}
    for k, x in v.items():
        if x is None:
            _null(out, k, "the matched ε is unknown: the baseline's sweep is missing")
        elif k == "eps":
            out[k] = float(f"{x:.4g}")
        elif k == "eps_grey_levels":
            out[k] = round(x, 3)
        else:
            out[k] = round(x, 1)
    return out


def _link(ref: Ref, work: Path) -> dict[str, Any]:
    """Where one seed's number is: the shipped cells file (relative to the card) and the member in it."""
    cell = ref.cell
    member = cell.output if cell is not None else Path(ref.file).relative_to(work).as_posix()
    return {"file": "../" + cells_file(cell.modality, cell.seed) if cell is not None else None,
            "member": member, "index": ref.index}


def _evaluated_on(r: Ref) -> dict[str, Any]:
    """Where rdm-eval ran the cell: its result's ``environment`` (device, device name, torch, precision)."""
    env = r.result.get("environment")
    if isinstance(env, dict) and env.get("device"):
        return {"environment": {k: env.get(k) for k in ("device", "device_name", "torch", "precision")}}
    return {"environment": None, "environment_reason": "the metrics file does not record where it ran"}


def _measure(x: View, cells: list[Cell], work: Path) -> dict[str, Any]:
    """Accuracy and balanced accuracy over the seeds of one cell, each with its 95 % interval."""
    per, first = [], None
    for c in cells:
        r = x.get(c)
        if r is not None and r.metric("accuracy") is not None:
            first = first or r
            per.append({"seed": c.seed, "accuracy": r.metric("accuracy"),
                        "balanced_accuracy": r.metric("balanced_accuracy"), "rows": r.n, **_link(r, work),
                        **_evaluated_on(r)})
    out: dict[str, Any] = {}
    if not per:
        for k in ("accuracy", "balanced_accuracy", "rows"):
            _null(out, k, "metrics file missing")
        out["seeds"] = []
        return out
    rows = V.rows_of(x, first)
    for k in ("accuracy", "balanced_accuracy"):
        vals = [p[k] for p in per if p[k] is not None]
        if not vals:
            _null(out, k, f"the metrics file has no {k}")
            continue
        out[k] = sum(vals) / len(vals)
        if rows is None:
            _null(out, f"{k}_ci95", "no per-row results to compute an interval")
        else:
            part = V.value_part(rows, k, first)
            if part.lo is None:
                _null(out, f"{k}_ci95", "too few rows of a class for an interval")
            else:
                out[k] = part.value
                out[f"{k}_ci95"] = [round(part.lo, 4), round(part.hi, 4)]
    out.update(rows=per[0]["rows"], seeds=[p["seed"] for p in per], per_seed=per)
    return out


def _eps_of(x: View, c: Cell) -> float | None:
    if c.eps is not None:
        return c.eps
    return (x.matched or {}).get(c.eps_from) if c.eps_from else None


def _dataset(x: View) -> dict[str, Any]:
    spec = x.plan.modalities[x.m]
    f = x.facts
    demo = x.plan.mode == "demo"
    d: dict[str, Any] = {"name": "synthetic phantoms (rdm-prep synthetic)" if demo else spec.get("source"),
                         "preset": spec.get("preset"), "split_seed": x.plan.seeds[0], "rows": {}, "sets_sha256": {}}
    if f.get("source_sha256"):
        d["sha256"] = f["source_sha256"]
        d["sha256_of"] = f"{source_stamp_path(x.m)} (sha256 of every raw file)"
    else:
        _null(d, "sha256", "the run's source stamp is missing")
    for split in (*SPLITS, SUBSET):
        s = (f.get("sets") or {}).get(split)
        if s and "problem" not in s:
            d["rows"][split] = s["n"]
            d.setdefault("classes", list(s["classes"]))
            d["sets_sha256"][split] = s["sha256"]
    return d


def _first_meta(x: View, model: str) -> dict[str, Any] | None:
    ck = x.facts.get("checkpoints") or {}
    for seed in x.plan.seeds:
        meta = ck.get(ckpt_key(model, seed))
        if meta is not None and "problem" not in meta:
            return meta
    return None


def _architecture(x: View, model: str) -> dict[str, Any]:
    meta = _first_meta(x, model)
    out: dict[str, Any] = {}
    arch = (meta or {}).get("arch")
    if isinstance(arch, dict):
        out.update(name=arch.get("name"), args=arch.get("args") or {})
    else:
        _null(out, "name", "no checkpoint of this model in the run" if meta is None else "its checkpoint records no architecture")
    if (meta or {}).get("parameters") is not None:
        out["parameters"] = int(meta["parameters"])
    else:
        _null(out, "parameters", "no checkpoint of this model in the run" if meta is None else
              "this version cannot rebuild its architecture")
    return out


def _training(x: View, model: str, stages: dict[str, float]) -> dict[str, Any]:
    from rdm.pipeline.records import device_of

    spec = x.plan.models.get(model)
    t: dict[str, Any] = {"grid_recipe": spec.recipe if spec else None, "settings": dict(spec.options) if spec else {},
                         "cost_s": {}}
    if spec is None:
        t["grid_recipe_reason"] = "not a model of the grid's [models]"
    for seed in x.plan.seeds:
        sec = stages.get(stage_name(x.m, model, seed))
        if sec is not None:
            t["cost_s"][str(seed)] = sec
    if t["cost_s"]:
        t["cost_s_total"] = sum(t["cost_s"].values())
    else:
        _null(t, "cost_s_total", "timings.jsonl has no training stage of this model")
    meta = _first_meta(x, model)
    if meta is None:
        for k in ("recipe", "epochs_run", "device"):
            _null(t, k, "no checkpoint of this model in the run")
        return t
    if meta.get("kind") is not None:
        t["kind"] = meta["kind"]
    for k in ("recipe", "epochs_run"):
        if meta.get(k) is not None:
            t[k] = meta[k]
        else:
            _null(t, k, f"its checkpoint records no {k}")
    rec = meta.get("recipe") if isinstance(meta.get("recipe"), dict) else {}
    if rec.get("epochs") is not None:
        t["epochs_max"] = rec["epochs"]
    devs = {s: device_of(m) for s in x.plan.seeds
            for m in [(x.facts.get("checkpoints") or {}).get(ckpt_key(model, s))] if m and "problem" not in m}
    known = sorted({d for d in devs.values() if d})
    if known:
        t["device"] = known[0] if len(known) == 1 else known
        t["environment"] = meta.get("environment")
    else:
        _null(t, "device", "the checkpoint does not record where it was trained")
    return t


def _headline(x: View, model: str, clean: dict[str, Any], robust: list[dict[str, Any]]) -> dict[str, Any]:
    h: dict[str, Any] = {}
    if clean.get("accuracy") is not None:
        h["clean_acc"] = clean["accuracy"]
    else:
        _null(h, "clean_acc", clean.get("accuracy_reason", "metrics file missing"))
    aa = [r for r in robust if r["kind"] == "aa" and r["protocol"] == "white-box"]
    paper = [r for r in aa if not r["matched_eps"] and same_eps(r["eps"].get("eps"), PAPER_EPS)]
    matched = [r for r in aa if r["matched_eps"]]
    for key, got, none in (("aa_acc", paper, f"the grid runs no standard suite (aa) at the paper's ε {PAPER_EPS}"),
                           ("aa_acc_matched_eps", matched, "the grid runs no standard suite (aa) at the matched ε")):
        if got and got[0].get("accuracy") is not None:
            h[key] = got[0]["accuracy"]
            h[f"{key}_eps"] = got[0]["eps"]
        else:
            _null(h, key, "its metrics file is missing" if got else none)
    h["paper_eps"] = PAPER_EPS
    return h


def card(x: View, work: Path, model: str, stages: dict[str, float]) -> dict[str, Any]:
    """The card of one model of one modality."""
    work = Path(work)
    if not x.facts:
        from rdm.pipeline.shipped import collect_modality

        x.facts = collect_modality(x.plan, work, x.m)
    clean_cell = x.p.clean(model) or base_clean(x, model)
    units = units_of(x.plan.modalities[x.m]["preset"])
    robust = []
    for c in x.p.cells:
        if c.model != model or c.seed != x.plan.seeds[0] or c.family not in SUITES:
            continue
        eps = _eps_of(x, c)
        robust.append({"suite": c.attack.name, "kind": c.attack.kind, "attack": attack_label(c.attack, eps), "protocol": c.protocol,
                       "matched_eps": c.eps_from is not None, "on": c.rows, "eps": _eps(eps, units),
                       **_measure(x, x.p.seeds_of(c), work)})
    eps_all = sorted({r["eps"]["eps"] for r in robust if r["eps"].get("eps") is not None})
    threat = [{"norm": "Linf", "eps": [_eps(e, units) for e in eps_all],
               **({"intensity": {"unit": units["unit"], "window": units["window"]}} if units.get("unit") else {})}]
    cert = certified_summary(x).get(model)
    if cert is not None:
        threat.append({"norm": "L2", "certified": True, "radii": sorted(float(r) for r in cert["certified_accuracy"])})
        cert = {k: v for k, v in cert.items() if k != "file"}
    clean = {"on": clean_cell.rows if clean_cell else None,
             **(_measure(x, x.p.seeds_of(clean_cell), work) if clean_cell else
                {"accuracy": None, "accuracy_reason": "the grid evaluates no clean cell of this model", "seeds": []})}
    if clean["on"] is None:
        clean["on_reason"] = "the grid evaluates no clean cell of this model"
    # the seeds behind the card's numbers (a partial grid can have fewer than the plan's)
    seeds = sorted({s for r in (clean, *robust) for s in r.get("seeds", ())})
    out = {"card": CARD, "modality": x.m, "model": model, "label": model_label(model),
           "headline": _headline(x, model, clean, robust), "architecture": _architecture(x, model),
           "dataset": _dataset(x), "seeds": seeds, "seeds_planned": list(x.plan.seeds), "threat_model": threat,
           "clean": clean, "robust": robust, "training": _training(x, model, stages)}
    if cert is not None:
        out["certified"] = cert
    return _reasons(out)


def _reasons(obj: Any, reason: str = "not recorded by the run") -> Any:
    """Every ``null`` with a sibling ``<key>_reason`` (the specific reason where one was given)."""
    if isinstance(obj, dict):
        for k in list(obj):
            v = obj[k]
            if v is None and not k.endswith("_reason") and f"{k}_reason" not in obj:
                obj[f"{k}_reason"] = reason
            elif v is not None:
                _reasons(v, reason)
    elif isinstance(obj, list):
        for v in obj:
            _reasons(v, reason)
    return obj


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
