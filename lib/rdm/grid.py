"""The experiment grid (``experiments/grid.toml``) as a Makefile graph.

``python -m rdm.grid makefile --mode tables|demo`` prints make rules whose targets are
the files the commands write (sets, checkpoints, adversarial sets, metrics JSON), so
``make tables`` rebuilds only what is out of date, ``make -j2`` runs independent
branches at once and an interrupted run resumes where it stopped. The same grid file
is what the report reads, so adding an ε or an attack is one edit.

Layout under ``$(OUT)/<modality>/``::

    source.sha256                           content hash of the raw data (tables mode; rewritten
                                            only when a file's bytes change, never for an mtime)
    train.h5 val.h5 test.h5                 rdm-prep
    subset-n                                SUBSET_N of the last run (rewritten only when it changes)
    test-sub.h5                             seeded subset for the expensive white-box attacks
    models/<model>.ckpt                     the four training commands
    adv/<split>-<attack>-<eps>.h5           crafted on the baseline (transfer protocol)
    adv/test-sweep-<fgsm|pgd>-<eps>.h5      Fig. 9 transfer sweep
    adv/test-matched-<fgsm|pgd>.h5          at the matched ε
    matched.json                            ε where the baseline falls to the paper's accuracy
    metrics/<model>/<cell>.json             rdm-eval output

Other sub-commands: ``matched`` (compute matched.json), ``get`` (read a value for a
recipe), ``timed`` (run a command and log its wall time), ``cells`` (list the cells),
``fingerprint`` and ``stamp`` (the two content stamps above: a dataset copied, re-mounted
or touched keeps its hash, so its sets and everything after them stay up to date).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import RdmError

DEFAULT_GRID = Path(__file__).resolve().parents[2] / "experiments" / "grid.toml"


def fmt_eps(eps: float) -> str:
    return f"{eps:g}"


def load_grid(path: os.PathLike | str | None = None) -> dict[str, Any]:
    path = Path(path or DEFAULT_GRID)
    try:
        g = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RdmError(f"{path}: no such grid file") from None
    except tomllib.TOMLDecodeError as e:
        raise RdmError(f"{path}: not valid TOML ({e})") from None
    for key in ("modalities", "attacks", "models", "evaluate"):
        if key not in g:
            raise RdmError(f"{path}: missing [{key}]")
    g["_path"] = str(path)
    for_mode(g, "demo")           # a bad [demo] section fails here, for `make tables` too
    return g


def for_mode(g: dict[str, Any], mode: str) -> dict[str, Any]:
    """The grid as ``mode`` runs it: for ``demo``, the ``[demo]`` table applied to a copy — its
    ``whitebox`` entries update the white-box attacks of those names (fewer steps and restarts so
    the phantom run takes minutes), any other key replaces that key of ``[evaluate]``."""
    import copy

    if mode != "demo" or "demo" not in g:
        return g
    over = g["demo"].get("whitebox", {})
    bad = sorted(k for k in g["demo"] if k != "whitebox" and k not in g["evaluate"])
    if bad:
        raise RdmError(f"{g['_path']}: [demo] sets {', '.join(bad)}, which [evaluate] does not have")
    names = {w["name"] for w in g["evaluate"]["whitebox"]}
    unknown = sorted(set(over) - names)
    if unknown:
        raise RdmError(f"{g['_path']}: [demo] whitebox names {', '.join(unknown)}, "
                       f"not in [evaluate] whitebox ({', '.join(sorted(names))})")
    g = copy.deepcopy(g)
    for w in g["evaluate"]["whitebox"]:
        w.update(over.get(w["name"], {}))
    g["evaluate"].update({k: v for k, v in g["demo"].items() if k != "whitebox"})
    return g


# --------------------------------------------------------------------------- naming
def adv_path(d: str, split: str, attack: str, eps: float) -> str:
    return f"{d}/adv/{split}-{attack}-{fmt_eps(eps)}.h5"


def model_path(d: str, name: str) -> str:
    return f"{d}/models/{name}.ckpt"


def metrics_path(d: str, model: str, cell: str) -> str:
    return f"{d}/metrics/{model}/{cell}.json"


def _attack_flags(a: dict[str, Any]) -> str:
    f = f"--attack {a['attack']}"
    if a.get("alpha") is not None:
        f += f" --alpha {a['alpha']:g}"
    if a.get("steps") is not None:
        f += f" --steps {a['steps']}"
    if a.get("restarts", 1) > 1:
        f += f" --restarts {a['restarts']}"
    if a.get("random_start"):
        f += " --random-start"
    return f


def _eps_flags(eps: Iterable[float]) -> str:
    return " ".join(f"--eps {fmt_eps(e)}" for e in eps)


# --------------------------------------------------------------------------- rules
@dataclass
class Rule:
    targets: list[str]
    deps: list[str]
    recipe: str
    stage: str

    def render(self) -> str:
        sep = " &:" if len(self.targets) > 1 else ":"
        return (f"{' '.join(self.targets)}{sep} {' '.join(self.deps)} | $(STAMP)\n"
                f"\t@mkdir -p {' '.join(sorted({os.path.dirname(t) for t in self.targets}))}\n"
                f"\t$(TIMED) {self.stage} -- {self.recipe}\n")


def modality_rules(g: dict[str, Any], m: str, mode: str) -> tuple[list[Rule], dict[str, list[str]]]:
    g = for_mode(g, mode)
    spec = g["modalities"][m]
    preset = spec["preset"]
    d = f"$(OUT)/{m}"
    R = "$(RDM)"
    common = "--seed $(SEED) --device $(DEVICE) -q"
    rules: list[Rule] = []
    sets = [f"{d}/train.h5", f"{d}/val.h5", f"{d}/test.h5"]
    train, val, test = sets

    # prep
    if mode == "demo":
        rules.append(Rule(sets, [], f"{R}rdm-prep synthetic --preset {preset} --n $(DEMO_N) -o {d} --seed $(SEED) -q",
                          f"{m}/prep"))
    else:
        src = f"$(DATA_ROOT)/{spec['source']}"
        # the content hash of the raw files is the prerequisite, not their mtimes: editing an
        # image rebuilds its modality, a copied or re-mounted dataset does not
        rules.append(Rule(sets, [f"{d}/{SOURCE_STAMP}"], f"{R}rdm-prep {src} --preset {preset} -o {d} --seed $(SEED) -q",
                          f"{m}/prep"))
    sub = f"{d}/test-sub.h5"
    rules.append(Rule([sub], [test, f"{d}/{SUBSET_STAMP}"],
                      f"$(PY) -m rdm.grid subset {test} $(SUBSET_N) -o {sub} --seed $(SEED)", f"{m}/subset"))

    base = model_path(d, "baseline")
    attacks = {a["name"]: a for a in g["attacks"]}
    advsets: dict[tuple[str, str], list[str]] = {}
    for a in g["attacks"]:
        for split in a.get("splits", ["test"]):
            src_set = {"train": train, "val": val, "test": test}[split]
            eps_list = a.get(f"{split}_eps", a["eps"])
            outs = [adv_path(d, split, a["name"], e) for e in eps_list]
            advsets[(a["name"], split)] = outs
            pattern = f"{d}/adv/{split}-{a['name']}-{{eps}}.h5"
            rules.append(Rule(outs, [base, src_set],
                              f"{R}rdm-attack {base} {src_set} {_attack_flags(a)} {_eps_flags(eps_list)} "
                              f"-o '{pattern}' --seed $(SEED) --device $(DEVICE) -q",
                              f"{m}/attack-{split}-{a['name']}"))

    # models
    for name, mspec in g["models"].items():
        out = model_path(d, name)
        recipe = mspec["recipe"]
        adv = [p for an in mspec.get("adv", []) for p in _adv_for_training(advsets, attacks, an, mspec)]
        # a model's own epochs come first, so $(TRAIN_FLAGS) (the demo's --epochs) overrides them;
        # --resume-partial: a training killed mid-way (make interrupted, a Slurm job preempted)
        # continues from its last finished epoch, and a stale .partial is simply replaced
        train_flags = (f"{common} --resume-partial{' --epochs ' + str(mspec['epochs']) if 'epochs' in mspec else ''}"
                       " $(TRAIN_FLAGS)")
        if recipe == "train-cnn":
            rules.append(Rule([out], [train, val], f"{R}rdm-train-cnn {train} --val {val} -o {out} {train_flags}",
                              f"{m}/{name}"))
        elif recipe == "pretrain-dcae":
            rules.append(Rule([out], [train, val, *adv],
                              f"{R}rdm-pretrain-dcae {train} {' '.join(adv)} --val {val} -o {out} {train_flags}",
                              f"{m}/{name}"))
        elif recipe == "finetune":
            dc = model_path(d, mspec["dcae"])
            advf = " ".join(f"--adv {p}" for p in adv)
            rules.append(Rule([out], [train, val, dc, *adv],
                              f"{R}rdm-finetune {train} --dcae {dc} --val {val} {advf} -o {out} {train_flags}",
                              f"{m}/{name}"))
        elif recipe == "purify":
            dc, cnn = model_path(d, mspec["dcae"]), model_path(d, mspec["cnn"])
            rules.append(Rule([out], [train, dc, cnn],
                              f"{R}rdm-finetune {train} --dcae {dc} --purify --cnn {cnn} -o {out} {common}",
                              f"{m}/{name}"))
        elif recipe == "advtrain":
            advf = " ".join(f"--adv {p}" for p in adv)
            rules.append(Rule([out], [train, val, *adv],
                              f"{R}rdm-advtrain {train} {advf} --val {val} -o {out} {train_flags}",
                              f"{m}/{name}"))
        elif recipe == "advtrain-online":
            alpha = f" --alpha {mspec['alpha']:g}" if "alpha" in mspec else ""
            rules.append(Rule([out], [train, val],
                              f"{R}rdm-advtrain {train} --online pgd --eps {mspec['eps']:g} --steps {mspec['steps']}"
                              f"{alpha} --val {val} -o {out} {train_flags}", f"{m}/{name}"))
        else:
            raise RdmError(f"{g['_path']}: model {name}: unknown recipe '{recipe}'")

    # evaluation
    ev = g["evaluate"]
    sweep = ev["sweep_eps"]
    pgd_sweep_steps = int(ev.get("sweep_pgd", {}).get("steps", 10))
    metrics: dict[str, list[str]] = {}
    test_adv = [p for (an, split), ps in advsets.items() if split == "test" for p in ps]
    sweep_sets = {k: [adv_path(d, "test", f"sweep-{k}", e) for e in sweep] for k in ("fgsm", "pgd")}
    rules.append(Rule(sweep_sets["fgsm"], [base, test],
                      f"{R}rdm-attack {base} {test} --attack fgsm {_eps_flags(sweep)} "
                      f"-o '{d}/adv/test-sweep-fgsm-{{eps}}.h5' --seed $(SEED) --device $(DEVICE) -q",
                      f"{m}/attack-sweep-fgsm"))
    rules.append(Rule(sweep_sets["pgd"], [base, test],
                      f"{R}rdm-attack {base} {test} --attack pgd --steps {pgd_sweep_steps} {_eps_flags(sweep)} "
                      f"-o '{d}/adv/test-sweep-pgd-{{eps}}.h5' --seed $(SEED) --device $(DEVICE) -q",
                      f"{m}/attack-sweep-pgd"))
    matched = f"{d}/matched.json"
    mfgsm, mpgd = f"{d}/adv/test-matched-fgsm.h5", f"{d}/adv/test-matched-pgd.h5"
    base_sweeps = [metrics_path(d, "baseline", "sweep-wb-fgsm"), metrics_path(d, "baseline", "sweep-wb-pgd")]
    rules.append(Rule([matched], base_sweeps,
                      f"$(PY) -m rdm.grid matched --grid $(GRID) --modality {m} -o {matched} {' '.join(base_sweeps)}",
                      f"{m}/matched"))
    get = f"$(PY) -m rdm.grid get {matched}"
    rules.append(Rule([mfgsm], [base, test, matched],
                      f"{R}rdm-attack {base} {test} --attack fgsm --eps $$({get} fgsm) -o {mfgsm} "
                      f"--seed $(SEED) --device $(DEVICE) -q", f"{m}/attack-matched-fgsm"))
    rules.append(Rule([mpgd], [base, test, matched],
                      f"{R}rdm-attack {base} {test} --attack pgd --steps {pgd_sweep_steps} --eps $$({get} pgd) "
                      f"-o {mpgd} --seed $(SEED) --device $(DEVICE) -q", f"{m}/attack-matched-pgd"))

    ecommon = "--seed $(SEED) --device $(DEVICE) -q"
    apgd_steps = matched_apgd_steps(ev)
    for name in ev["models"]:
        ck = model_path(d, name)
        out: list[str] = []

        def add(cell: str, deps: list[str], args: str) -> None:
            p = metrics_path(d, name, cell)
            rules.append(Rule([p], [ck, *deps], f"{R}rdm-eval {ck} {args} -o {p} {ecommon}", f"{m}/eval-{name}-{cell}"))
            out.append(p)

        add("clean", [test], test)
        add("transfer", test_adv, " ".join(test_adv))
        for wb in ev["whitebox"]:
            s = sub if wb.get("limit") else test
            add(f"wb-{wb['name']}", [s], f"{s} {_attack_flags(wb)} {_eps_flags(wb.get('eps', ev['paper_eps']))}")
        sw = sub if ev.get("sweep_on_subset") else test
        add("sweep-wb-fgsm", [sw], f"{sw} --attack fgsm {_eps_flags(sweep)}")
        add("sweep-wb-pgd", [sw], f"{sw} --attack pgd --steps {pgd_sweep_steps} {_eps_flags(sweep)}")
        if name != "baseline":
            add("sweep-transfer", sweep_sets["fgsm"] + sweep_sets["pgd"],
                " ".join(sweep_sets["fgsm"] + sweep_sets["pgd"]))
        add("matched-transfer", [mfgsm, mpgd], f"{mfgsm} {mpgd}")
        add("matched-wb-fgsm", [test, matched], f"{test} --attack fgsm --eps $$({get} fgsm)")
        add("matched-wb-pgd", [sw, matched], f"{sw} --attack pgd --steps {pgd_sweep_steps} --eps $$({get} pgd)")
        add("matched-wb-apgd", [sub, matched], f"{sub} --attack apgd --steps {apgd_steps} --eps $$({get} pgd)")
        metrics[name] = out
    metrics["_matched"] = [matched]
    return rules, metrics


def _adv_for_training(advsets, attacks, attack_name: str, mspec: dict) -> list[str]:
    if (attack_name, "train") not in advsets:
        raise RdmError(f"model uses attack '{attack_name}' but the grid crafts no train-split set for it")
    paths = advsets[(attack_name, "train")]
    eps_only = mspec.get("adv_eps")
    if eps_only:
        a = attacks[attack_name]
        eps_list = a.get("train_eps", a["eps"])
        paths = [p for p, e in zip(paths, eps_list) if e in eps_only]
        if len(paths) != len(eps_only):
            raise RdmError(f"a model asks for {attack_name} train sets at ε {eps_only}, "
                           f"the grid crafts {eps_list}")
    return paths


def matched_apgd_steps(evaluate: dict[str, Any]) -> int:
    """Steps of APGD at the matched ε: those of the grid's white-box APGD (the demo shortens it)."""
    return next((int(w.get("steps", 100)) for w in evaluate.get("whitebox", []) if w["attack"] == "apgd"), 100)


