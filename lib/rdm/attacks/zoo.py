"""The built-in attacks, one class each (registered in :mod:`rdm.attacks.registry`).

Every class only maps its hyper-parameters onto a pure function of :mod:`rdm.attacks.functions`
(or :mod:`rdm.attacks.square`); defaults and checks are declared here, once.
"""

from __future__ import annotations

from typing import Any, Mapping

from rdm.attacks.registry import FORWARD, Attack, LazyModule, Param, default_alpha, register
from rdm.errors import UsageError

# the tensor code, loaded when an attack runs (naming and listing the attacks imports no torch)
A = LazyModule("rdm.attacks.functions")
AA = LazyModule("rdm.attacks.autoattack")
SQUARE = LazyModule("rdm.attacks.square")

#: PGD's ``keep`` choices (:data:`rdm.attacks.functions.KEEP_CHOICES`, which checks them again)
KEEP_CHOICES = ("fooled", "best", "last")
KEEP = Param("keep", str, "fooled", "which iterate PGD returns: fooled (final iterate of the first restart "
             "that fools), best (any iterate), last", choices=KEEP_CHOICES)
RESTARTS = Param("restarts", int, 1, "random restarts; per image the first that fools is kept", min=1)
#: the shared flags an attack without hyper-parameters accepts from stored specs and drops
NO_PARAMS = ("alpha", "steps", "restarts", "random_start", "keep", "queries")


@register
class FGSM(Attack):
    """x + ε·sign(∇ₓL), one step (Goodfellow et al. 2015)."""

    name = "fgsm"
    label = "FGSM"
    title = "fast gradient sign method (Goodfellow et al. 2015)"
    ignores = NO_PARAMS

    def forward(self, model, x, y, row_ids):
        return A.fgsm(model, x, y, self.eps)

    def passes(self, classes):
        return 1.0

    @classmethod
    def sweep(cls, specs, model, x, y, row_ids=None):
        """All ε from ONE gradient (FGSM's direction does not depend on ε)."""
        return A.fgsm_sweep(model, x, y, [s.eps for s in specs])

    def describe(self) -> str:
        return f"FGSM(eps={self.eps:g})"


@register
class PGD(Attack):
    """Projected gradient descent on the L∞ ball (Madry et al. 2018)."""

    name = "pgd"
    label = "PGD"
    title = "projected gradient descent, L∞ (Madry et al. 2018)"
    params = (Param("alpha", float, None, "step size (default 2.5·ε/steps)", positive=True),
              Param("steps", int, 10, "iterations", min=1),
              RESTARTS,
              Param("random_start", bool, False, "start at a random point of the ε-ball"),
              KEEP)

    @classmethod
    def fill_defaults(cls, eps: float, values: dict[str, Any]) -> dict[str, Any]:
        if values["alpha"] is None:
            values["alpha"] = default_alpha(eps, values["steps"])
        return values

    def forward(self, model, x, y, row_ids):
        return A.pgd(model, x, y, self.eps, self.alpha, self.steps, random_start=self.random_start,
                     restarts=self.restarts, seed=self.seed, row_ids=row_ids, keep=self.keep)

    def passes(self, classes):
        return float(self.steps * self.restarts)

    def describe(self) -> str:
        rs = f", random_start={self.random_start}" if self.name == "pgd" else ""
        return (f"{self.label}(eps={self.eps:g}, alpha={self.alpha:g}, steps={self.steps}, "
                f"restarts={self.restarts}{rs}, seed={self.seed}, keep={self.keep})")

    def short(self) -> str:
        return super().short() + (" rs" if self.random_start else "")


@register
class BIM(PGD):
    """PGD without a random start (Kurakin et al. 2017)."""

    name = "bim"
    label = "BIM"
    title = "basic iterative method: PGD from the clean image (Kurakin et al. 2017)"

    @classmethod
    def validate(cls, eps: float, values: Mapping[str, Any]) -> None:
        if values["random_start"]:
            raise UsageError("bim is PGD without a random start; use --attack pgd --random-start")


@register
class APGD(Attack):
    """Auto-PGD on the cross-entropy (Croce & Hein 2020), L∞."""

    name = "apgd"
    label = "APGD-CE"
    title = "Auto-PGD on the cross-entropy, L∞ (Croce & Hein 2020)"
    params = (Param("steps", int, 100, "iterations", min=1), RESTARTS)
    ignores = ("random_start", "keep")
    rejects = {"alpha": "apgd chooses its own step size; drop --alpha"}
    fixed = {"random_start": True}

    def forward(self, model, x, y, row_ids):
        return A.apgd_ce(model, x, y, self.eps, self.steps, restarts=self.restarts, seed=self.seed,
                         row_ids=row_ids)

    def passes(self, classes):
        return float(self.steps * self.restarts)

    def describe(self) -> str:
        return f"APGD-CE(eps={self.eps:g}, steps={self.steps}, restarts={self.restarts}, seed={self.seed})"


