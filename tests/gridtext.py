"""Grid TOML text for the tests that run the pipeline on a small grid of their own (test_controls,
test_report, test_slurm): one spelling of the blocks they share and :func:`grid`, which joins blocks
into a grid file's text. A block is plain TOML text, so a test can still add or replace a line."""

from __future__ import annotations

from typing import Any


def value(v: Any) -> str:
    """A TOML value: a bool, number, string, list or inline table (a dict)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML spelling for {v!r}")


def table(header: str, **keys: Any) -> str:
    """``[header]`` (``[[attacks]]`` for ``header="[attacks]"``) and one ``key = value`` line per key."""
    return f"\n[{header}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in keys.items())


def modality(name: str, preset: str, source: str, **more: Any) -> str:
    return table(f"modalities.{name}", preset=preset, source=source, **more)


def attack(name: str, eps: list[float], splits: list[str], **params: Any) -> str:
    """A crafted attack (``[[attacks]]``) of the same kind as its name."""
    return table("[attacks]", name=name, attack=name, **params, eps=eps, splits=splits)


def model(name: str, recipe: str, **options: Any) -> str:
    return table(f"models.{name}", recipe=recipe, **options)


def evaluate(models: list[str], paper_eps: list[float], whitebox: list[dict], **more: Any) -> str:
    """``[evaluate]`` with the tests' short sweep (ε .005 and .05, 2 PGD steps, on the subset)."""
    return table("evaluate", models=models, **more, paper_eps=paper_eps, whitebox=whitebox,
                 sweep_eps=[0.005, 0.05], sweep_pgd={"steps": 2}, sweep_on_subset=True)


def grid(*blocks: str) -> str:
    return "".join(blocks)


LUNG = modality("lung", "lung", "lung-nodule")
BRAIN = modality("brain", "brain", "brain-mri")
#: the paper's FGSM and PGD (α = .002, 3 steps), at ε = .005
FGSM = attack("fgsm", [0.005], ["train", "test"])
PGD = attack("pgd", [0.005], ["test"], alpha=0.002, steps=3)
PGD_WHITEBOX = {"name": "pgd", "attack": "pgd", "alpha": 0.002, "steps": 3}
BASELINE = model("baseline", "train-cnn")
#: the undefended CNN, the DCAE (trained on clean and FGSM images) and RDMAA from its encoder
RDMAA = BASELINE + model("dcae", "pretrain-dcae", adv=["fgsm"]) + model("rdmaa", "finetune", dcae="dcae", adv=[])


def paper_lung(**more: float) -> str:
    """The paper's lung numbers (clean, FGSM and PGD accuracy of the undefended CNN), and ``more``."""
    return table("paper.lung", clean=0.90, fgsm=0.35, pgd=0.40, **more)
