"""The four training commands as typed library calls (the tools in ``tools/`` only parse).

- :func:`train_cnn` — the undefended CNN (recipe ``baseline``).
- :func:`pretrain_dcae` — the DCAE, reconstructing the clean image from clean and
  adversarial inputs (recipe ``dcae``).
- :func:`finetune` — RDMAA: the CNN's encoder initialised from the DCAE's, then
  trained (recipe ``rdmaa``); or with ``purify`` the DCAE put in front of a CNN
  (kind and recipe ``purified``).
- adversarial training (``rdm-advtrain``) is in :mod:`rdm.api.advtrain`, on the same helpers.

Every call validates its inputs before any training, trains through
:func:`rdm.training.loop.fit`, saves ``OUTPUT.partial`` (weights + trainer state) after each
epoch, and writes OUTPUT atomically. The final checkpoint also carries the trainer
state, so ``resume=True`` either continues an interrupted run from ``OUTPUT.partial``
or extends a finished one to more epochs; both end bit-identical (on CPU) to one
uninterrupted run with the same settings. ``resume_partial=True`` (what ``make tables`` and the
Slurm scripts pass) continues only a matching ``OUTPUT.partial`` and otherwise starts fresh.

Adversarial sets and their clean source (pretrain-dcae): an adversarial set must
have a ``source_index`` column, and the clean set given must be the one it was made
from: its sha256 must appear in the adversarial set's provenance. When that
provenance records no input hashes at all (a set made by another tool), the pair is
accepted with a warning if every ``source_index`` is a row of the clean set and every
label equals the clean row's label; any mismatch is an error.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from rdm.data.atomic import atomic_output, check_outputs
from rdm.data.checkpoint import Checkpoint, input_checks, load_checkpoint, read_raw, save_checkpoint
from rdm.errors import RdmError, UsageError
from rdm.models import Purified, build, cnn_arch, dcae_arch, transfer_encoder
from rdm.environment import environment
from rdm.precision import check_precision
from rdm.data.presets import Preset, data_mismatch, load_preset, preset_file
from rdm.data.sets import (SetInfo, SetReader, channel_mean, check_same_prep, prep_of, set_preset, sha256_file,
                           validate_set)
from rdm.training.loop import Batches, Classification, Reconstruction, Source, TrainConfig, TrainerState, fit

EVAL_BATCH = 256


# --------------------------------------------------------------------------- shared
@dataclass
class Common:
    """Options every training command takes (None: the preset's [train] value)."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None      # epochs without a better validation score before stopping (0: never)
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    resume_partial: bool = False     # continue OUTPUT.partial only if it matches; else start fresh
    restart: bool = False            # discard an OUTPUT.partial left by an interrupted run (else refused)
    quiet: bool = False
    preset: str | None = None
    history: Path | None = None
    command: str | None = None
    precision: str = "fp32"          # fp32 | bf16 (autocast on the forward pass: rdm.precision)
    # what the library shows, given by the command (library code never prints): ``log`` gets the
    # progress lines (silenced by ``quiet``), ``warn`` the warnings, ``progress`` a started Rich
    # Progress for the per-step bar; None shows nothing
    log: Callable[[str], None] | None = None
    warn: Callable[[str], None] | None = None
    progress: Any = None

    def say(self, msg: str) -> None:
        if self.log is not None and not self.quiet:
            self.log(msg)

    def warning(self, msg: str) -> None:
        if self.warn is not None:
            self.warn(msg)


def resolve_preset(train: Path, preset: str | None) -> Preset:
    """The preset named by ``--preset``; else the full preset the training set carries
    (``preset_json``, written by rdm-prep); else the built-in preset its ``preset`` attribute names."""
    if preset:
        return load_preset(preset)
    with SetReader(train) as r:
        info = r.info
    embedded = set_preset(info)
    if embedded is not None:
        return embedded
    try:
        return load_preset(info.preset)
    except RdmError as e:
        raise RdmError(f"{train}: its preset '{info.preset}' cannot be loaded ({e}); pass --preset") from None


def check_set(path: Path, preset: Preset, require: Sequence[str] = ()) -> SetInfo:
    """The set fits the preset: shape and classes, and the intensity mapping it was made with."""
    info = validate_set(path, expect_shape=preset.shape, expect_classes=list(preset.classes),
                        require=require, what=f"preset {preset.name}")
    embedded = set_preset(info)
    diff = data_mismatch(embedded.as_dict(), preset.as_dict()) if embedded is not None else None
    if diff:
        raise RdmError(f"{path}: was prepared with preset '{embedded.name}' but preset '{preset.name}' differs "
                       f"({diff})")
    return info


def check_sets(paths: Sequence[Path | None], preset: Preset, require: Sequence[str] = ()) -> list[SetInfo]:
    """:func:`check_set` for each path (None skipped), and all of one rdm-prep run (split id)."""
    infos = [check_set(Path(p), preset, require) for p in paths if p is not None]
    check_same_prep(infos)
    return infos


def config(preset: Preset, c: Common) -> TrainConfig:
    t = preset.train
    cfg = TrainConfig(epochs=int(c.epochs if c.epochs is not None else t.get("epochs", 20)),
                      batch_size=int(c.batch_size if c.batch_size is not None else t.get("batch_size", 64)),
                      lr=float(c.lr if c.lr is not None else t.get("lr", 1e-3)),
                      seed=int(c.seed), patience=int(c.patience if c.patience is not None else t.get("patience", 0)),
                      weight_decay=float(t.get("weight_decay", 0.0)))
    if cfg.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {cfg.epochs}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise UsageError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if cfg.patience < 0:
        raise UsageError(f"--patience must be 0 (never stop early) or more, got {cfg.patience}")
    return cfg


def partial_path(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".partial")


def check_output(output: Path, inputs: Sequence[Path], history: Path | None = None,
                  preset: str | None = None) -> Path:
    """The output guard (:mod:`rdm.data.guard`): neither -o, its .partial nor --history may name an
    input (the sets, checkpoints and the preset file read) or each other; -o must be a file path
    (OUTPUT.partial is kept beside it), --history may also be a stream."""
    output = Path(output)
    ins = [*inputs, preset_file(preset)]
    check_outputs([("-o", output), ("-o", partial_path(output))], ins, streams=False)
    check_outputs([("-o", output), ("-o", partial_path(output)), ("--history", history)], ins)
    return output



def set_hashes(paths: Sequence[Path]) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in paths}


