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

Layout under ``$(OUT)`` (one function per path below, each with its inverse, :func:`parse_path`)::

    <m>/source.sha256                        content hash of the raw data (tables mode)
    <m>/train.h5 val.h5 test.h5              rdm-prep
    <m>/subset-n  <m>/test-sub.h5            SUBSET_N of the last run; the seeded subset
    <m>/models/<model>.ckpt                  the four training commands
    <m>/adv/<split>-<attack>-<eps>.h5        crafted on the baseline (transfer protocol)
    <m>/adv/test-sweep-<fgsm|pgd>-<eps>.h5   the ε sweep's transfer sets
    <m>/adv/test-matched-<fgsm|pgd>.h5       at the matched ε
    <m>/matched.json                         ε where the baseline falls to the paper's accuracy
    <m>/metrics/<model>/<job>.json           one rdm-eval run (several cells)

``python -m rdm.pipeline.plan --list`` prints every cell with its output.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import RdmError
from . import commands as C
from .config import MODES, Attack, Grid, ModelSpec
from .labels import fmt_eps, model_label, same_eps

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
    "model": "{m}/models/{model}.ckpt",
    "matched-set": "{m}/adv/test-matched-{kind}.h5",
    "adv": "{m}/adv/{split}-{attack}-{eps}.h5",
    "matched": "{m}/matched.json",
    "metrics": "{m}/metrics/{model}/{job}.json",
}
_FIELD = {"split": r"train|val|test|test-sub", "eps": r"[0-9][0-9.e+-]*|\{eps\}"}


def modality_dir(m: str) -> str:
    return m


def set_path(m: str, split: str) -> str:
    """``lung/test.h5``; ``split`` is train, val, test or test-sub (the seeded subset)."""
    return PATHS["set"].format(m=m, split=split)


def source_stamp_path(m: str) -> str:
    return PATHS["source-stamp"].format(m=m)


def subset_stamp_path(m: str) -> str:
    return PATHS["subset-stamp"].format(m=m)


def model_path(m: str, model: str) -> str:
    return PATHS["model"].format(m=m, model=model)


def adv_path(m: str, split: str, attack: str, eps: float | str) -> str:
    """An adversarial set crafted on the baseline; ``eps`` may be the pattern ``{eps}``."""
    return PATHS["adv"].format(m=m, split=split, attack=attack, eps=eps if isinstance(eps, str) else fmt_eps(eps))


def sweep_set_path(m: str, kind: str, eps: float | str) -> str:
    return adv_path(m, "test", f"sweep-{kind}", eps)


def matched_set_path(m: str, kind: str) -> str:
    return PATHS["matched-set"].format(m=m, kind=kind)


def matched_path(m: str) -> str:
    return PATHS["matched"].format(m=m)


def metrics_path(m: str, model: str, job: str) -> str:
    return PATHS["metrics"].format(m=m, model=model, job=job)


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
            return kind, d
    raise RdmError(f"{path}: not a path of the experiment plan")


def stage_name(m: str, what: str) -> str:
    """The key of a step in ``timings.jsonl``: ``lung/attack-test-fgsm``, ``lung/eval-rdmaa-clean``."""
    return f"{m}/{what}"


def parse_stage(stage: str, models: Iterable[str]) -> tuple[str, str, str]:
    """The inverse of :func:`stage_name`: ``(modality, kind, detail)`` where kind is prep, train,
    attack, eval, other or (no modality) the stage itself, and detail names the stage with an
    evaluation summed per model (``eval-rdmaa``)."""
    if "/" not in stage:
        return "", stage, stage
    m, s = stage.split("/", 1)
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
    kind: str                      # prep, subset, attack, train, matched, eval
    outputs: list[str]
    inputs: list[str]
    command: list[C.Word]
    model: str | None = None       # train/eval: the model; eval: the job name too
    job: str | None = None


@dataclass(frozen=True)
class Pick:
    """Which result of a metrics file a cell is: ``("set", "test-fgsm-0.005.h5")`` the result of
    that set; ``("eps", 0.005)`` the on-the-fly attack at that ε; ``("clean", None)`` the clean
    result; ``("attacked", None)`` the one white-box attack of the file."""

    by: str
    value: Any = None


@dataclass(frozen=True)
class Cell:
    """One number-bearing result: what was evaluated, how, on which rows, and where it is."""

    modality: str
    model: str
    family: str            # clean, transfer, whitebox, sweep, sweep-transfer, matched
    protocol: str          # clean, transfer, white-box
    attack: Attack | None
    eps: float | None      # None: clean, or the matched ε (known once the sweep ran)
    rows: str              # test (the whole test set) or test-sub (the seeded subset)
    output: str            # the metrics file (relative to OUT)
    pick: Pick
    inputs: tuple[str, ...] = ()
    seed: int | None = None  # None: the run's --seed (make's $(SEED))
    eps_from: str | None = None  # the matched ε: the key of matched.json it is read from (fgsm, pgd)

    @property
    def label(self) -> str:
        what = "clean" if self.attack is None else self.attack.label(self.eps)
        return f"{self.modality} / {model_label(self.model)} / {self.protocol} / {what}"


