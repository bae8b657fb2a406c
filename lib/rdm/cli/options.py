"""Option groups the commands share, declared once: a dataclass per group, its fields Typer options.

A command takes a group as one parameter annotated with the group's class; :func:`grouped` (applied
by :func:`rdm.cli.make_app`'s ``command``) spreads the group's fields into the command's options
and hands the command one filled instance::

    @app.command()
    def evaluate(model: ..., run: Run, attack: AttackFlags): ...
    # rdm-eval --device cpu --seed 1 --attack pgd --eps 0.005 …  →  run.device, attack.specs(run.seed)

Nothing here imports torch: ``--help`` stays quick.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from pathlib import Path
from typing import Annotated, Any, Optional, get_type_hints

import typer

from rdm import bounds
from rdm.attacks import options as ao

# Every option that names a path the command writes has this metavar (a folder: OUT_DIR); each goes
# through the output guard (rdm.data.guard), and tests/cli/test_hostile_outputs.py finds them by it.
OUT = "OUT"
OUT_DIR = "OUT_DIR"

DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N")]
SeedOpt = Annotated[int, typer.Option("--seed", min=bounds.SEED_MIN, max=bounds.SEED_MAX,
                                      help="random seed in [0, 2**63 - 1]; same seed, same bytes on CPU")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show a traceback on failure")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or log lines on stderr "
                                                                "(results still go to stdout)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]
PrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="fp32, or bf16: autocast (bfloat16 convolutions, on CUDA; slow on CPUs without native "
                        "bf16); the ε-ball, the weights and the written outputs stay float32")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", help="i/n: rows [i·N/n, (i+1)·N/n) only; "
                                                 "writes a part for --merge")]
MergeOpt = Annotated[bool, typer.Option("--merge", help="combine shard parts into -o")]
ReportOpt = Annotated[Optional[Path], typer.Option("-o", "--output", metavar=OUT,
                                                   help="write the JSON report here (- for stdout)")]


# --------------------------------------------------------------------------- groups
@dataclasses.dataclass
class Run:
    """Where and how a command runs: device, seed, progress, tracebacks."""

    device: DeviceOpt = "auto"
    seed: SeedOpt = 0
    quiet: QuietOpt = False
    debug: DebugOpt = False


@dataclasses.dataclass
class Report:
    """Where a report goes: ``-o`` (the file; its path on stdout) and/or ``--json`` (on stdout)."""

    output: ReportOpt = None
    as_json: JsonOpt = False

    def check(self, inputs: Any, more: Any = ()) -> None:
        """The output guard before any work (:func:`rdm.data.guard.check_outputs`): ``-o`` and
        ``more`` (``(option, path)`` pairs of the other outputs) never name one of ``inputs``;
        ``-o -`` with ``--json`` (two reports on stdout) is bad usage."""
        from rdm.data.guard import check_outputs, is_stdout
        from rdm.errors import UsageError

        if self.as_json and self.output is not None and is_stdout(self.output):
            raise UsageError("-o - and --json both print the report on stdout; give one")
        check_outputs([("-o", self.output), *more], inputs)


@dataclasses.dataclass
class AttackFlags:
    """The attack options of ``rdm-attack`` and ``rdm-eval`` (:mod:`rdm.attacks.options`)."""

    attack: ao.AttackOpt = None
    eps: ao.EpsOpt = None
    alpha: ao.AlphaOpt = None
    steps: ao.StepsOpt = None
    restarts: ao.RestartsOpt = None
    random_start: ao.RandomStartOpt = None
    keep: ao.KeepOpt = None
    queries: ao.QueriesOpt = None
    attack_param: ao.ParamOpt = None
    list_attacks: ao.ListAttacksOpt = False

    @property
    def given(self) -> bool:
        return self.attack is not None or bool(self.eps)

    def recorded(self, **around: Any) -> dict[str, Any]:
        """The arguments a crafted set's provenance records: ``around``'s first two entries (the
        inputs), the attack's options, the rest of ``around``, then the options only some attacks take."""
        head = dict(list(around.items())[:2])
        tail = dict(list(around.items())[2:])
        return {**head, "attack": self.attack, "eps": self.eps, "alpha": self.alpha, "steps": self.steps,
                "restarts": 1 if self.restarts is None else self.restarts, "random_start": bool(self.random_start),
                "keep": self.keep or "fooled", **tail,
                **({"queries": self.queries} if self.queries is not None else {}),
                **({"attack_param": self.attack_param} if self.attack_param else {})}

    def specs(self, seed: int) -> list:
        """One validated spec per ``--eps`` (none without ``--attack``)."""
        if self.attack is None:
            return []
        return ao.specs_from(self.attack, self.eps or [], alpha=self.alpha, steps=self.steps,
                             restarts=self.restarts, random_start=self.random_start, keep=self.keep,
                             queries=self.queries, params=self.attack_param, seed=seed)


EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", max=bounds.MAX_EPOCHS, help="epochs (default: the preset's [train])")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", max=bounds.MAX_BATCH, help="batch size (default: the preset's [train])")]
PatienceOpt = Annotated[Optional[int], typer.Option(
    "--patience", max=bounds.MAX_EPOCHS, help="stop after this many epochs without a better validation score (0: never stop early; "
                       "default: the preset's [train])")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate (default: the preset's [train])")]
PresetOpt = Annotated[Optional[str], typer.Option("--preset", help="preset name or .toml path (default: the set's)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue from OUTPUT.partial, or extend a finished OUTPUT")]
ResumePartialOpt = Annotated[bool, typer.Option(
    "--resume-partial", help="continue OUTPUT.partial if an interrupted run with these same settings and data left "
                             "it, else start fresh (for pipelines and requeued batch jobs)")]
RestartOpt = Annotated[bool, typer.Option(
    "--restart", help="start again, discarding OUTPUT.partial left by an interrupted run (without --resume, "
                      "--resume-partial or --restart such a file is kept and the run refused)")]
HistoryOpt = Annotated[Optional[Path], typer.Option(
    "--history", metavar=OUT, help="also write the per-epoch history as JSON (- for stdout)")]
OutOpt = Annotated[Path, typer.Option(
    "-o", "--output", metavar=OUT, help="checkpoint to write (a file path: OUTPUT.partial is kept beside it)")]
ValOpt = Annotated[Optional[Path], typer.Option("--val", help="validation set: best weights and early stopping")]
AllowHeldOutOpt = Annotated[bool, typer.Option(
    "--allow-held-out-adv", help="train on --adv sets crafted from a test or validation split anyway "
                                 "(refused by default: it leaks held-out images into training)")]


@dataclasses.dataclass
class Training:
    """The options every training command takes (:class:`rdm.api.train.Common`)."""

    preset: PresetOpt = None
    epochs: EpochsOpt = None
    batch_size: BatchOpt = None
    lr: LrOpt = None
    patience: PatienceOpt = None
    seed: SeedOpt = 0
    device: DeviceOpt = "auto"
    resume: ResumeOpt = False
    resume_partial: ResumePartialOpt = False
    restart: RestartOpt = False
    history: HistoryOpt = None
    precision: PrecisionOpt = "fp32"
    quiet: QuietOpt = False
    debug: DebugOpt = False

    def common(self, **callbacks: Any):
        """The library's :class:`rdm.api.train.Common` of these options (``log``/``warn`` callbacks)."""
        from rdm.api.train import Common

        return Common(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "debug"},
                      **callbacks)


GROUPS = (Run, Report, AttackFlags, Training)


# --------------------------------------------------------------------------- spreading a group
def grouped(fn):
    """``fn`` whose parameters annotated with a group class (:data:`GROUPS`) are spread into that
    group's options (keyword-only, in field order) and collected back into one instance per call."""
    hints = get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    groups = {name: hints[name] for name in sig.parameters if hints.get(name) in GROUPS}
    if not groups:
        return fn
    params, taken = [], {}
    for name, p in sig.parameters.items():
        if name not in groups:
            params.append(p.replace(annotation=hints.get(name, p.annotation)))
            continue
        fields = dataclasses.fields(groups[name])
        taken[name] = [f.name for f in fields]
        group_hints = get_type_hints(groups[name], include_extras=True)
        params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                     annotation=group_hints[f.name]) for f in fields]
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise TypeError(f"{fn.__name__}: an option is declared twice ({sorted({n for n in names if names.count(n) > 1})})")
    # all keyword-only (Typer passes every option by name), in declaration order: the order of --help
    ordered = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for name, fields in taken.items():
            kwargs[name] = groups[name](**{f: kwargs.pop(f) for f in fields if f in kwargs})
        return fn(*args, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=ordered)
    wrapper.__annotations__ = {p.name: p.annotation for p in ordered}
    return wrapper
