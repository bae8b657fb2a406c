"""The grid file (``experiments/grid.toml``) read, checked and typed: modalities, the attacks that
craft sets, the models and their recipes, the evaluation (white-box attacks, ε sweep, subset), the
paper's numbers, and ``[demo]``'s shortened attacks. :mod:`rdm.pipeline.plan` turns it into steps
and cells."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from rdm.errors import RdmError
from rdm.pipeline.cost import Cost
from rdm.pipeline.labels import DEFENDED_ORDER, PAPER_EPS, attack_label, parse_eps, same_opt

DEFAULT_GRID = Path(__file__).resolve().parents[3] / "experiments" / "grid.toml"
MODES = ("tables", "demo")
#: the grid's tiers: ``core`` (``[tiers.core]``: the paper's tables and the claims, sized to fit the
#: machine) and ``full`` (every cell the grid defines)
TIERS = ("core", "full")
#: an ε a grid entry may name instead of a number: the matched ε of the seed's baseline, known once its
#: white-box sweep ran (matched.json's key of that attack kind)
MATCHED = "matched"


def load_grid(path: str | Path | None = None) -> dict[str, Any]:
    """The grid TOML as a dict (checked, ``[demo]`` included); RdmError on a bad file."""
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
    if mode != "demo" or "demo" not in g:
        return g
    over = g["demo"].get("whitebox", {})
    bad = sorted(k for k in g["demo"] if k not in ("whitebox", "certify") and k not in g["evaluate"])
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
    g["evaluate"].update({k: v for k, v in g["demo"].items() if k not in ("whitebox", "certify")})
    if "certify" in g["demo"]:       # fewer noise samples: [certify]'s keys, updated
        g.setdefault("certify", {}).update(g["demo"]["certify"])
    return g


DECIDE_ON = ("accuracy", "balanced_accuracy")


def check_verdict_keys(path: str, m: str, spec: dict[str, Any]) -> None:
    """``decide_on`` (the metric a modality's verdicts decide on) and ``positive_class`` (whose recall,
    the sensitivity, is shown beside them) name a metric and a class of the modality's preset."""
    d = spec.get("decide_on", "accuracy")
    if d not in DECIDE_ON:
        raise RdmError(f"{path}: [modalities.{m}] decide_on = {d!r}: expected one of {', '.join(DECIDE_ON)}")
    pos = spec.get("positive_class")
    if pos is not None:
        from rdm.data.presets import load_preset

        try:
            classes = list(load_preset(spec.get("preset", m)).classes)
        except (RdmError, OSError, ValueError):
            return
        if pos not in classes:
            raise RdmError(f"{path}: [modalities.{m}] positive_class = {pos!r} is not a class of preset "
                           f"{spec.get('preset', m)!r} ({', '.join(classes)})")


#: rdm-prep options a modality may set in the grid (``prep = { group_similar = 0.05 }``): key → type
PREP_OPTIONS = {"group_similar": float, "group_cap": int, "group_col": str, "label_source": str}
#: the training options every trained model takes from ``[training]`` unless it sets its own
TRAINING_KEYS = ("epochs", "patience")
UNTRAINED_RECIPES = ("purify",)


def prep_options(g: dict[str, Any], m: str) -> dict[str, Any]:
    """A modality's own rdm-prep options (``[modalities.<m>] prep``), checked."""
    opts = g["modalities"][m].get("prep", {})
    where = f"{g.get('_path', 'grid')}: [modalities.{m}] prep"
    if not isinstance(opts, dict):
        raise RdmError(f"{where}: expected a table such as {{ group_similar = 0.05 }}")
    for k, v in opts.items():
        if k not in PREP_OPTIONS:
            raise RdmError(f"{where}: unknown option '{k}' (known: {', '.join(PREP_OPTIONS)})")
        if PREP_OPTIONS[k] is float and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise RdmError(f"{where}: {k} must be a number ≥ 0, got {v!r}")
        if PREP_OPTIONS[k] is int and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise RdmError(f"{where}: {k} must be a whole number ≥ 1, got {v!r}")
        if PREP_OPTIONS[k] is str and not isinstance(v, str):
            raise RdmError(f"{where}: {k} must be a string, got {v!r}")
    return dict(opts)


