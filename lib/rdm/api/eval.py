"""``rdm-eval``: metrics of a checkpoint on clean and adversarial sets, with the PROTOCOL named.

Protocols (the same words everywhere: JSON, tables, reports)
    clean       a clean set (no ``source_index``)
    white-box   adversarial images crafted on the evaluated checkpoint itself: a set whose
                ``protocol_model_sha256`` equals the checkpoint's sha256, or an attack run
                on the fly against the evaluated model (``attack=``)
    transfer    adversarial images crafted on a different checkpoint (the paper's tables:
                images made on the undefended CNN, fed to the defended one)

For adversarial sets the clean source (path in the set's provenance, or ``source=``) is
read row by row via ``source_index``: the evaluated model's predictions on the clean
images give the attack success rate (of the rows it gets right on clean, the share it
gets wrong on the adversarial image), and the images give L∞/L2, SSIM and PSNR.
All numbers come from mergeable :class:`rdm.evaluation.metrics.Counts`.

``shard=(i, n)`` evaluates rows [⌊i·N/n⌋, ⌊(i+1)·N/n⌋) of every set (N: that set's
rows) and writes a PART report (counts and metrics of those rows, the shard and the
seed recorded); :func:`merge_reports` adds the parts' counts back into the report of
one unsharded run, refusing parts that overlap, leave gaps or come from different
runs (model, sets, attacks, seed). Integer counts merge exactly; the float sums
(norms, SSIM, PSNR) equal the unsharded ones up to summation order.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from rdm.attacks.registry import AttackSpec
from rdm.data.checkpoint import Checkpoint, input_checks, load_checkpoint
from rdm.environment import environment
from rdm.errors import RdmError, UsageError
from rdm.evaluation.metrics import Counts, adv_counts, summarize
from rdm.precision import autocast, check_precision
from rdm.data.prefetch import prefetch
from rdm.models import predict_rows
from rdm.attacks.per_row import PerRow, attack_for_eval, merge_per_row
from rdm.data.sets import SetReader, sha256_file, validate_set
from rdm.data.shards import check_coverage, in_shard_order, shard_range

PROTOCOLS = ("clean", "white-box", "transfer")
CLASSIFIERS = ("cnn", "purified")   # checkpoint kinds that classify (a DCAE does not)
CLEAN, WHITE_BOX, TRANSFER = PROTOCOLS


def _predict(model, x, device) -> np.ndarray:
    """Predicted labels of a batch (numpy array or tensor), always at the model's float32 precision:
    :func:`rdm.models.predict_rows` (channels-last, in 64-row pieces on CPU; the forward passes were
    three quarters of an ``rdm-eval`` of transfer sets)."""
    return predict_rows(model, _tensor(x, device)).cpu().numpy()


def _tensor(x, device) -> torch.Tensor:
    t = x if torch.is_tensor(x) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device, non_blocking=True)


def _pin(batch: dict) -> dict:
    """In the read-ahead thread, for a GPU: the images as pinned tensors (an asynchronous copy)."""
    return {**batch, **{f"{k}_t": torch.from_numpy(np.ascontiguousarray(batch[k])).pin_memory()
                        for k in ("x", "clean_x") if k in batch}}


def _read_ahead(batches, device: torch.device):
    """``batches`` read and decompressed by a background thread (:func:`rdm.data.prefetch.prefetch`);
    leaving the loop (also by an exception) stops the thread before the readers close."""
    return prefetch(batches, transform=_pin if device.type == "cuda" else None)


def source_of(info, override: os.PathLike | str | None) -> Path:
    """The clean source set of an adversarial set (``override`` wins); one-line error if absent."""
    if override is not None:
        p = Path(override)
        if not p.exists():
            raise RdmError(f"--source {p}: no such file")
        return p
    src = (info.provenance.get("source_set") or {}).get("path")
    if not src:
        raise RdmError(f"{info.path}: adversarial set names no clean source in its provenance; "
                       "give it with --source CLEAN.h5")
    p = Path(src)
    if not p.exists():
        raise RdmError(f"{info.path}: its clean source {p} does not exist; give it with --source CLEAN.h5")
    return p


def protocol_of(info, ck: Checkpoint) -> str:
    if "source_index" not in info.columns:
        return CLEAN
    sha = info.attrs.get("protocol_model_sha256") or (info.provenance.get("source_model") or {}).get("sha256")
    if not sha:
        raise RdmError(f"{info.path}: adversarial set does not record the checkpoint it was crafted on "
                       "(protocol_model_sha256), so its protocol is unknown")
    return WHITE_BOX if sha == ck.sha256 else TRANSFER


def evaluate_set(ck: Checkpoint, set_path: os.PathLike | str, *, source: os.PathLike | str | None = None,
                 batch_size: int = 256, device: torch.device | str = "cpu",
                 progress=None, shard: tuple[int, int] | None = None,
                 clean_preds: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Metrics of ``ck`` on one stored set (clean, transfer or white-box), or on one shard of it.

    ``clean_preds`` (source sha256 → prediction per row, −1 = not yet made) carries the model's
    predictions on a clean source from one adversarial set to the next: sets crafted from the
    same source (every ε of a sweep) need its forward passes once."""
    set_path = Path(set_path)
    info = validate_set(set_path, expect_shape=ck.input_shape, expect_classes=ck.classes or None,
                        what=ck.path.name)
    input_checks(ck, info)
    protocol = protocol_of(info, ck)
    model = ck.model
    counts = Counts.empty(info.classes, adversarial=protocol != CLEAN)
    result: dict[str, Any] = {"set": str(set_path), "set_sha256": sha256_file(set_path),
                              "protocol": protocol}
    src_reader = None
    if protocol != CLEAN:
        src = source_of(info, source)
        src_info = validate_set(src, expect_shape=info.shape, expect_classes=info.classes, what=set_path.name)
        if "source_index" in src_info.columns:
            raise RdmError(f"{src}: the clean source is itself adversarial (has source_index)")
        result.update(source=str(src), attack=info.provenance.get("attack"),
                      crafted_on=info.provenance.get("source_model"))
        want = (info.provenance.get("source_set") or {}).get("sha256")
        src_sha = sha256_file(src)
        if want and want != src_sha:
            raise RdmError(f"{src}: is not the set {set_path.name} was crafted from (sha256 differs)")
        src_reader = SetReader(src)
        cache = (clean_preds if clean_preds is not None else {}).setdefault(
            src_sha, np.full(src_reader.n, -1, dtype=np.int64))
    start, stop = shard_range(info.n, shard)
    if shard is not None:
        result["rows"] = {"start": start, "stop": stop, "of": info.n}
    task = progress.add_task(set_path.name, total=stop - start, info="") if progress else None
    device = torch.device(device)
    per_row = PerRow(adversarial=src_reader is not None)

    def rows():   # the set's batches and their clean source rows, read in the background thread
        with SetReader(set_path) as r:
            for b in r.batches(int(batch_size), start, stop):
                if src_reader is not None:
                    si = b["source_index"]
                    if si.min() < 0 or si.max() >= src_reader.n:
                        raise RdmError(f"{set_path}: source_index {int(si.max())} is outside {src_reader.path}")
                    clean = src_reader.read_rows(si, ("x", "y"))
                    if not np.array_equal(clean["y"], b["y"]):
                        raise RdmError(f"{set_path}: labels differ from its source {src_reader.path}")
                    b["clean_x"] = clean["x"]
                yield b

    try:
        for b in _read_ahead(rows(), device):   # (the generator closes its thread when the loop ends)
            x = _tensor(b.get("x_t", b["x"]), device)
            pred = _predict(model, x, device)
            counts.add_predictions(b["y"], pred)
            if src_reader is None:
                per_row.add(b["index"], b["y"], pred)
            else:
                si = b["source_index"]
                todo = cache[si] < 0
                if todo.any():
                    cache[si[todo]] = _predict(model, b["clean_x"][todo], device)
                pc = cache[si]
                xc = _tensor(b["clean_x_t"], device) if "clean_x_t" in b else b["clean_x"]
                xa = x if device.type == "cuda" else b["x"]     # on a GPU the image metrics run there
                counts.adv = counts.adv.merge(adv_counts(b["y"], pc, pred, xa, xc))
                per_row.add(si, b["y"], pred, pc)
            if progress:
                progress.update(task, advance=len(b["y"]))
    finally:
        if src_reader is not None:
            src_reader.close()
    result["counts"] = counts.to_dict()
    result["metrics"] = summarize(counts)
    result["per_row"] = per_row.to_dict()
    return result