def _load_resume(output: Path, signature: dict, c: Common, partial_only: bool = False) -> TrainerState | None:
    """The trainer state to continue from. ``partial_only`` (``--resume-partial``, for pipelines
    and requeued batch jobs): only an interrupted ``OUTPUT.partial`` made with these very settings
    and data is continued; anything else is set aside and the run starts fresh, never an error."""
    for p in (partial_path(output),) if partial_only else (partial_path(output), output):
        if p.exists():
            try:
                blob = read_raw(p)
            except RdmError:
                if not partial_only:
                    raise
                blob = {}
            if not isinstance(blob.get("trainer"), dict):
                if partial_only:
                    c.warning(f"--resume-partial: {p} is unreadable or has no trainer state; starting fresh")
                    return None
                raise RdmError(f"{p}: has no trainer state to resume from")
            state = TrainerState.from_blob(blob["trainer"])
            if state.signature != json.loads(json.dumps(signature, sort_keys=True)):
                diff = sorted(k for k in set(signature) | set(state.signature)
                              if state.signature.get(k) != json.loads(json.dumps(signature.get(k))))
                if partial_only:
                    c.warning(f"--resume-partial: {p} was trained with other settings ({', '.join(diff)}); "
                              "starting fresh")
                    return None
                raise RdmError(f"{p}: was trained with different settings ({', '.join(diff)}); "
                               "cannot --resume (remove it or change -o)")
            c.say(f"resuming from {p} (epoch {state.epoch})")
            return state
    if not partial_only:
        c.say(f"--resume: no {partial_path(output).name} or {output.name} yet; starting fresh")
    return None