def training_rule(g: dict[str, Any]) -> dict[str, int]:
    """``[training]``: the one stopping rule (epoch cap, patience) of every trained model."""
    t = g.get("training", {})
    where = f"{g.get('_path', 'grid')}: [training]"
    unknown = sorted(set(t) - set(TRAINING_KEYS))
    if unknown:
        raise RdmError(f"{where}: unknown key {', '.join(unknown)} (known: {', '.join(TRAINING_KEYS)})")
    for k, v in t.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if k == "epochs" else 0):
            raise RdmError(f"{where}: {k} must be an integer ≥ {1 if k == 'epochs' else 0}, got {v!r}")
    return dict(t)


def paper_of(g: dict[str, Any], m: str) -> dict[str, Any]:
    """The paper's numbers for a modality: ``[paper.<m>]``, or those of the modality it names with
    ``paper = "brain"`` (the similarity-grouped brain split is the paper's brain task)."""
    return g.get("paper", {}).get(g["modalities"][m].get("paper", m), {})


def param_default(kind: str, name: str) -> Any:
    """The registry's default of one hyper-parameter of an attack (None: computed, or no such one)."""
    from rdm.attacks.registry import get

    return next((p.default for p in get(kind).params if p.name == name), None)


#: keys of a grid attack entry that are not the attack's hyper-parameters
PLAN_KEYS = ("name", "attack", "eps", "splits", "train_eps", "limit", "square_seeds")


@dataclass(frozen=True)
class Attack:
    """An attack as the grid names it: a registered attack (``kind``, :mod:`rdm.attacks.registry`)
    with the hyper-parameters the grid sets (the others take the attack's defaults), the ε it runs
    at and, for crafted sets, the splits; for white-box, whether on the seeded subset."""

    name: str
    kind: str
    params: tuple[tuple[str, Any], ...] = ()
    eps: tuple[float, ...] = ()
    splits: tuple[str, ...] = ("test",)
    train_eps: tuple[float, ...] | None = None
    subset: bool = False
    auto_rows: bool = False      # limit = "auto": the plan's cost estimate picks the rows, per modality
    square_seeds: int | None = None  # the standard suite: Square on the run's first N seeds only (None: all)

    @classmethod
    def from_grid(cls, d: dict[str, Any], default_eps: Iterable[float] = ()) -> "Attack":
        limit = d.get("limit", False)
        if limit not in (True, False, "auto"):
            raise RdmError(f"attack '{d.get('name', d['attack'])}': limit must be true, false or \"auto\", "
                           f"got {limit!r}")
        sq = d.get("square_seeds")
        if sq is not None and (str(d["attack"]).lower() != "aa" or isinstance(sq, bool) or not isinstance(sq, int)
                               or sq < 1):
            raise RdmError(f"attack '{d.get('name', d['attack'])}': square_seeds (the standard suite's seeds with "
                           f"Square) must be a whole number ≥ 1 on an aa attack, got {sq!r}")
        return cls(name=str(d.get("name", d["attack"])), kind=str(d["attack"]).lower(),
                   params=tuple((k, v) for k, v in d.items() if k not in PLAN_KEYS),
                   eps=tuple(parse_eps(e, f"attack {d.get('name', '?')}: eps") for e in d.get("eps", default_eps)),
                   splits=tuple(d.get("splits", ["test"])),
                   train_eps=tuple(parse_eps(e, "train_eps") for e in d["train_eps"]) if "train_eps" in d else None,
                   subset=limit is True, auto_rows=limit == "auto", square_seeds=sq)

    def get(self, key: str, default: Any = None) -> Any:
        """A hyper-parameter as the grid set it (``default`` when it did not)."""
        return dict(self.params).get(key, default)

    @property
    def alpha(self) -> float | None:
        return self.get("alpha")

    @property
    def steps(self) -> int | None:
        return self.get("steps")

    @property
    def restarts(self) -> int:
        return int(self.get("restarts", 1))

    def eps_for(self, split: str) -> tuple[float, ...]:
        return self.train_eps if split == "train" and self.train_eps is not None else self.eps

    def check(self, where: str) -> None:
        """The registry's validation of these hyper-parameters (one line naming ``where``)."""
        from rdm.attacks.registry import get

        try:
            get(self.kind).make((self.eps or (PAPER_EPS,))[0], **dict(self.params))
        except RdmError as e:
            raise RdmError(f"{where}: attack '{self.name}': {e}") from None

    def label(self, eps: float | None) -> str:
        return attack_label(self, eps)

    def for_seed(self, index: int) -> "Attack":
        """The attack the ``index``-th seed of a run (0: the first) runs: the standard suite past its
        ``square_seeds`` is its gradient part (``aa-apgd``: APGD-CE → APGD-T, the same steps and
        targets, no Square); any other attack is itself."""
        if self.square_seeds is None or index < self.square_seeds:
            return self
        return replace(self, kind="aa-apgd", params=tuple((k, v) for k, v in self.params if k != "queries"))

    @property
    def gradient_only(self) -> bool:
        return self.kind == "aa-apgd"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    recipe: str
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def get(self, key: str, default=None):
        return self.options.get(key, default)