def evaluate_on_the_fly(ck: Checkpoint, set_path: os.PathLike | str, specs: Sequence[AttackSpec], *,
                        batch_size: int = 256, device: torch.device | str = "cpu",
                        progress=None, shard: tuple[int, int] | None = None,
                        precision: str = "fp32", on_adversarial=None) -> list[dict[str, Any]]:
    """White-box: attack ``ck``'s own model on ``set_path`` (its clean source) with each spec.

    ``precision="bf16"`` crafts the attack under autocast (:mod:`rdm.precision`); the model's
    predictions, hence the reported accuracy, stay float32. ``on_adversarial(j, rows, x_adv)``,
    when given, receives each batch's adversarial images of the ``j``-th spec (``rows``: their
    row numbers in the set)."""
    set_path = Path(set_path)
    info = validate_set(set_path, expect_shape=ck.input_shape, expect_classes=ck.classes or None,
                        what=ck.path.name)
    input_checks(ck, info)
    model = ck.model
    counts = [Counts.empty(info.classes, adversarial=True) for _ in specs]
    per_row = [PerRow(adversarial=True) for _ in specs]
    start, stop = shard_range(info.n, shard)
    task = (progress.add_task(f"{set_path.name} {specs[0].name}", total=stop - start, info="")
            if progress else None)
    device = torch.device(device)

    def batches():
        with SetReader(set_path) as r:
            yield from r.batches(int(batch_size), start, stop)

    for b in _read_ahead(batches(), device):
        x = _tensor(b.get("x_t", b["x"]), device)
        y = torch.from_numpy(b["y"]).to(device)
        pc = _predict(model, x, device)
        with autocast(device, precision):     # the attack's forward/backward; bounds and outputs stay float32
            # only rows right on the clean image are attacked (per_row.attack_for_eval)
            advs = attack_for_eval(specs, model, x, y, b["index"], pc)
        for j, (c, pr, (xa, row_info)) in enumerate(zip(counts, per_row, advs)):
            if on_adversarial is not None:
                on_adversarial(j, b["index"], xa)
            pa = _predict(model, xa, device)
            c.add_predictions(b["y"], pa)
            c.adv = c.adv.merge(adv_counts(b["y"], pc, pa, xa, x))
            pr.add(b["index"], b["y"], pa, pc, **row_info)
        if progress:
            progress.update(task, advance=len(b["y"]))
    sha = sha256_file(set_path)
    rows = {"rows": {"start": start, "stop": stop, "of": info.n}} if shard is not None else {}
    prec = {"precision": precision} if check_precision(precision) != "fp32" else {}
    return [{"set": str(set_path), "set_sha256": sha, "protocol": WHITE_BOX, "source": str(set_path),
             "attack": s.to_dict(), "on_the_fly": True, **prec, **rows, "counts": c.to_dict(),
             "metrics": summarize(c), "per_row": pr.to_dict()}
            for s, c, pr in zip(specs, counts, per_row)]