SOURCE_STAMP = "source.sha256"
SUBSET_STAMP = "subset-n"


def _stamp_rules(g: dict[str, Any], m: str, mode: str) -> str:
    """The content stamps of a modality: run on every make (FORCE), rewritten only on change."""
    d = f"$(OUT)/{m}"
    text = (f"{d}/{SUBSET_STAMP}: FORCE\n\t@mkdir -p {d}\n"
            f"\t@$(PY) -m rdm.grid stamp $@ $(SUBSET_N)\n")
    if mode != "demo":
        src = f"$(DATA_ROOT)/{g['modalities'][m]['source']}"
        text += (f"{d}/{SOURCE_STAMP}: FORCE | $(STAMP)\n\t@mkdir -p {d}\n"
                 f"\t@$(PY) -m rdm.grid fingerprint {src} -o $@\n")
    return text


def makefile(g: dict[str, Any], mode: str = "tables", modalities: list[str] | None = None) -> str:
    mods = modalities or list(g["modalities"])
    parts = [f"# generated by `python -m rdm.grid makefile --mode {mode}` from {g['_path']}; do not edit\n",
             ".PHONY: FORCE\nFORCE:\n"]
    all_metrics: list[str] = []
    for m in mods:
        if m not in g["modalities"]:
            raise RdmError(f"unknown modality '{m}' (grid has {', '.join(g['modalities'])})")
        rules, metrics = modality_rules(g, m, mode)
        flat = [p for ps in metrics.values() for p in ps]
        all_metrics += flat
        parts.append(f"\n# ---- {m}\n.PHONY: {m}\n{m}: {' '.join(flat)}\n")
        parts += [r.render() for r in rules]
        parts.append(_stamp_rules(g, m, mode))
    parts.append(f"\nGRID_METRICS := {' '.join(all_metrics)}\n")
    return "\n".join(parts)