def run_training(*, output: Path, model: nn.Module, kind: str, arch: dict, preset: Preset, objective,
         train_sources: list[Source], val_sources: list[Source], cfg: TrainConfig, c: Common,
         recipe: dict, parent: dict | None, datasets: dict[str, str], device: torch.device,
         transform=None, params=None, wrap=None, extra_meta: dict | None = None) -> Path:
    """Train, save per-epoch state to OUTPUT.partial, write OUTPUT; ``wrap(model)`` may
    turn the trained model into the saved one (e.g. the purified composite)."""
    if check_precision(c.precision) != "fp32":   # recorded (and so part of the resume signature) when not the default
        recipe = {**recipe, "precision": c.precision}
    skip = ("epochs", "adversarial_sets", "val_adversarial_sets")    # sets are in "datasets", by hash
    signature = {"kind": kind, "arch": arch, "recipe": {k: v for k, v in recipe.items() if k not in skip},
                 "seed": cfg.seed, "batch_size": cfg.batch_size, "lr": cfg.lr, "patience": cfg.patience,
                 "weight_decay": cfg.weight_decay, "datasets": sorted(datasets.values()),
                 "parent": (parent or {}).get("sha256")}
    if c.resume and c.resume_partial:
        raise UsageError("--resume and --resume-partial exclude each other")
    if c.restart and (c.resume or c.resume_partial):
        raise UsageError("--restart starts again; it excludes --resume and --resume-partial")
    state = (_load_resume(output, signature, c) if c.resume else
             _load_resume(output, signature, c, partial_only=True) if c.resume_partial else None)
    if not (c.resume or c.resume_partial) and partial_path(output).exists():
        if not c.restart:
            raise UsageError(f"{partial_path(output)} holds the progress of an interrupted run; --resume continues "
                             "it, --restart discards it and starts again")
        c.warning(f"--restart: discarding {partial_path(output)}, left by an interrupted run")
    meta_base = {
        "kind": kind, "arch": arch, "preset": preset.as_dict(), "classes": list(preset.classes),
        "input_shape": list(preset.shape), "recipe": recipe, "parent": parent, "datasets": datasets,
        "seed": cfg.seed, "monitor": objective.monitor, "environment": environment(device, c.precision),
        "command": c.command if c.command is not None else " ".join(sys.argv),
        "prep": _prep_record(train_sources[0].path),
        **(extra_meta or {}),
    }
    partial = partial_path(output)

    def meta_for(st: TrainerState) -> dict:
        return {**meta_base, "history": st.history, "best_epoch": st.best_epoch, "epochs_run": st.epoch,
                "stopped_early": st.stopped, "val": st.best_metrics if val_sources else None,
                "wall_time_s": round(st.wall_time_s, 3)}

    def on_epoch_end(st: TrainerState) -> None:
        save_checkpoint(partial, model, meta_for(st), trainer=st.to_blob())

    with Batches(train_sources, cfg.batch_size, shuffle=True, seed=cfg.seed,
                 with_target=objective.with_target) as tb, \
         (Batches(val_sources, EVAL_BATCH, shuffle=False, with_target=objective.with_target)
          if val_sources else _Null()) as vb:
        state = fit(model, objective, tb, vb, cfg, device=device, state=state, on_epoch_end=on_epoch_end,
                    transform=transform, params=params, quiet=c.quiet, signature=signature,
                    precision=c.precision, log=c.log, progress=c.progress)
        meta = meta_for(state)
        saved = model
        if wrap is not None:
            saved, more = wrap(model, vb)
            if "val" in more:
                meta["val_cnn"] = meta.get("val")
            meta.update(more)
    from rdm.training.distributed import finish, is_main
    if not is_main():   # a non-zero torchrun rank: rank 0 writes the outputs
        finish()
        return output
    try:
        _write_outputs(output, partial, saved, meta, state, c, objective)
    finally:
        finish()
    return output


def _write_outputs(output: Path, partial: Path, saved, meta: dict, state, c, objective) -> None:
    save_checkpoint(output, saved, meta, trainer=state.to_blob())
    partial.unlink(missing_ok=True)
    if c.history is not None:
        with atomic_output(Path(c.history)) as tmp:
            Path(tmp).write_text(json.dumps(state.history, indent=1) + "\n")
    v = meta.get("val")
    summ = objective.summary(v) if v else "no validation set"
    c.say(f"wrote {output}: best epoch {state.best_epoch}/{state.epoch}, val {summ}, {state.wall_time_s:.0f}s")
    warn = getattr(objective, "warning", None)
    msg = warn(meta["val"]) if warn is not None and meta.get("val") else None
    if msg:
        c.warning(msg)


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return None


def _device(spec: str) -> torch.device:
    from rdm.environment import resolve_device

    return resolve_device(spec)


def classifier_setup(train: Path, val: Path | None, adv: Sequence[Path], c: Common):
    preset = resolve_preset(train, c.preset)
    infos = check_sets([train, *adv, val], preset)[:1 + len(adv)]
    cfg = config(preset, c)
    device = _device(c.device)
    check_precision(c.precision)
    return preset, infos, cfg, device


def _prep_record(train: Path) -> dict | None:
    """The rdm-prep run (split id, inputs) of the training set, so evaluation can refuse other splits."""
    with SetReader(train) as r:
        return prep_of(r.info)


