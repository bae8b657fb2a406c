"""rdm-advtrain as a typed library call: adversarial training on the shared loop.

Recipes: ``paper`` (clean ∪ given adversarial sets, ``advtrain-paper``), ``pgd`` (on-line
PGD, Madry et al. 2018, ``advtrain-online``), and :mod:`rdm.training.recipes`' ``fast``, ``trades``,
``mart`` and ``gaussian``. Inputs, outputs, resume and the checkpoint are as in
:mod:`rdm.api.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from rdm.errors import UsageError
from rdm.models import build, cnn_arch
from rdm.training.loop import Classification
from rdm.api.train import (Common, check_output, classifier_setup, set_hashes, recipe_of, run_training, sources_of,
                        refuse_held_out_sources)


RECIPES = ("paper", "pgd", "fast", "trades", "mart", "gaussian")


def _check_recipe(recipe: str | None, adv: Sequence[Path], online: str | None, eps: float | None, steps: int,
                  beta: float, sigma: float | None, alpha: float | None = None) -> str:
    """The recipe asked for (``--online pgd`` is ``--recipe pgd``), its settings checked: exit 2 if bad."""
    if online is not None and online.lower() != "pgd":
        raise UsageError(f"--online {online}: only 'pgd' is supported")
    if recipe is None:
        recipe = "pgd" if online else "paper"
    recipe = recipe.lower()
    if recipe not in RECIPES:
        raise UsageError(f"--recipe {recipe}: choose from {', '.join(RECIPES)}")
    if online and recipe != "pgd":
        raise UsageError(f"--online pgd is the 'pgd' recipe; drop it for --recipe {recipe}")
    if (recipe == "paper") != bool(adv):
        raise UsageError("give either --adv SET (the paper's recipe) or an on-line recipe (--online pgd, "
                         "--recipe pgd|fast|trades|mart|gaussian), not both or neither")
    if recipe == "gaussian":
        if sigma is None or not sigma > 0:
            raise UsageError("--recipe gaussian needs --sigma > 0")
        if eps is not None or alpha is not None:
            raise UsageError("--recipe gaussian takes --sigma, not --eps/--alpha")
    elif recipe != "paper":
        if eps is None or not (0 < eps <= 1):
            raise UsageError(f"--recipe {recipe} needs --eps in (0, 1]")
        if steps < 1:
            raise UsageError(f"--steps must be at least 1, got {steps}")
        if recipe == "fast" and alpha is not None:
            raise UsageError("--recipe fast steps 1.25·eps from a random start; drop --alpha")
        if recipe in ("trades", "mart") and not beta >= 0:
            raise UsageError(f"--beta must be ≥ 0, got {beta:g}")
    return recipe


def advtrain(train: Path, *, output: Path, val: Path | None = None, adv: Sequence[Path] = (),
             online: str | None = None, eps: float | None = None, steps: int = 7,
             alpha: float | None = None, c: Common = Common(), allow_held_out: bool = False,
             recipe: str | None = None, beta: float = 6.0, sigma: float | None = None) -> Path:
    """Adversarial training.

    Paper recipe (``adv``): the clean set ∪ the given adversarial sets (labels = their
    y), i.e. twice the data with one set. On-line PGD (``recipe="pgd"`` or
    ``online="pgd"``): every batch is replaced by PGD examples against the current model
    (ε = ``eps``, ``steps`` steps of ``alpha``, default 2.5·ε/steps, random start), Madry
    et al. 2018. ``fast``, ``trades``, ``mart`` and ``gaussian``: see :mod:`rdm.training.recipes`.
    """
    train, output = Path(train), check_output(output, [train, val, *adv], c.history, c.preset)
    adv = [Path(p) for p in adv]
    refuse_held_out_sources(adv, allow_held_out, train)
    recipe = _check_recipe(recipe, adv, online, eps, steps, beta, sigma, alpha)
    preset, _, cfg, device = classifier_setup(train, val, adv, c)
    transform, objective, extra = None, Classification(), {}
    if recipe != "paper":
        from rdm.training import recipes

        transform, objective, settings = recipes.make(recipe, objective, eps=eps, alpha=alpha, steps=steps,
                                                      beta=beta, sigma=sigma, seed=cfg.seed)
        extra = {"online" if recipe == "pgd" else recipe: settings}     # "online": as the pgd recipe always said
    arch = cnn_arch(preset)
    torch.manual_seed(cfg.seed)
    model = build(arch)
    name = {"pgd": "advtrain-online", "paper": "advtrain-paper"}.get(recipe, f"advtrain-{recipe}")
    return run_training(output=output, model=model, kind="cnn", arch=arch, preset=preset, objective=objective,
                train_sources=sources_of([train, *adv]), val_sources=sources_of([val] if val else []), cfg=cfg, c=c,
                recipe=recipe_of(name, cfg, adversarial_sets=[str(p) for p in adv], **extra), parent=None,
                datasets=set_hashes([train, *adv] + ([val] if val else [])), device=device, transform=transform)
