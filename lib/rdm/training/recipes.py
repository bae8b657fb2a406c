"""Adversarial-training recipes the field compares against, as training-loop pieces.

Each recipe is a *transform* (run per batch before the optimiser step, with the bare
model and the batch's epoch and step, so its randomness is seeded by them) and an
*objective* (the loss the step minimises). The shared loop in :mod:`rdm.training.loop` runs
them like the others, under torchrun too.

* ``fast`` — FGSM from a uniform random start with step 1.25·ε (Wong, Rice & Kolter,
  ICLR 2020): one PGD step of α = 1.25·ε from a random start, the shared attack code.
* ``trades`` — Zhang et al., ICML 2019: ``CE(f(x), y) + β·KL(f(x) ‖ f(x'))`` with x'
  maximising that KL in the ε-ball (PGD on the KL, start ``x + 0.001·N(0, I)``).
* ``mart`` — Wang et al., ICLR 2020: boosted CE on x' plus
  ``β·KL(f(x) ‖ f(x'))·(1 − p_y(x))``, x' from PGD on the CE.
* ``gaussian`` — Gaussian data augmentation ``x + σ·N(0, I)`` (not clipped), the base
  classifier that randomized smoothing (``rdm-certify``) certifies (Cohen et al. 2019).

The inner maximisations run with the model in eval mode (its mode restored after), and
take gradients with respect to the input only.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rdm.attacks.registry import default_alpha
from rdm.errors import RdmError
from rdm.models import as_class_logits, classification_loss, predict

RECIPES = ("pgd", "fast", "trades", "mart", "gaussian")


def batch_generator(seed: int, epoch: int, step: int, device: torch.device) -> torch.Generator:
    """A generator seeded by (seed, epoch, step) alone: the same batch gets the same noise."""
    s = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(step), 0xAD7])
    g = torch.Generator(device=device)
    g.manual_seed(int(s.generate_state(1, dtype=np.uint64)[0] & ((1 << 63) - 1)))
    return g


def _kl(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p_clean ‖ p_adv) over the classes."""
    p = F.softmax(as_class_logits(clean_logits), dim=1)
    return (p * (F.log_softmax(as_class_logits(clean_logits), dim=1)
                 - F.log_softmax(as_class_logits(adv_logits), dim=1))).sum(1)