def shell_script(g: dict[str, Any], modality: str, mode: str = "tables") -> str:
    """The same graph for one modality as a plain bash script (for users without make).

    Steps run in dependency order; a step whose outputs all exist is skipped, so a
    re-run resumes. Make variables become shell variables with the same names.
    """
    import re

    rules, _ = modality_rules(g, modality, mode)
    by_target = {t: r for r in rules for t in r.targets}
    done: set[int] = set()
    order: list[Rule] = []

    def visit(r: Rule) -> None:
        if id(r) in done:
            return
        done.add(id(r))
        for dep in r.deps:
            if dep in by_target:
                visit(by_target[dep])
        order.append(r)

    for r in rules:
        visit(r)

    def sh(text: str) -> str:
        text = text.replace("$$(", "\x00(")
        text = re.sub(r"\$\(wildcard [^)]*\)", "", text)
        text = re.sub(r"\$\((\w+)\)", r"${\1}", text)
        return text.replace("\x00(", "$(")

    lines = [
        "#!/usr/bin/env bash",
        f"# {modality}: the experiment graph of {Path(g['_path']).name} as a plain script (generated by",
        f"# `python -m rdm.grid script --modality {modality} --mode {mode}`). Steps whose outputs exist are skipped.",
        "set -euo pipefail",
        'OUT=${OUT:-work}; DATA_ROOT=${DATA_ROOT:-../shared/data}; SEED=${SEED:-0}; DEVICE=${DEVICE:-auto}',
        'SUBSET_N=${SUBSET_N:-300}; DEMO_N=${DEMO_N:-300}; TRAIN_FLAGS=${TRAIN_FLAGS:-}',
        'GRID=${GRID:-experiments/grid.toml}; PY=${PY:-python}; RDM=${RDM:-}',
        'TIMED="$PY -m rdm.grid timed $OUT/timings.jsonl"',
        'all_exist() { for f in "$@"; do [ -e "$f" ] || return 1; done; }',
        "",
    ]
    for r in order:
        targets = " ".join(f'"{sh(t)}"' for t in r.targets)
        dirs = " ".join(sorted({f'"{sh(os.path.dirname(t))}"' for t in r.targets}))
        lines.append(f"if ! all_exist {targets}; then")
        lines.append(f"  mkdir -p {dirs}")
        lines.append(f"  {sh('$(TIMED) ' + r.stage + ' -- ' + r.recipe)}")
        lines.append("fi")
    return "\n".join(lines) + "\n"


