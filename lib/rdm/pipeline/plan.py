"""The experiment plan: ``experiments/grid.toml`` → typed steps and cells.

This module is THE one place that knows an output path or a cell name. Everything else asks it:
:mod:`rdm.pipeline.render` turns its steps into Makefile rules, a bash script and Slurm levels;
:mod:`rdm.pipeline.results` finds a cell's numbers from the cell object; the tables, claims and
figures walk its cells. Rename a file here and make, Slurm and the report all follow.

Two kinds of object:

* :class:`Step` — one command of the graph (a set prepared, a model trained, an adversarial set
  crafted, an ``rdm-eval`` run): the files it reads, the files it writes, its command as typed
  words (rendered to make or bash syntax by :mod:`rdm.pipeline.render`) and its stage name (the
  key of ``timings.jsonl``).
* :class:`Cell` — one number the report can show: modality, model, protocol, attack, ε, rows (the
  whole test set or the seeded subset), seed, its inputs, its output (the metrics file) and which
  result of that file it is, and its label.

Seeds: a run has one or more seeds (``Plan(seed=S, seeds=K)``: S, S+1, …, S+K−1). The split and the
seeded subset belong to the base seed S and are shared (the rows every seed is tested on are the
same, so cells pair row by row across models and seeds); every trained model, crafted set and
evaluation is repeated per seed under ``<m>/s<seed>/``. The transfer sets of seed s are crafted on
seed s's baseline. A model's ``seed_offset`` (the seed-control baseline: 1000) shifts its training
seed only.

Layout under ``$(OUT)`` (one function per path below, each with its inverse, :func:`parse_path`)::

    <m>/source.sha256                           content hash of the raw data (tables mode)
    <m>/train.h5 val.h5 test.h5                 rdm-prep (split of the base seed)
    <m>/subset-n  <m>/test-sub.h5               the SUBSET_N the subset was made with; the seeded subset
    <m>/s<seed>/models/<model>.ckpt             the training commands
    <m>/s<seed>/adv/<split>-<attack>-<eps>.h5   crafted on that seed's baseline (transfer protocol)
    <m>/s<seed>/adv/test-sweep-<fgsm|pgd>-<eps>.h5   the ε sweep's transfer sets
    <m>/s<seed>/adv/test-matched-<fgsm|pgd>.h5  at the matched ε
    <m>/s<seed>/matched.json                    ε where that baseline falls to the paper's accuracy
    <m>/s<seed>/metrics/<model>/<job>.json      one rdm-eval run (several cells)
    <m>/s<seed>/certify/<model>.json            rdm-certify of a noise-trained model ([certify], first seed)

``python -m rdm.pipeline.plan --list`` prints every cell with its output.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from rdm.errors import RdmError
from rdm.pipeline import commands as C
from rdm.pipeline.config import MODES, TIERS, Attack, Grid, ModelSpec, is_matched
from rdm.pipeline.cost import forward, passes
from rdm.pipeline.labels import fmt_eps, model_label, same_eps, short_attack

SPLITS = ("train", "val", "test")
SUBSET = "test-sub"


# =========================================================================== paths (relative to OUT)
# THE naming of every file the graph writes. Each path function below fills one template, and
# parse_path reads any path back through the same templates: rename a file here and make, the
# Slurm levels, the bash script and the report all follow.
PATHS = {
    "source-stamp": "{m}/source.sha256",
    "subset-stamp": "{m}/subset-n",
    "set": "{m}/{split}.h5",
    "audit": "{m}/audit.json",
    "model": "{m}/s{seed}/models/{model}.ckpt",
    "matched-set": "{m}/s{seed}/adv/{split}-matched-{kind}.h5",
    "adv": "{m}/s{seed}/adv/{split}-{attack}-{eps}.h5",
    "matched": "{m}/s{seed}/matched.json",
    "metrics": "{m}/s{seed}/metrics/{model}/{job}.json",
    "certificate": "{m}/s{seed}/certify/{model}.json",
}
_FIELD = {"split": r"train|val|test|test-sub", "eps": r"[0-9][0-9.e+-]*|\{eps\}", "seed": r"[0-9]+",
          "m": r"[^/]+"}


def modality_dir(m: str) -> str:
    return m


def set_path(m: str, split: str) -> str:
    """``lung/test.h5``; ``split`` is train, val, test or test-sub (the seeded subset)."""
    return PATHS["set"].format(m=m, split=split)


def audit_path(m: str) -> str:
    """``lung/audit.json``: rdm-prep --audit's near-duplicates and shortcut baselines of the split."""
    return PATHS["audit"].format(m=m)


def source_stamp_path(m: str) -> str:
    return PATHS["source-stamp"].format(m=m)


def subset_stamp_path(m: str) -> str:
    return PATHS["subset-stamp"].format(m=m)


def model_path(m: str, model: str, seed: int) -> str:
    return PATHS["model"].format(m=m, seed=seed, model=model)


def adv_path(m: str, split: str, attack: str, eps: float | str, seed: int) -> str:
    """An adversarial set crafted on seed ``seed``'s baseline; ``eps`` may be the pattern ``{eps}``."""
    return PATHS["adv"].format(m=m, seed=seed, split=split, attack=attack,
                               eps=eps if isinstance(eps, str) else fmt_eps(eps))


