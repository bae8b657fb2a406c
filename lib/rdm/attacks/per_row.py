"""Per-row results of an evaluation, and the evaluation-time attack that spends no work on lost rows.

Every result of ``rdm-eval`` carries ``per_row``: lists with one entry per evaluated row, in
the set's row order, so that any two cells on the same rows can be paired (differences,
paired tests, the per-image worst case over attacks):

``index``       the row of the CLEAN set (an adversarial set's ``source_index``)
``y``           the label
``pred``        the model's prediction on the evaluated image
``pred_clean``  (adversarial cells) its prediction on the clean source image
``fooled``      (adversarial cells) right on the clean image and wrong on this one
``fooled_by``   (the ``aa`` suite) the stage that fooled the row first, ``"clean"`` for a row
                misclassified with no attack, null for a robust row

Shard parts carry their rows' lists; ``rdm-eval --merge`` concatenates them in shard order.
The report file keeps each list on one line (:func:`dumps`).

:func:`attack_for_eval` is how ``rdm-eval --attack`` runs an attack: robust accuracy only
asks, per row, whether the model is still right, so rows it gets wrong on the clean image are
not attacked at all (their adversarial image is the clean image), and within an attack later
restarts, targets and stages run only on rows nothing has fooled yet (AutoAttack's and
torchattacks' practice). The robust accuracy equals that of attacking every row; the numbers
that describe misclassified rows' images (their perturbation norms, SSIM, the wrong class
they land in) are those of the unchanged clean image. ``rdm-attack`` still attacks every row.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from rdm.attacks.registry import AttackSpec, get
from rdm.errors import RdmError

__all__ = ["PerRow", "attack_for_eval", "merge_per_row", "dumps", "table", "write_table", "ROW_COLUMNS"]


class PerRow:
    """Accumulates the per-row lists of one result over batches."""

    def __init__(self, adversarial: bool):
        self.adversarial = adversarial
        self.cols: dict[str, list] = {"index": [], "y": [], "pred": []}
        if adversarial:
            self.cols.update(pred_clean=[], fooled=[])

    def add(self, index, y, pred, pred_clean=None, **info: Sequence) -> None:
        index, y, pred = (np.asarray(v).reshape(-1) for v in (index, y, pred))
        self.cols["index"] += index.astype(np.int64).tolist()
        self.cols["y"] += y.astype(np.int64).tolist()
        self.cols["pred"] += pred.astype(np.int64).tolist()
        if self.adversarial:
            pc = np.asarray(pred_clean).reshape(-1)
            self.cols["pred_clean"] += pc.astype(np.int64).tolist()
            self.cols["fooled"] += ((pc == y) & (pred != y)).tolist()
        for k, v in info.items():
            self.cols.setdefault(k, []).extend(list(v))

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.cols.items()}


def merge_per_row(parts: Sequence[dict[str, list] | None]) -> dict[str, list] | None:
    """The per-row lists of shard parts, concatenated in the order given (None if a part has none)."""
    if not parts or any(p is None for p in parts):
        return None
    keys = list(parts[0])
    if any(list(p) != keys for p in parts):
        raise ValueError("per-row parts have different columns")
    return {k: [v for p in parts for v in p[k]] for k in keys}


def attack_for_eval(specs: Sequence[AttackSpec], model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                    row_ids: Sequence[int], pred_clean: np.ndarray) -> list[tuple[torch.Tensor, dict[str, list]]]:
    """Each spec's adversarial images of one batch for robust accuracy, with its per-row info.

    Only the rows the model classifies right (``pred_clean == y``) are attacked; the others keep
    their clean image (and ``fooled_by = "clean"`` where the attack reports stages)."""
    right = np.asarray(pred_clean).reshape(-1) == y.detach().cpu().numpy().reshape(-1)
    rows = np.flatnonzero(right)
    ids = np.asarray(row_ids).reshape(-1)
    advs = [x.clone() for _ in specs]
    infos: list[dict[str, list]] = [{"fooled_by": []} if _reports(s) else {} for s in specs]
    if rows.size:
        t = torch.from_numpy(rows).to(x.device)
        xs, ys = x.index_select(0, t), y.index_select(0, t)
        classes = {get(s.name) for s in specs}
        if len(classes) == 1 and not any(infos):
            subs = [(a, {}) for a in next(iter(classes)).sweep(specs, model, xs, ys, ids[rows])]
        else:
            subs = [s.attack().run_with_info(model, xs, ys, ids[rows]) for s in specs]
        for full, (sub, info), j in zip(advs, subs, range(len(specs))):
            full[t] = sub.to(full.dtype)
            infos[j] = info
    out = []
    for full, info in zip(advs, infos):
        expanded = {}
        for k, v in info.items():         # rows not attacked: misclassified with no attack
            col: list[Any] = ["clean" if k == "fooled_by" else None] * len(right)
            for j, val in zip(rows.tolist(), v):
                col[j] = val
            expanded[k] = col
        out.append((full, expanded))
    return out


def _reports(spec: AttackSpec) -> bool:
    """Whether the attack reports per-row info (overrides ``run_with_info``)."""
    from rdm.attacks.registry import Attack

    return get(spec.name).run_with_info is not Attack.run_with_info


_SCALAR_LIST = re.compile(r"\[\n\s*([^\[\]{}]*?)\n\s*\]")


def dumps(report: dict[str, Any]) -> str:
    """The report as indented JSON with each list of scalars on one line (per-row lists stay short)."""
    text = json.dumps(report, indent=2, default=str)
    return _SCALAR_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text) + "\n"


ROW_COLUMNS = ("result", "set", "protocol", "attack", "eps", "index", "y", "pred", "pred_clean", "fooled",
               "fooled_by")


def table(report: dict) -> list[dict[str, Any]]:
    """The per-row lists of an ``rdm-eval`` report as rows (one per result and row), with the
    columns :data:`ROW_COLUMNS` (None where a result has no such column)."""
    out = []
    for k, r in enumerate(report["results"]):
        rows = r.get("per_row") or {}
        att = r.get("attack") or {}
        for i in range(len(rows.get("index", []))):
            out.append({"result": k, "set": r["set"], "protocol": r["protocol"], "attack": att.get("name"),
                        "eps": att.get("eps"),
                        **{c: (rows[c][i] if c in rows else None) for c in ROW_COLUMNS[5:]}})
    return out


def write_table(report: dict, path: os.PathLike | str) -> Path:
    """The per-row table written atomically as CSV, or as Parquet when ``path`` ends in ``.parquet``
    (needs pyarrow); both read back with pandas (``read_csv``, ``read_parquet``)."""
    from rdm.data.atomic import atomic_output

    rows, path = table(report), Path(path)
    if path.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise RdmError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow); "
                           "or write .csv") from None
        columns = pa.table({c: [r[c] for r in rows] for c in ROW_COLUMNS})
        with atomic_output(path) as tmp:
            pq.write_table(columns, tmp)
        return path
    import csv

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(ROW_COLUMNS))
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return path
