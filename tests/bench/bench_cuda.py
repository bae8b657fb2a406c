"""``bench.py --device cuda``: the GPU section of ``make bench``, written to ``bench/bench-cuda.json``.

What it measures, on one card (named in the JSON), at batch 256 and 4096 (``--batches``):

* the floor per preset: the fastest forward and forward+backward w.r.t. the input in plain
  PyTorch (parameters frozen; contiguous and channels-last layouts, best kept), in fp32 and
  under bf16 autocast; FLOPs per image give the share of the card's measured matmul rate;
* attacks: rdm's FGSM, PGD-3, PGD-10 (no random start, α = 2.5·ε/k) and APGD-CE-10 in fp32
  and bf16, torchattacks 3.5.1 and ART 1.20.1 in fp32 (ART only up to batch 1024: it runs in
  numpy on the host and would take minutes at 4096). Each attack's FIRST call is timed on its
  own (``first_s``: kernel loading, cuDNN plans, allocator growth) and then the best of
  ``--reps`` calls (``s``). Floors per attack: FGSM 1·(fwd+bwd), PGD-k k·(fwd+bwd)+fwd, APGD-k
  (k+1)·(fwd+bwd). The fooled share of every output is recorded (the libraries must agree in
  strength), and the share of pixels where rdm-bf16 differs from rdm-fp32;
* training (brain CNN, 4,096 phantom images, batch 64 and 256, fp32 and bf16): images/s of
  ``rdm.training.loop.fit`` (the shared loop, data held on the GPU) against a bare PyTorch loop with
  the tensors already on the GPU (same model, optimizer, batches and cuDNN flags), the best
  epoch of three after the first; the one-time load of the set into GPU memory is timed apart;
* experiments (kept only if they pay): PGD-10 with every step captured in one CUDA graph,
  and ``torch.compile`` on the fwd+bwd floor (its compile time recorded).

``--cuda-dry-run`` runs the very same code on the CPU with tiny sizes (to check the script
before the one run on a GPU); without CUDA and without it, the section is skipped with a
message and exit 0.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench import (ATTACKS, APGD_STEPS, EPS, ClassLogits, art_attacks, flops_per_image, frozen, fwd_bwd,
                   loadavg, log, machine_info, make_model, matmul_gflops, phantoms, sync,
                   torchattacks_attacks, write_set)

CUDA_ATTACKS = tuple(a for a in ATTACKS if a != "sweep")
COMPILE_START_BY_S = 80      # torch.compile only if the rest took less (the GPU script gives the bench 150 s)
ART_MAX_BATCH = 1024


def _write(path: Path, result: dict) -> None:
    """Atomic: a timeout that kills the bench mid-write leaves the previous complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    os.replace(tmp, path)