def sweep_set_path(m: str, kind: str, eps: float | str, seed: int) -> str:
    return adv_path(m, "test", f"sweep-{kind}", eps, seed)


def matched_set_path(m: str, kind: str, seed: int, split: str = "test") -> str:
    """A set crafted on seed ``seed``'s baseline at its matched ε (``kind``: fgsm, pgd); ``split`` test
    (the transfer protocol) or train (the training sets of a model trained at the matched ε)."""
    return PATHS["matched-set"].format(m=m, seed=seed, kind=kind, split=split)


def matched_path(m: str, seed: int) -> str:
    return PATHS["matched"].format(m=m, seed=seed)


def metrics_path(m: str, model: str, job: str, seed: int) -> str:
    return PATHS["metrics"].format(m=m, seed=seed, model=model, job=job)


def certificate_path(m: str, model: str, seed: int) -> str:
    return PATHS["certificate"].format(m=m, seed=seed, model=model)


def sweep_job(kind: str) -> str:
    """The metrics job of a white-box ε sweep (``sweep-wb-fgsm``)."""
    return f"sweep-wb-{kind}"


def parse_path(path: str) -> tuple[str, dict[str, Any]]:
    """The inverse of the path functions: ``('adv', {m, split, attack, eps})`` for
    ``lung/adv/test-fgsm-0.005.h5``; RdmError for a path the plan does not make."""
    for kind, template in PATHS.items():
        rx = re.escape(template)
        for name in re.findall(r"\{(\w+)\}", template):
            rx = rx.replace(re.escape("{" + name + "}"), f"(?P<{name}>{_FIELD.get(name, '[^/]+?')})", 1)
        hit = re.fullmatch(rx, str(path))
        if hit:
            d: dict[str, Any] = dict(hit.groupdict())
            if d.get("eps") not in (None, "{eps}"):
                d["eps"] = float(d["eps"])
            if "seed" in d:
                d["seed"] = int(d["seed"])
            return kind, d
    raise RdmError(f"{path}: not a path of the experiment plan")


def stage_name(m: str, what: str, seed: int | None = None) -> str:
    """The key of a step in ``timings.jsonl``: ``lung/prep`` (shared by the seeds),
    ``lung/s0/attack-test-fgsm``, ``lung/s1/eval-rdmaa-clean`` (one seed's)."""
    return f"{m}/{what}" if seed is None else f"{m}/s{seed}/{what}"


def parse_stage(stage: str, models: Iterable[str]) -> tuple[str, str, str]:
    """The inverse of :func:`stage_name`: ``(modality, kind, detail)`` where kind is prep, train,
    attack, eval, other or (no modality) the stage itself, and detail names the stage with an
    evaluation summed per model (``eval-rdmaa``) and the seeds summed together."""
    if "/" not in stage:
        return "", stage, stage
    m, s = stage.split("/", 1)
    s = re.sub(r"^s[0-9]+/", "", s)
    if s.startswith("eval-"):
        body = s[5:]
        detail = "eval-" + next((n for n in sorted(models, key=len, reverse=True) if body.startswith(n + "-")), body)
        return m, "eval", detail
    if s in ("prep", "subset"):
        return m, "prep", s
    if s.startswith("attack-"):
        return m, "attack", s
    return m, ("train" if s in models else "other"), s


# =========================================================================== steps and cells
@dataclass
class Step:
    """One command of the graph: what it reads and writes (paths relative to ``$(OUT)``)."""

    modality: str
    stage: str
    kind: str                      # prep, subset, attack, train, matched, eval, certify
    outputs: list[str]
    inputs: list[str]
    command: list[C.Word]
    seed: int | None = None        # None: shared by the run's seeds (prep, subset)


@dataclass(frozen=True)
class Pick:
    """Which result of a metrics file a cell is: ``("set", "test-fgsm-0.005.h5")`` the result of
    that set; ``("eps", 0.005)`` the on-the-fly attack at that ε; ``("clean", None)`` the clean
    result; ``("attacked", None)`` the one white-box attack of the file."""

    by: str
    value: Any = None


@dataclass(frozen=True)
class Cell:
    """One number-bearing result: what was evaluated, how, on which rows, with which seed, and where
    it is."""

    modality: str
    model: str
    family: str            # clean, transfer, whitebox, sweep, sweep-transfer, matched, certified, certify-clean
    protocol: str          # clean, transfer, white-box, certified
    attack: Attack | None
    eps: float | None      # None: clean, or the matched ε (known once the sweep ran)
    rows: str              # test (the whole test set) or test-sub (the seeded subset)
    output: str            # the metrics file (relative to OUT)
    pick: Pick
    inputs: tuple[str, ...] = ()
    seed: int = 0          # the run's seed the model, its transfer sets and the attack belong to
    eps_from: str | None = None  # the matched ε: the key of matched.json it is read from (fgsm, pgd)

    @property
    def key(self) -> tuple:
        """What the cell measures, whatever the seed: equal for the same cell of two seeds."""
        return (self.modality, self.model, self.family, self.protocol, self.attack.name if self.attack else None,
                self.eps, self.rows, self.pick, self.eps_from)

    @property
    def label(self) -> str:
        what = "clean" if self.attack is None else self.attack.label(self.eps)
        rows = "seeded subset" if self.rows == SUBSET else "whole test set"
        return f"{self.modality} / {model_label(self.model)} / {self.protocol} / {what} / {rows}"


