"""Attacks as a registry: one class per attack, around the pure tensor → tensor functions.

An attack class (torchattacks' shape) holds only its hyper-parameters; calling it is a
pure tensor → tensor function; the base class alone puts the model in eval mode and
restores it (:func:`rdm.attacks.functions.attack_mode`). The class also knows

* its name (``--attack NAME``), its labels (``label`` short, ``title`` long) and how to
  describe an instance (``describe``: the ``repr`` stored in provenance and logs, and
  ``short``: the one-line table label such as ``PGD ε=0.005 α=0.002 ×3``);
* its hyper-parameters (:class:`Param`: type, default, lower bound, choices) and the
  CLI flag each maps to (:data:`FLAGS`; any other one is ``--attack-param NAME=VALUE``);
* its defaults, filled in ONE place (:meth:`Attack.fill_defaults`; PGD's
  α = 2.5·ε/steps is :func:`default_alpha`) and what it validates.

Adding an attack is one class with :func:`register` (tests may register a toy attack and
:func:`unregister` it after). The serialised form is :class:`AttackSpec` (``to_dict`` /
``from_dict``), unchanged for the attacks that existed before the registry: the keys
``name eps alpha steps restarts random_start seed keep description``, plus one key per
extra hyper-parameter of attacks that have them.

Lookups for the pipeline: :func:`get` (name → class), :func:`names`, :func:`label`
(the table label of a spec or its dict), :func:`describe`, :func:`cli_flags` (the
``rdm-attack``/``rdm-eval`` options that rebuild a spec).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from rdm import bounds
from rdm.errors import RdmError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn


class LazyModule:
    """A module imported on first attribute access: the registry and the attack classes' names,
    parameters and help import no torch (``--help`` and ``--list-attacks`` stay quick); the tensor
    code is loaded when an attack is built or run."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, key: str):
        return getattr(importlib.import_module(self._name), key)


A = LazyModule("rdm.attacks.functions")

__all__ = ["Param", "AttackSpec", "Attack", "FLAGS", "register", "unregister", "get", "names",
           "label", "describe", "cli_flags", "catalogue", "run_attack", "run_attack_sweep", "default_alpha",
           "parse_params", "spec_from_options", "LazyModule"]

#: the fields every spec stores (the pre-registry serialised form), with their defaults
LEGACY = {"alpha": None, "steps": None, "restarts": 1, "random_start": False, "keep": "fooled"}

#: hyper-parameter → the flag ``rdm-attack`` and ``rdm-eval`` take for it; any other
#: hyper-parameter is given as ``--attack-param NAME=VALUE``
FLAGS = {"alpha": "--alpha", "steps": "--steps", "restarts": "--restarts",
         "random_start": "--random-start", "keep": "--keep", "queries": "--queries"}


#: the cost of a forward pass of one row in forward+backward passes (measured on the presets' CNNs on
#: this repository's CPU: a forward+backward took 2.3–2.5× a forward, batch 128)
FORWARD = 0.4


def default_alpha(eps: float, steps: int) -> float:
    """PGD/BIM's default step size, 2.5·ε/steps (Madry et al. 2018): the one definition."""
    return 2.5 * float(eps) / int(steps)


def flag_of(name: str) -> str:
    return FLAGS.get(name, f"--attack-param {name}=")