def evaluate(model_path: os.PathLike | str, sets: Sequence[os.PathLike | str], *,
             source: os.PathLike | str | None = None, specs: Sequence[AttackSpec] = (),
             batch_size: int = 256, device: torch.device | str = "cpu", progress=None,
             shard: tuple[int, int] | None = None, seed: int | None = None,
             precision: str = "fp32") -> dict[str, Any]:
    """Every set through ``model_path``; with ``specs`` also white-box attacks on the fly
    (crafted at ``precision``: fp32, or bf16 autocast).

    ``shard=(i, n)``: only rows [⌊i·N/n⌋, ⌊(i+1)·N/n⌋) of each set; the report is a part
    for :func:`merge_reports` and records the shard and ``seed``."""
    _check_run(sets, batch_size, precision)
    device = torch.device(device)
    ck = load_checkpoint(model_path, device=device, expect_kind=CLASSIFIERS)
    return evaluate_checkpoint(ck, sets, source=source, specs=specs, batch_size=batch_size, device=device,
                               progress=progress, shard=shard, seed=seed, precision=precision)


def evaluate_checkpoint(ck: Checkpoint, sets: Sequence[os.PathLike | str], *,
                        source: os.PathLike | str | None = None, specs: Sequence[AttackSpec] = (),
                        batch_size: int = 256, device: torch.device | str = "cpu", progress=None,
                        shard: tuple[int, int] | None = None, seed: int | None = None,
                        precision: str = "fp32", on_adversarial=None) -> dict[str, Any]:
    """:func:`evaluate` of a model already in memory (a loaded checkpoint, or the wrapper
    :mod:`rdm.api.notebook` puts around a user's ``nn.Module``); ``on_adversarial(k, j, rows,
    x_adv)`` receives the adversarial images of the ``j``-th spec on the ``k``-th set
    (:func:`evaluate_on_the_fly`)."""
    _check_run(sets, batch_size, precision)
    device = torch.device(device)
    ck.model.to(memory_format=torch.channels_last)     # faster convolutions (see _predict); values unchanged
    # cheap checks on every input before any expensive work
    protocols = []
    for s in sets:
        info = validate_set(s, expect_shape=ck.input_shape, expect_classes=ck.classes or None,
                            what=ck.path.name, check_values=False)
        input_checks(ck, info)
        protocols.append(protocol_of(info, ck))
        if protocols[-1] != CLEAN:
            source_of(info, source)
        if shard is not None:
            a, b = shard_range(info.n, shard)
            if b <= a:
                raise RdmError(f"--shard {shard[0]}/{shard[1]}: no rows of {Path(s).name} (it has {info.n})")
    results = []
    clean_preds: dict[str, np.ndarray] = {}
    for k, (s, proto) in enumerate(zip(sets, protocols)):
        results.append(evaluate_set(ck, s, source=source, batch_size=batch_size, device=device,
                                    progress=progress, shard=shard, clean_preds=clean_preds))
        if specs and proto == CLEAN:  # on-the-fly attacks start from clean sets only
            keep = None if on_adversarial is None else functools.partial(on_adversarial, k)
            results.extend(evaluate_on_the_fly(ck, s, specs, batch_size=batch_size, device=device,
                                               progress=progress, shard=shard, precision=precision,
                                               on_adversarial=keep))
    report = {"model": str(ck.path), "model_sha256": ck.sha256, "model_kind": ck.kind,
              "classes": ck.classes, "environment": environment(device, precision), "results": results}
    if shard is not None:   # a part: metrics of some rows only, so no masking verdict yet
        report.update(shard={"index": shard[0], "count": shard[1]}, seed=seed, warnings=[])
        return report
    report["warnings"] = masking_warnings(results)
    return report


