#!/usr/bin/env python
"""rdm's white-box suite against the reference AutoAttack on the same rows: robust accuracy and time.

    .venv/bin/python tests/bench/aa_reference.py MODEL.ckpt TEST.h5 --eps 0.002 --eps 0.005 --rows 128

For each ε, on one seeded subset of rows of TEST.h5 (the same rows for all):

* rdm's APGD-CE (100 steps, 1 restart) on the rows right on the clean image;
* rdm's ``aa`` cascade (APGD-CE, APGD-T over the C − 1 other classes, Square 5,000 queries);
* the reference AutoAttack (``pyautoattack``: ``pip install --no-deps pyautoattack==0.2.0``),
  its standard Linf cascade — APGD-CE, APGD-T, FAB-T, Square 5,000 — with the number of
  target classes set to C − 1 (the standard's 9 needs ≥ 10 classes). Its APGD-T needs ≥ 4
  classes (its targeted DLR reads the 4th largest logit): for 2–3-class models only its
  APGD-CE, FAB-T and Square run, which the output says. Robust accuracy after each of its
  stages is read from its log.

Prints one JSON object (robust accuracies as shares of the subset, seconds of wall time).
Not collected by pytest (``tests/bench/conftest.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import numpy as np
import torch
from torch import nn

from rdm.attacks.functions import apgd_ce
from rdm.attacks.autoattack import STAGES, autoattack
from rdm.data.checkpoint import load_checkpoint
from rdm.models import as_class_logits
from rdm.data.sets import SetReader


class Logits(nn.Module):
    """Class logits ([0, z] for a single-logit head), as the reference expects."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x):
        return as_class_logits(self.m(x))


def _right(model, x, y, bs=256) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([(as_class_logits(model(x[i:i + bs])).argmax(1) == y[i:i + bs]).numpy()
                               for i in range(0, len(y), bs)])


class _Log(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("set")
    ap.add_argument("--eps", type=float, action="append", required=True)
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--no-reference", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    ck = load_checkpoint(a.model)
    model = ck.model.eval()
    with SetReader(a.set) as r:
        rows = np.sort(np.random.default_rng(a.seed).choice(r.n, size=min(a.rows, r.n), replace=False))
        b = r.read_rows(rows, ("x", "y"))
    x, y = torch.from_numpy(b["x"]), torch.from_numpy(b["y"])
    k = len(ck.classes)
    right = _right(model, x, y)
    out = {"model": a.model, "set": a.set, "rows": int(len(rows)), "classes": k, "threads": torch.get_num_threads(),
           "clean_accuracy": float(right.mean()), "eps": {}}
    for eps in a.eps:
        cell: dict = {}
        xr, yr, ids = x[right], y[right], rows[right]
        t = time.perf_counter()
        xa = apgd_ce(model, xr, yr, eps, 100, seed=a.seed, row_ids=ids)
        cell["apgd_ce"] = {"robust": float(_right(model, xa, yr).sum() / len(y)), "s": time.perf_counter() - t}
        print(json.dumps({"eps": eps, **cell}), file=sys.stderr, flush=True)
        t = time.perf_counter()
        xa, by = autoattack(model, xr, yr, eps, queries=a.queries, seed=a.seed, row_ids=ids)
        by = by.numpy()
        cell["rdm_aa"] = {"robust": float((by == -1).sum() / len(y)), "s": time.perf_counter() - t,
                          "fooled_by": {s: int((by == i + 1).sum()) for i, s in enumerate(STAGES)}}
        print(json.dumps({"eps": eps, **cell}), file=sys.stderr, flush=True)
        if not a.no_reference:
            import pyautoattack

            stages = ["apgd-ce", "apgd-t", "fab-t", "square"] if k >= 4 else ["apgd-ce", "fab-t", "square"]
            ref = pyautoattack.AutoAttack(Logits(model), attacks=stages, version="custom", eps=eps, seed=a.seed)
            ref.apgd.n_restarts = 1
            ref.apgd_targeted.n_target_classes = ref.fab.n_target_classes = k - 1
            ref.fab.n_restarts = 1
            ref.square.n_queries = a.queries
            log = _Log()
            ref.logger.addHandler(log)
            ref.logger.setLevel(logging.DEBUG)
            ref.logger.propagate = False
            t = time.perf_counter()
            x_ref, _ = ref.run_standard_evaluation(x, y, batch_size=500)
            cell["reference_aa"] = {"stages": stages, "robust": float(_right(model, x_ref, y).mean()),
                                    "s": time.perf_counter() - t,
                                    "log": [m for m in log.lines if m.startswith("robust accuracy after")]}
        out["eps"][str(eps)] = cell
        print(json.dumps({"eps": eps, **cell}), file=sys.stderr, flush=True)     # progress: one line per ε
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