# --------------------------------------------------------------------------- hyper-parameters
@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its type, default (None: filled by :meth:`Attack.fill_defaults`),
    an inclusive lower bound or ``positive`` (> 0), allowed ``choices`` and a help line."""

    name: str
    type: type
    default: Any = None
    help: str = ""
    min: float | None = None
    positive: bool = False
    choices: tuple = ()

    @property
    def flag(self) -> str:
        return flag_of(self.name)

    def coerce(self, value: Any) -> Any:
        """``value`` as this parameter's type (strings from ``--attack-param`` included)."""
        try:
            if self.type is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(value)
                    return low in ("1", "true", "yes")
                return bool(value)
            if self.type is int:
                f = float(value)
                if f != int(f):
                    raise ValueError(value)
                return int(f)
            return self.type(value)
        except (TypeError, ValueError):
            raise UsageError(f"{self.flag.rstrip('=')}: expected {self.type.__name__}, got {value!r}") from None

    def check(self, value: Any) -> None:
        if value is None:
            return
        flag = self.flag.rstrip("=")
        if self.type in (int, float) and isinstance(value, (int, float)) and math.isnan(value):
            raise UsageError(f"{flag} must be a number, got nan")
        if self.min is not None and value < self.min:
            raise UsageError(f"{flag} must be at least {self.min:g}, got {value:g}")
        if self.type is int and not isinstance(value, bool) and abs(value) > bounds.MAX_HYPER_INT:
            raise UsageError(f"{flag} must be at most {bounds.MAX_HYPER_INT:,}, got {value}")
        if self.positive and not value > 0:
            raise UsageError(f"{flag} must be > 0, got {value:g}")
        if self.choices and value not in self.choices:
            raise UsageError(f"{flag} must be one of {', '.join(map(str, self.choices))}, got {value!r}")


