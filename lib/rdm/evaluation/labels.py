"""How ε, rates and attacks are spelled, in file names, flags, JSON, tables and prose.

ε has two spellings and one comparison:

* :func:`fmt_eps` — ``0.005``: file names, command-line flags, JSON (``%g``);
* :func:`eps_txt` — ``.005``: tables and prose (the paper's spelling); an ε that is k/255 and has no
  short decimal form (the literature's budgets 1/255 … 8/255) reads ``2/255``;
* :func:`same_eps` — the only rule by which two ε are called equal (relative 1e-6, so an ε that
  went through a file name or a JSON float is still the grid's ε).
"""

from __future__ import annotations

from typing import Any

GREY_LEVELS = 255     # ε on [0, 1] times this: ε in 8-bit grey levels (the literature's ε = k/255)


def fmt_eps(eps: float) -> str:
    """ε in file names, flags and JSON: ``0.005``."""
    return f"{eps:g}"


def grey_budget(eps: float) -> int | None:
    """k when ε is the literature's budget k/255 (to the precision of :func:`same_eps`) and has no short
    decimal spelling (``0.2`` is 51/255 and stays ``.2``); else None."""
    k = round(float(eps) * GREY_LEVELS)
    if k < 1 or not same_eps(float(eps), k / GREY_LEVELS) or len(f"{float(eps):g}".lstrip("0.")) <= 4:
        return None
    return k


def eps_txt(eps: float) -> str:
    """ε in tables and prose: ``.005``; ``2/255`` for the literature's budgets (:func:`grey_budget`)."""
    k = grey_budget(eps)
    if k is not None:
        return f"{k}/{GREY_LEVELS}"
    s = fmt_eps(eps)
    return s[1:] if s.startswith("0.") else s


def parse_eps(v: Any, where: str = "ε") -> float:
    """A number, or a fraction string such as ``"2/255"`` (how the grid writes the literature's budgets)."""
    from rdm.errors import RdmError

    if isinstance(v, str) and "/" in v:
        a, _, b = v.partition("/")
        try:
            num, den = float(a), float(b)
        except ValueError:
            raise RdmError(f"{where}: {v!r} is not a number or a fraction like \"2/255\"") from None
        if den <= 0:
            raise RdmError(f"{where}: {v!r} divides by {b.strip()}")
        return num / den
    try:
        return float(v)
    except (TypeError, ValueError):
        raise RdmError(f"{where}: {v!r} is not a number or a fraction like \"2/255\"") from None


def same_eps(a: float | None, b: float | None) -> bool:
    """The one rule by which two ε (or two step sizes) are the same."""
    return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-9 + 1e-6 * abs(float(b))


def same_opt(a: float | None, b: float | None) -> bool:
    """Both unset, or the same by :func:`same_eps`."""
    return (a is None and b is None) or same_eps(a, b)


# --------------------------------------------------------------------------- ε in physical units


def units_of(preset: Any) -> dict[str, Any]:
    """What ε on [0, 1] pixels means physically for a preset (a name, a ``.toml`` path, a
    :class:`~rdm.data.presets.Preset` or its ``as_dict()``, as checkpoints store it):
    ``{"grey_levels": 255, "unit": "HU" | None, "per_unit": 1400.0 | None, "window": [lo, hi] | None}``.
    The one source is the preset's ``[intensity]`` window (lung: HU in [−1000, 400]); the report
    and the model cards both ask here."""
    if isinstance(preset, str):
        from rdm.data.presets import load_preset

        preset = load_preset(preset)
    inten = preset.get("intensity") if isinstance(preset, dict) else getattr(preset, "intensity", None)
    out: dict[str, Any] = {"grey_levels": GREY_LEVELS, "unit": None, "per_unit": None, "window": None}
    if inten:
        lo, hi = (float(v) for v in inten["window"])
        out.update(unit=str(inten["unit"]), per_unit=hi - lo, window=[lo, hi])
    return out


def eps_values(eps: float | None, units: dict[str, Any]) -> dict[str, Any]:
    """ε as numbers (the model cards' keys): ``eps`` on [0, 1], ``eps_grey_levels`` (ε·255) and, where
    the preset has an intensity window, ``eps_<unit>`` (``eps_hu``: ε × the window's width)."""
    if eps is None:
        return {"eps": None}
    d: dict[str, Any] = {"eps": float(eps), "eps_grey_levels": float(eps) * units["grey_levels"]}
    if units.get("per_unit"):
        d[f"eps_{units['unit'].lower()}"] = float(eps) * units["per_unit"]
    return d