TARGETS = Param("targets", int, None, "APGD-T: how many other classes to target, most likely first "
                "(default all C − 1)", min=1)


@register
class APGDT(Attack):
    """Targeted APGD over the other classes (AutoAttack's APGD-T; margin for a binary head)."""

    name = "apgd-t"
    label = "APGD-T"
    title = ("Auto-PGD on the targeted DLR loss towards each other class, L∞ (Croce & Hein 2020); "
             "binary heads: the logit margin")
    params = (Param("steps", int, 100, "iterations per target", min=1), RESTARTS, TARGETS)
    fixed = {"random_start": True}

    def forward(self, model, x, y, row_ids):
        return AA.apgd_targeted(model, x, y, self.eps, self.steps, targets=self.targets,
                                restarts=self.restarts, seed=self.seed, row_ids=row_ids)

    def passes(self, classes):
        return float(self.steps * self.restarts * AA.n_targets(self.targets, classes))


@register
class Square(Attack):
    """Square Attack: gradient-free random search on the ε-ball's vertices."""

    name = "square"
    label = "Square"
    title = "Square Attack, gradient-free, L∞, margin loss (Andriushchenko et al. 2020)"
    params = (Param("queries", int, 5000, "forward passes per row, the start included", min=1),
              Param("p_init", float, 0.8, "first window share of the image (AutoAttack's schedule)",
                    positive=True),
              RESTARTS)

    @classmethod
    def validate(cls, eps: float, values: Mapping[str, Any]) -> None:
        if values["p_init"] > 1:
            raise UsageError(f"--attack-param p_init must be in (0, 1], got {values['p_init']:g}")

    def forward(self, model, x, y, row_ids):
        return SQUARE.square_linf(model, x, y, self.eps, self.queries, p_init=self.p_init, restarts=self.restarts,
                           seed=self.seed, row_ids=row_ids)

    def passes(self, classes):
        return self.queries * self.restarts * FORWARD


@register
class Noise(Attack):
    """The control: random sign noise of the same ε, no gradients (:func:`rdm.attacks.functions.sign_noise`)."""

    name = "noise"
    label = "Noise"
    title = "random sign noise x + ε·s, s a seeded ±1 pattern per row; no model, no gradient (a control)"
    ignores = NO_PARAMS

    def forward(self, model, x, y, row_ids):
        return A.sign_noise(x, self.eps, seed=self.seed, row_ids=row_ids)

    def passes(self, classes):
        return 0.0


@register
class AutoAttackSuite(Attack):
    """AutoAttack's standard cascade adapted to 2–4 classes (:mod:`rdm.attacks.autoattack`)."""

    name = "aa"
    label = "AA"
    title = "AutoAttack's cascade for 2–4 classes: APGD-CE, APGD-T, Square (robust = no stage fooled it)"
    params = (Param("steps", int, 100, "APGD iterations (per target for APGD-T)", min=1),
              Param("queries", int, 5000, "Square's query budget per row", min=1),
              TARGETS)
    fixed = {"random_start": True}
    stages: tuple[str, ...] | None = None       # None: AutoAttack's (rdm.attacks.autoattack.STAGES)

    def forward(self, model, x, y, row_ids):
        return self.run_with_info(model, x, y, row_ids)[0]

    def passes(self, classes):
        """Every row through every stage (an upper bound: each stage runs only on the rows left)."""
        return FORWARD + self.steps * (1 + AA.n_targets(self.targets, classes)) + self.queries * FORWARD

    def run_with_info(self, model, x, y, row_ids=None):
        stages = self.stages if self.stages is not None else AA.STAGES
        with A.attack_mode(model):
            xa, by = AA.autoattack(model, x, y, self.eps, steps=self.steps, queries=self.queries,
                                   targets=self.targets, seed=self.seed, row_ids=row_ids, stages=stages)
        names = {AA.ROBUST: None, AA.CLEAN: "clean", **{i + 1: s for i, s in enumerate(stages)}}
        return xa, {"fooled_by": [names[int(v)] for v in by.tolist()]}


@register
class AutoAttackGradient(AutoAttackSuite):
    """The standard cascade's gradient part: APGD-CE then APGD-T, no Square. The grid runs it on the
    seeds after the first, where the whole cascade (Square as the masking check) runs once."""

    name = "aa-apgd"
    label = "AA-APGD"
    title = "AutoAttack's gradient stages for 2–4 classes: APGD-CE, APGD-T (robust = neither fooled it)"
    params = (Param("steps", int, 100, "APGD iterations (per target for APGD-T)", min=1), TARGETS)
    stages = ("apgd-ce", "apgd-t")      # AA.STAGES[:2], spelled out: reading AA here would import torch
    queries = 0          # no Square stage

    def passes(self, classes):
        return FORWARD + self.steps * (1 + AA.n_targets(self.targets, classes))
