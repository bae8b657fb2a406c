"""Where does rdm's APGD spend its time on a GPU? APGD-CE-10 and PGD-10,
each against its forward+backward floor.

One short diagnostic to run on a machine with a GPU. On the brain preset's CNN (random weights,
phantom images, ε = .01, like ``bench.py``) at ``--batch`` rows it times, best of ``--reps``:

* ``floor``: 11 × rdm's own ``_loss_and_grad`` inside ``attack_mode`` (rdm's layout and loss);
* ``pgd10`` and ``pgd10_random_start``: PGD-10 without and with rdm's counter-based random start;
* ``apgd10``: APGD-CE-10 (the bench's cell);
* ``uniform_rows`` and ``eps_bounds`` alone (the two one-time costs of a call);

then profiles one APGD call with ``torch.profiler`` and writes the ops by self device time and by
self CPU time, and the calls that wait for the device (``cudaStreamSynchronize``, ``item``,
``nonzero``). On the CPU (``--device cpu``, small batch) it is a dry run of the same code.

    python tests/bench/apgd_profile.py --device cuda --out $OUT/apgd-profile.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from bench import EPS, make_model, phantoms, sync


def best(fn, reps: int, device: torch.device) -> float:
    fn()                                        # warm-up: kernel loading, cuDNN plans, allocator
    sync(device)
    t = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        t = min(t, time.perf_counter() - t0)
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=None, help="rows (default 4096 on CUDA, 64 on the CPU)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("apgd_profile: no CUDA device, skipped")
        return
    from rdm.attacks import functions as A

    dev = torch.device(a.device)
    n = a.batch or (4096 if dev.type == "cuda" else 64)
    model, p, _ = make_model("brain")
    model = model.to(dev)
    xs, ys = phantoms(p, n, seed=1)
    x, y = torch.from_numpy(xs).to(dev), torch.from_numpy(ys).to(dev)
    ids = list(range(n))

    def floor():
        with A.attack_mode(model):
            xc = x.contiguous(memory_format=torch.channels_last)
            for _ in range(11):
                A._loss_and_grad(model, xc, y)

    calls = {
        "floor_11_fwd_bwd": floor,
        "pgd10": lambda: A.pgd(model, x, y, EPS, 2.5 * EPS / 10, 10),
        "pgd10_random_start": lambda: A.pgd(model, x, y, EPS, 2.5 * EPS / 10, 10, random_start=True, seed=0),
        "apgd10": lambda: A.apgd_ce(model, x, y, EPS, 10, seed=0),
        "uniform_rows": lambda: A._uniform_rows(x.shape, 0, ids, 0, x.contiguous(memory_format=torch.channels_last)),
        "eps_bounds": lambda: A.eps_bounds(x, EPS),
    }
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "batch": n,
           "torch": torch.__version__, "s": {}}
    for k, fn in calls.items():
        res["s"][k] = best(fn, a.reps, dev)
        print(f"{k:22s} {res['s'][k]:.4f} s  ({res['s'][k] / res['s']['floor_11_fwd_bwd']:.2f}× the floor)",
              flush=True)

    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        calls["apgd10"]()
        sync(dev)
    ev = prof.key_averages()
    dev_key = "self_device_time_total" if hasattr(ev[0], "self_device_time_total") else "self_cuda_time_total"
    sort_dev = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    res["top_device"] = ev.table(sort_by=sort_dev, row_limit=25)
    res["top_cpu"] = ev.table(sort_by="self_cpu_time_total", row_limit=25)
    res["waits"] = {e.key: {"count": e.count, "cpu_us": e.cpu_time_total}
                    for e in ev if any(s in e.key for s in ("Synchronize", "item", "nonzero", "is_nonzero",
                                                             "Memcpy", "local_scalar_dense"))}
    res["device_us_total"] = sum(getattr(e, dev_key, 0) or 0 for e in ev)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(a.out)
    print(res["top_device"])
    print(json.dumps(res["waits"], indent=1))


if __name__ == "__main__":
    main()