@dataclass(frozen=True)
class Certify:
    """``[certify]``: randomized smoothing of the noise-trained ``models`` (σ from each model's entry)
    with ``n0`` selection and ``n`` estimation samples, failure probability ``alpha`` per row."""

    models: tuple[tuple[str, float], ...] = ()   # (model, σ)
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001

    @classmethod
    def from_grid(cls, d: dict[str, Any], models: dict[str, ModelSpec], where: str) -> "Certify":
        from rdm.evaluation.certify import check_params

        pairs = []
        for name in d.get("models", []):
            ms = models.get(name)
            if ms is None:
                raise RdmError(f"{where}: [certify] names model '{name}', which [models] does not define")
            if ms.recipe != "advtrain-gaussian" or ms.get("sigma") is None:
                raise RdmError(f"{where}: [certify] model '{name}' must be noise-trained "
                               "(recipe = \"advtrain-gaussian\" with a sigma)")
            pairs.append((name, float(ms.get("sigma"))))
        c = cls(tuple(pairs), int(d.get("n0", cls.n0)), int(d.get("n", cls.n)), float(d.get("alpha", cls.alpha)))
        try:
            check_params(pairs[0][1] if pairs else 1.0, c.n0, c.n, c.alpha, 1)
        except RdmError as e:
            raise RdmError(f"{where}: [certify]: {e}") from None
        return c

    def max_radius(self, sigma: float) -> float:
        """The largest radius CERTIFY can return at these n and α (:func:`rdm.evaluation.certify.max_certifiable_radius`)."""
        from rdm.evaluation.certify import max_certifiable_radius

        return max_certifiable_radius(sigma, self.n, self.alpha)


@dataclass(frozen=True)
class StatsRule:
    """``[stats]``: the equivalence margin of the verdicts between methods (a fraction of the deciding
    metric) and the multiplicity adjustment across each claims table (``holm`` or ``bh``)."""

    equivalence_margin: float = 0.03
    adjust: str = "holm"

    @classmethod
    def from_grid(cls, d: dict[str, Any], where: str) -> "StatsRule":
        unknown = sorted(set(d) - {"equivalence_margin", "adjust"})
        if unknown:
            raise RdmError(f"{where}: [stats] unknown key {', '.join(unknown)} (known: equivalence_margin, adjust)")
        m = d.get("equivalence_margin", cls.equivalence_margin)
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m < 1:
            raise RdmError(f"{where}: [stats] equivalence_margin must be a fraction in (0, 1) such as 0.03, got {m!r}")
        a = d.get("adjust", cls.adjust)
        if a not in ("holm", "bh"):
            raise RdmError(f"{where}: [stats] adjust = {a!r}: expected holm or bh")
        return cls(float(m), a)