#: the cell families whose job runs an attack on the evaluated model (the cost estimate's)
ATTACKED_FAMILIES = ("whitebox", "steps", "sweep", "matched", "matched-steps")
#: the evaluation jobs of a control model (an undefended network judged only under transfer)
CONTROL_JOBS = ("clean", "transfer", "sweep-transfer", "matched-transfer")


@dataclass
class SeedContext:
    """One seed of a modality's plan: the seed, its place in the run (0: first), the shared sets, the
    seed's baseline and matched.json."""

    seed: int
    index: int
    train: str
    val: str
    test: str
    sub: str
    base: str
    matched: str
    sweep: dict[str, list[str]]      # the ε sweep's transfer sets of this seed, per kind (fgsm, pgd)


class EvalBuilder:
    """The evaluation jobs and cells of one model for one seed (:meth:`build`); which jobs run: a control
    its :data:`CONTROL_JOBS`, an ablation :meth:`ModalityPlan.ablation_jobs`, and only the jobs of the
    plan's tier (the baseline's white-box sweep always: the matched ε is read off it)."""

    def __init__(self, mp: "ModalityPlan", ctx: SeedContext, model: str):
        self.mp, self.p, self.ctx, self.model = mp, mp.plan, ctx, model
        p = self.p
        self.wanted = CONTROL_JOBS if model in p.controls else mp.ablation_jobs() if model in p.ablations else None
        self.adv_proto = "white-box" if model == "baseline" else "transfer"   # the transfer sets are crafted on it
        self.sw, self.sw_rows = (ctx.sub, SUBSET) if p.sweep_on_subset else (ctx.test, "test")

    def runs(self, name: str) -> bool:
        if self.model == "baseline" and name in (sweep_job("fgsm"), sweep_job("pgd")):
            return True
        base = re.sub(r"-apgd$", "", name)
        return (self.wanted is None or base in self.wanted) and self.p.tier.runs(base)

    def job(self, name: str, sets: list[str], attack: Attack | None = None, eps=(), deps=()) -> str:
        return self.mp._job(self.model, self.ctx.seed, name, sets, attack, eps, deps)

    def cell(self, family, protocol, attack, eps, rows, o, pick, inputs, eps_from=None) -> None:
        self.mp._cell(self.model, self.ctx.seed, family, protocol, attack, eps, rows, o, pick, inputs, eps_from)

    def build(self) -> None:
        self.clean_and_transfer()
        self.whitebox()
        self.steps_curves()
        self.sweeps()
        self.matched()

    def clean_and_transfer(self) -> None:
        ctx, m = self.ctx, self.mp.m
        if self.runs("clean"):
            o = self.job("clean", [ctx.test])
            self.cell("clean", "clean", None, None, "test", o, Pick("clean"), [ctx.test])
        test_adv = [(a, e, adv_path(m, "test", a.name, e, ctx.seed)) for a in self.p.test_attacks
                    for e in a.eps_for("test")]
        if self.runs("transfer"):
            o = self.job("transfer", [s for _, _, s in test_adv])
            for a, e, s in test_adv:
                self.cell("transfer", self.adv_proto, a, e, "test", o, Pick("set", Path(s).name), [s])

    def seed_attack(self, w: Attack) -> tuple[str, Attack]:
        """The job name and attack of white-box attack ``w`` on this seed: the standard suite past its
        ``square_seeds`` is its gradient part, in its own file (``<name>-apgd``), the same cell."""
        wa = w.for_seed(self.ctx.index)
        return ("-apgd" if wa.gradient_only else ""), wa

    def whitebox(self) -> None:
        for w in self.p.whitebox:
            suffix, wa = self.seed_attack(w)
            if not self.runs(f"wb-{w.name}{suffix}"):
                continue
            rows = SUBSET if self.mp.on_subset(w) else "test"
            s = set_path(self.mp.m, rows)
            o = self.job(f"wb-{w.name}{suffix}", [s], wa, w.eps)
            for e in w.eps:
                self.cell("whitebox", "white-box", wa, e, rows, o, Pick("eps", e), [s])

    def steps_curves(self) -> None:
        """The masking check's accuracy against attack steps on the subset, at the grid's ε (``steps``)
        and at the matched PGD ε (``matched-steps``; a defended model's, with the restarts' attacks)."""
        sub = self.ctx.sub
        for w in self.p.steps_curve:
            if self.runs(f"wb-{w.name}"):
                o = self.job(f"wb-{w.name}", [sub], w, w.eps)
                for e in w.eps:
                    self.cell("steps", "white-box", w, e, SUBSET, o, Pick("eps", e), [sub])
        if self.model not in self.p.defended or not self.runs("matched-steps"):
            return
        for w in self.p.matched_curve:
            o = self.job(f"matched-wb-{w.name}", [sub], w, C.read_key(self.ctx.matched, "pgd"), deps=[self.ctx.matched])
            self.cell("matched-steps", "white-box", w, None, SUBSET, o, Pick("attacked"), [sub, self.ctx.matched],
                      eps_from="pgd")

    def sweeps(self) -> None:
        p, ctx = self.p, self.ctx
        for k in ("fgsm", "pgd"):
            if not self.runs(sweep_job(k)):
                continue
            a = p.sweep_attacks[k]
            o = self.job(sweep_job(k), [self.sw], a, p.sweep_eps)
            self.cell(f"sweep-{k}", "clean", None, None, self.sw_rows, o, Pick("clean"), [self.sw])
            for e in p.sweep_eps:
                self.cell("sweep", "white-box", a, e, self.sw_rows, o, Pick("eps", e), [self.sw])
        if self.model != "baseline" and self.runs("sweep-transfer"):  # the baseline's transfer sweep IS its white-box one
            o = self.job("sweep-transfer", ctx.sweep["fgsm"] + ctx.sweep["pgd"])
            for k in ("fgsm", "pgd"):
                for e, s in zip(p.sweep_eps, ctx.sweep[k]):
                    self.cell("sweep-transfer", "transfer", p.sweep_attacks[k], e, "test", o,
                              Pick("set", Path(s).name), [s])

    def matched(self) -> None:
        p, ctx, m = self.p, self.ctx, self.mp.m
        msets = [matched_set_path(m, k, ctx.seed) for k in ("fgsm", "pgd")]
        if self.runs("matched-transfer"):
            o = self.job("matched-transfer", msets)
            for k, s in zip(("fgsm", "pgd"), msets):
                self.cell("matched-transfer", self.adv_proto, p.matched_attacks[k], None, "test", o,
                          Pick("set", Path(s).name), [s], eps_from=k)
        # APGD at the matched ε: PGD's ε, on the seeded subset; the aa suite there on the rows its cost allows
        aa = p.matched_attacks.get("aa")
        aa_rows = [("aa", ctx.sub if self.mp.on_subset(aa, 1) else ctx.test, "pgd")] if aa is not None else []
        apgd_rows = [("apgd", ctx.sub, "pgd")] if "apgd" in p.matched_attacks else []
        for k, s, eps_of in (("fgsm", ctx.test, "fgsm"), ("pgd", self.sw, "pgd"), *apgd_rows, *aa_rows):
            suffix, a = self.seed_attack(p.matched_attacks[k])
            if not self.runs(f"matched-wb-{k}{suffix}"):
                continue
            o = self.job(f"matched-wb-{k}{suffix}", [s], a, C.read_key(ctx.matched, eps_of), deps=[ctx.matched])
            self.cell("matched", "white-box", a, None, SUBSET if s == ctx.sub else "test", o, Pick("attacked"),
                      [s, ctx.matched], eps_from=eps_of)