# =========================================================================== the plan
class ModalityPlan:
    """One modality's steps and cells, and the lookups the report and figures make by meaning."""

    def __init__(self, plan: "Plan", m: str):
        self.plan, self.m = plan, m
        self.steps: list[Step] = []
        self.cells: list[Cell] = []
        self.metrics: list[str] = []           # what `make` builds for this modality (metrics + matched)
        self._build()

    # ----- building
    def _add(self, kind: str, what: str, outputs: list[str], inputs: list[str], command: list[C.Word],
             model: str | None = None, job: str | None = None) -> Step:
        s = Step(self.m, stage_name(self.m, what), kind, outputs, inputs, command, model, job)
        self.steps.append(s)
        return s

    def _build(self) -> None:
        p, m = self.plan, self.m
        train, val, test, sub = (set_path(m, s) for s in (*SPLITS, SUBSET))
        spec = p.modalities[m]
        demo = p.mode == "demo"
        # tables: the content hash of the raw files is the prerequisite, not their mtimes
        self._add("prep", "prep", [train, val, test], [] if demo else [source_stamp_path(m)],
                  C.prep(modality_dir(m), spec["preset"], None if demo else spec["source"]))
        self._add("subset", "subset", [sub], [test, subset_stamp_path(m)], C.subset(test, sub))

        base = model_path(m, "baseline")
        self.crafted: dict[tuple[str, str], list[str]] = {}
        for a in p.attacks:
            for split in a.splits:
                eps = a.eps_for(split)
                outs = [adv_path(m, split, a.name, e) for e in eps]
                self.crafted[(a.name, split)] = outs
                self._add("attack", f"attack-{split}-{a.name}", outs, [base, set_path(m, split)],
                          C.craft(base, set_path(m, split), a, eps, adv_path(m, split, a.name, "{eps}"), True))
        for ms in p.models.values():
            adv = [a for an in ms.get("adv", []) for a in self._training_sets(an, ms)]
            dcae, cnn = (model_path(m, ms.get(k)) if ms.get(k) else None for k in ("dcae", "cnn"))
            try:
                inputs, cmd = C.train(ms.recipe, ms.options, model_path(m, ms.name), train, val, adv, dcae, cnn)
            except RdmError as e:
                raise RdmError(f"{p.path}: model {ms.name}: {e}") from None
            self._add("train", ms.name, [model_path(m, ms.name)], inputs, cmd, model=ms.name)

        sweep = {k: [sweep_set_path(m, k, e) for e in p.sweep_eps] for k in ("fgsm", "pgd")}
        for k in ("fgsm", "pgd"):
            self._add("attack", f"attack-sweep-{k}", sweep[k], [base, test],
                      C.craft(base, test, p.sweep_attacks[k], p.sweep_eps, sweep_set_path(m, k, "{eps}"), True))
        matched = matched_path(m)
        base_sweeps = [metrics_path(m, "baseline", sweep_job(k)) for k in ("fgsm", "pgd")]
        self._add("matched", "matched", [matched], base_sweeps, C.matched(m, matched, base_sweeps))
        for k in ("fgsm", "pgd"):
            self._add("attack", f"attack-matched-{k}", [matched_set_path(m, k)], [base, test, matched],
                      C.craft(base, test, p.matched_attacks[k], C.read_key(matched, k), matched_set_path(m, k), False))

        test_adv = [(a, e, adv_path(m, "test", a.name, e)) for a in p.test_attacks for e in a.eps_for("test")]
        sw, sw_rows = (sub, SUBSET) if p.sweep_on_subset else (test, "test")
        for model in p.eval_models:
            ck = model_path(m, model)
            crafted_on_it = model == "baseline"
            adv_proto = "white-box" if crafted_on_it else "transfer"

            def job(name: str, sets: list[str], attack: Attack | None = None, eps=(), deps=()) -> str:
                o = metrics_path(m, model, name)
                self._add("eval", f"eval-{model}-{name}", [o], [ck, *sets, *deps],
                          C.evaluate(ck, sets, o, attack, eps), model=model, job=name)
                self.metrics.append(o)
                return o

            def cell(family, protocol, attack, eps, rows, o, pick, inputs, eps_from=None) -> None:
                self.cells.append(Cell(m, model, family, protocol, attack, eps, rows, o, pick,
                                       (ck, *inputs), p.seed, eps_from))

            o = job("clean", [test])
            cell("clean", "clean", None, None, "test", o, Pick("clean"), [test])
            o = job("transfer", [s for _, _, s in test_adv])
            for a, e, s in test_adv:
                cell("transfer", adv_proto, a, e, "test", o, Pick("set", Path(s).name), [s])
            for w in p.whitebox:
                rows = SUBSET if w.subset else "test"
                s = set_path(m, rows)
                o = job(f"wb-{w.name}", [s], w, w.eps)
                for e in w.eps:
                    cell("whitebox", "white-box", w, e, rows, o, Pick("eps", e), [s])
            for k in ("fgsm", "pgd"):
                a = p.sweep_attacks[k]
                o = job(sweep_job(k), [sw], a, p.sweep_eps)
                cell(f"sweep-{k}", "clean", None, None, sw_rows, o, Pick("clean"), [sw])
                for e in p.sweep_eps:
                    cell("sweep", "white-box", a, e, sw_rows, o, Pick("eps", e), [sw])
            if not crafted_on_it:   # for the baseline the transfer sweep IS its white-box sweep
                o = job("sweep-transfer", sweep["fgsm"] + sweep["pgd"])
                for k in ("fgsm", "pgd"):
                    for e, s in zip(p.sweep_eps, sweep[k]):
                        cell("sweep-transfer", "transfer", p.sweep_attacks[k], e, "test", o,
                             Pick("set", Path(s).name), [s])
            msets = [matched_set_path(m, k) for k in ("fgsm", "pgd")]
            o = job("matched-transfer", msets)
            for k, s in zip(("fgsm", "pgd"), msets):
                cell("matched-transfer", adv_proto, p.matched_attacks[k], None, "test", o, Pick("set", Path(s).name),
                     [s], eps_from=k)
            # APGD at the matched ε: PGD's ε, on the seeded subset
            for k, s, eps_of in (("fgsm", test, "fgsm"), ("pgd", sw, "pgd"), ("apgd", sub, "pgd")):
                a = p.matched_attacks[k]
                o = job(f"matched-wb-{k}", [s], a, C.read_key(matched, eps_of), deps=[matched])
                cell("matched", "white-box", a, None, SUBSET if s == sub else "test", o, Pick("attacked"),
                     [s, matched], eps_from=eps_of)
        self.metrics.append(matched)

    def _training_sets(self, attack_name: str, ms: ModelSpec) -> list[str]:
        if (attack_name, "train") not in self.crafted:
            raise RdmError(f"model uses attack '{attack_name}' but the grid crafts no train-split set for it")
        paths = self.crafted[(attack_name, "train")]
        only = ms.get("adv_eps")
        if only:
            a = next(a for a in self.plan.attacks if a.name == attack_name)
            eps_list = a.eps_for("train")
            paths = [pth for pth, e in zip(paths, eps_list) if any(same_eps(e, o) for o in only)]
            if len(paths) != len(only):
                raise RdmError(f"a model asks for {attack_name} train sets at ε {list(only)}, "
                               f"the grid crafts {list(eps_list)}")
        return paths

    # ----- lookups by meaning (None: the grid defines no such cell)
    def find(self, model: str, family: str, attack: Attack | str | None = None,
             eps: float | None = None) -> Cell | None:
        name = attack.name if isinstance(attack, Attack) else attack
        for c in self.cells:
            if c.model == model and c.family == family and (name is None or (c.attack and c.attack.name == name)) \
                    and (eps is None or same_eps(c.eps, eps)):
                return c
        return None

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
        return self.find(model, fam, self.plan.matched_attacks[kind])

    def whitebox_of(self, model: str, a: Attack, eps: float) -> Cell | None:
        """The white-box cell of transfer attack ``a`` at ε: FGSM from the white-box sweep, any other
        from its white-box twin (:meth:`Plan.whitebox_twin`); None when the grid runs no such cell."""
        if a.kind == "fgsm":
            return self.sweep(model, "fgsm", eps)
        w = self.plan.whitebox_twin(a)
        return None if w is None else self.whitebox(model, w, eps)

    def transfer_set(self, attack: Attack, eps: float) -> str:
        return adv_path(self.m, "test", attack.name, eps)