def sources_of(paths: Sequence[Path]) -> list[Source]:
    return [Source(Path(p)) for p in paths]


def recipe_of(name: str, cfg: TrainConfig, **extra: Any) -> dict:
    return {"name": name, "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
            "patience": cfg.patience, "optimizer": "adam", **extra}


# --------------------------------------------------------------------------- commands
def train_cnn(train: Path, *, output: Path, val: Path | None = None, c: Common = Common()) -> Path:
    """The undefended CNN of the preset (paper Fig. 7), trained on the clean set."""
    train, output = Path(train), check_output(output, [train, val], c.history, c.preset)
    preset, _, cfg, device = classifier_setup(train, val, [], c)
    arch = cnn_arch(preset)
    torch.manual_seed(cfg.seed)
    model = build(arch)
    return run_training(output=output, model=model, kind="cnn", arch=arch, preset=preset, objective=Classification(),
                train_sources=sources_of([train]), val_sources=sources_of([val] if val else []), cfg=cfg, c=c,
                recipe=recipe_of("baseline", cfg), parent=None,
                datasets=set_hashes([train] + ([val] if val else [])), device=device)


def match_source(adv: Path, clean: Path, clean_sha: str, warn: Callable[[str], None] | None = None) -> None:
    """Check that adversarial set ``adv`` was made from ``clean`` (see the module notes);
    ``warn`` gets the warning about a set that records no input hashes."""
    with SetReader(adv) as a, SetReader(clean) as s:
        if not a.has("source_index"):
            raise RdmError(f"{adv}: has no 'source_index' column, so its clean source rows are unknown")
        idx = np.asarray(a.column("source_index"), dtype=np.int64)
        prov = a.info.provenance
        hashes = _find_hashes(prov)
        if clean_sha not in hashes:
            if hashes:
                raise RdmError(f"{adv}: was not made from {clean} (its sha256 is not among the "
                               f"adversarial set's provenance inputs); give the clean set it came from")
            if warn is not None:
                warn(f"{adv} records no input hashes; matching it to {clean} by source_index and labels")
        if len(idx) and (idx.min() < 0 or idx.max() >= s.n):
            raise RdmError(f"{adv}: source_index {int(idx.max() if idx.max() >= s.n else idx.min())} "
                           f"is not a row of {clean} ({s.n} rows)")
        ya, yc = a.column("y"), s.column("y")
        bad = np.flatnonzero(ya != yc[idx])
        if len(bad):
            raise RdmError(f"{adv}: row {int(bad[0])} has label {int(ya[bad[0]])} but its source row "
                           f"{int(idx[bad[0]])} in {clean} has {int(yc[idx[bad[0]]])}")