def cells(g: dict[str, Any], mode: str = "tables", modalities: list[str] | None = None) -> list[tuple[int, str, str]]:
    """Every rule of the graph as ``(level, stage, target)``, in level order.

    A rule's level is 0 when none of its prerequisites is made by another rule, else one
    more than the highest level among the rules that make them: all cells of one level
    can run at once once the lower levels are done (one Slurm job array per level).
    ``target`` is the rule's first output (``make TARGET`` builds the whole rule) with
    make variables such as ``$(OUT)`` left in. Only the rules the report needs are listed
    (what ``make tables``/``make demo`` would run)."""
    mods = modalities or list(g["modalities"])
    rules: list[Rule] = []
    wanted: list[str] = []
    for m in mods:
        if m not in g["modalities"]:
            raise RdmError(f"unknown modality '{m}' (grid has {', '.join(g['modalities'])})")
        rs, metrics = modality_rules(g, m, mode)
        rules += rs
        wanted += [p for ps in metrics.values() for p in ps]
    by_target = {t: r for r in rules for t in r.targets}
    needed: set[int] = set()
    todo = [by_target[t] for t in wanted if t in by_target]
    while todo:
        r = todo.pop()
        if id(r) not in needed:
            needed.add(id(r))
            todo += [by_target[d] for d in r.deps if d in by_target]
    rules = [r for r in rules if id(r) in needed]
    level: dict[int, int] = {}

    def lev(r: Rule, seen: tuple = ()) -> int:
        if id(r) not in level:
            if id(r) in seen:
                raise RdmError(f"the grid's graph has a cycle through {r.targets[0]}")
            ups = [by_target[d] for d in r.deps if d in by_target]
            level[id(r)] = 1 + max((lev(u, seen + (id(r),)) for u in ups), default=-1)
        return level[id(r)]

    out = [(lev(r), r.stage, r.targets[0]) for r in rules]
    return sorted(out, key=lambda c: c[0])


