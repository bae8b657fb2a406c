"""How each step of the plan is run: the rdm-* command lines as typed words.

A command is a list of :class:`Word`; a word is literal text, a run setting (:class:`Var`: ``OUT``,
``DEVICE``, ``TRAIN_FLAGS`` …) or the output of another command (:class:`Sub`), so that
:mod:`rdm.pipeline.render` writes it in make syntax (``$(OUT)``, ``$$(…)``) or bash syntax
(``"${OUT}"``, ``$(…)``) from the same words. Paths come from :mod:`rdm.pipeline.plan` (relative
to ``$(OUT)``); this module only knows the commands' flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from rdm.errors import RdmError
from rdm.pipeline.labels import fmt_eps


@dataclass(frozen=True)
class Var:
    """A setting of the run: ``$(X)`` in make, ``${X}`` in bash."""

    name: str


@dataclass(frozen=True)
class Sub:
    """The output of a command, inline: ``$$(…)`` in a make recipe, ``$(…)`` in bash."""

    words: tuple["Word", ...]


@dataclass(frozen=True)
class Word:
    """One shell word built from literal text, settings and command outputs.

    ``split``: the setting stands for several words (``$(TRAIN_FLAGS)``); ``pattern``: the word holds
    a ``{eps}`` placeholder for the command itself (quoted in both renderings)."""

    parts: tuple[str | Var | Sub, ...]
    split: bool = False
    pattern: bool = False


def lit(*texts: str) -> list[Word]:
    return [Word((t,)) for t in texts]


def out(path: str, pattern: bool = False) -> Word:
    """A path under ``$(OUT)``."""
    return Word((Var("OUT"), "/" + path), pattern=pattern)


def var(name: str, split: bool = False) -> Word:
    return Word((Var(name),), split=split)


def tool(name: str) -> Word:
    return Word((Var("RDM"), name))


def module(name: str) -> list[Word]:
    return [var("PY"), *lit("-m", name)]


def seed_flags(seed: int) -> list[Word]:
    """``--seed N``: seeds are written into the plan (each trained model, crafted set and evaluation
    belongs to one seed of the run; the split to the base seed)."""
    return lit("--seed", str(int(seed)))


def run_flags(seed: int) -> list[Word]:
    return [*seed_flags(seed), *lit("--device"), var("DEVICE"), *lit("-q")]


# --------------------------------------------------------------------------- attacks
def attack_flags(a: Any) -> list[Word]:
    """``--attack NAME`` and the hyper-parameters the grid set, spelled as the registry's flags
    (:data:`rdm.attacks.registry.FLAGS`; any other one ``--attack-param NAME=VALUE``)."""
    from rdm.attacks.registry import FLAGS, get

    given = dict(a.params)
    f = lit("--attack", a.kind)
    for p in get(a.kind).params:          # in the attack's own order
        if p.name not in given:
            continue
        v = p.coerce(given[p.name])
        if p.name not in FLAGS:
            f += lit("--attack-param", f"{p.name}={_num(v)}")
        elif p.type is bool:
            f += lit(FLAGS[p.name] if v else "--no-" + FLAGS[p.name][2:])
        else:
            f += lit(FLAGS[p.name], _num(v))
    return f


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def eps_flags(eps: Iterable[float] | Word) -> list[Word]:
    """``--eps E`` for each ε, or ``--eps WORD`` for an ε known when the step runs."""
    if isinstance(eps, Word):
        return [*lit("--eps"), eps]
    return [w for e in eps for w in lit("--eps", fmt_eps(e))]


# --------------------------------------------------------------------------- the steps
def prep(out_dir: str, preset: str, source: str | None, seed: int,
         options: dict[str, Any] | None = None) -> list[Word]:
    """Raw data (``$(DATA_ROOT)/source``) or, with no source, synthetic phantoms → train/val/test, and
    the split's leakage audit (``audit.json``); ``options``: the modality's own rdm-prep options
    (``group_similar`` → ``--group-similar``)."""
    src = [*lit("synthetic", "--preset", preset, "--n"), var("DEMO_N")] if source is None else \
        [Word((Var("DATA_ROOT"), "/" + source)), *lit("--preset", preset)]
    opts = [w for k, v in (options or {}).items() for w in lit("--" + k.replace("_", "-"), _num(v))]
    return [tool("rdm-prep"), *src, *opts, *lit("--audit", "-o"), out(out_dir), *seed_flags(seed), *lit("-q")]


def subset(test: str, output: str, seed: int) -> list[Word]:
    return [*module("rdm.pipeline.grid"), *lit("subset"), out(test), var("SUBSET_N"), *lit("-o"), out(output), *seed_flags(seed)]


def craft(model: str, clean: str, attack: Any, eps: Sequence[float] | Word, output: str, pattern: bool,
          seed: int) -> list[Word]:
    return [tool("rdm-attack"), out(model), out(clean), *attack_flags(attack), *eps_flags(eps),
            *lit("-o"), out(output, pattern=pattern), *run_flags(seed)]


def matched(m: str, output: str, sweeps: Sequence[str]) -> list[Word]:
    return [*module("rdm.pipeline.grid"), *lit("matched", "--grid"), var("GRID"), *lit("--modality", m, "-o"),
            out(output), *[out(s) for s in sweeps]]


def read_key(path: str, key: str) -> Word:
    """The value of ``key`` in a JSON file, when the step runs (the matched ε)."""
    return Word((Sub((*module("rdm.pipeline.grid"), *lit("get"), out(path), *lit(key))),))


def evaluate(model: str, sets: Sequence[str], output: str, seed: int, attack: Any = None,
             eps: Sequence[float] | Word = ()) -> list[Word]:
    attacked = [*attack_flags(attack), *eps_flags(eps)] if attack is not None else []
    return [tool("rdm-eval"), out(model), *[out(s) for s in sets], *attacked, *lit("-o"), out(output),
            *run_flags(seed)]


def certify(model: str, clean: str, output: str, seed: int, sigma: float, cfg: Any, eps: list[Word]) -> list[Word]:
    """rdm-certify of ``model`` on ``clean`` at noise ``sigma`` with ``cfg``'s n0, n, α; ``eps``: its
    ``--eps`` words (the L∞ budgets whose containing L2 radii the summary gives)."""
    return [tool("rdm-certify"), out(model), out(clean), *lit("--sigma", _num(float(sigma)), "--n0", str(cfg.n0),
                                                                "--n", str(cfg.n), "--alpha", _num(float(cfg.alpha))),
            *eps, *lit("-o"), out(output), *run_flags(seed)]


def train(recipe: str, opts: dict[str, Any], output: str, train: str, val: str, adv: Sequence[str],
          dcae: str | None, cnn: str | None, seed: int, matched: str | None = None) -> tuple[list[str], list[Word]]:
    """(inputs, command) of a model's training by its grid recipe, with training seed ``seed``;
    ``matched``: the seed's matched.json, read when an on-line recipe trains at ``eps = "matched"``."""
    run = run_flags(seed)
    # a model's own epochs come first, so $(TRAIN_FLAGS) (the demo's --epochs) overrides them;
    # --resume-partial: a training killed mid-way continues from its last finished epoch
    # the stopping rule (the grid's [training], or the model's own): epoch cap and patience
    rule = [w for k in ("epochs", "patience") if k in opts for w in lit(f"--{k}", str(int(opts[k])))]
    flags = [*run, *lit("--resume-partial"), *rule, var("TRAIN_FLAGS", split=True)]
    advf = [w for a in adv for w in (*lit("--adv"), out(a))]
    o, tr, va = out(output), out(train), [*lit("--val"), out(val)]
    if recipe == "train-cnn":
        return [train, val], [tool("rdm-train-cnn"), tr, *va, *lit("-o"), o, *flags]
    if recipe == "pretrain-dcae":
        return [train, val, *adv], [tool("rdm-pretrain-dcae"), tr, *[out(a) for a in adv], *va, *lit("-o"), o, *flags]
    if recipe == "finetune":
        # init = "random": RDMAA's schedule without the DCAE (the 'scratch' ablation)
        if opts.get("init", "dcae") not in ("dcae", "random") or (opts.get("init") == "random") == (dcae is not None):
            raise RdmError("a finetune model names a DCAE (dcae = ...) or sets init = \"random\", one of the two")
        init = [*lit("--init", "random")] if opts.get("init") == "random" else [*lit("--dcae"), out(dcae)]
        frozen = lit("--freeze-encoder") if opts.get("freeze_encoder") else []
        return [train, val, *([dcae] if dcae else []), *adv], [tool("rdm-finetune"), tr, *init, *frozen, *va, *advf,
                                                               *lit("-o"), o, *flags]
    if recipe == "purify":
        return [train, dcae, cnn], [tool("rdm-finetune"), tr, *lit("--dcae"), out(dcae), *lit("--purify", "--cnn"),
                                    out(cnn), *lit("-o"), o, *run]
    if recipe == "advtrain":
        return [train, val, *adv], [tool("rdm-advtrain"), tr, *advf, *va, *lit("-o"), o, *flags]
    if recipe.startswith("advtrain-"):      # an on-line recipe: rdm-advtrain --recipe X and its settings
        at_matched = opts.get("eps") == "matched"
        if at_matched and matched is None:
            raise RdmError("eps = \"matched\" needs the matched ε of the seed's baseline (matched.json)")
        return [train, val, *([matched] if at_matched else [])], \
            [tool("rdm-advtrain"), tr, *advtrain_flags(recipe, opts, matched), *va, *lit("-o"), o, *flags]
    raise RdmError(f"unknown recipe '{recipe}'")


