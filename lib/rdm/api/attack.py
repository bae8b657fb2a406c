"""``rdm-attack``: craft an adversarial set from a checkpoint and a clean set.

Output sets have the clean set's format plus
    source_index   int64  row of the clean set the image came from (group/id copied)
    linf, l2       float32 ‖x_adv − x‖ per row, pixel units
    pred_clean     int64  the SOURCE model's prediction on the clean image
    pred_adv       int64  the SOURCE model's prediction on the adversarial image
    success        bool   the attack succeeded on this row: the source model was right
                          on the clean image and is wrong on the adversarial one
                          (rows it already got wrong are never successes)
and attributes ``attack`` (the spec as JSON) and ``protocol_model_sha256`` (sha256 of
the checkpoint the images were crafted on: ``rdm-eval`` calls an evaluation
"white-box" when it evaluates that same checkpoint, "transfer" otherwise).

Several ε give one output per ε, at the paths the caller names (``rdm-attack`` derives them
from ``-o``: :func:`rdm.cli.paths.output_paths`). FGSM at several ε shares one gradient.

``shard=(i, n)`` attacks rows [⌊i·N/n⌋, ⌊(i+1)·N/n⌋) only; :func:`merge_parts`
concatenates the parts in shard order once they cover the set exactly once.
Random starts are seeded per row, so sharded and unsharded runs give the same images.
"""

from __future__ import annotations

import dataclasses
import json
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from rdm.attacks.registry import AttackSpec, run_attack_sweep
from rdm.data.atomic import check_outputs
from rdm.data.checkpoint import Checkpoint, input_checks, load_checkpoint
from rdm.errors import RdmError, UsageError
from rdm.evaluation.metrics import perturbation_norms
from rdm.models import finite_logits, predict
from rdm.precision import autocast, check_precision
from rdm.data.prefetch import prefetch
from rdm.data.sets import (INHERITED_ATTRS, SetReader, SetWriter, inherited_attrs, make_provenance, sha256_file,
                           validate_set)
from rdm.data.shards import check_coverage, in_shard_order, parse_shard, shard_range  # noqa: F401 (rdm-attack, certify)

ATTACKABLE_KINDS = ("cnn", "purified")
EXTRAS = {"linf": np.float32, "l2": np.float32, "pred_clean": np.int64, "pred_adv": np.int64,
          "success": np.bool_}


def source_split(info) -> str | None:
    """The split a clean set holds (its ``split`` attribute, written by rdm-prep; else a file named
    train/val/test): recorded in every crafted set, so that the training commands refuse sets
    crafted from held-out images whatever the files are called later."""
    split = info.attrs.get("split")
    if isinstance(split, str) and split:
        return split.lower()
    stem = info.path.stem.lower()
    return stem if stem in ("train", "val", "test") else None


def load_attack_model(path: os.PathLike | str, device: torch.device | str) -> Checkpoint:
    ck = load_checkpoint(path, device=device)
    if ck.kind not in ATTACKABLE_KINDS:
        raise RdmError(f"{Path(path)}: is a {ck.kind} checkpoint (an autoencoder, no classifier); "
                       "expected a cnn or purified checkpoint")
    return ck


# --------------------------------------------------------------------------- attack a set
@dataclass
class AttackResult:
    paths: list[Path]
    n: int
    success: list[int]       # per output: rows where the attack succeeded
    clean_correct: int
    specs: list = dataclasses.field(default_factory=list)

    def summary(self) -> list[str]:
        """One line per output: the attack, the rows, its success rate and the file."""
        out = []
        for s, p, k in zip(self.specs, self.paths, self.success):
            rate = k / self.clean_correct if self.clean_correct else float("nan")
            out.append(f"{s!r}: {self.n} rows, success rate {rate:.1%} ({k}/{self.clean_correct} "
                       f"correctly classified) -> {p}")
        return out