# --------------------------------------------------------------------------- matched ε
def _accuracy_curve(path: str) -> list[tuple[float, float]]:
    rep = json.loads(Path(path).read_text())
    pts = []
    for r in rep["results"]:
        if r.get("attack"):
            pts.append((float(r["attack"]["eps"]), float(r["metrics"]["accuracy"])))
        else:
            pts.append((0.0, float(r["metrics"]["accuracy"])))
    return sorted(set(pts))


def matched_eps(curve: list[tuple[float, float]], target: float) -> tuple[float, bool]:
    """Smallest ε where accuracy falls to ``target`` (log-linear interpolation between
    sweep points). Returns (ε, reached); when never reached, the largest ε swept."""
    pts = [(e, a) for e, a in curve if e > 0]
    if not pts:
        raise RdmError("the sweep has no ε > 0")
    if pts[0][1] <= target:
        return pts[0][0], True
    for (e0, a0), (e1, a1) in zip(pts, pts[1:]):
        if a1 <= target < a0 or a1 <= target <= a0:
            t = (a0 - target) / (a0 - a1) if a0 != a1 else 1.0
            le = math.log(e0) + t * (math.log(e1) - math.log(e0))
            return float(f"{math.exp(le):.4g}"), True
    return pts[-1][0], False


def write_matched(grid: dict, modality: str, sweep_files: list[str], out: str) -> dict:
    paper = grid.get("paper", {}).get(modality, {})
    res: dict[str, Any] = {"modality": modality}
    for f in sweep_files:
        kind = "fgsm" if "fgsm" in Path(f).stem else "pgd"
        curve = _accuracy_curve(f)
        target = float(paper.get(kind, 0.5))
        eps, reached = matched_eps(curve, target)
        res[kind] = eps
        res[f"{kind}_detail"] = {"paper_accuracy": target, "reached": reached, "curve": curve, "sweep": f}
    from .atomic import atomic_output
    with atomic_output(out) as tmp:
        Path(tmp).write_text(json.dumps(res, indent=2) + "\n")
    return res