def _find_hashes(obj: Any) -> set[str]:
    """Every 64-hex-digit string anywhere in a provenance record."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for v in obj.values():
            out |= _find_hashes(v)
    elif isinstance(obj, list):
        for v in obj:
            out |= _find_hashes(v)
    elif isinstance(obj, str) and len(obj) == 64 and all(ch in "0123456789abcdef" for ch in obj):
        out.add(obj)
    return out


HELD_OUT_SPLITS = ("test", "val")
ALLOW_HELD_OUT_FLAG = "--allow-held-out-adv"


def refuse_held_out_sources(adv: Sequence[Path], allow: bool = False, train: Path | None = None) -> None:
    """The provenance guard of the commands that train on adversarial sets: a set crafted from a
    test or validation split would leak those images into training; refused (one line naming
    the set and its source) unless ``allow`` (the command's --allow-held-out-adv). The split and
    the source's sha256 are what rdm-attack recorded, not file names: with ``train`` given, a set
    whose recorded source is another file than ``train`` (by sha256) is refused as well."""
    if allow:
        return
    train_sha = sha256_file(train) if train is not None and adv else None
    for p in adv:
        split, source = held_out_source(Path(p))
        if split:
            raise RdmError(f"{p}: crafted from the {split} split ({source}); training on it leaks "
                             f"{split} images into training (pass {ALLOW_HELD_OUT_FLAG} to do it anyway)")
        sha = recorded_source_sha(Path(p))
        if train_sha is not None and sha is not None and sha != train_sha:
            raise RdmError(f"{p}: crafted from {source or 'another set'} (sha256 {sha[:12]}…), not from the "
                           f"training set {train}; its images may be held-out ones (pass {ALLOW_HELD_OUT_FLAG} "
                           "to train on it anyway)")


def recorded_source_sha(adv: Path) -> str | None:
    """The sha256 of the clean set ``adv`` was crafted from, as rdm-attack recorded it (None if not)."""
    with SetReader(adv) as r:
        src = r.info.provenance.get("source_set")
    sha = src.get("sha256") if isinstance(src, dict) else None
    return sha if isinstance(sha, str) and len(sha) == 64 else None


def held_out_source(adv: Path) -> tuple[str | None, str]:
    """(split, source) when ``adv`` was crafted from a test or validation split, else (None, source).
    The split is the source set's ``split`` attribute, or, when that file is gone, its name."""
    with SetReader(adv) as r:
        src = r.info.provenance.get("source_set")
    src = src if isinstance(src, dict) else {}
    path = src.get("path")
    if not isinstance(path, str) or not path:
        return None, ""
    split = src.get("split")
    if split is None and Path(path).is_file():
        try:
            with SetReader(path) as s:
                split = s.info.attrs.get("split")
        except RdmError:
            split = None
    if split is None:
        split = Path(path).stem.lower()
    split = str(split).lower()
    return (split if split in HELD_OUT_SPLITS else None), path


def pretrain_dcae(train: Path, adv: Sequence[Path] = (), *, output: Path, val: Path | None = None,
                  val_adv: Sequence[Path] = (), c: Common = Common()) -> Path:
    """The DCAE: input clean or adversarial rows, target the clean row; MSE loss."""
    train, output = Path(train), check_output(output, [train, val, *adv, *val_adv], c.history, c.preset)
    adv, val_adv = [Path(p) for p in adv], [Path(p) for p in val_adv]
    if val_adv and val is None:
        raise UsageError("--val-adv needs --val (the clean validation set it was made from)")
    preset = resolve_preset(train, c.preset)
    check_sets([train, *adv, val, *val_adv], preset)
    for p in [*adv, *val_adv]:
        check_set(p, preset, require=["source_index"])
    cfg = config(preset, c)
    device = _device(c.device)
    check_precision(c.precision)
    datasets = set_hashes([train, *adv] + ([val] if val else []) + val_adv)
    refuse_held_out_sources(adv, False, train)
    for p in adv:
        match_source(p, train, datasets[str(train)], c.warning)
    for p in val_adv:
        match_source(p, val, datasets[str(val)], c.warning)
    arch = dcae_arch(preset)
    torch.manual_seed(cfg.seed)
    model = build(arch)
    mean = channel_mean(train)
    model.start_at_mean(mean)
    tsrc = [Source(train)] + [Source(p, target=train) for p in adv]
    vsrc = ([Source(val)] + [Source(p, target=val) for p in val_adv]) if val else []
    return run_training(output=output, model=model, kind="dcae", arch=arch, preset=preset,
                objective=Reconstruction(mean),
                train_sources=tsrc, val_sources=vsrc, cfg=cfg, c=c,
                recipe=recipe_of("dcae", cfg, adversarial_sets=[str(p) for p in adv],
                               val_adversarial_sets=[str(p) for p in val_adv]),
                parent=None, datasets=datasets, device=device)


def _evaluate_classifier(model: nn.Module, val: Path | None, device: torch.device) -> dict | None:
    if val is None:
        return None
    with Batches([Source(Path(val))], EVAL_BATCH, shuffle=False) as vb:
        return Classification().evaluate(model.to(device), vb, device)


def _purified_arch(dcae_arch_: dict, cnn_arch_: dict) -> dict:
    return {"name": "purified", "dcae": dcae_arch_, "cnn": cnn_arch_}


INITS = ("dcae", "random")


def finetune(train: Path, *, dcae: Path | None, output: Path, val: Path | None = None, adv: Sequence[Path] = (),
             freeze_encoder: bool = False, purify: bool = False, cnn: Path | None = None,
             c: Common = Common(), allow_held_out: bool = False, init: str = "dcae") -> Path:
    """RDMAA fine-tuning, or the purified composite DCAE → CNN.

    Default (the paper's "parameter sharing", section 3.C): the CNN's encoder starts
    as a copy of the DCAE's encoder, the head starts random, and ALL layers are then
    trained (fine-tuned) on the clean set (plus ``adv`` sets if given).
    ``freeze_encoder`` keeps the copied encoder fixed. ``purify`` writes a checkpoint
    of kind ``purified``: with ``cnn`` the trained DCAE is put in front of that CNN
    without any training; without ``cnn`` in front of the CNN fine-tuned here.

    ``init="random"`` (the ablation "RDMAA without the DCAE", recipe ``scratch``): no DCAE, the
    encoder keeps its random initialisation, and everything else (the seeded head, the
    schedule, the data, the stopping rule) is RDMAA's. With the same seed and settings this is
    the weights :func:`train_cnn` trains: rdm-finetune differs from rdm-train-cnn only in the
    encoder's start.
    """
    if init not in INITS:
        raise UsageError(f"--init {init}: choose from {', '.join(INITS)}")
    if init == "random":
        if dcae is not None:
            raise UsageError("--init random starts the encoder at random; drop --dcae")
        if purify:
            raise UsageError("--purify puts a DCAE in front of the CNN; it needs --init dcae and --dcae")
    elif dcae is None:
        raise UsageError("--dcae is required (or --init random: the same training without the DCAE's encoder)")
    train, output = Path(train), check_output(output, [train, val, dcae, cnn, *adv], c.history, c.preset)
    adv = [Path(p) for p in adv]
    refuse_held_out_sources(adv, allow_held_out, train)
    if cnn is not None and not purify:
        raise UsageError("--cnn is only used with --purify")
    preset, infos, cfg, device = classifier_setup(train, val, adv, c)
    dck, parent = None, None
    if dcae is not None:
        dck = load_checkpoint(dcae, device="cpu", expect_kind="dcae")
        input_checks(dck, infos[0])
        parent = {"path": str(dck.path), "sha256": dck.sha256}
    datasets = set_hashes([train, *adv] + ([val] if val else []))

    if cnn is not None:   # compose two trained models, no training
        if adv or freeze_encoder:
            raise UsageError("--purify --cnn composes two trained models; --adv/--freeze-encoder do not apply")
        return _compose(dck, cnn, preset, infos[0], val, output, parent, datasets, c, device)

    arch = cnn_arch(preset)
    torch.manual_seed(cfg.seed)
    model = build(arch)
    if dck is not None:
        transfer_encoder(dck.model, model)
    if freeze_encoder:
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    recipe = recipe_of("rdmaa" if dck is not None else "scratch", cfg, freeze_encoder=bool(freeze_encoder),
                     adversarial_sets=[str(p) for p in adv], encoder_from=init)
    kind, out_arch, wrap = "cnn", arch, None
    if purify:
        out_arch = _purified_arch(dck.meta["arch"], arch)
        recipe = {**recipe, "name": "purified", "cnn_recipe": "rdmaa"}
        kind = "purified"

        def wrap(m: nn.Module, vb):
            composite = Purified(dck.model.to(device), m).eval()
            more = {}
            if vb is not None:
                more = {"val": Classification().evaluate(composite, vb, device)}
            return composite, more

    return run_training(output=output, model=model, kind=kind, arch=out_arch, preset=preset, objective=Classification(),
                train_sources=sources_of([train, *adv]), val_sources=sources_of([val] if val else []), cfg=cfg, c=c,
                recipe=recipe, parent=parent, datasets=datasets, device=device, wrap=wrap)


def _compose(dck: Checkpoint, cnn: Path, preset: Preset, info: SetInfo, val: Path | None, output: Path,
             parent: dict, datasets: dict, c: Common, device: torch.device) -> Path:
    cck = load_checkpoint(cnn, device="cpu", expect_kind="cnn")
    input_checks(cck, info)
    if list(cck.input_shape) != list(dck.input_shape):
        raise RdmError(f"{cck.path.name} expects {cck.input_shape} but {dck.path.name} gives {dck.input_shape}")
    model = Purified(dck.model, cck.model).eval()
    arch = _purified_arch(dck.meta["arch"], cck.meta["arch"])
    vm = _evaluate_classifier(model, val, device)
    meta = {"kind": "purified", "arch": arch, "preset": preset.as_dict(), "classes": list(preset.classes),
            "input_shape": list(preset.shape),
            "recipe": {"name": "purified", "trained": False, "dcae_recipe": dck.meta.get("recipe"),
                       "cnn_recipe": cck.meta.get("recipe")},
            "parent": parent, "parents": [parent, {"path": str(cck.path), "sha256": cck.sha256}],
            "datasets": datasets, "seed": c.seed, "history": [], "best_epoch": 0, "val": vm,
            "wall_time_s": 0.0, "command": c.command if c.command is not None else " ".join(sys.argv)}
    save_checkpoint(output, model, meta)
    extra = f": val {Classification().summary(vm)}" if vm else ""
    c.say(f"wrote {output} (DCAE {dck.path.name} in front of CNN {cck.path.name}){extra}")
    return output
