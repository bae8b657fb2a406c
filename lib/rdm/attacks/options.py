"""The attack options ``rdm-attack`` and ``rdm-eval`` share (one definition each).

``--attack`` takes any name in :mod:`rdm.attacks.registry` (checked when parsed: a bad
name is a usage error, exit 2); the hyper-parameter flags are :data:`rdm.attacks.registry.FLAGS`,
left unset (``None``) unless given so each attack fills its own defaults; any other
hyper-parameter is ``--attack-param NAME=VALUE``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rdm import bounds

if TYPE_CHECKING:      # the registry imports torch: only when a command runs, never for --help
    from rdm.attacks import registry as R


def _check_attack(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    key = value.strip().lower()
    from rdm.attacks import registry as R

    if key not in R.names():
        raise typer.BadParameter(f"'{value}' is not one of {', '.join(R.names())}")
    return key


def _list_attacks(ctx, value: bool) -> None:
    """``--list-attacks``: every registered attack with its hyper-parameters and defaults, on stdout."""
    if value and not ctx.resilient_parsing:
        from rdm.attacks import registry as R

        typer.echo("\n".join(R.catalogue(verbose=True)))
        raise typer.Exit(0)


def help_section() -> str:
    """The attacks ``--help`` lists, one line each, from the registry (built only when help is shown)."""
    from rdm.attacks import registry as R

    return "\n".join(R.catalogue())


ListAttacksOpt = Annotated[bool, typer.Option(
    "--list-attacks", callback=_list_attacks, is_eager=True,
    help="print every attack with its hyper-parameters and defaults, and exit")]
AttackOpt = Annotated[Optional[str], typer.Option(
    "--attack", callback=_check_attack, show_default=False,
    help="a registered attack (listed below; --list-attacks for their hyper-parameters)")]
EpsOpt = Annotated[Optional[list[float]], typer.Option("--eps", help="L∞ budget in [0, 1]; repeat for a sweep")]
AlphaOpt = Annotated[Optional[float], typer.Option("--alpha", help="PGD/BIM step size (default 2.5·ε/steps)")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", max=bounds.MAX_STEPS, help="iterations (PGD/BIM 10, APGD 100)")]
RestartsOpt = Annotated[Optional[int], typer.Option(
    "--restarts", max=bounds.MAX_RESTARTS, help="random restarts (default 1); per image the first that fools is kept")]
RandomStartOpt = Annotated[Optional[bool], typer.Option(
    "--random-start/--no-random-start", help="PGD: start at a random point of the ε-ball (default no)")]
KeepOpt = Annotated[Optional[str], typer.Option(
    "--keep", help="PGD: fooled (final iterate per restart; default), best (any iterate), last")]
QueriesOpt = Annotated[Optional[int], typer.Option(
    "--queries", max=bounds.MAX_QUERIES, help="query budget of a gradient-free attack (Square 5000)")]
ParamOpt = Annotated[Optional[list[str]], typer.Option(
    "--attack-param", help="NAME=VALUE: any other hyper-parameter of the attack; repeatable")]


def specs_from(attack: str, eps: list[float], *, alpha=None, steps=None, restarts=None, random_start=None,
               keep=None, queries=None, params=None, seed: int = 0) -> list[R.AttackSpec]:
    """One validated spec per ε from the parsed options."""
    from rdm.attacks import registry as R

    return [R.spec_from_options(attack, e, seed=seed, params=params, alpha=alpha, steps=steps,
                                restarts=restarts, random_start=random_start, keep=keep, queries=queries)
            for e in eps]