# --------------------------------------------------------------------------- small steps
def write_subset(src: str, n: int, out: str, seed: int = 0) -> None:
    """A seeded random subset of ``n`` rows (order kept), for the expensive white-box attacks."""
    import numpy as np

    from .sets import SetReader, SetWriter, make_provenance, validate_set

    validate_set(src, check_values=False)
    with SetReader(src) as r:
        k = min(int(n), r.n)
        rows = np.sort(np.random.default_rng(seed).permutation(r.n)[:k])
        cols = [c for c in ("group", "id") if r.has(c)]
        data = r.read_rows(rows, names=["x", "y", *cols])
        prov = make_provenance(arguments={"rows": k, "of": r.n}, seed=seed, inputs=[src])
        with SetWriter(out, shape=r.info.shape, classes=r.info.classes, modality=r.info.modality,
                       preset=r.info.preset, provenance=prov, columns=cols) as w:
            w.append(data["x"], data["y"], **{c: data[c] for c in cols})


def _write_if_changed(path: str | Path, text: str) -> bool:
    """Replace ``path`` atomically with ``text`` unless it already holds it (its mtime is then kept)."""
    from .atomic import atomic_output

    p = Path(path)
    if p.is_file() and p.read_text() == text:
        return False
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(p) as tmp:
        Path(tmp).write_text(text)
    return True


