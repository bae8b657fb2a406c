"""One vocabulary for what the pipeline prints: models, modalities, ε, percentages, attacks.

ε has two spellings and one comparison:

* :func:`fmt_eps` — ``0.005``: file names, command-line flags, JSON (``%g``);
* :func:`eps_txt` — ``.005``: tables and prose (the paper's spelling);
* :func:`same_eps` — the only rule by which two ε are called equal (relative 1e-6, so an ε that
  went through a file name or a JSON float is still the grid's ε).
"""

from __future__ import annotations

from typing import Any

MODEL_LABELS = {
    "baseline": "No defence",
    "rdmaa": "RDMAA",
    "purified": "Purifier",
    "advtrain-fgsm": "AdvTrain-FGSM",
    "advtrain-pgd": "AdvTrain-PGD",
    "advtrain-online": "AdvTrain-online",
}
# the order the defended models are shown in; models the grid adds come after, in grid order
DEFENDED_ORDER = ["rdmaa", "purified", "advtrain-fgsm", "advtrain-pgd", "advtrain-online"]
MODALITY_TITLE = {"lung": "Lung nodule (CT patches; the paper's \"X-ray\")", "leukemia": "Acute leukemia (microscopy)",
                  "brain": "Brain tumour (MRI)"}


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def modality_title(m: str) -> str:
    return MODALITY_TITLE.get(m, m)


# --------------------------------------------------------------------------- numbers
def fmt_eps(eps: float) -> str:
    """ε in file names, flags and JSON: ``0.005``."""
    return f"{eps:g}"


def eps_txt(eps: float) -> str:
    """ε in tables and prose: ``.005``."""
    s = fmt_eps(eps)
    return s[1:] if s.startswith("0.") else s


def same_eps(a: float | None, b: float | None) -> bool:
    """The one rule by which two ε (or two step sizes) are the same."""
    return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-9 + 1e-6 * abs(float(b))


def same_opt(a: float | None, b: float | None) -> bool:
    """Both unset, or the same by :func:`same_eps`."""
    return (a is None and b is None) or same_eps(a, b)


def pct(v: float | None) -> str:
    """A rate as a percentage with one decimal (``n/a`` when missing)."""
    return "n/a" if v is None else f"{100 * v:.1f}"


# --------------------------------------------------------------------------- attacks
def _get(a: Any, key: str, default=None):
    return a.get(key, default) if isinstance(a, dict) else getattr(a, key, default)


def _kind(a: Any) -> str:
    return str(_get(a, "kind") or _get(a, "attack") or _get(a, "name"))


def attack_label(a: Any, eps: float | None) -> str:
    """``PGD ε=.005, α=.002, 3 steps ×5 restarts``: an attack (a plan attack, a spec or its dict) at ε."""
    n = _kind(a)
    e = "matched" if eps is None else eps_txt(eps)
    restarts = int(_get(a, "restarts", 1) or 1)
    if n == "fgsm":
        return f"FGSM ε={e}"
    if n == "apgd":
        s = f"APGD-CE ε={e}, {_get(a, 'steps') or 100} steps"
    else:
        s = f"{n.upper()} ε={e}"
        alpha = _get(a, "alpha")
        if alpha is not None:   # a derived α (2.5·ε/steps) to 3 significant digits
            s += f", α={eps_txt(float(f'{float(alpha):.3g}'))}"
        s += f", {_get(a, 'steps') or 10} steps"
    if restarts > 1:
        s += f" ×{restarts} restarts"
    return s


def short_attack(a: Any) -> str:
    """``PGD-50 ×5 restarts``, ``APGD-CE-100``, ``PGD-3``, ``FGSM``: an attack without its ε."""
    n = _kind(a)
    if n == "fgsm":
        return "FGSM"
    s = ("APGD-CE" if n == "apgd" else n.upper()) + f"-{_get(a, 'steps') or (100 if n == 'apgd' else 10)}"
    if int(_get(a, "restarts", 1) or 1) > 1:
        s += f" ×{_get(a, 'restarts')} restarts"
    return s