# --------------------------------------------------------------------------- the serialised form
class AttackNameStr(str):
    """An attack's name: a plain string that also answers ``.value`` (the pre-registry enum's)."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)


@dataclass(frozen=True)
class AttackSpec:
    """One attack and its hyper-parameters: what provenance, logs and eval JSON store.

    ``name`` is a registered attack; the legacy fields (``alpha steps restarts
    random_start keep``) keep their pre-registry meaning and defaults (an attack that has
    no such parameter leaves the default); other hyper-parameters are in ``extra``
    (sorted ``(name, value)`` pairs). Build one with :meth:`make` (validated, defaults
    filled), read one back with :meth:`from_dict`.
    """

    name: str
    eps: float
    alpha: float | None = None
    steps: int | None = None
    restarts: int = 1
    random_start: bool = False
    seed: int | None = 0
    keep: str = "fooled"
    extra: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "name", AttackNameStr(str(getattr(self.name, "value", self.name)).lower()))
        object.__setattr__(self, "extra", tuple(sorted((str(k), v) for k, v in dict(self.extra).items())))

    @classmethod
    def make(cls, name: str, eps: float, **opts: Any) -> "AttackSpec":
        """Validated spec with defaults filled: ``get(name).make(eps, **opts)``."""
        return get(name).make(eps, **opts)

    @property
    def attack_class(self) -> type["Attack"]:
        return get(self.name)

    def attack(self) -> "Attack":
        """The attack object that runs this spec."""
        return get(self.name)(self)

    def param(self, key: str, default: Any = None) -> Any:
        """A hyper-parameter by name: a legacy field or an extra."""
        if key in LEGACY or key in ("eps", "seed"):
            return getattr(self, key)
        return dict(self.extra).get(key, default)

    def with_eps(self, eps: float) -> "AttackSpec":
        """Same attack at another ε (a default α is NOT rescaled: it was fixed when made)."""
        return replace(self, eps=A.check_eps(eps))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        d.update(self.extra)
        d["description"] = repr(self)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AttackSpec":
        """The spec a :meth:`to_dict` (of this or an older version) describes."""
        if not isinstance(d, Mapping) or "name" not in d or "eps" not in d:
            raise RdmError(f"not an attack description: {d!r}")
        attack = get(d["name"])
        keys = {f.name for f in fields(cls)} - {"extra"}
        extra = {p.name: d[p.name] for p in attack.params if p.name not in keys and p.name in d}
        return cls(**{k: v for k, v in d.items() if k in keys}, extra=tuple(extra.items()))

    def __repr__(self) -> str:
        try:
            return self.attack().describe()
        except RdmError:
            return f"{self.name}(eps={self.eps:g}, seed={self.seed})"

    __str__ = __repr__


# --------------------------------------------------------------------------- the attack base
class Attack:
    """Base of every attack: holds the hyper-parameters of one :class:`AttackSpec`.

    Subclasses set ``name``, ``label``, ``title``, ``params`` and implement
    :meth:`forward` (a pure tensor → tensor function: detached inputs, input gradients
    only, result projected to the ε-ball and [0, 1] exactly); :meth:`__call__` runs it
    with the model in eval mode and restores the mode after.

    Class attributes besides the parameters:
    ``ignores``: options accepted and dropped (FGSM takes ``--steps`` and ignores it);
    ``rejects``: option → reason it is refused; ``fixed``: legacy fields stored with a
    fixed value (APGD always starts at random: ``random_start=True``).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    title: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    ignores: ClassVar[tuple[str, ...]] = ()
    rejects: ClassVar[Mapping[str, str]] = {}
    fixed: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, spec: AttackSpec):
        self.spec = spec
        self.eps = float(spec.eps)
        self.seed = spec.seed
        for p in self.params:
            setattr(self, p.name, spec.param(p.name))

    # ---------------------------------------------------------------- building specs
    @classmethod
    def make(cls, eps: float, *, seed: int | None = 0, **opts: Any) -> AttackSpec:
        """A validated :class:`AttackSpec` of this attack; options left ``None`` take defaults."""
        eps = A.check_eps(eps)
        known = {p.name: p for p in cls.params}
        given = {k: v for k, v in opts.items() if v is not None and k not in cls.ignores}
        for k in given:
            if k in cls.rejects:
                raise UsageError(cls.rejects[k])
            if k not in known:
                raise UsageError(f"{cls.name} takes no {flag_of(k).rstrip('=')}")
        values = {p.name: (p.coerce(given[p.name]) if p.name in given else p.default) for p in cls.params}
        for p in cls.params:                      # the given values and the fixed defaults
            p.check(values[p.name])
        values = cls.fill_defaults(eps, values)   # computed ones (α = 2.5·ε/steps is 0 at ε = 0)
        cls.validate(eps, values)
        values.update(cls.fixed)
        legacy = {k: v for k, v in values.items() if k in LEGACY}
        extra = tuple((k, v) for k, v in values.items() if k not in LEGACY)
        return AttackSpec(cls.name, eps, seed=seed, extra=extra, **legacy)

    @classmethod
    def fill_defaults(cls, eps: float, values: dict[str, Any]) -> dict[str, Any]:
        """Defaults that depend on ε or on other parameters (hook; the base fills none)."""
        return values

    @classmethod
    def validate(cls, eps: float, values: Mapping[str, Any]) -> None:
        """Checks across parameters (hook; each parameter's own bounds are checked already)."""

    # ---------------------------------------------------------------- running
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 row_ids: Sequence[int] | None = None) -> torch.Tensor:
        """Adversarial images for ``x`` (labels ``y``); ``row_ids`` seed random starts per row."""
        with A.attack_mode(model):
            return self.forward(model, x, y, row_ids)

    def forward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                row_ids: Sequence[int] | None) -> torch.Tensor:
        raise NotImplementedError

    def run_with_info(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      row_ids: Sequence[int] | None = None) -> tuple[torch.Tensor, dict[str, list]]:
        """The adversarial images and what the attack knows per row beyond them, as lists
        (the cascade: which stage fooled each row first); the base knows nothing more."""
        return self(model, x, y, row_ids), {}

    def passes(self, classes: int) -> float | None:
        """Forward+backward passes of one row this attack costs at most (a forward alone counts
        :data:`FORWARD`), for the plan's cost estimate; None: not known (the base knows nothing)."""
        return None

    @classmethod
    def sweep(cls, specs: Sequence[AttackSpec], model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              row_ids: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Several specs of this attack on one batch (FGSM shares one gradient)."""
        return [cls(s)(model, x, y, row_ids) for s in specs]

    # ---------------------------------------------------------------- words
    def hyper(self) -> dict[str, Any]:
        """The hyper-parameters beyond ε and the seed, in declaration order."""
        return {p.name: getattr(self, p.name) for p in self.params}

    def describe(self) -> str:
        """``LABEL(eps=…, k=v…, seed=…)``: the ``repr`` stored in provenance and logs."""
        kv = "".join(f", {k}={_fmt(v)}" for k, v in self.hyper().items())
        return f"{self.label}(eps={self.eps:g}{kv}, seed={self.seed})"

    def short(self) -> str:
        """One-line table label, e.g. ``PGD ε=0.005 α=0.002 ×3 r5 rs``."""
        s = f"{self.label} ε={self.eps:g}"
        h = self.hyper()
        if h.get("alpha") is not None:
            s += f" α={h['alpha']:g}"
        if h.get("steps") is not None:
            s += f" ×{h['steps']}"
        if h.get("queries") is not None:
            s += f" q{h['queries']}"
        if (h.get("restarts") or 1) > 1:
            s += f" r{h['restarts']}"
        return s

    def cli_flags(self, *, with_eps: bool = True, with_seed: bool = False) -> list[str]:
        """The options of ``rdm-attack``/``rdm-eval`` that rebuild this spec (defaults left out)."""
        out = ["--attack", self.name]
        if with_eps:
            out += ["--eps", _fmt(self.eps)]
        h = self.hyper()
        # parameters with a fixed default that differ from it, then the computed ones (α from ε
        # and steps) that differ from what those would give
        given = {p.name: h[p.name] for p in self.params
                 if p.name not in self.fixed and p.default is not None and h[p.name] != p.default}
        base = self.make(self.eps, seed=self.seed, **given)
        given.update({p.name: h[p.name] for p in self.params
                      if p.name not in self.fixed and p.default is None and h[p.name] != base.param(p.name)})
        for p in self.params:
            if p.name not in given:
                continue
            v = given[p.name]
            if p.type is bool and p.name in FLAGS:
                out.append(FLAGS[p.name] if v else "--no-" + FLAGS[p.name][2:])
            elif p.name in FLAGS:
                out += [FLAGS[p.name], _fmt(v)]
            else:
                out += ["--attack-param", f"{p.name}={_fmt(v)}"]
        if with_seed:
            out += ["--seed", str(self.seed)]
        return out


def _fmt(v: Any) -> str:
    """Shortest text that reads back to the same value (floats: ``repr``, e.g. 0.002)."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    return str(v)


# --------------------------------------------------------------------------- the registry
_REGISTRY: dict[str, type[Attack]] = {}
# the built-in attacks are a plugin module of this registry (they subclass Attack and register
# themselves), loaded by name on the first lookup, so the registry itself imports no attack
BUILTINS = "rdm.attacks.zoo"
_builtins_loaded = False


def _registry() -> dict[str, type[Attack]]:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module(BUILTINS)
    return _REGISTRY


def register(cls: type[Attack], *, replace: bool = False) -> type[Attack]:
    """Add an attack class (usable as a decorator); ``replace`` to override a name."""
    name = str(cls.name).lower()
    if not name or not isinstance(cls, type) or not issubclass(cls, Attack):
        raise ValueError(f"{cls!r}: an attack is an Attack subclass with a name")
    reg = _registry()
    if name in reg and reg[name] is not cls and not replace:
        raise ValueError(f"attack '{name}' is registered already ({reg[name].__name__})")
    reg[name] = cls
    return cls


def unregister(name: str) -> None:
    _registry().pop(str(name).lower(), None)


def names() -> list[str]:
    return list(_registry())


def catalogue(verbose: bool = False) -> list[str]:
    """One line per registered attack (``name  LABEL: title``); ``verbose`` adds a line per
    hyper-parameter: its flag, type, default and meaning (what ``--list-attacks`` prints)."""
    reg = _registry()
    width = max((len(n) for n in reg), default=0)
    lines = []
    for name, cls in reg.items():
        lines.append(f"{name:<{width}}  {cls.label}: {cls.title}")
        if not verbose:
            continue
        lines.append(f"{'':<{width}}    --eps FLOAT  L∞ budget in [0, 1] (required)")
        for p in cls.params:
            if p.type is bool and p.name in FLAGS:
                flag = f"{FLAGS[p.name]}/--no-{FLAGS[p.name][2:]}"
            else:
                flag = (p.flag if p.flag.endswith("=") else f"{p.flag} ") + p.type.__name__.upper()
            default = "" if p.default is None else f" [default: {_fmt(p.default)}]"
            lines.append(f"{'':<{width}}    {flag}  {p.help}{default}")
        for k, v in cls.fixed.items():
            lines.append(f"{'':<{width}}    ({k} is always {_fmt(v)})")
    return lines


def get(name: str) -> type[Attack]:
    """The class registered as ``name`` (one-line error listing the choices if none)."""
    key = str(getattr(name, "value", name)).strip().lower()
    reg = _registry()
    try:
        return reg[key]
    except KeyError:
        raise UsageError(f"unknown attack '{name}' (choose from {', '.join(reg)})") from None


def _spec(spec: AttackSpec | Mapping[str, Any]) -> AttackSpec:
    return spec if isinstance(spec, AttackSpec) else AttackSpec.from_dict(spec)


def label(spec: AttackSpec | Mapping[str, Any] | None) -> str:
    """The table label of a spec (or of its stored dict); ``—`` for none, the name if unknown."""
    if spec is None:
        return "—"
    try:
        return _spec(spec).attack().short()
    except RdmError:
        name = spec.get("name", "?") if isinstance(spec, Mapping) else getattr(spec, "name", "?")
        return str(name).upper()


def describe(spec: AttackSpec | Mapping[str, Any]) -> str:
    return _spec(spec).attack().describe()


def cli_flags(spec: AttackSpec | Mapping[str, Any], *, with_eps: bool = True,
              with_seed: bool = False) -> list[str]:
    """``["--attack", "pgd", "--eps", "0.005", "--alpha", "0.002", "--steps", "3"]`` for a spec."""
    return _spec(spec).attack().cli_flags(with_eps=with_eps, with_seed=with_seed)


def parse_params(items: Sequence[str] | None) -> dict[str, str]:
    """``["queries=5000", ...]`` (``--attack-param``) → ``{"queries": "5000"}``."""
    out: dict[str, str] = {}
    for it in items or ():
        key, sep, val = str(it).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--attack-param {it}: expected NAME=VALUE")
        key = key.strip().replace("-", "_")
        if key in out:
            raise UsageError(f"--attack-param {key} given twice")
        out[key] = val.strip()
    return out


def spec_from_options(name: str, eps: float, *, seed: int | None = 0, params: Sequence[str] | None = None,
                      **flags: Any) -> AttackSpec:
    """A spec from a command's options: the shared flags (None: not given) and ``--attack-param``."""
    extra = parse_params(params)
    for k in extra:
        if k in flags and flags[k] is not None:
            raise UsageError(f"{k} is given both as {FLAGS.get(k, k)} and as --attack-param")
    cls = get(name)
    for k in cls.ignores:     # accepted from stored specs, but a user who types one gets told
        if flags.get(k) is not None or k in extra:
            raise UsageError(f"{cls.name} takes no {FLAGS.get(k, '--attack-param ' + k)}")
    return cls.make(eps, seed=seed, **{**flags, **extra})


def run_attack(spec: AttackSpec, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               row_ids: Sequence[int] | None = None) -> torch.Tensor:
    """Run the attack ``spec`` describes on one batch."""
    return spec.attack()(model, x, y, row_ids)


def run_attack_sweep(specs: Sequence[AttackSpec], model: nn.Module, x: torch.Tensor,
                     y: torch.Tensor, row_ids: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Several specs on one batch; specs of one attack go through its :meth:`Attack.sweep`."""
    classes = {get(s.name) for s in specs}
    if len(classes) == 1:
        return next(iter(classes)).sweep(specs, model, x, y, row_ids)
    return [run_attack(s, model, x, y, row_ids) for s in specs]