def fingerprint(src: str | Path) -> str:
    """``sha256sum``-style lines for every file under ``src`` (sorted; ``*.md`` notes skipped)."""
    import hashlib

    root = Path(src)
    if not root.is_dir():
        raise RdmError(f"{src}: no such data folder")
    lines = []
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() != ".md"):
        lines.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(root).as_posix()}\n")
    if not lines:
        raise RdmError(f"{src}: the data folder is empty")
    return "".join(lines)


def timed(log: str, stage: str, cmd: list[str]) -> int:
    t0 = time.time()
    rc = subprocess.call(cmd)
    dt = time.time() - t0
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(json.dumps({"stage": stage, "seconds": round(dt, 2), "rc": rc, "end": time.time()}) + "\n")
    if rc == 0:
        sys.stderr.write(f"[{stage}] {dt:.1f}s\n")
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rdm.grid", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("makefile")
    p.add_argument("--grid", default=None)
    p.add_argument("--mode", choices=["tables", "demo"], default="tables")
    p.add_argument("--modality", action="append")
    p = sub.add_parser("script")
    p.add_argument("--grid", default=None)
    p.add_argument("--mode", choices=["tables", "demo"], default="tables")
    p.add_argument("--modality", required=True)
    p = sub.add_parser("cells", help="the rules as LEVEL<TAB>STAGE<TAB>TARGET lines (levels run in order)")
    p.add_argument("--grid", default=None)
    p.add_argument("--mode", choices=["tables", "demo"], default="tables")
    p.add_argument("--modality", action="append")
    p.add_argument("--level", type=int, help="only this level's targets, one per line")
    p = sub.add_parser("matched")
    p.add_argument("--grid", default=None)
    p.add_argument("--modality", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("sweeps", nargs="+")
    p = sub.add_parser("get")
    p.add_argument("file")
    p.add_argument("key")
    p = sub.add_parser("subset")
    p.add_argument("src")
    p.add_argument("n", type=int)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("fingerprint", help="write the content hash of a data folder to a file if it changed")
    p.add_argument("src")
    p.add_argument("-o", "--output", required=True)
    p = sub.add_parser("stamp", help="write VALUE to FILE if it differs (a make prerequisite on a variable)")
    p.add_argument("file")
    p.add_argument("value")
    p = sub.add_parser("timed")
    p.add_argument("log")
    p.add_argument("stage")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "makefile":
            sys.stdout.write(makefile(load_grid(a.grid), a.mode, a.modality))
        elif a.cmd == "cells":
            for lv, stage, target in cells(load_grid(a.grid), a.mode, a.modality):
                if a.level is None:
                    print(f"{lv}\t{stage}\t{target}")
                elif lv == a.level:
                    print(target)
        elif a.cmd == "script":
            sys.stdout.write(shell_script(load_grid(a.grid), a.modality, a.mode))
        elif a.cmd == "matched":
            write_matched(load_grid(a.grid), a.modality, a.sweeps, a.output)
        elif a.cmd == "get":
            print(json.loads(Path(a.file).read_text())[a.key])
        elif a.cmd == "subset":
            write_subset(a.src, a.n, a.output, a.seed)
        elif a.cmd == "fingerprint":
            _write_if_changed(a.output, fingerprint(a.src))
        elif a.cmd == "stamp":
            _write_if_changed(a.file, a.value + "\n")
        elif a.cmd == "timed":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            return timed(a.log, a.stage, cmd)
    except RdmError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