class Plan(Grid):
    """The grid for one mode, typed (:class:`~rdm.pipeline.config.Grid`), and a
    :class:`ModalityPlan` (its steps and cells) per modality run."""

    def __init__(self, grid: dict[str, Any] | str | Path | None = None, mode: str = "tables",
                 modalities: list[str] | None = None, seed: int | None = None):
        super().__init__(grid, mode)
        self.seed = seed
        names = modalities or list(self.modalities)
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


# =========================================================================== --list
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rdm.pipeline.plan",
                                 description="The experiment plan: every cell (or step) with its output path.")
    ap.add_argument("--grid", default=None, help="the grid TOML (default: experiments/grid.toml)")
    ap.add_argument("--mode", choices=MODES, default="tables")
    ap.add_argument("--modality", action="append", help="only these modalities (repeat)")
    ap.add_argument("--list", action="store_true", help="every cell: OUTPUT<TAB>RESULT<TAB>LABEL (the default)")
    ap.add_argument("--steps", action="store_true", help="every step instead: STAGE<TAB>OUTPUTS")
    a = ap.parse_args(argv)
    try:
        plan = Plan(a.grid, a.mode, a.modality)
    except RdmError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    if a.steps:
        for s in plan.steps():
            print(f"{s.stage}\t{' '.join(s.outputs)}")
        return 0
    for c in plan.cells():
        pick = c.pick.by if c.pick.value is None else f"{c.pick.by}={c.pick.value}"
        print(f"{c.output}\t{pick}\t{c.label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