class Grid:
    """The grid as one mode runs it, typed."""

    def __init__(self, grid: dict[str, Any] | str | Path | None = None, mode: str = "tables", tier: str = "full"):
        if mode not in MODES:
            raise RdmError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        g = grid if isinstance(grid, dict) else load_grid(grid)
        self.raw = g
        self.path = g.get("_path", str(DEFAULT_GRID))
        self.mode = mode
        self.tier = Tier.from_grid(g, tier, self.path)
        g = for_mode(g, mode)
        self.modalities: dict[str, dict[str, Any]] = dict(g["modalities"])
        for m, spec in self.modalities.items():
            check_verdict_keys(self.path, m, spec)
        ev = g["evaluate"]
        self.paper_eps: list[float] = [parse_eps(e, "[evaluate] paper_eps") for e in ev.get("paper_eps", [PAPER_EPS])]
        self.attacks = [Attack.from_grid(a) for a in g["attacks"]]
        self.training = training_rule(g)
        self.models = {n: ModelSpec(n, s["recipe"], {**({} if s["recipe"] in UNTRAINED_RECIPES else self.training),
                                                     **{k: v for k, v in s.items() if k != "recipe"}})
                       for n, s in g["models"].items()}
        self.prep = {m: prep_options(g, m) for m in self.modalities}
        self.eval_models: list[str] = list(ev["models"])
        # RDMAA's ablations: evaluated clean, under transfer and by the transfer attacks' white-box twins only
        self.ablations: list[str] = list(ev.get("ablations", []))
        # controls: models judged only under transfer (CONTROL_JOBS of the plan), never as a defence
        self.controls: list[str] = list(ev.get("controls", []))
        for name in (*self.eval_models, *self.controls, *self.ablations):
            if name not in self.models:
                raise RdmError(f"{self.path}: [evaluate] names model '{name}', which [models] does not define")
        for a, b, what in ((self.eval_models, self.controls, "a model and as a control"),
                           (self.eval_models, self.ablations, "a model and as an ablation"),
                           (self.controls, self.ablations, "a control and as an ablation")):
            both = sorted(set(a) & set(b))
            if both:
                raise RdmError(f"{self.path}: [evaluate] lists {', '.join(both)} both as {what}")
        for name in ("eval_models", "controls", "ablations"):   # the tier's models only (the baseline always)
            setattr(self, name, [x for x in getattr(self, name) if x == "baseline" or self.tier.keeps(x)])
        self.defended = [x for x in DEFENDED_ORDER if x in self.eval_models] + \
                        [x for x in self.eval_models if x not in DEFENDED_ORDER and x != "baseline"]
        self.whitebox = [Attack.from_grid(w, self.paper_eps) for w in ev.get("whitebox", [])]
        # numbers or fractions: "2/255" is the literature's budget (the sweep includes 1, 2, 4, 8/255)
        self.sweep_eps: list[float] = sorted(parse_eps(e, "[evaluate] sweep_eps") for e in ev.get("sweep_eps", []))
        self.sweep_pgd_steps = int(ev.get("sweep_pgd", {}).get("steps", 10))
        self.sweep_on_subset = bool(ev.get("sweep_on_subset"))
        self.sweep_attacks = {"fgsm": Attack("sweep-fgsm", "fgsm"),
                              "pgd": Attack("sweep-pgd", "pgd", (("steps", self.sweep_pgd_steps),))}
        apgd = next((w for w in self.whitebox if w.kind == "apgd"), None)
        self.apgd_steps = int(apgd.steps if apgd is not None and apgd.steps else param_default("apgd", "steps"))
        self.matched_attacks = {"fgsm": self.sweep_attacks["fgsm"], "pgd": self.sweep_attacks["pgd"],
                                "apgd": Attack("matched-apgd", "apgd", (("steps", self.apgd_steps),))}
        aa = next((w for w in self.whitebox if w.kind == "aa"), None)
        if aa is not None:      # the standard suite at the matched ε too, with the grid's settings
            self.matched_attacks["aa"] = replace(aa, name="matched-aa", eps=())
        self.steps_curve = steps_curve(ev.get("steps_curve"), self.path)
        # the steps and restarts curves at the matched PGD ε (every defence, the subset): the steps curve's
        # attacks and the white-box attacks with restarts, their ε known once the sweep ran
        self.matched_curve = [replace(w, eps=(), subset=True) for w in self.steps_curve] + \
                             [replace(w, eps=(), subset=True) for w in self.whitebox if w.restarts > 1]
        # the tier's attacks only: a white-box attack or curve whose job the tier does not run is no column
        # of its tables (the full tier keeps every one)
        self.whitebox = [w for w in self.whitebox if self.tier.runs(f"wb-{w.name}")]
        self.steps_curve = [w for w in self.steps_curve if self.tier.runs(f"wb-{w.name}")]
        if not self.tier.runs("matched-steps"):
            self.matched_curve = []
        if not self.tier.runs("matched-wb-apgd"):
            del self.matched_attacks["apgd"]
        self.cost = Cost.from_grid(ev.get("cost"), self.path)
        self.paper: dict[str, dict[str, Any]] = {m: paper_of(g, m) for m in self.modalities}
        self.certify = Certify.from_grid(g.get("certify", {}), self.models, self.path)
        self.stats = StatsRule.from_grid(g.get("stats", {}), self.path)
        self.certify = replace(self.certify, models=tuple((n, s) for n, s in self.certify.models if self.tier.keeps(n)))
        for ms in self.models.values():
            check_matched_options(ms, self.path)
        for a in (*self.attacks, *self.whitebox, *self.sweep_attacks.values(), *self.matched_attacks.values(),
                  *self.steps_curve):
            a.check(self.path)

    @property
    def advtrain(self) -> list[str]:
        """The models adversarially trained at the paper's ε among the defended ones (the claims' "best
        adversarial training" ranges over these: like is compared with like)."""
        return [x for x in self.defended if x.startswith("advtrain") and not self.trained_at_matched(x)]

    @property
    def matched_trained(self) -> list[str]:
        """The defended models trained at the matched ε (their own training sets or on-line attack at it)."""
        return [x for x in self.defended if self.trained_at_matched(x)]

    def trained_at_matched(self, name: str) -> bool:
        """Whether model ``name`` is trained at the matched ε: an on-line recipe with ``eps = "matched"``,
        training sets crafted at it (``adv_eps``), or fine-tuned from a DCAE that was."""
        ms = self.models.get(name)
        if ms is None:
            return False
        if isinstance(ms.get("eps"), str) or any(isinstance(e, str) for e in ms.get("adv_eps") or []):
            return True
        return ms.get("dcae") is not None and self.trained_at_matched(ms.get("dcae"))

    @property
    def test_attacks(self) -> list[Attack]:
        return [a for a in self.attacks if "test" in a.splits]

    # ----- the grid's meaning of its attacks
    def whitebox_twin(self, a: Attack) -> Attack | None:
        """The white-box entry that is the same attack as the transfer attack ``a`` (same α, steps),
        on the whole test set."""
        return next((w for w in self.whitebox if w.restarts == 1 and not w.subset and w.kind == a.kind
                     and w.steps == a.steps and same_opt(w.alpha, a.alpha)), None)

    def whitebox_extra(self) -> list[Attack]:
        """White-box attacks with no transfer twin (PGD-50×5, APGD-CE): the stronger checks."""
        twins = {id(self.whitebox_twin(a)) for a in self.test_attacks}
        return [w for w in self.whitebox if id(w) not in twins]