def _timed(fn, reps: int, device: torch.device) -> tuple[float, float, object]:
    """(first call s, best of ``reps`` later calls s, last output)."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    first = time.perf_counter() - t0
    best = math.inf
    for _ in range(max(reps, 1)):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return first, best, out


def _autocast(device: torch.device, precision: str):
    from rdm.precision import autocast
    return autocast(device, precision)


def _fooled(model, xa, y) -> float:
    from rdm.models import predict
    with torch.no_grad():
        return float((predict(model(xa.to(y.device))) != y).float().mean())


def rdm_run(model, precision: str, device: torch.device):
    from rdm.attacks import functions as A

    def run(name, x, y):
        with _autocast(device, precision):
            if name == "fgsm":
                return A.fgsm(model, x, y, EPS)
            if name in ("pgd3", "pgd10"):
                k = 3 if name == "pgd3" else 10
                return A.pgd(model, x, y, EPS, 2.5 * EPS / k, k)
            if name == "apgd":
                return A.apgd_ce(model, x, y, EPS, APGD_STEPS, seed=0)
        raise KeyError(name)
    return run


def graphed_pgd(model, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int):
    """PGD with one step captured in a CUDA graph and replayed ``steps`` times (an experiment:
    one launch per step instead of one per kernel). Returns a function of (x, y)."""
    from rdm.attacks.functions import eps_bounds
    from rdm.models import classification_loss

    sx = x.detach().clone(memory_format=torch.channels_last)
    sy = y.detach().clone()
    lo, hi = eps_bounds(sx, eps)
    adv = sx.clone()

    def step():
        xg = adv.detach().requires_grad_(True)
        loss = classification_loss(model(xg), sy, reduction="none").sum()
        (g,) = torch.autograd.grad(loss, [xg])
        adv.copy_(torch.clamp(adv + alpha * g.sign(), lo, hi))

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()

    def run(xn, yn):
        sx.copy_(xn)
        sy.copy_(yn)
        b_lo, b_hi = eps_bounds(sx, eps)
        lo.copy_(b_lo)
        hi.copy_(b_hi)
        adv.copy_(sx)
        for _ in range(steps):
            graph.replay()
        return adv.clone().contiguous()
    return run


def bench_cuda_attacks(args, device: torch.device, peak: dict, libs: dict, result: dict, out: Path) -> None:
    rows = result.setdefault("attacks", [])
    for preset in args.presets:
        model, p, _ = make_model(preset)
        model = frozen(model.to(device))
        xn, yn = phantoms(p, max(args.batches), seed=1)
        for batch in args.batches:
            x = torch.from_numpy(xn[:batch]).to(device)
            y = torch.from_numpy(yn[:batch]).to(device)
            row: dict = {"preset": preset, "batch": batch, "shape": list(p.shape), "load_start": loadavg()}
            log(f"[cuda attacks] {preset} batch {batch}")
            cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
            xcl = x.contiguous(memory_format=torch.channels_last)
            floor: dict = {}
            for prec in ("fp32", "bf16"):
                best = {"fwd_s": math.inf, "fwd_bwd_s": math.inf}
                for m, xx in ((model, x), (cl_model, xcl)):
                    with _autocast(device, prec):
                        with torch.no_grad():
                            _, tf, _ = _timed(lambda: m(xx), args.reps, device)
                        _, tb, _ = _timed(lambda: fwd_bwd(m, xx, y), args.reps, device)
                    best = {"fwd_s": min(best["fwd_s"], tf), "fwd_bwd_s": min(best["fwd_bwd_s"], tb)}
                floor[prec] = best
            fl = flops_per_image(model, x, y)
            row["flops_per_image"] = fl
            row["floor"] = floor
            row["peak_share"] = {prec: fl["fwd_bwd"] * batch / floor[prec]["fwd_bwd_s"] / 1e9 / peak[prec]
                                 for prec in floor if peak.get(prec)}
            floors = {prec: {"fgsm": f["fwd_bwd_s"], "pgd3": 3 * f["fwd_bwd_s"] + f["fwd_s"],
                             "pgd10": 10 * f["fwd_bwd_s"] + f["fwd_s"],
                             "apgd": (APGD_STEPS + 1) * f["fwd_bwd_s"]} for prec, f in floor.items()}
            row["floors"] = floors
            runners = {"rdm": (rdm_run(model, "fp32", device), "fp32"),
                       "rdm_bf16": (rdm_run(model, "bf16", device), "bf16")}
            if "torchattacks" in libs:
                runners["torchattacks"] = (torchattacks_attacks(model), "fp32")
            if "art" in libs and batch <= ART_MAX_BATCH:
                runners["art"] = (art_attacks(model, p, device, batch), "fp32")
            res: dict = {lib: {} for lib in runners}
            outs: dict = {}
            for att in CUDA_ATTACKS:
                for lib, (run, prec) in runners.items():
                    reps = 1 if lib == "art" else args.reps
                    try:
                        first, t, o = _timed(lambda: run(att, x, y), reps, device)
                    except Exception as e:        # a library failing must not sink the bench
                        log(f"  {lib} {att}: failed ({type(e).__name__}: {e})")
                        res[lib][att] = {"error": f"{type(e).__name__}: {e}"}
                        continue
                    f0 = floors[prec][att]
                    res[lib][att] = {"s": t, "first_s": first, "img_s": batch / t, "vs_floor": t / f0,
                                     "fooled": _fooled(model, o, y)}
                    outs[(lib, att)] = o
                    log(f"  {lib:12s} {att:6s} {batch / t:10.0f} img/s  ({t * 1e3:.2f} ms, {t / f0:.2f}× "
                        f"{prec} floor; first call {first * 1e3:.1f} ms)")
                if ("rdm", att) in outs and ("rdm_bf16", att) in outs:
                    a, b = outs[("rdm", att)], outs[("rdm_bf16", att)]
                    res["rdm_bf16"][att]["share_pixels_differ_from_fp32"] = float(((a - b).abs() > 1e-6).float().mean())
                    res["rdm_bf16"][att]["max_abs_delta_vs_x_over_eps"] = float((b - x).abs().max()) / EPS
                outs = {k: v for k, v in outs.items() if k[1] == att and k[0] == "rdm"}   # free GPU memory
            for att in CUDA_ATTACKS:
                for lib in [k for k in res if k not in ("rdm",)]:
                    v, r = res[lib].get(att, {}), res["rdm"].get(att, {})
                    if "s" in v and "s" in r:
                        r.setdefault("speedup_vs", {})[lib] = v["s"] / r["s"]
                    if lib != "rdm_bf16" and "s" in v and "s" in res["rdm_bf16"].get(att, {}):
                        res["rdm_bf16"][att].setdefault("speedup_vs", {})[lib] = v["s"] / res["rdm_bf16"][att]["s"]
            # experiment: PGD-10 as a CUDA graph
            if device.type == "cuda" and not args.no_experiments:
                try:
                    g = graphed_pgd(model, x, y, EPS, 2.5 * EPS / 10, 10)
                    first, t, o = _timed(lambda: g(x, y), args.reps, device)
                    res["rdm_cuda_graph"] = {"pgd10": {"s": t, "first_s": first, "img_s": batch / t,
                                                       "vs_floor": t / floors["fp32"]["pgd10"],
                                                       "fooled": _fooled(model, o, y),
                                                       "speedup_vs_rdm": res["rdm"]["pgd10"]["s"] / t}}
                    log(f"  cuda graph   pgd10  {batch / t:10.0f} img/s ({res['rdm']['pgd10']['s'] / t:.2f}× rdm eager)")
                except Exception as e:
                    res["rdm_cuda_graph"] = {"error": f"{type(e).__name__}: {e}"}
                    log(f"  cuda graph: failed ({type(e).__name__}: {e})")
            row.update(results=res, load_end=loadavg())
            rows.append(row)
            _write(out, result)
            del cl_model, outs
            if device.type == "cuda":
                torch.cuda.empty_cache()


def bench_cuda_training(args, device: torch.device, tmp: Path) -> dict:
    from rdm.models import classification_loss
    from rdm.precision import autocast
    from rdm.training.loop import Batches, Classification, Source, TrainConfig, fit

    preset, n = "brain", args.train_n
    _, p, _ = make_model(preset)
    xn, yn = phantoms(p, n, seed=2)
    path = write_set(tmp / "train.h5", p, [(xn, yn)])
    out: dict = {"preset": preset, "n": n, "epochs": 3, "runs": []}
    for bs in args.train_batches:
        for prec in ("fp32", "bf16"):
            log(f"[cuda training] {preset}, {n} images, batch {bs}, {prec}")
            model, _, _ = make_model(preset, seed=0)
            with Batches([Source(path)], bs, shuffle=True, seed=0) as tr:
                t0 = time.perf_counter()
                tr.prepare(device)
                sync(device)
                load_s = time.perf_counter() - t0
                st = fit(model, Classification(), tr, None, TrainConfig(epochs=3, batch_size=bs, lr=1e-3),
                         device=device, quiet=True, precision=prec)
            shared = min(h["time_s"] for h in st.history[1:])

            # the bare loop: tensors already on the device, same model, optimizer and batch
            model, _, _ = make_model(preset, seed=0)
            model.to(device).to(memory_format=torch.channels_last)
            x = torch.from_numpy(xn).to(device).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(yn).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            g = torch.Generator().manual_seed(0)
            model.train()
            times = []
            for _ in range(3):
                sync(device)
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=g).to(device)
                for i in range(0, n, bs):
                    idx = perm[i:i + bs]
                    opt.zero_grad(set_to_none=True)
                    with autocast(device, prec):
                        loss = classification_loss(model(x[idx]), y[idx])
                    loss.backward()
                    opt.step()
                sync(device)
                times.append(time.perf_counter() - t0)
            bare = min(times[1:])
            r = {"batch": bs, "precision": prec, "load_to_device_s": load_s,
                 "shared_img_s": n / shared, "bare_img_s": n / bare, "shared_over_bare": bare / shared}
            out["runs"].append(r)
            log(f"  shared {r['shared_img_s']:.0f} img/s, bare {r['bare_img_s']:.0f} img/s → "
                f"{r['shared_over_bare']:.2f} (load {load_s:.2f} s)")
    out["cudnn"] = {"deterministic": torch.backends.cudnn.deterministic, "benchmark": torch.backends.cudnn.benchmark}
    return out


def bench_compile(args, device: torch.device) -> dict:
    """torch.compile on the brain CNN's fwd+bwd at the largest batch: compile time and speed-up."""
    model, p, _ = make_model("brain")
    model = frozen(model.to(device)).to(memory_format=torch.channels_last)
    xn, yn = phantoms(p, max(args.batches), seed=1)
    x = torch.from_numpy(xn).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(yn).to(device)
    _, eager, _ = _timed(lambda: fwd_bwd(model, x, y), args.reps, device)
    t0 = time.perf_counter()
    cm = torch.compile(model)
    fwd_bwd(cm, x, y)
    sync(device)
    compile_s = time.perf_counter() - t0
    _, comp, _ = _timed(lambda: fwd_bwd(cm, x, y), args.reps, device)
    log(f"[compile] brain fwd+bwd batch {len(x)}: eager {eager * 1e3:.2f} ms, compiled {comp * 1e3:.2f} ms "
        f"(compile {compile_s:.0f} s)")
    return {"batch": len(x), "eager_fwd_bwd_s": eager, "compiled_fwd_bwd_s": comp, "speedup": eager / comp,
            "compile_s": compile_s}