class CellLookups:
    """A modality's cells found by meaning (None: the grid defines no such cell); the report, claims and
    figures ask these instead of walking the cells (``self.cells``, ``self.seeds``, ``self.plan``, ``self.m``
    come from :class:`ModalityPlan`)."""

    cells: list[Cell]
    plan: "Plan"
    m: str

    @property
    def seeds(self) -> list[int]:
        return self.plan.seeds

    def find(self, model: str, family: str, attack: Attack | str | None = None,
             eps: float | None = None, seed: int | None = None) -> Cell | None:
        """The cell of ``seed`` (default: the run's first seed)."""
        name = attack.name if isinstance(attack, Attack) else attack
        seed = self.seeds[0] if seed is None else seed
        for c in self.cells:
            if c.seed == seed and c.model == model and c.family == family \
                    and (name is None or (c.attack and c.attack.name == name)) and (eps is None or same_eps(c.eps, eps)):
                return c
        return None

    def seeds_of(self, cell: Cell | None) -> list[Cell]:
        """The same cell for every seed of the run, in seed order ([] for None)."""
        if cell is None:
            return []
        key = cell.key
        return sorted((c for c in self.cells if c.key == key), key=lambda c: c.seed)

    def clean(self, model: str) -> Cell | None:
        return self.find(model, "clean")

    def transfer(self, model: str, attack: Attack, eps: float) -> Cell | None:
        return self.find(model, "transfer", attack, eps)

    def whitebox(self, model: str, attack: Attack, eps: float) -> Cell | None:
        return self.find(model, "whitebox", attack, eps)

    def sweep(self, model: str, kind: str, eps: float) -> Cell | None:
        return self.find(model, "sweep", self.plan.sweep_attacks[kind], eps)

    def sweep_clean(self, model: str, kind: str) -> Cell | None:
        """No attack, on the rows the white-box sweep ran on (the subset when ``sweep_on_subset``)."""
        return self.find(model, f"sweep-{kind}") if self.plan.sweep_on_subset else self.clean(model)

    def sweep_transfer(self, model: str, kind: str, eps: float) -> Cell | None:
        return self.find(model, "sweep-transfer", self.plan.sweep_attacks[kind], eps)

    def matched(self, model: str, kind: str, protocol: str) -> Cell | None:
        """At the matched ε: ``kind`` fgsm/pgd (transfer or white-box) or apgd (white-box)."""
        fam = "matched-transfer" if protocol == "transfer" else "matched"
        a = self.plan.matched_attacks.get(kind)
        return None if a is None else self.find(model, fam, a)

    def steps_curve(self, model: str) -> list[tuple[int, Cell]]:
        """The grid's ``steps_curve`` cells of ``model``: ``[(steps, cell)]`` in step order."""
        return [(int(w.steps), c) for w in self.plan.steps_curve
                for c in [self.find(model, "steps", w)] if c is not None]

    def matched_curve(self, model: str) -> list[tuple[int, int, Cell]]:
        """The steps and restarts curve of ``model`` at the matched PGD ε: ``[(steps, restarts, cell)]``
        (the full tier's; [] where the plan has none)."""
        return [(int(w.steps), w.restarts, c) for w in self.plan.matched_curve
                for c in [self.find(model, "matched-steps", w)] if c is not None]

    def whitebox_of(self, model: str, a: Attack, eps: float) -> Cell | None:
        """The white-box cell of transfer attack ``a`` at ε: FGSM from the white-box sweep, any other
        from its white-box twin (:meth:`Plan.whitebox_twin`); None when the grid runs no such cell."""
        if a.kind == "fgsm":
            return self.sweep(model, "fgsm", eps)
        w = self.plan.whitebox_twin(a)
        return None if w is None else self.whitebox(model, w, eps)

    def certified(self, model: str) -> Cell | None:
        """The certificate of a noise-trained model (``[certify]``; first seed only)."""
        return self.find(model, "certified")

    def certified_clean(self, model: str) -> Cell | None:
        """A noise-trained model's (base network's) clean result on the rows it was certified on."""
        return self.find(model, "certify-clean")

    def certified_cleans(self, model: str) -> list[Cell]:
        """Every cell that holds that clean result (one per subset white-box file), first seed."""
        return [c for c in self.cells if c.seed == self.seeds[0] and c.model == model and c.family == "certify-clean"]

    def transfer_set(self, attack: Attack, eps: float, seed: int | None = None) -> str:
        return adv_path(self.m, "test", attack.name, eps, self.seeds[0] if seed is None else seed)

    def model_file(self, model: str, seed: int | None = None) -> str:
        return model_path(self.m, model, self.seeds[0] if seed is None else seed)