def attack_set(model_path: os.PathLike | str, set_path: os.PathLike | str, specs: Sequence[AttackSpec],
               outputs: Sequence[os.PathLike | str], *, batch_size: int = 128, device: str | torch.device = "cpu",
               shard: tuple[int, int] | None = None, command: str | None = None,
               arguments: dict[str, Any] | None = None, progress=None,
               precision: str = "fp32") -> AttackResult:
    """Attack every row (or one shard) of ``set_path`` with each spec; write the set of ``specs[j]`` to
    ``outputs[j]`` (the caller names the files: :func:`rdm.cli.paths.output_paths` for ``rdm-attack -o``).

    ``precision="bf16"``: the attack's forward/backward passes under autocast
    (:mod:`rdm.precision`); the ε-ball, the stored images and the stored predictions stay float32.
    The set is read and decompressed ahead by a background thread (:mod:`rdm.data.prefetch`)."""
    set_path, model_path = Path(set_path), Path(model_path)
    paths = _checked_request(specs, outputs, batch_size)
    check_outputs(paths, [set_path, model_path])        # before any work: the output guard
    device = torch.device(device)
    check_precision(precision)
    ck = load_attack_model(model_path, device)
    info = validate_set(set_path, expect_shape=ck.input_shape, expect_classes=ck.classes or None,
                        what=model_path.name)
    input_checks(ck, info)
    if "source_index" in info.columns:
        raise RdmError(f"{set_path}: is already an adversarial set (has source_index); attack the clean set")
    start, stop = shard_range(info.n, shard)
    if stop <= start:
        raise RdmError(f"--shard {shard[0]}/{shard[1]}: no rows (the set has {info.n})")
    set_sha = sha256_file(set_path)
    copy_cols = [c for c in ("group", "id") if c in info.columns]
    source_set = {"path": str(set_path.resolve()), "sha256": set_sha, "n": info.n, "split": source_split(info)}
    shard_info = {"index": shard[0], "count": shard[1], "start": start, "stop": stop} if shard else None

    success = [0] * len(specs)
    clean_correct = 0
    with ExitStack() as stack:
        writers = []
        for spec, p in zip(specs, paths):
            prov = make_provenance(
                command=command, arguments=arguments or {}, seed=spec.seed,
                input_hashes={str(model_path): ck.sha256, str(set_path): set_sha},
                attack=spec.to_dict(),
                source_model={"path": str(model_path.resolve()), "sha256": ck.sha256, "kind": ck.kind},
                source_set=source_set, shard=shard_info,
            )
            writers.append(stack.enter_context(_open_writer(p, spec, info, ck, prov, copy_cols, batch_size)))
        task = progress.add_task(f"{specs[0].name}", total=stop - start, info="") if progress else None
        with SetReader(set_path) as reader:
            for b in prefetch(reader.batches(int(batch_size), start, stop)):
                clean_correct += _attack_batch(b, specs, ck.model, writers, success, device, precision, copy_cols)
                if progress:
                    progress.update(task, advance=len(b["y"]))
    return AttackResult(paths, stop - start, success, clean_correct, list(specs))


def _checked_request(specs: Sequence[AttackSpec], outputs: Sequence[os.PathLike | str],
                     batch_size: int) -> list[Path]:
    """The output paths, one per spec, once the specs name one attack and the batch size is valid."""
    if not specs:
        raise RdmError("no attack given")
    if int(batch_size) < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    names = {s.name for s in specs}
    if len(names) != 1:
        raise RdmError("all specs of one run must be the same attack")
    paths = [Path(p) for p in outputs]
    if len(paths) != len(specs):
        raise RdmError(f"{len(specs)} attacks need {len(specs)} output paths, got {len(paths)}")
    return paths


def _open_writer(path: Path, spec: AttackSpec, info, ck, prov: dict, copy_cols: list[str],
                 batch_size: int) -> SetWriter:
    """The writer of one spec's adversarial set: the clean set's format plus :data:`EXTRAS`."""
    return SetWriter(path, shape=info.shape, classes=info.classes, modality=info.modality,
                     preset=info.preset, provenance=prov, columns=["source_index", *copy_cols],
                     extras=EXTRAS, chunk_rows=min(int(batch_size), 128),
                     attrs={"attack": spec.to_dict(), "protocol_model_sha256": ck.sha256,
                            **inherited_attrs(info)})


