#!/usr/bin/env python
"""The per-row random start, before and after the counter-based uniform, and APGD
against its floor, on one device, in one process.

* ``old``: the previous ``rdm.attacks.functions._uniform_rows`` (one seeded CPU ``torch.Generator`` per row,
  rows stacked, then moved to the attack's device), copied here only for this comparison;
* ``new``: :func:`rdm.attacks.functions._uniform_rows` (a hash of seed, row, restart and element index in
  integer tensor ops on the attack's device);
* APGD-CE with ``--apgd-steps`` steps on a preset CNN (random weights, phantom inputs) against its
  floor, (steps + 1) forward+backward passes w.r.t. the input in plain PyTorch.

Times are the fastest of ``--reps`` runs. Usage::

    RDM_THREADS=1 .venv/bin/python tests/bench/random_start.py --rows 4096 --preset brain
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench import fwd_bwd, frozen, make_model, phantoms  # noqa: E402

from rdm.attacks import functions as A  # noqa: E402


def old_uniform_rows(shape, seed, ids, restart, like):
    """The function as it was before the counter-based uniform (for this measurement only)."""
    rows = [torch.rand(tuple(shape[1:]), generator=A.row_generator(seed, rid, restart),
                       dtype=torch.float32) * 2 - 1 for rid in ids]
    return torch.stack(rows).to(device=like.device, dtype=like.dtype,
                                memory_format=A.fast_layout(like))


def best(fn, reps, device):
    t = math.inf
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = min(t, time.perf_counter() - t0)
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="brain")
    ap.add_argument("--rows", type=int, default=4096, help="rows of one restart")
    ap.add_argument("--apgd-rows", type=int, default=256, help="batch of the APGD measurement")
    ap.add_argument("--apgd-steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the numbers here")
    a = ap.parse_args()
    from rdm.cli import configure_threads

    configure_threads()
    dev = torch.device(a.device)
    model, p, _ = make_model(a.preset)
    model = frozen(model.to(dev))
    shape = torch.Size((a.rows, *p.shape))
    like = torch.zeros((1, *p.shape), device=dev)
    ids = list(range(a.rows))
    old = best(lambda: old_uniform_rows(shape, 0, ids, 0, like), a.reps, dev)
    new = best(lambda: A._uniform_rows(shape, 0, ids, 0, like), a.reps, dev)
    res = {"device": str(dev), "threads": torch.get_num_threads(), "load": [round(v, 2) for v in os.getloadavg()],
           "preset": a.preset, "rows": a.rows, "old_s": old, "new_s": new, "speedup": old / new}
    print(f"random start, {a.rows} rows of {tuple(p.shape)} on {dev} ({torch.get_num_threads()} threads): "
          f"old {old * 1e3:.1f} ms, new {new * 1e3:.1f} ms ({old / new:.1f}× faster)")

    x, y = phantoms(p, a.apgd_rows, seed=1)
    x, y = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    xl = x.contiguous(memory_format=torch.channels_last)
    floor_fb = min(best(lambda: fwd_bwd(model, xx, y), a.reps, dev) for xx in (x, xl))
    floor = (a.apgd_steps + 1) * floor_fb
    t_new = best(lambda: A.apgd_ce(model, x, y, 8 / 255, a.apgd_steps, seed=0), a.reps, dev)
    saved, A._uniform_rows = A._uniform_rows, old_uniform_rows
    try:
        t_old = best(lambda: A.apgd_ce(model, x, y, 8 / 255, a.apgd_steps, seed=0), a.reps, dev)
    finally:
        A._uniform_rows = saved
    res.update(apgd_rows=a.apgd_rows, apgd_steps=a.apgd_steps, floor_s=floor, apgd_new_s=t_new, apgd_old_s=t_old,
               apgd_new_over_floor=t_new / floor, apgd_old_over_floor=t_old / floor,
               load_end=[round(v, 2) for v in os.getloadavg()])
    print(f"APGD-CE-{a.apgd_steps}, batch {a.apgd_rows}: floor {floor:.3f} s; with the new start {t_new:.3f} s "
          f"({t_new / floor:.2f}× floor), with the old {t_old:.3f} s ({t_old / floor:.2f}× floor)")
    print(f"load average {res['load']} -> {res['load_end']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