def eps_physical(eps: float, units: dict[str, Any], sep: str = " = ") -> str:
    """``1.3/255 = 7 HU``: ε in grey levels and, where the preset has one, in its unit."""
    v = eps_values(eps, units)
    parts = [f"{v['eps_grey_levels']:.2g}/{units['grey_levels']}"]
    if units.get("per_unit"):
        parts.append(f"{v['eps_' + units['unit'].lower()]:.3g} {units['unit']}")
    return sep.join(parts)


def eps_units(eps: float, units: dict[str, Any]) -> str:
    """``.005 = 1.3/255 = 7 HU``: ε on [0, 1], in grey levels and, where the preset has one, in its unit
    (``2/255 = .00784 = 11 HU`` for the literature's budgets)."""
    if grey_budget(eps) is not None:
        dec = f"{float(eps):.3g}"
        rest = eps_physical(eps, units).split(" = ")[1:]
        return " = ".join([eps_txt(eps), dec[1:] if dec.startswith("0.") else dec, *rest])
    return f"{eps_txt(eps)} = {eps_physical(eps, units)}"


def units_note(texts: Any, units: dict[str, Any], eps: Any = ()) -> str | None:
    """A line for under a table: every ε named in ``texts`` (its title, columns, row labels: ``ε=.005``)
    and in ``eps`` in grey levels and physical units; None when there is none."""
    import re

    seen: list[float] = [float(e) for e in eps if e]
    for t in texts:
        for k, hit in re.findall(r"ε\s*=\s*(?:([0-9]+)/255|([0-9]*\.[0-9]+(?:e-?[0-9]+)?|[0-9]+(?:e-?[0-9]+)?))",
                                 str(t)):
            v = int(k) / GREY_LEVELS if k else float(hit)
            if v > 0 and not any(same_eps(v, e) for e in seen):
                seen.append(v)
    if not seen:
        return None
    return "ε in [0, 1] pixel units; the same ε in 8-bit grey levels" + \
        (f" and in {units['unit']}" if units.get("per_unit") else "") + ": " + \
        "; ".join(eps_units(e, units) for e in sorted(seen)) + "."


def pct(v: float | None) -> str:
    """A rate as a percentage with one decimal (``n/a`` when missing)."""
    return "n/a" if v is None else f"{100 * v:.1f}"


# --------------------------------------------------------------------------- attacks
# An attack's name, its hyper-parameters and their defaults come from the attack registry
# (rdm.attacks.registry); this is only how the tables spell them.
def _get(a: Any, key: str, default=None):
    """A field of a plan attack (its attributes, then its hyper-parameters) or of a spec's dict."""
    if isinstance(a, dict):
        return a.get(key, default)
    if hasattr(a, key):
        return getattr(a, key)
    return a.get(key, default) if hasattr(a, "get") else default


def _kind(a: Any) -> str:
    return str(_get(a, "kind") or _get(a, "attack") or _get(a, "name"))


def _registered(kind: str):
    from rdm.attacks.registry import get
    from rdm.errors import RdmError

    try:
        return get(kind)
    except RdmError:
        return None


def _name_and_params(a: Any) -> tuple[str, dict[str, Any]]:
    """The attack's label and its hyper-parameters (the registry's, by name)."""
    cls = _registered(_kind(a))
    if cls is None:
        return _kind(a).upper(), {}
    return cls.label, {p.name: p for p in cls.params}


def attack_label(a: Any, eps: float | None) -> str:
    """``PGD ε=.005, α=.002, 3 steps ×5 restarts``: an attack (a plan attack, a spec or its dict) at ε
    (None: the matched ε); α when set, steps (the attack's default when not set), any hyper-parameter
    beyond the common ones, restarts when more than one."""
    from rdm.attacks.registry import LEGACY

    name, params = _name_and_params(a)
    s = f"{name} ε={'matched' if eps is None else eps_txt(eps)}"
    alpha = _get(a, "alpha")
    if alpha is not None and "alpha" in params:   # a derived α (2.5·ε/steps) to 3 significant digits
        s += f", α={eps_txt(float(f'{float(alpha):.3g}'))}"
    if "steps" in params:
        s += f", {_get(a, 'steps') or params['steps'].default} steps"
    for p in params.values():
        if p.name not in LEGACY and _get(a, p.name) is not None:
            s += f", {p.name}={_get(a, p.name)}"
    restarts = int(_get(a, "restarts", 1) or 1)
    if restarts > 1:
        s += f" ×{restarts} restarts"
    return s


def short_attack(a: Any) -> str:
    """``PGD-50 ×5 restarts``, ``APGD-CE-100``, ``PGD-3``, ``FGSM``: an attack without its ε."""
    name, params = _name_and_params(a)
    s = name + (f"-{_get(a, 'steps') or params['steps'].default}" if "steps" in params else "")
    if int(_get(a, "restarts", 1) or 1) > 1:
        s += f" ×{_get(a, 'restarts')} restarts"
    return s