def is_matched(v: Any) -> bool:
    """Whether a grid value is the run-time matched ε (``"matched"``)."""
    return isinstance(v, str) and v == MATCHED


def check_matched_options(ms: "ModelSpec", where: str) -> None:
    """A model's ``adv_eps`` may list ``"matched"`` (its train-split sets crafted at this seed's matched ε)
    and an on-line recipe's ``eps`` may be ``"matched"`` (trained at the matched PGD ε); nothing else."""
    for k, v in ms.options.items():
        if k == "adv_eps":
            if any(isinstance(e, str) and not is_matched(e) for e in v):
                raise RdmError(f"{where}: model {ms.name}: adv_eps takes numbers or \"{MATCHED}\", got {v!r}")
        elif k == "eps" and isinstance(v, str):
            if not is_matched(v) or not ms.recipe.startswith("advtrain-"):
                raise RdmError(f"{where}: model {ms.name}: eps = {v!r}: a number, or \"{MATCHED}\" for an "
                               "on-line adversarial-training recipe")


@dataclass(frozen=True)
class Tier:
    """Which part of the grid a run builds (``[tiers.<name>]``); None: no restriction.

    ``modalities``: the modalities run when none are named; ``models``: the evaluated models, controls,
    ablations and certified models kept (the trained models are what they need); ``jobs``: the
    evaluation jobs run on each of them (``clean``, ``transfer``, ``wb-<name>``, ``matched-wb-<kind>``,
    ``matched-transfer``, ``sweep-wb-<kind>``, ``sweep-transfer``, ``matched-steps``); the baseline's
    white-box sweep always runs (the matched ε is read off it)."""

    name: str = "full"
    modalities: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    jobs: tuple[str, ...] | None = None

    @classmethod
    def from_grid(cls, g: dict[str, Any], name: str, where: str) -> "Tier":
        if name not in TIERS:
            raise RdmError(f"tier {name!r}: expected one of {', '.join(TIERS)}")
        if name == "full":
            return cls()
        d = g.get("tiers", {}).get(name)
        if d is None:
            raise RdmError(f"{where}: no [tiers.{name}] section")
        unknown = sorted(set(d) - {"modalities", "models", "jobs"})
        if unknown:
            raise RdmError(f"{where}: [tiers.{name}] has no key {', '.join(unknown)} (it takes modalities, models, jobs)")
        for k in ("modalities", "models", "jobs"):
            if k in d and (not isinstance(d[k], list) or not all(isinstance(v, str) for v in d[k])):
                raise RdmError(f"{where}: [tiers.{name}] {k} must be a list of names")
        bad = sorted(set(d.get("modalities", [])) - set(g["modalities"]))
        bad += sorted(set(d.get("models", [])) - set(g["models"]))
        if bad:
            raise RdmError(f"{where}: [tiers.{name}] names {', '.join(bad)}, which the grid does not define")
        return cls(name, *(tuple(d[k]) if k in d else None for k in ("modalities", "models", "jobs")))

    def keeps(self, model: str) -> bool:
        return self.models is None or model in self.models

    def runs(self, job: str) -> bool:
        return self.jobs is None or job in self.jobs


def steps_curve(d: dict[str, Any] | None, where: str) -> list[Attack]:
    """``[evaluate] steps_curve``: one white-box attack at several step counts on the seeded subset
    (the convergence check of :mod:`rdm.pipeline.claims`), as one :class:`Attack` per count."""
    if not d:
        return []
    steps = d.get("steps")
    if not isinstance(steps, list) or len(steps) < 2 or any(not isinstance(n, int) or n < 1 for n in steps) \
            or len(set(steps)) != len(steps):
        raise RdmError(f"{where}: steps_curve.steps must list at least two different step counts ≥ 1, got {steps!r}")
    kind = str(d.get("attack", "pgd")).lower()
    params = {k: v for k, v in d.items() if k not in ("attack", "steps", "eps")}
    eps = tuple(parse_eps(e, "steps_curve: eps") for e in d.get("eps", [PAPER_EPS]))
    return [Attack(f"steps-{n}", kind, tuple({**params, "steps": n}.items()), eps=eps, subset=True)
            for n in sorted(steps)]
