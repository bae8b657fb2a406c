"""The whole run's cost estimate, per stage (``python -m rdm.pipeline.plan --cost``): every step the
report needs, in hours of one CPU core at the grid's throughput (:mod:`rdm.pipeline.cost`).

* training: ``epochs × (train rows × passes per row + validation rows × a forward)``, where a training
  pass counts ``train_pass`` attack passes (the optimiser step, augmentation and batch norm) and the
  recipe adds its attack's passes per row (on-line PGD: its steps; TRADES: steps + 1; fast AT: 1; the
  paper's recipe and the DCAE: one pass per adversarial set); the epochs are ``train_epochs`` (the
  measured median of the real runs' early stopping), a DCAE's the cap (they run to it);
* crafting a set: the attack's passes × rows × ε;
* an evaluation: a white-box job by :meth:`rdm.pipeline.plan.ModalityPlan.hours_of` (the standard suite
  every row through every stage: its upper bound), a clean or transfer job a forward per row and set;
* a certificate: its noise samples; prep, the subset and matched.json: nothing.

The wall time on ``jobs`` cores is at least the total over ``jobs``; the report of a run gives the
measured one (``timings.jsonl``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from rdm.pipeline.cost import forward, passes
from rdm.pipeline.plan import SUBSET, Plan, Step, parse_path, parse_stage

ONLINE_EXTRA = {"pgd": lambda o: int(o.get("steps", 10)), "trades": lambda o: int(o.get("steps", 10)) + 1,
                "fast": lambda o: 1, "gaussian": lambda o: 0}


def train_hours(plan: Plan, m: str, name: str, n_adv: int) -> float:
    """One training of model ``name`` in modality ``m`` (``n_adv``: its adversarial training sets)."""
    ms, c = plan.models[name], plan.cost
    if ms.recipe == "purify":
        return 0.0
    cap = int(ms.get("epochs", plan.training.get("epochs", c.train_epochs)))
    epochs = cap if ms.recipe == "pretrain-dcae" else min(cap, c.train_epochs)
    per_row = c.train_pass
    if ms.recipe in ("pretrain-dcae", "advtrain", "finetune"):
        per_row *= 1 + n_adv
    elif ms.recipe.startswith("advtrain-"):
        kind = ms.recipe.split("-", 1)[1]
        per_row += ONLINE_EXTRA.get("pgd" if kind == "online" else kind, lambda o: 1)(ms.options)
    rows = c.rows_of(m, "train") * per_row + c.rows_of(m, "val") * forward()
    return c.hours(epochs * rows, m)


def craft_hours(plan: Plan, m: str, step: Step) -> float:
    """Crafting ``step``'s sets: the attack's passes × the clean set's rows, once per output (ε)."""
    what = re.sub(r"^attack-", "", parse_stage(step.stage, plan.models)[2])
    if what.startswith("sweep-"):
        attack = plan.sweep_attacks[what[len("sweep-"):]]
    elif what.startswith("matched-"):
        attack = plan.matched_attacks[what.split("-")[1]]
    else:
        split, name = what.split("-", 1)
        attack = next(a for a in plan.attacks if a.name == name)
    split = next(parse_path(i)[1]["split"] for i in step.inputs if parse_path(i)[0] == "set")
    p = passes(attack, plan.modality(m).classes) or 0.0
    return plan.cost.hours((p + forward()) * plan.cost.rows_of(m, split) * len(step.outputs), m)


def eval_hours(plan: Plan, m: str, step: Step) -> float:
    mp = plan.modality(m)
    h = sum(mp.hours_of(o) for o in step.outputs)
    if h:
        return h
    rows = 0
    for i in step.inputs:
        kind, d = parse_path(i)
        if kind in ("set", "adv", "matched-set"):
            rows += plan.cost.rows_of(m, d.get("split", "test"))
    return plan.cost.hours(rows * forward(), m)


def step_hours(plan: Plan, step: Step) -> float:
    m = step.modality
    if step.kind == "train":
        ms = plan.models[parse_stage(step.stage, plan.models)[2]]
        n_adv = sum(1 for i in step.inputs if parse_path(i)[0] in ("adv", "matched-set"))
        return train_hours(plan, m, ms.name, n_adv)
    if step.kind == "attack":
        return craft_hours(plan, m, step)
    if step.kind in ("eval", "certify"):
        return eval_hours(plan, m, step)
    return 0.0


def stage_table(plan: Plan, steps: list[Step]) -> dict[str, Any]:
    """``{"stages": [(modality, kind, stage, steps, hours)], "kinds": {(m, kind): hours}, "total": h}``:
    the estimate of ``steps`` summed per stage (an evaluation per model, the seeds together)."""
    stages: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for s in steps:
        m, kind, detail = parse_stage(s.stage, plan.models)
        stages[(m, kind, detail)].append(step_hours(plan, s))
    kinds: dict[tuple[str, str], float] = defaultdict(float)
    for (m, kind, _), hs in stages.items():
        kinds[(m, kind)] += sum(hs)
    return {"stages": [(m, k, d, len(hs), sum(hs)) for (m, k, d), hs in stages.items()], "kinds": dict(kinds),
            "total": sum(kinds.values())}


def stage_lines(plan: Plan, jobs: int = 2, work: str | Path | None = None) -> list[str]:
    """The per-stage estimate of the steps the report needs, as lines (``--cost``); ``work``: a run's
    output folder, whose finished steps (every output there) the last line leaves out."""
    from rdm.pipeline.render import needed_steps

    steps = needed_steps(plan)
    t = stage_table(plan, steps)
    c = plan.cost
    cells = sum(1 for _ in plan.cells())
    out = [f"# tier {plan.tier.name}, {len(plan.seeds)} seed(s), {', '.join(plan.run)}: {len(steps)} steps, "
           f"{cells} cells; hours of one CPU core at {', '.join(f'{m} {c.throughput_of(m):g}' for m in plan.run)} "
           f"passes/s (training: {c.train_epochs} epochs, a DCAE its cap; a training pass = {c.train_pass:g} "
           "attack passes; the standard suite every row through Square: an upper bound)",
           "modality\tkind\tstage\tsteps\thours"]
    for m, k, d, n, h in t["stages"]:
        out.append(f"{m}\t{k}\t{d}\t{n}\t{h:.3g}")
    out += ["", "modality\tkind\thours"]
    for (m, k), h in t["kinds"].items():
        out.append(f"{m}\t{k}\t{h:.3g}")
    by_m: dict[str, float] = defaultdict(float)
    for (m, _), h in t["kinds"].items():
        by_m[m] += h
    out += [f"{m}\ttotal\t{h:.3g}" for m, h in by_m.items()]
    out.append(f"all\ttotal\t{t['total']:.3g}\t(≥ {t['total'] / jobs:.3g} h wall on {jobs} cores)")
    if work is not None:
        left = [s for s in steps if not all((Path(work) / o).exists() for o in s.outputs)]
        h = stage_table(plan, left)["total"]
        out.append(f"all\tto run\t{h:.3g}\t(≥ {h / jobs:.3g} h wall on {jobs} cores; {len(left)} of {len(steps)} "
                   f"steps not finished under {work})")
    return out