def main_cuda(args, libs: dict) -> int:
    import shutil
    import tempfile

    dry = args.cuda_dry_run
    if not dry and not torch.cuda.is_available():
        log("skipping the CUDA section: no CUDA device on this machine (nothing written)")
        return 0
    device = torch.device("cpu") if dry else torch.device("cuda")
    args.batches = args.batches or ([8, 16] if dry else [256, 4096])
    args.presets = args.cuda_presets or (["brain", "lung"])
    args.reps = 1 if dry else 3
    args.train_n = 64 if dry else 4096
    args.train_batches = [16] if dry else [64, 256]
    out = args.out if args.out_given else args.out.with_name("bench-cuda.json")
    t_start = time.perf_counter()
    result: dict = {
        "card": torch.cuda.get_device_name(0) if not dry else "none: --cuda-dry-run on the CPU",
        "device": str(device), "dry_run": dry, "machine": machine_info(), "versions": libs,
        "torch_cuda": torch.version.cuda,
        "tf32": {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32},
        "eps": EPS, "apgd_steps": APGD_STEPS, "batches": args.batches, "load": {"start": loadavg()}}
    peak = {"fp32": matmul_gflops(device, 256 if dry else 8192, 3)}
    with _autocast(device, "bf16"):
        peak["bf16"] = matmul_gflops(device, 256 if dry else 8192, 3)
    result["matmul_gflops"] = peak
    log(f"[cuda] {result['card']}: matmul fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    _write(out, result)
    bench_cuda_attacks(args, device, peak, libs, result, out)
    tmp = Path(tempfile.mkdtemp(prefix="rdm-bench-cuda-"))
    try:
        result["training"] = bench_cuda_training(args, device, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write(out, result)
    elapsed = time.perf_counter() - t_start
    if not args.no_experiments and elapsed > COMPILE_START_BY_S:
        result["compile"] = {"skipped": f"{elapsed:.0f} s spent already (compiling takes 30-70 s)"}
        log(f"[compile] skipped: {elapsed:.0f} s spent already")
    elif not args.no_experiments:
        try:
            result["compile"] = bench_compile(args, device)
        except Exception as e:
            result["compile"] = {"error": f"{type(e).__name__}: {e}"}
            log(f"[compile] failed ({type(e).__name__}: {e})")
    result["load"]["end"] = loadavg()
    result["wall_s"] = time.perf_counter() - t_start
    result["targets"] = cuda_targets(result)
    _write(out, result)
    print_cuda(result)
    print(f"\nwall time {result['wall_s']:.0f} s; written {out}")
    return 0


def cuda_targets(result: dict) -> dict:
    """The GPU targets, read off this run (largest batch, brain): FGSM/PGD ≥ 2× torchattacks
    (bf16 counts), APGD ≥ 1× torchattacks, the training loop ≥ 0.8× the bare loop."""
    t: dict = {}
    rows = [r for r in result.get("attacks", []) if r["preset"] == "brain"]
    if rows:
        r = max(rows, key=lambda r: r["batch"])
        res = r["results"]
        for att, goal in (("fgsm", 2.0), ("pgd3", 2.0), ("pgd10", 2.0), ("apgd", 1.0)):
            best = max([v for v in (res.get("rdm", {}).get(att, {}).get("speedup_vs", {}).get("torchattacks"),
                                    res.get("rdm_bf16", {}).get(att, {}).get("speedup_vs", {}).get("torchattacks"))
                        if v is not None], default=None)
            if best is not None:
                t[f"{att}_over_torchattacks_brain_{r['batch']}"] = {"value": best, "target": f">= {goal}",
                                                                    "met": best >= goal}
    runs = (result.get("training") or {}).get("runs", [])
    for run in runs:
        t[f"training_shared_over_bare_batch{run['batch']}_{run['precision']}"] = {
            "value": run["shared_over_bare"], "target": ">= 0.8", "met": run["shared_over_bare"] >= 0.8}
    return t


def print_cuda(result: dict) -> None:
    print(f"card: {result['card']} (torch {result['machine']['torch']}, CUDA {result['torch_cuda']}); matmul "
          f"fp32 {result['matmul_gflops']['fp32']:.0f} GFLOP/s, bf16 {result['matmul_gflops']['bf16']:.0f} GFLOP/s")
    for r in result.get("attacks", []):
        f = r["floor"]
        print(f"\n{r['preset']} {tuple(r['shape'])} batch {r['batch']}: fwd+bwd floor fp32 "
              f"{r['batch'] / f['fp32']['fwd_bwd_s']:.0f} img/s, bf16 {r['batch'] / f['bf16']['fwd_bwd_s']:.0f} img/s")
        libs = list(r["results"])
        print(f"  {'attack':7s} " + " ".join(f"{lib:>24s}" for lib in libs) + "   (img/s ×floor fooled)")
        for att in CUDA_ATTACKS:
            cells = []
            for lib in libs:
                v = r["results"][lib].get(att)
                cells.append(f"{v['img_s']:9.0f} {v['vs_floor']:6.2f}× {v['fooled']:5.2f}".rjust(24)
                             if v and "img_s" in v else f"{'—':>24s}")
            print(f"  {att:7s} " + " ".join(cells))
    for run in (result.get("training") or {}).get("runs", []):
        print(f"\ntraining brain batch {run['batch']} {run['precision']}: shared {run['shared_img_s']:.0f} img/s, "
              f"bare {run['bare_img_s']:.0f} img/s → {run['shared_over_bare']:.2f}", end="")
    print()
    if "compile" in result:
        print(f"torch.compile: {result['compile']}")
    print("targets:")
    for k, v in result.get("targets", {}).items():
        print(f"  {k:45s} {v['value']:6.2f}  ({v['target']})  {'ok' if v['met'] else 'MISSED'}")