# =========================================================================== the plan
class ModalityPlan(CellLookups):
    """One modality's steps and cells (every seed's), and the lookups the report and figures make
    by meaning."""

    def __init__(self, plan: "Plan", m: str):
        self.plan, self.m = plan, m
        self.steps: list[Step] = []
        self.cells: list[Cell] = []
        self.metrics: list[str] = []           # what `make` builds for this modality (metrics + matched)
        self.crafted: dict[tuple[int, str, str], list[str]] = {}
        self._build()

    # ----- building
    def _add(self, kind: str, what: str, outputs: list[str], inputs: list[str], command: list[C.Word],
             seed: int | None = None) -> Step:
        s = Step(self.m, stage_name(self.m, what, seed), kind, outputs, inputs, command, seed)
        self.steps.append(s)
        return s

    def _build(self) -> None:
        p, m = self.plan, self.m
        train, val, test, sub = (set_path(m, s) for s in (*SPLITS, SUBSET))
        spec = p.modalities[m]
        demo = p.mode == "demo"
        split_seed = p.seeds[0]
        # tables: the content hash of the raw files is the prerequisite, not their mtimes
        self._add("prep", "prep", [train, val, test, audit_path(m)], [] if demo else [source_stamp_path(m)],
                  C.prep(modality_dir(m), spec["preset"], None if demo else spec["source"], split_seed,
                         p.prep[m]))
        self._add("subset", "subset", [sub], [test, subset_stamp_path(m)], C.subset(test, sub, split_seed))
        for seed in p.seeds:
            ctx = SeedContext(seed, p.seeds.index(seed), train, val, test, sub, model_path(m, "baseline", seed),
                              matched_path(m, seed),
                              {k: [sweep_set_path(m, k, e, seed) for e in p.sweep_eps] for k in ("fgsm", "pgd")})
            self._build_crafted(ctx)
            self._build_matched(ctx)
            self._build_models(ctx)
            for model in (*p.eval_models, *p.controls, *p.ablations):
                EvalBuilder(self, ctx, model).build()
            self.metrics.append(ctx.matched)
            if ctx.index == 0:      # randomized smoothing is costly: the first seed only
                self._build_certify(seed, sub, ctx.matched)

    def _build_crafted(self, ctx: "SeedContext") -> None:
        """The adversarial sets crafted on the seed's baseline: the grid's attacks (transfer sets, training
        sets) and the ε sweep's transfer sets."""
        p, m, seed = self.plan, self.m, ctx.seed
        for a in p.attacks:
            for split in a.splits:
                eps = a.eps_for(split)
                outs = [adv_path(m, split, a.name, e, seed) for e in eps]
                self.crafted[(seed, a.name, split)] = outs
                self._add("attack", f"attack-{split}-{a.name}", outs, [ctx.base, set_path(m, split)],
                          C.craft(ctx.base, set_path(m, split), a, eps, adv_path(m, split, a.name, "{eps}", seed),
                                  True, seed), seed)
        for k in ("fgsm", "pgd"):
            self._add("attack", f"attack-sweep-{k}", ctx.sweep[k], [ctx.base, ctx.test],
                      C.craft(ctx.base, ctx.test, p.sweep_attacks[k], p.sweep_eps, sweep_set_path(m, k, "{eps}", seed),
                              True, seed), seed)

    def _build_matched(self, ctx: "SeedContext") -> None:
        """matched.json from the baseline's white-box sweep, and the sets crafted at the matched ε: the
        test split's (transfer) and, for a model trained at it (``adv_eps = ["matched"]``), the train
        split's — FGSM at the FGSM's matched ε, PGD-10 at the PGD's."""
        p, m, seed = self.plan, self.m, ctx.seed
        base_sweeps = [metrics_path(m, "baseline", sweep_job(k), seed) for k in ("fgsm", "pgd")]
        self._add("matched", "matched", [ctx.matched], base_sweeps, C.matched(m, ctx.matched, base_sweeps), seed)
        train_too = any(is_matched(e) for ms in p.models.values() for e in ms.get("adv_eps", []))
        for split, clean in (("test", ctx.test), *((("train", ctx.train),) if train_too else ())):
            for k in ("fgsm", "pgd"):
                o = matched_set_path(m, k, seed, split)
                self._add("attack", f"attack-matched-{k}" + ("" if split == "test" else f"-{split}"), [o],
                          [ctx.base, clean, ctx.matched],
                          C.craft(ctx.base, clean, p.matched_attacks[k], C.read_key(ctx.matched, k), o, False, seed),
                          seed)

    def _build_models(self, ctx: "SeedContext") -> None:
        p, m, seed = self.plan, self.m, ctx.seed
        for ms in p.models.values():
            adv = [a for an in ms.get("adv", []) for a in self._training_sets(an, ms, seed)]
            dcae, cnn = (model_path(m, ms.get(k), seed) if ms.get(k) else None for k in ("dcae", "cnn"))
            try:
                inputs, cmd = C.train(ms.recipe, ms.options, model_path(m, ms.name, seed), ctx.train, ctx.val, adv,
                                      dcae, cnn, seed + int(ms.get("seed_offset", 0)), ctx.matched)
            except RdmError as e:
                raise RdmError(f"{p.path}: model {ms.name}: {e}") from None
            self._add("train", ms.name, [model_path(m, ms.name, seed)], inputs, cmd, seed)

    def _job(self, model: str, seed: int, name: str, sets: list[str], attack: Attack | None = None, eps=(),
             deps=()) -> str:
        """An rdm-eval step of ``model`` (its metrics file, which the report needs)."""
        ck, o = model_path(self.m, model, seed), metrics_path(self.m, model, name, seed)
        self._add("eval", f"eval-{model}-{name}", [o], [ck, *sets, *deps], C.evaluate(ck, sets, o, seed, attack, eps),
                  seed)
        self.metrics.append(o)
        return o

    def _cell(self, model: str, seed: int, family, protocol, attack, eps, rows, o, pick, inputs,
              eps_from=None) -> None:
        self.cells.append(Cell(self.m, model, family, protocol, attack, eps, rows, o, pick,
                               (model_path(self.m, model, seed), *inputs), seed, eps_from))

    def _build_certify(self, seed: int, sub: str, matched: str) -> None:
        """``[certify]``: rdm-certify of each noise-trained model on the seeded subset, its summary with the
        L2 radii of the paper's ε and the matched PGD ε; beside it the white-box attacks that run on the
        subset, on the same model, and its clean accuracy on those rows."""
        p, m = self.plan, self.m
        eps = [*C.eps_flags(p.paper_eps), *C.eps_flags(C.read_key(matched, "pgd"))]
        for model, sigma in p.certify.models:
            ck, o = model_path(m, model, seed), certificate_path(m, model, seed)
            self._add("certify", f"certify-{model}", [o], [ck, sub, matched],
                      C.certify(ck, sub, o, seed, sigma, p.certify, eps), seed)
            self.metrics.append(o)
            self._cell(model, seed, "certified", "certified", None, None, SUBSET, o, Pick("certificate", sigma), [sub])
            for w in (w for w in p.whitebox if self.on_subset(w)):
                o = self._job(model, seed, f"wb-{w.name}", [sub], w, w.eps)
                # every subset white-box file holds the clean result on the certified rows: any one will do
                # (the attack names the file, so that each is its own cell across seeds)
                self._cell(model, seed, "certify-clean", "clean", w, None, SUBSET, o, Pick("clean"), [sub])
                for e in w.eps:
                    self._cell(model, seed, "whitebox", "white-box", w, e, SUBSET, o, Pick("eps", e), [sub])

    # ----- the cost estimate (rdm.pipeline.cost)
    @property
    def classes(self) -> int:
        """The number of classes of this modality's preset (4, the most of the paper's, if unknown)."""
        from rdm.data.presets import load_preset

        try:
            return load_preset(self.plan.modalities[self.m]["preset"]).num_classes
        except (RdmError, KeyError, OSError):
            return 4

    def estimate(self, w: Attack, n_eps: int | None = None, subset: bool = False):
        """The cost estimate of one model's job of white-box attack ``w`` (all its ε, or ``n_eps``)."""
        eps = w.eps if n_eps is None else (0.0,) * n_eps
        return self.plan.cost.estimate(w, eps, self.classes, self.plan.cost.rows(self.m, subset), self.m)

    def hours_of(self, output: str) -> float:
        """The estimated hours of the step that writes ``output`` (a metrics file or a certificate), to
        run a grid cheap-first: a white-box job by the cost estimate, a certificate by its noise samples
        ((n0 + n) forward passes per row of the subset); clean and transfer evaluations (a forward pass
        per row) and anything else count 0."""
        cache = self.__dict__.setdefault("_hours", {})
        if not cache:
            by: dict[str, list[Cell]] = {}
            for c in self.cells:
                if c.family in ATTACKED_FAMILIES and c.attack is not None:
                    by.setdefault(c.output, []).append(c)
            for o, cells in by.items():
                cache[o] = self.estimate(cells[0].attack, len(cells), cells[0].rows == SUBSET).hours or 0.0
            cert, cost = self.plan.certify, self.plan.cost
            for s in self.steps:
                if s.kind == "certify":
                    cache.update({o: (cert.n0 + cert.n) * forward() * cost.rows(self.m, True)
                                  / cost.throughput_of(self.m) / 3600 for o in s.outputs})
        return cache.get(output, 0.0)

    def on_subset(self, w: Attack, n_eps: int | None = None) -> bool:
        """Whether white-box attack ``w`` runs on the seeded subset here: ``limit = true``, or
        ``limit = "auto"`` and its whole-test-set estimate is over the grid's budget."""
        return w.subset or (w.auto_rows and not self.estimate(w, n_eps).fits)

    def ablation_jobs(self) -> tuple[str, ...]:
        """The evaluation jobs of an ablation of RDMAA: clean, transfer, and the white-box twins of the
        transfer attacks (the same attack run against the model itself, on the whole test set)."""
        twins = {self.plan.whitebox_twin(a) for a in self.plan.test_attacks} - {None}
        return ("clean", "transfer", *(f"wb-{w.name}" for w in self.plan.whitebox if w in twins))

    def _training_sets(self, attack_name: str, ms: ModelSpec, seed: int) -> list[str]:
        if (seed, attack_name, "train") not in self.crafted:
            raise RdmError(f"model uses attack '{attack_name}' but the grid crafts no train-split set for it")
        paths = self.crafted[(seed, attack_name, "train")]
        only = ms.get("adv_eps")
        a = next(a for a in self.plan.attacks if a.name == attack_name)
        if only and any(is_matched(e) for e in only):
            # at the matched ε: the train split crafted by the matched-ε attack of the same kind (FGSM; PGD-10)
            if len(only) != 1 or a.kind not in ("fgsm", "pgd"):
                raise RdmError(f"adv_eps = [\"matched\"] stands alone and takes fgsm or pgd attacks, "
                               f"got {list(only)} for attack '{attack_name}' ({a.kind})")
            return [matched_set_path(self.m, a.kind, seed, "train")]
        if only:
            eps_list = a.eps_for("train")
            paths = [pth for pth, e in zip(paths, eps_list) if any(same_eps(e, o) for o in only)]
            if len(paths) != len(only):
                raise RdmError(f"a model asks for {attack_name} train sets at ε {list(only)}, "
                               f"the grid crafts {list(eps_list)}")
        return paths