#: the grid keys of an on-line adversarial-training model that are rdm-advtrain flags
ADVTRAIN_KEYS = ("eps", "alpha", "steps", "beta", "sigma")


def advtrain_flags(recipe: str, opts: dict[str, Any], matched: str | None = None) -> list[Word]:
    """``--recipe X`` for the grid recipe ``advtrain-X`` (``advtrain-online``: the on-line PGD recipe,
    ``pgd``) and the model's settings as flags, checked against rdm-advtrain's recipes; ``eps =
    "matched"``: ``--eps`` the matched PGD ε, read from ``matched`` when the step runs."""
    from rdm.api.advtrain import RECIPES

    name = recipe.split("-", 1)[1]
    name = "pgd" if name == "online" else name
    if name not in RECIPES or name == "paper":
        raise RdmError(f"unknown recipe '{recipe}' (on-line: advtrain-online or advtrain-X for X in "
                       f"{', '.join(r for r in RECIPES if r not in ('paper', 'pgd'))})")
    flags = lit("--recipe", name)
    for k in (k for k in ADVTRAIN_KEYS if k in opts):
        flags += [*lit("--eps"), read_key(matched, "pgd")] if k == "eps" and opts[k] == "matched" and matched \
            else lit(f"--{k}", _num(opts[k]))
    return flags