def trades_adversary(model: nn.Module, x: torch.Tensor, eps: float, alpha: float, steps: int,
                     gen: torch.Generator) -> torch.Tensor:
    """x' in the ε-ball ∩ [0, 1] that maximises KL(f(x) ‖ f(x')) by signed-gradient ascent."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean = model(x).float()
        lo, hi = (x - eps).clamp_(0, 1), (x + eps).clamp_(0, 1)
        x_adv = (x + 0.001 * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)).clamp(lo, hi)
        for _ in range(int(steps)):
            xg = x_adv.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = _kl(clean, model(xg).float()).sum()
                (g,) = torch.autograd.grad(loss, [xg])
            x_adv = torch.min(torch.max(x_adv + alpha * g.sign(), lo), hi)
    finally:
        model.train(was)
    return x_adv.detach()


@contextmanager
def paired_dropout(model: nn.Module, n: int):
    """Within, every ``nn.Dropout`` of ``model`` in training mode drops the same units of row i and
    row n + i of its 2n-row input: a clean image and its adversarial twin share one mask.

    TRADES' and MART's KL(f(x) ‖ f(x')) is meant to measure what the perturbation changes. With a
    mask of its own per row it also measures the dropout noise between two passes: on leukaemia
    (dropout .5 before the last layer; its TRADES model, trained with independent masks) the KL of
    one clean image under two masks is 0.023 on average, the clean-vs-adversarial KL at ε = .005 in
    eval mode 0.003, so β·KL there was mostly a dropout-consistency penalty. Other dropout kinds
    (``Dropout2d``, ...) are refused rather than silently left unpaired."""
    from torch.nn.modules.dropout import _DropoutNd

    def hook(mod, inputs, out):
        if not mod.training or mod.p == 0:
            return None
        x = inputs[0]
        keep = torch.empty_like(x[:n]).bernoulli_(1.0 - mod.p).div_(1.0 - mod.p)
        return x * torch.cat([keep, keep])

    handles = []
    try:
        for m in model.modules():
            if isinstance(m, _DropoutNd):
                if type(m) is not nn.Dropout:
                    raise RdmError(f"{type(m).__name__}: only nn.Dropout can share its mask across the clean "
                                     "and adversarial rows of TRADES / MART")
                handles.append(m.register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


class _CleanAndAdversarial:
    """An objective on the clean batch and its ``x_adv`` (one forward pass, so batch norm sees
    both, and each clean row shares its dropout mask with its adversarial twin:
    :func:`paired_dropout`); evaluation, monitoring and summaries are the base objective's (plain
    classification)."""

    name = "classification"
    monitor = "balanced_accuracy"
    with_target = False

    def __init__(self, base, beta: float):
        self.base, self.beta = base, float(beta)

    @staticmethod
    def logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        n = batch["x"].shape[0]
        with paired_dropout(model, n):
            both = as_class_logits(model(torch.cat([batch["x"], batch["x_adv"]])))
        return both[:n], both[n:]

    def __getattr__(self, name):
        return getattr(self.base, name)


class Trades(_CleanAndAdversarial):
    """TRADES: clean CE + β·KL(clean ‖ adversarial)."""

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        clean, adv = self.logits(model, batch)
        loss = classification_loss(clean, batch["y"]) + self.beta * _kl(clean, adv).mean()
        return loss, {"correct": (predict(clean.detach()) == batch["y"]).sum()}


class Mart(_CleanAndAdversarial):
    """MART: boosted CE on the adversarial image + β·KL(clean ‖ adv)·(1 − p_y(clean))."""

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        y = batch["y"]
        clean, adv = self.logits(model, batch)
        p_adv = F.softmax(adv, dim=1)
        # the most likely wrong class of the adversarial image
        wrong = p_adv.masked_fill(F.one_hot(y, p_adv.shape[1]).bool(), -1.0).argmax(1)
        boosted = F.cross_entropy(adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), wrong)
        p_y = F.softmax(clean, dim=1).gather(1, y[:, None]).squeeze(1)
        robust = (_kl(clean, adv) * (1.0000001 - p_y)).mean()
        loss = boosted + self.beta * robust
        return loss, {"correct": (predict(clean.detach()) == y).sum()}


def pgd_examples(eps: float, alpha: float, steps: int, seed: int, key: str = "x") -> Callable:
    """A transform putting PGD examples of the current model (random start, the shared attack
    code) into ``batch[key]``: ``"x"`` replaces the batch (Madry et al.'s on-line PGD, fast AT),
    ``"x_adv"`` keeps the clean images beside them (MART). The start is seeded by
    (seed, epoch, step) exactly as the on-line recipe always was, so its models are unchanged."""
    from rdm.attacks.functions import pgd
    from rdm.training.loop import epoch_seed

    def transform(model, batch, epoch, step):
        s = (epoch_seed(seed, epoch) + 104729 * step) % (2 ** 31)
        x = pgd(model, batch["x"], batch["y"], float(eps), float(alpha), int(steps), random_start=True, seed=s)
        return {**batch, key: x.detach()}
    return transform


def make(recipe: str, base_objective, *, eps: float | None = None, alpha: float | None = None,
         steps: int = 10, beta: float = 6.0, sigma: float | None = None, seed: int = 0
         ) -> tuple[Callable, object, dict]:
    """(transform, objective, the recipe's record in the checkpoint) for an on-line recipe;
    the parameters are checked by the caller (:func:`rdm.api.advtrain.advtrain`)."""
    if recipe == "gaussian":
        def noise(model, batch, epoch, step):
            g = batch_generator(seed, epoch, step, batch["x"].device)
            x = batch["x"]
            return {**batch, "x": x + float(sigma) * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)}
        return noise, base_objective, {"sigma": float(sigma)}
    if recipe == "fast":
        a = 1.25 * float(eps)
        return (pgd_examples(eps, a, 1, seed), base_objective,
                {"eps": float(eps), "alpha": a, "steps": 1, "random_start": True})
    a = float(alpha) if alpha is not None else default_alpha(eps, steps)
    if recipe == "pgd":
        return (pgd_examples(eps, a, steps, seed), base_objective,
                {"attack": "pgd", "eps": float(eps), "alpha": a, "steps": int(steps), "random_start": True})
    record = {"eps": float(eps), "alpha": a, "steps": int(steps), "beta": float(beta)}
    if recipe == "trades":
        def kl_adv(model, batch, epoch, step):
            g = batch_generator(seed, epoch, step, batch["x"].device)
            return {**batch, "x_adv": trades_adversary(model, batch["x"], float(eps), a, int(steps), g)}
        return kl_adv, Trades(base_objective, beta), record
    if recipe == "mart":
        return pgd_examples(eps, a, steps, seed, key="x_adv"), Mart(base_objective, beta), record
    raise ValueError(f"unknown recipe {recipe!r} (choose from {', '.join(RECIPES)})")