class Plan(Grid):
    """The grid for one mode, typed (:class:`~rdm.pipeline.config.Grid`), and a
    :class:`ModalityPlan` (its steps and cells) per modality run."""

    def __init__(self, grid: dict[str, Any] | str | Path | None = None, mode: str = "tables",
                 modalities: list[str] | None = None, seed: int = 0, seeds: int = 1, tier: str | None = None):
        super().__init__(grid, mode, tier or "full")
        if int(seeds) < 1 or int(seed) < 0:
            raise RdmError(f"seeds: expected a base seed >= 0 and at least one seed, got seed {seed}, seeds {seeds}")
        self.seed = int(seed)
        self.seeds: list[int] = [self.seed + i for i in range(int(seeds))]
        names = modalities or list(self.tier.modalities or self.modalities)
        for m in names:
            if m not in self.modalities:
                raise RdmError(f"unknown modality '{m}' (grid has {', '.join(self.modalities)})")
        self.run: dict[str, ModalityPlan] = {m: ModalityPlan(self, m) for m in names}

    def modality(self, m: str) -> ModalityPlan:
        return self.run[m]

    def steps(self) -> Iterator[Step]:
        for mp in self.run.values():
            yield from mp.steps

    def cells(self) -> Iterator[Cell]:
        for mp in self.run.values():
            yield from mp.cells


