"""The standard white-box suite: AutoAttack's cascade (Croce & Hein, ICML 2020) adapted to 2–4 classes.

Stages, each run only on the rows every earlier stage left classified right:

1. **APGD-CE**: :func:`rdm.attacks.functions.apgd`, cross-entropy, 100 steps, 1 restart.
2. **APGD-T**: APGD towards each of the top ``targets`` other classes in turn (ranked by the
   clean logits; default all C − 1), 100 steps each, on the targeted DLR loss
   (:mod:`rdm.attacks.losses`). DLR needs ≥ 3 classes: with 3 the denominator is
   z_π1 − z_π3 (AutoAttack's (z_π3 + z_π4)/2 needs a 4th class); a binary head (the lung
   model) has one other class and no logit scale to divide by, so this stage ascends the
   logit margin z_other − z_y instead. Its sign gradient is the cross-entropy's except where
   a confident model's CE gradient underflows to 0 in float32, which the margin never does,
   and it starts from a fresh random point: a second, non-saturating APGD run.
3. **Square**: :func:`rdm.attacks.square.square_linf`, gradient-free, 5,000 queries, margin loss,
   AutoAttack's p schedule: a defence that masks gradients does not stop it.

FAB-T is left out: it is a minimum-norm attack, and on these small 2–4-class CNNs the
reference implementation's FAB-T fooled no row that APGD-CE and APGD-T had left (measured
on the phantom test model and a real preset).

Every row's outcome is recorded: which stage fooled it first (``fooled_by``), or ``clean``
(misclassified with no attack), or none (robust). Robust accuracy = rows no stage fooled.
Each stage draws its random starts from its own block of restart indices
(:data:`RESTART_BLOCK`), so stages never share random numbers.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from rdm.attacks.functions import prepare_batch, row_id_list, take_rows, apgd, attack_mode, check_eps
from rdm.errors import RdmError
from rdm.models import as_class_logits
from rdm.attacks.square import square_linf

STAGES = ("apgd-ce", "apgd-t", "square")
RESTART_BLOCK = {"apgd-ce": 0, "apgd-t": 1000, "square": 2000}
CLEAN, ROBUST = 0, -1          # codes of fooled_by besides 1 + stage index


def _classes(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class logits in float32 with autocast off: the cascade decides which rows are fooled with
    the same precision as the reported predictions (under ``--precision bf16`` a row fooled in
    bf16 but not in fp32 would otherwise leave the cascade early and be counted robust)."""
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return as_class_logits(model(x.float())).float()


def n_targets(targets: int | None, classes: int) -> int:
    """How many other classes APGD-T targets: all C − 1 unless fewer are asked for."""
    return classes - 1 if targets is None else min(int(targets), classes - 1)


def apgd_targeted(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 100, *,
                  targets: int | None = None, restarts: int = 1, seed: int | None = None,
                  row_ids: Sequence[int] | None = None, first_restart: int = 0) -> torch.Tensor:
    """APGD-T: targeted DLR (margin for 2 classes) towards each other class in turn, the most likely
    first (by the clean image's logits), each run only on the rows no earlier target fooled."""
    eps = check_eps(eps)
    x, y = prepare_batch(x, y)
    ids = row_id_list(row_ids, x.shape[0])
    with attack_mode(model):
        logits = _classes(model, x)
        k = logits.shape[1]
        n_t = n_targets(targets, k)
        if n_t < 1:
            raise RdmError(f"targets must be at least 1, got {targets}")
        # the other classes, most likely first (the true class never is a target, even on a
        # row the model gets wrong)
        order = logits.scatter(1, y.view(-1, 1), float("-inf")).argsort(1, descending=True)
        loss = "dlr-targeted" if k >= 3 else "margin-targeted"
        best = x.clone()
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for t in range(n_t):
            rows = (~fooled).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            xa = apgd(model, take_rows(x, rows), take_rows(y, rows), eps, steps, loss=loss,
                      target=order[rows, t], restarts=restarts, seed=seed,
                      row_ids=[ids[i] for i in rows.tolist()], first_restart=first_restart + t * int(restarts))
            f = _classes(model, xa).argmax(1) != take_rows(y, rows)
            best[rows] = xa
            fooled[rows[f]] = True
    return best.detach().contiguous()


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 100,
               queries: int = 5000, targets: int | None = None, seed: int | None = None,
               row_ids: Sequence[int] | None = None, stages: Sequence[str] = STAGES
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The cascade on one batch: adversarial images and, per row, ``fooled_by`` (−1 robust,
    0 misclassified clean, 1 + i fooled first by ``stages[i]``). A row's image is the one that
    fooled it, else the last stage's attempt (the clean image for rows misclassified clean)."""
    eps = check_eps(eps)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise RdmError(f"unknown stage {unknown[0]!r} (choose from {', '.join(STAGES)})")
    x, y = prepare_batch(x, y)
    ids = row_id_list(row_ids, x.shape[0])
    best = x.clone()
    with attack_mode(model):
        by = torch.where(_classes(model, x).argmax(1) != y, CLEAN, ROBUST)
        for i, stage in enumerate(stages):
            rows = (by == ROBUST).nonzero().squeeze(1)
            if rows.numel() == 0 or eps == 0:
                break
            xr, yr, idr = take_rows(x, rows), take_rows(y, rows), [ids[j] for j in rows.tolist()]
            first = RESTART_BLOCK[stage]
            if stage == "apgd-ce":
                xa = apgd(model, xr, yr, eps, steps, loss="ce", seed=seed, row_ids=idr, first_restart=first)
            elif stage == "apgd-t":
                xa = apgd_targeted(model, xr, yr, eps, steps, targets=targets, seed=seed, row_ids=idr,
                                   first_restart=first)
            else:
                xa = square_linf(model, xr, yr, eps, queries, seed=seed, row_ids=idr, first_restart=first)
            f = _classes(model, xa).argmax(1) != yr
            best[rows] = xa
            by[rows[f]] = i + 1
    return best.detach().contiguous(), by
