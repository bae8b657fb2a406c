"""Per-row losses an attack ascends, on CLASS logits (N×K; a binary head's [0, z]).

Every loss takes ``(logits, y)`` and returns one value per row; a targeted loss is made
for fixed target labels with :func:`targeted`. Higher is better for the attacker.

``ce``            cross-entropy of the true class (:func:`rdm.models.classification_loss`)
``margin``        max_{j≠y} z_j − z_y: the Carlini–Wagner margin, > 0 exactly when the row is
                  misclassified; never saturates (a confident model's CE gradient underflows
                  to 0 in float32, the margin's does not)
``dlr``           −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3): the difference of logits ratio
                  (Croce & Hein 2020), invariant to shifting and scaling the logits; needs
                  ≥ 3 classes
``dlr-targeted``  −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2) towards target t (Croce & Hein
                  2020); with 3 classes the denominator is z_π1 − z_π3 (there is no π4), with
                  2 classes there is no scale to divide by and the loss is the targeted margin
                  z_t − z_y (for a binary head the same as ``margin``)
``margin-targeted``  z_t − z_y

π1 ≥ π2 ≥ … order the logits of the row from the largest. Logits are read as float32 (a
bf16 autocast pass stays exact enough for the ratios).
"""

from __future__ import annotations

from typing import Callable

import torch

from rdm.errors import RdmError
from rdm.models import classification_loss

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_TINY = 1e-12


def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return classification_loss(logits.float(), y, reduction="none")


def _true_and_other(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The true class's logit and the largest other logit, per row."""
    zy = z.gather(1, y.view(-1, 1)).squeeze(1)
    others = z.scatter(1, y.view(-1, 1), float("-inf"))
    return zy, others.max(1).values


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    zy, zo = _true_and_other(logits.float(), y)
    return zo - zy


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = logits.float()
    if z.shape[1] < 3:
        raise RdmError("the DLR loss needs at least 3 classes (use the margin loss for 2)")
    zs = z.sort(1, descending=True).values
    zy, zo = _true_and_other(z, y)
    return -(zy - zo) / (zs[:, 0] - zs[:, 2] + _TINY)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    z = logits.float()
    zy = z.gather(1, y.view(-1, 1)).squeeze(1)
    zt = z.gather(1, target.view(-1, 1)).squeeze(1)
    k = z.shape[1]
    if k < 3:
        return zt - zy
    zs = z.sort(1, descending=True).values
    low = (zs[:, 2] + zs[:, 3]) / 2 if k >= 4 else zs[:, 2]
    return -(zy - zt) / (zs[:, 0] - low + _TINY)


def margin_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    z = logits.float()
    return z.gather(1, target.view(-1, 1)).squeeze(1) - z.gather(1, y.view(-1, 1)).squeeze(1)


UNTARGETED: dict[str, LossFn] = {"ce": ce, "margin": margin, "dlr": dlr}
TARGETED = {"dlr-targeted": dlr_targeted, "margin-targeted": margin_targeted}
NAMES = (*UNTARGETED, *TARGETED)


def get_loss(name: str, target: torch.Tensor | None = None) -> LossFn:
    """The per-row loss ``name``; targeted losses need ``target`` (labels, one per row)."""
    if name in UNTARGETED:
        return UNTARGETED[name]
    if name in TARGETED:
        if target is None:
            raise ValueError(f"the {name} loss needs target labels")
        fn = TARGETED[name]
        return lambda logits, y: fn(logits, y, target)
    raise RdmError(f"unknown loss '{name}' (choose from {', '.join(NAMES)})")