def cheap_first(plan: "Plan", outputs: Iterable[str]) -> list[str]:
    """``outputs`` (relative to OUT) ordered by the estimated hours of the steps that write them,
    cheapest first, ties in the plan's order: an interrupted run (2 CPU cores cannot finish the
    standard suite) has every clean, transfer and cheap white-box cell before the expensive ones."""
    hours = {}
    for mp in plan.run.values():
        for o in [*mp.metrics, *(x for s in mp.steps for x in s.outputs)]:
            hours.setdefault(o, mp.hours_of(o))
    outputs = list(outputs)
    return [o for _, _, o in sorted((hours.get(o, 0.0), i, o) for i, o in enumerate(outputs))]


def producers(steps: list[Step]) -> dict[str, Step]:
    """The step that writes each output of ``steps``."""
    return {t: s for s in steps for t in s.outputs}


def needed_steps(plan: Plan) -> list[Step]:
    """The steps the report's files need (what ``make tables``/``make demo`` would run), in plan order."""
    steps = list(plan.steps())
    by = producers(steps)
    need: set[int] = set()
    todo = [by[t] for mp in plan.run.values() for t in mp.metrics if t in by]
    while todo:
        s = todo.pop()
        if id(s) not in need:
            need.add(id(s))
            todo += [by[d] for d in s.inputs if d in by]
    return [s for s in steps if id(s) in need]