def _check_run(sets: Sequence, batch_size: int, precision: str) -> None:
    if int(batch_size) < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if not sets:
        raise RdmError("no set to evaluate")
    check_precision(precision)


# --------------------------------------------------------------------------- merge shards
def _differs(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """What differs between two parts' results at the same position (None: nothing)."""
    if a.get("set_sha256") != b.get("set_sha256"):
        return "set sha256"
    if json.dumps(a.get("attack"), sort_keys=True) != json.dumps(b.get("attack"), sort_keys=True):
        return "attack spec"
    if a.get("precision") != b.get("precision"):
        return "precision"
    if (a.get("protocol"), bool(a.get("on_the_fly")), a["rows"].get("of")) != \
            (b.get("protocol"), bool(b.get("on_the_fly")), b["rows"].get("of")):
        return "protocol or set size"
    return None


def merge_reports(parts: Sequence[os.PathLike | str]) -> dict[str, Any]:
    """The report of one unsharded run from its shard parts (JSON files written with ``shard``).

    Refuses (RdmError) parts that are not shard parts, come from different runs (model
    sha256, set sha256, attack spec, seed, shard count), are given twice, overlap or
    leave rows out."""
    paths = [Path(p) for p in parts]
    if not paths:
        raise RdmError("--merge needs the part files")
    reps = []
    for p in paths:
        try:
            rep = json.loads(p.read_text())
        except FileNotFoundError:
            raise RdmError(f"{p}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RdmError(f"{p}: not a readable rdm-eval report ({e})") from None
        if not isinstance(rep, dict) or not isinstance(rep.get("results"), list) or "model_sha256" not in rep:
            raise RdmError(f"{p}: not an rdm-eval report")
        sh = rep.get("shard")
        if not isinstance(sh, dict) or any(not isinstance(r.get("rows"), dict) for r in rep["results"]):
            raise RdmError(f"{p}: is not a shard part (written without --shard)")
        reps.append(rep)
    ref, ref_p = reps[0], paths[0]
    for p, rep in zip(paths[1:], reps[1:]):
        what = ("model sha256" if rep["model_sha256"] != ref["model_sha256"] else
                "seed" if rep.get("seed") != ref.get("seed") else
                "shard count" if rep["shard"]["count"] != ref["shard"]["count"] else
                "sets (number of results)" if len(rep["results"]) != len(ref["results"]) else
                next((d for a, b in zip(rep["results"], ref["results"]) if (d := _differs(a, b))), None))
        if what:
            raise RdmError(f"{p}: differs from {ref_p.name} in {what}; parts must come from one run")
    count = int(ref["shard"]["count"])
    ordered = in_shard_order([(str(p), int(rep["shard"]["index"]), rep) for p, rep in zip(paths, reps)], count)
    merged_results = []
    for j, r0 in enumerate(ref["results"]):
        of = f" of {Path(r0['set']).name}"
        check_coverage([(p, rep["results"][j]["rows"]["start"], rep["results"][j]["rows"]["stop"])
                        for p, rep in ordered], r0["rows"]["of"], of)
        counts = None
        for p, rep in ordered:
            r = rep["results"][j]
            rows = r["rows"]
            c = Counts.from_dict(r["counts"])
            if c.n != rows["stop"] - rows["start"]:
                raise RdmError(f"{p}: counts {c.n} rows{of}, its shard has {rows['stop'] - rows['start']}")
            counts = c if counts is None else counts.merge(c)
        out = {k: v for k, v in ordered[0][1]["results"][j].items()
               if k not in ("rows", "counts", "metrics", "per_row")}
        out["counts"] = counts.to_dict()
        out["metrics"] = summarize(counts)
        per_row = merge_per_row([rep["results"][j].get("per_row") for _, rep in ordered])
        if per_row is not None:
            out["per_row"] = per_row
        merged_results.append(out)
    first = ordered[0][1]
    report = {k: first[k] for k in ("model", "model_sha256", "model_kind", "classes")}
    envs = [rep["environment"] for _, rep in ordered if "environment" in rep]
    if envs:     # where the first part ran; each part's record too when they ran in different places
        report["environment"] = envs[0]
        if any(e != envs[0] for e in envs):
            report["part_environments"] = envs
    report["results"] = merged_results
    report["warnings"] = masking_warnings(merged_results)
    report["merged_from"] = {p: sha256_file(p) for p, _ in ordered}
    return report


def masking_warnings(results: Sequence[dict[str, Any]]) -> list[str]:
    """Signs of gradient masking in one run's white-box results (Athalye et al. 2018; Carlini et al.
    2019): accuracy that rises with ε under the same attack beyond noise, or stays high at a large ε;
    for the ``aa`` cascade, Square fooling rows the gradient stages left. The checks are the report's
    (:mod:`rdm.pipeline.masking`), so both say the same thing."""
    from rdm.evaluation.masking import eval_warnings

    return eval_warnings(results)


# --------------------------------------------------------------------------- the written report
def report_text(report: dict[str, Any]) -> str:
    """The report as ``rdm-eval -o`` writes it (indented JSON, per-row lists on one line each)."""
    from rdm.attacks.per_row import dumps

    return dumps(report)


def write_report(report: dict[str, Any], path: os.PathLike | str) -> Path:
    """:func:`report_text` written to ``path`` atomically: the one writer of evaluation reports."""
    from rdm.data.atomic import write_text

    return write_text(path, report_text(report))


# --------------------------------------------------------------------------- table
def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def short_attack(att) -> str:
    """``PGD ε=0.005 α=0.002 ×3`` style label for tables (the attack's own, from the registry)."""
    from rdm.attacks.registry import label

    return label(att) if isinstance(att, dict) else "—"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per result: set, protocol, attack, rows, accuracy and balanced accuracy (what
    ``rdm-eval`` prints on stdout when neither ``-o`` nor ``--json`` takes the report)."""
    out = []
    for r in report["results"]:
        m = r["metrics"]
        att = f" {short_attack(r['attack'])}" if r.get("attack") else ""
        out.append(f"{Path(r['set']).name} {r['protocol']}{att}: n={m['n']} accuracy {_pct(m.get('accuracy'))} "
                   f"balanced {_pct(m.get('balanced_accuracy'))}")
    return out


def render_table(report: dict[str, Any]):
    """A Rich table of the report (one row per result)."""
    from rich.table import Table

    from rich import box

    t = Table(title=f"{Path(report['model']).name} ({report['model_kind']})", title_justify="left",
              box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("set", "protocol", "attack", "n", "acc", "bal.acc", "F1 macro", "majority",
                "success", "L∞ mean", "SSIM", "PSNR"):
        t.add_column(col, justify="left" if col in ("set", "protocol", "attack") else "right")
    for r in report["results"]:
        m = r["metrics"]
        a = m.get("adversarial") or {}
        att_s = short_attack(r.get("attack"))
        psnr = a.get("psnr_mean")
        t.add_row(Path(r["set"]).name, r["protocol"], att_s, str(m["n"]), _pct(m.get("accuracy")),
                  _pct(m.get("balanced_accuracy")), _pct(m.get("f1_macro")), _pct(m.get("majority_rate")),
                  _pct(a.get("attack_success_rate")) if a else "—",
                  f"{a['linf_mean']:.4f}" if a else "—", f"{a['ssim_mean']:.3f}" if a else "—",
                  (f"{psnr:.1f}" if psnr is not None else "∞") if a else "—")
    return t