def _attack_batch(b: dict, specs: Sequence[AttackSpec], model, writers: list[SetWriter], success: list[int],
                  device: torch.device, precision: str, copy_cols: list[str]) -> int:
    """Attack one batch ``b`` of the clean set with every spec and append each result to its writer;
    ``success[j]`` counts spec j's successes. Returns the batch's correctly classified clean rows."""
    x = torch.from_numpy(np.ascontiguousarray(b["x"])).to(device)
    y = torch.from_numpy(b["y"]).to(device)
    with torch.no_grad():
        pc = predict(finite_logits(model(x)))
    with autocast(device, precision):
        advs = run_attack_sweep(specs, model, x, y, row_ids=b["index"])
    right = (pc == y).cpu().numpy()
    for j, (w, xa) in enumerate(zip(writers, advs)):
        with torch.no_grad():
            pa = predict(model(xa))
        xa_np = xa.cpu().numpy()
        linf, l2 = perturbation_norms(xa_np, b["x"])
        succ = right & (pa != y).cpu().numpy()
        success[j] += int(succ.sum())
        w.append(xa_np, b["y"], source_index=b["index"],
                 **{c: b[c] for c in copy_cols},
                 linf=linf, l2=l2, pred_clean=pc.cpu().numpy(), pred_adv=pa.cpu().numpy(),
                 success=succ)
    return int(right.sum())


# --------------------------------------------------------------------------- merge shards
def _prov(path: Path) -> tuple[dict, Any]:
    with SetReader(path) as r:
        return r.info.provenance, r.info


def merge_parts(parts: Sequence[os.PathLike | str], output: os.PathLike | str, *,
                command: str | None = None, batch_size: int = 1024) -> Path:
    """Concatenate shard parts in shard order; refuse unless they cover the set exactly once
    with the same attack, parameters, seed, source model and source set."""
    parts = [Path(p) for p in parts]
    if not parts:
        raise RdmError("--merge needs the part files")
    check_outputs([output], parts)
    infos = []
    for p in parts:
        info = validate_set(p, require=("source_index",), check_values=False)
        sh = info.provenance.get("shard")
        if not sh:
            raise RdmError(f"{p}: is not a shard part (no shard in its provenance)")
        infos.append(info)
    key = lambda i: (i.provenance.get("seed"), i.provenance.get("attack"),
                     (i.provenance.get("source_model") or {}).get("sha256"),
                     (i.provenance.get("source_set") or {}).get("sha256"),
                     i.provenance["shard"]["count"], i.shape, i.classes)
    ref = key(infos[0])
    for p, info in zip(parts, infos):
        k = key(info)
        if k != ref:
            what = ["seed", "attack and parameters", "source model", "source set", "shard count",
                    "image shape", "classes"][next(j for j in range(len(k)) if k[j] != ref[j])]
            raise RdmError(f"{p}: differs from {parts[0].name} in {what}; parts must come from one run")
    count = ref[4]
    ordered = in_shard_order([(str(p), info.provenance["shard"]["index"], info) for p, info in zip(parts, infos)], count)
    for p, info in ordered:
        sh = info.provenance["shard"]
        if sh["stop"] - sh["start"] != info.n:
            raise RdmError(f"{p}: holds {info.n} rows, its shard has {sh['stop'] - sh['start']}")
    check_coverage([(p, i.provenance["shard"]["start"], i.provenance["shard"]["stop"]) for p, i in ordered],
                   infos[0].provenance["source_set"]["n"])

    first = infos[0]
    prov = dict(first.provenance)
    prov.pop("shard", None)
    prov["merged_from"] = {p: sha256_file(p) for p, _ in ordered}
    prov["command"] = command if command is not None else prov.get("command")
    with SetReader(ordered[0][0]) as r0:
        cols = [c for c in ("source_index", "group", "id") if c in r0.info.columns]
        extras = {c: r0._f[c].dtype for c in r0.info.columns
                  if c not in ("source_index", "group", "id")}
    attrs = {k: v for k, v in first.attrs.items() if k in ("attack", "protocol_model_sha256", *INHERITED_ATTRS)}
    with SetWriter(output, shape=first.shape, classes=first.classes, modality=first.modality,
                   preset=first.preset, provenance=prov, columns=cols, extras=extras,
                   attrs=attrs) as w:
        for p, _ in ordered:
            with SetReader(p) as r:
                for b in r.batches(batch_size):
                    b.pop("index")
                    w.append(b.pop("x"), b.pop("y"), **b)
    return Path(output)