# =========================================================================== --cost
def cost_lines(plan: Plan) -> list[str]:
    """The cost estimate of every white-box job, one line each (``--cost``): one model's job and all
    evaluated models'; a ``limit = "auto"`` job says why it runs on the rows it does."""
    c = plan.cost
    thr = ", ".join(f"{m} {c.throughput_of(m):g}" for m in plan.run)
    out = [f"# forward+backward passes of one row (a forward alone counts {forward():g}) × rows at {thr} "
           f"passes/s; limit = \"auto\" runs on the whole test set when one model's job fits {c.budget_hours:g} h "
           "(every row through every stage: an upper bound on the passes; the hours also scale with the "
           "throughput, one machine's under one load — the real brain aa job took 1.2× its estimate under a "
           "heavier load than the one measured)",
           f"modality\tjob\tattack\tε\tpasses/row\trows\th/model\th/all models × {len(plan.seeds)} seeds\trows run"]
    k = len(plan.eval_models) * len(plan.seeds)
    for m, mp in plan.run.items():
        jobs: dict[str, list[Cell]] = {}
        for cell in mp.cells:
            if cell.model == plan.eval_models[0] and cell.seed == plan.seeds[0] and \
                    cell.family in ATTACKED_FAMILIES:
                jobs.setdefault(cell.output, []).append(cell)
        for o, cells in jobs.items():
            w, sub = cells[0].attack, cells[0].rows == SUBSET
            est, whole = mp.estimate(w, len(cells), sub), mp.estimate(w, len(cells), False)
            rows = "subset" if sub else "test"
            if w.auto_rows and whole.hours is not None:
                rows += f" (auto: whole test set {whole.hours:.3g} h {'>' if sub else '≤'} {c.budget_hours:g} h)"
            num = (lambda v, f: "?" if v is None else format(v, f))
            out.append("\t".join([m, Path(o).stem, short_attack(w), str(len(cells)), num(est.passes, ".0f"),
                                  str(est.rows), num(est.hours, ".3g"),
                                  num(None if est.hours is None else est.hours * k, ".3g"), rows]))
    return out


# --------------------------------------------------------------------------- --cost per stage
# The whole run's cost estimate, per stage (``--cost``, after :func:`cost_lines`): every step the
# report needs, in hours of one CPU core at the grid's throughput (:mod:`rdm.pipeline.cost`).
#
# * training: ``epochs × (train rows × passes per row + validation rows × a forward)``, where a training
#   pass counts ``train_pass`` attack passes (the optimiser step, augmentation and batch norm) and the
#   recipe adds its attack's passes per row (on-line PGD: its steps; TRADES: steps + 1; fast AT: 1; the
#   paper's recipe and the DCAE: one pass per adversarial set); the epochs are ``train_epochs`` (the
#   measured median of the real runs' early stopping), a DCAE's the cap (they run to it);
# * crafting a set: the attack's passes × rows × ε;
# * an evaluation: a white-box job by :meth:`ModalityPlan.hours_of` (the standard suite
#   every row through every stage: its upper bound), a clean or transfer job a forward per row and set;
# * a certificate: its noise samples; prep, the subset and matched.json: nothing.
#
# The wall time on ``jobs`` cores is at least the total over ``jobs``; the report of a run gives the
# measured one (``timings.jsonl``).
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


# =========================================================================== --list
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rdm.pipeline.plan",
                                 description="The experiment plan: every cell (or step) with its output path.")
    ap.add_argument("--grid", default=None, help="the grid TOML (default: experiments/grid.toml)")
    ap.add_argument("--mode", choices=MODES, default="tables")
    ap.add_argument("--modality", action="append", help="only these modalities (repeat)")
    ap.add_argument("--seed", type=int, default=0, help="the base seed (the split's)")
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds: SEED, SEED+1, …")
    ap.add_argument("--list", action="store_true", help="every cell: OUTPUT<TAB>RESULT<TAB>LABEL (the default)")
    ap.add_argument("--steps", action="store_true", help="every step the report needs instead: STAGE<TAB>OUTPUTS")
    ap.add_argument("--cost", action="store_true",
                    help="the white-box cost estimate per job and the rows it picks, then the whole run's per stage")
    ap.add_argument("--tier", choices=TIERS, default="full",
                    help="core: the paper's tables and the claims ([tiers.core]); full: every cell (default)")
    ap.add_argument("--jobs", type=int, default=2, help="--cost: the cores the wall-time bound divides by")
    ap.add_argument("--work", help="--cost: also the hours of the steps not finished in this output folder (OUT)")
    a = ap.parse_args(argv)
    try:
        plan = Plan(a.grid, a.mode, a.modality, a.seed, a.seeds, a.tier)
    except RdmError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    if a.cost:
        print("\n".join([*cost_lines(plan), "", *stage_lines(plan, max(1, a.jobs), a.work)]))
        return 0
    if a.steps:
        for s in needed_steps(plan):        # what make runs for the report (a tier's, its models' trainings)
            print(f"{s.stage}\t{' '.join(s.outputs)}")
        return 0
    for c in plan.cells():
        pick = c.pick.by if c.pick.value is None else f"{c.pick.by}={c.pick.value}"
        print(f"{c.output}\t{pick}\t{c.label}")
    return 0


if __name__ == "__main__":
    from rdm.errors import module_main

    sys.exit(module_main(main))
