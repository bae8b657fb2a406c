#!/usr/bin/env python
"""``make bench``: attack and training throughput of rdm, side by side with torchattacks and
ART, against the hardware floor, in ONE process; peak RSS of ``rdm-attack``/``rdm-eval``.

Sections (every number goes to ``bench/bench.json``, a table goes to stdout):

* machine: nproc, CPU model, load average (start, per section, end), torch version,
  thread settings; a large float32 matmul gives the machine's practical peak (GFLOP/s).
* attacks, per preset CNN (lung, brain, leukemia; random weights, seed 0; phantom inputs),
  per batch size (128, 256) and device (cpu, and cuda when present):
  - the floor: the fastest time of one forward and of one forward+backward w.r.t. the
    input in plain PyTorch (parameters frozen), in three layouts — contiguous,
    channels-last input, channels-last input and weights — best layout kept. Floors per
    attack: FGSM and the ε-sweep 1·(fwd+bwd); PGD-k k·(fwd+bwd)+fwd (the textbook
    count: k gradient steps and a forward on the final iterate); APGD-k (k+1)·(fwd+bwd).
    FLOPs per image come from ``torch.utils.flop_counter``; "peak %" is
    FLOPs/s ÷ the matmul GFLOP/s.
  - rdm's FGSM, PGD-3, PGD-10 (no random start, α = 2.5·ε/k), APGD-CE with
    ``APGD_STEPS`` = 10 steps (the default is 100: time scales linearly with steps, so
    ×10 for the default) and an FGSM sweep over 6 ε (one gradient serves all).
  - the same attacks from torchattacks and from ART (``art.attacks.evasion``, with a
    ``PyTorchClassifier``) on the same model and inputs; their sweep is 6 FGSM calls.
    The libraries see ``as_class_logits(model(x))`` (identical for multi-class heads;
    the two-logit ``[0, z]`` form for the lung's single-logit head) so that their
    cross-entropy is rdm's loss. Outputs are compared: max |Δ| against rdm's output for
    FGSM, PGD (no random start: should agree to ~1e-6, the projections round
    differently) and the sweep; APGD starts randomly in each library, so the fooled
    share of each is reported instead.
* training: images/s of ``rdm.training.loop.fit`` (the shared loop, one epoch as ``fit`` times it, no
  validation; the one-time read of the set into memory is recorded apart)
  vs a bare PyTorch loop (tensors in memory, Adam, same model, batch and data), the bare
  loop in both layouts.
* RSS: ``rdm-attack`` (FGSM) and ``rdm-eval`` (the clean and the adversarial set) as
  subprocesses on 5,000- and 50,000-image lung-shaped (1×52×52) phantom sets; the peak
  RSS of each run is its own ``ru_maxrss``, read by a small wrapper interpreter
  (RUSAGE_CHILDREN) so that pages inherited from this process are not counted. A slim lung CNN
  (8 filters) keeps the compute small: the measurement is of streaming, not of the model.
* allocator (``allocator.py``): PyTorch's transparent-huge-page allocation, which ``import rdm``
  turns on (``THP_MEM_ALLOC_ENABLE=1``), against the default, each in its own process, on brain
  training, DCAE, PGD-10 and noisy-forward workloads (this process runs with it on, like the commands).
* square (``square_speed.py``): Square's queries answered by the model itself against its compiled
  copy (:mod:`rdm.attacks.compiled`, ``torch.compile``), row-queries per second, one thread, per preset;
  then, on the small windows of a search's later iterations, the copy against the incremental
  engine (:mod:`rdm.attacks.incremental`), which recomputes only what the window changed.

``--quick``: batch 128 only, fewer repetitions, smaller training set. Nothing here is
collected by pytest (``tests/bench/conftest.py`` ignores this folder).
torchattacks 3.5.1 imports without torchvision; if an import fails (any version), that
library's columns are skipped with a message rather than failing the bench.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")   # as `import rdm` sets it for the commands (allocator.py)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ("lung", "brain", "leukemia")
EPS = 0.01
SWEEP = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
APGD_STEPS = 10
ATTACKS = ("fgsm", "sweep", "pgd3", "pgd10", "apgd")
LABEL = {"fgsm": "FGSM", "sweep": "FGSM sweep×6", "pgd3": "PGD-3", "pgd10": "PGD-10",
         "apgd": f"APGD-CE-{APGD_STEPS}"}


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine
def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu_model": cpu,
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__,
            "threads": {"torch_num_threads": torch.get_num_threads(),
                        "torch_interop_threads": torch.get_num_interop_threads(),
                        **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                          "RDM_THREADS")}},
            "mkldnn": torch.backends.mkldnn.is_available(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        info["mem_total_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return info


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, reps: int, device: torch.device, warmup: int = 0) -> tuple[float, object]:
    """Fastest of ``reps`` runs (after ``warmup`` untimed runs); returns (seconds, last output)."""
    out = None
    for _ in range(warmup):
        out = fn()
    sync(device)
    best = math.inf
    for _ in range(max(reps, 1)):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def matmul_gflops(device: torch.device, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t, _ = best_time(lambda: a @ b, reps, device, warmup=1)
    return 2 * n ** 3 / t / 1e9


# --------------------------------------------------------------------------- models + data
class ClassLogits(nn.Module):
    """What the libraries attack: ``as_class_logits(model(x))`` (rdm's loss under plain CE)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        from rdm.models import as_class_logits
        return as_class_logits(self.model(x))


def make_model(preset_name: str, seed: int = 0, **overrides) -> tuple[nn.Module, object, dict]:
    from rdm.models import build, cnn_arch
    from rdm.data.presets import load_preset

    p = load_preset(preset_name)
    arch = cnn_arch(p)
    arch["args"].update(overrides)
    torch.manual_seed(seed)
    return build(arch).eval(), p, arch


def phantoms(p, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from rdm.prep.synthetic import generate

    x, y, _ = generate(n, p.num_classes, p.shape, seed=seed)
    return np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


def frozen(model: nn.Module) -> nn.Module:
    for q in model.parameters():
        q.requires_grad_(False)
    return model


def fwd_bwd(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Plain PyTorch: loss gradient w.r.t. the input (rdm's loss)."""
    from rdm.models import classification_loss

    xg = x.detach().requires_grad_(True)
    loss = classification_loss(model(xg), y, reduction="none").sum()
    (g,) = torch.autograd.grad(loss, [xg])
    return g


def flops_per_image(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    xs, ys = x[:2], y[:2]
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            model(xs)
    fwd = fc.get_total_flops() / 2
    from rdm.models import classification_loss
    with FlopCounterMode(display=False) as fc:  # (its hooks need .backward(), not autograd.grad)
        xg = xs.detach().requires_grad_(True)
        classification_loss(model(xg), ys, reduction="none").sum().backward()
    return {"fwd": fwd, "fwd_bwd": fc.get_total_flops() / 2}


# --------------------------------------------------------------------------- the attacks
def rdm_attacks(model):
    from rdm.attacks import functions as A

    def run(name, x, y):
        if name == "fgsm":
            return A.fgsm(model, x, y, EPS)
        if name == "sweep":
            return A.fgsm_sweep(model, x, y, SWEEP)
        if name in ("pgd3", "pgd10"):
            k = 3 if name == "pgd3" else 10
            return A.pgd(model, x, y, EPS, 2.5 * EPS / k, k)
        if name == "apgd":
            return A.apgd_ce(model, x, y, EPS, APGD_STEPS, seed=0)
        raise KeyError(name)
    return run


def torchattacks_attacks(model):
    import torchattacks

    wrapped = ClassLogits(model).eval()
    made = {
        "fgsm": torchattacks.FGSM(wrapped, eps=EPS),
        "pgd3": torchattacks.PGD(wrapped, eps=EPS, alpha=2.5 * EPS / 3, steps=3, random_start=False),
        "pgd10": torchattacks.PGD(wrapped, eps=EPS, alpha=2.5 * EPS / 10, steps=10, random_start=False),
        "apgd": torchattacks.APGD(wrapped, norm="Linf", eps=EPS, steps=APGD_STEPS, n_restarts=1,
                                  seed=0, loss="ce"),
    }
    sweep = [torchattacks.FGSM(wrapped, eps=e) for e in SWEEP]

    def run(name, x, y):
        if name == "sweep":
            return [a(x, y) for a in sweep]
        return made[name](x, y)
    return run


def art_attacks(model, p, device: torch.device, batch: int):
    from art.attacks.evasion import AutoProjectedGradientDescent, FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=ClassLogits(model), loss=nn.CrossEntropyLoss(reduction="sum"),
                            input_shape=tuple(p.shape), nb_classes=p.num_classes, clip_values=(0.0, 1.0),
                            device_type="gpu" if device.type == "cuda" else "cpu")
    made = {
        "fgsm": FastGradientMethod(clf, norm=np.inf, eps=EPS, batch_size=batch),
        "pgd3": ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=2.5 * EPS / 3, max_iter=3,
                                         num_random_init=0, batch_size=batch, verbose=False),
        "pgd10": ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=2.5 * EPS / 10, max_iter=10,
                                          num_random_init=0, batch_size=batch, verbose=False),
        "apgd": AutoProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=2 * EPS,
                                             max_iter=APGD_STEPS, nb_random_init=1, batch_size=batch,
                                             loss_type="cross_entropy", verbose=False),
    }
    sweep = [FastGradientMethod(clf, norm=np.inf, eps=e, batch_size=batch) for e in SWEEP]

    def run(name, x, y):
        # ART works in numpy: the conversions are part of its cost, as a user would pay them
        xn, yn = x.detach().cpu().numpy(), y.cpu().numpy()
        if name == "sweep":
            return [torch.from_numpy(a.generate(xn, y=yn)) for a in sweep]
        return torch.from_numpy(made[name].generate(xn, y=yn))
    return run


def as_list(out) -> list[torch.Tensor]:
    return [o.detach().cpu() for o in (out if isinstance(out, (list, tuple)) else [out])]


def fooled_share(model, xa: torch.Tensor, y: torch.Tensor) -> float:
    from rdm.models import predict
    with torch.no_grad():
        return float((predict(model(xa)) != y).float().mean())


# --------------------------------------------------------------------------- attack section
def bench_attacks(args, device: torch.device, peak_gflops: float, libs: dict) -> list[dict]:
    rows = []
    for preset in args.presets:
        model, p, _ = make_model(preset)
        model = frozen(model.to(device))
        xn, yn = phantoms(p, max(args.batches), seed=1)
        for batch in args.batches:
            x = torch.from_numpy(xn[:batch]).to(device)
            y = torch.from_numpy(yn[:batch]).to(device)
            row: dict = {"preset": preset, "device": str(device), "batch": batch,
                         "shape": list(p.shape), "load_start": loadavg()}
            log(f"[attacks] {preset} batch {batch} on {device} (load {row['load_start']})")
            # ---- the floor: plain PyTorch, three layouts
            cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
            xcl = x.contiguous(memory_format=torch.channels_last)
            layouts = {"contiguous": (model, x), "channels_last_input": (model, xcl),
                       "channels_last_all": (cl_model, xcl)}
            floor = {}
            for lname, (m, xx) in layouts.items():
                with torch.no_grad():
                    tf, _ = best_time(lambda: m(xx), args.floor_reps, device, warmup=1)
                tb, _ = best_time(lambda: fwd_bwd(m, xx, y), args.floor_reps, device, warmup=1)
                floor[lname] = {"fwd_s": tf, "fwd_bwd_s": tb}
            best_fwd = min(v["fwd_s"] for v in floor.values())
            best_fb = min(v["fwd_bwd_s"] for v in floor.values())
            fl = flops_per_image(model, x, y)
            row.update(floor=floor, floor_best={"fwd_s": best_fwd, "fwd_bwd_s": best_fb},
                       flops_per_image=fl,
                       peak_share={"fwd": fl["fwd"] * batch / best_fwd / 1e9 / peak_gflops,
                                   "fwd_bwd": fl["fwd_bwd"] * batch / best_fb / 1e9 / peak_gflops},
                       fwd_bwd_contiguous_over_cl=floor["contiguous"]["fwd_bwd_s"] / best_fb)
            floors = {"fgsm": best_fb, "sweep": best_fb, "pgd3": 3 * best_fb + best_fwd,
                      "pgd10": 10 * best_fb + best_fwd, "apgd": (APGD_STEPS + 1) * best_fb}
            # ---- the attacks, libraries interleaved per attack (fair under varying load)
            runners = {"rdm": rdm_attacks(model)}
            if "torchattacks" in libs:
                runners["torchattacks"] = torchattacks_attacks(model)
            if "art" in libs:
                runners["art"] = art_attacks(model, p, device, batch)
            res: dict = {lib: {} for lib in runners}
            outs: dict = {}
            for att in ATTACKS:
                for lib, run in runners.items():
                    if not args.plan(lib, preset, att, batch):
                        continue
                    reps = args.reps_short if att == "fgsm" else 1
                    try:
                        t, out = best_time(lambda: run(att, x, y), reps, device)
                    except Exception as e:  # a library failing must not sink the bench
                        log(f"  {lib} {att}: failed ({type(e).__name__}: {e})")
                        res[lib][att] = {"error": f"{type(e).__name__}: {e}"}
                        continue
                    res[lib][att] = {"s": t, "img_s": batch / t, "vs_floor": t / floors[att]}
                    outs[(lib, att)] = as_list(out)
                    log(f"  {lib:12s} {LABEL[att]:14s} {batch / t:8.1f} img/s  ({t:.3f} s, "
                        f"{t / floors[att]:.2f}× floor)")
            # ---- agreement with rdm
            for lib in runners:
                if lib == "rdm":
                    continue
                for att in ATTACKS:
                    if (lib, att) not in outs or ("rdm", att) not in outs:
                        continue
                    if att == "apgd":
                        res[lib][att]["fooled"] = fooled_share(model, outs[(lib, att)][0].to(device), y)
                    else:
                        pairs = list(zip(outs[(lib, att)], outs[("rdm", att)]))
                        d = max(float((a - b).abs().max()) for a, b in pairs)
                        res[lib][att]["max_abs_delta_vs_rdm"] = d
                        # a gradient sign that flips where two layouts round apart (pooling
                        # near-ties) moves a pixel by 2ε: the share of such pixels
                        res[lib][att]["share_pixels_over_1e-6"] = (
                            sum(int(((a - b).abs() > 1e-6).sum()) for a, b in pairs)
                            / sum(a.numel() for a, _ in pairs))
            if ("rdm", "apgd") in outs:
                res["rdm"]["apgd"]["fooled"] = fooled_share(model, outs[("rdm", "apgd")][0].to(device), y)
            row.update(floors=floors, results=res, load_end=loadavg())
            rows.append(row)
            del outs, cl_model
    return rows


# --------------------------------------------------------------------------- training
def write_set(path: Path, p, blocks, chunk_rows: int | None = None) -> Path:
    """A set from (x, y) blocks, streamed (never the whole set in memory)."""
    from rdm.data.sets import SetWriter, make_provenance

    kw = {"chunk_rows": chunk_rows} if chunk_rows else {}
    with SetWriter(path, shape=p.shape, classes=p.classes, modality=p.modality, preset=p.name,
                   provenance=make_provenance(command="bench", seed=0), **kw) as w:
        for x, y in blocks:
            w.append(x, y)
    return path


def bench_training(args, device: torch.device, tmp: Path) -> dict:
    from rdm.models import classification_loss
    from rdm.training.loop import Batches, Classification, Source, TrainConfig, fit

    preset, bs = "brain", 64
    _, p, _ = make_model(preset)
    xn, yn = phantoms(p, args.train_n, seed=2)
    path = write_set(tmp / "train.h5", p, [(xn, yn)])
    out = {"preset": preset, "n": args.train_n, "batch_size": bs, "epochs": 1, "load_start": loadavg()}
    log(f"[training] {preset}, {args.train_n} images, batch {bs} (load {out['load_start']})")

    loads = []

    def shared():
        # the epoch as fit times it (history time_s); the one-time read of the set into memory
        # (Batches.prepare, once per training run whatever its epochs) is recorded apart
        model, _, _ = make_model(preset, seed=0)
        with Batches([Source(path)], bs, shuffle=True, seed=0) as tr:
            t0 = time.perf_counter()
            tr.prepare(device)
            loads.append(time.perf_counter() - t0)
            st = fit(model, Classification(), tr, None, TrainConfig(epochs=1, batch_size=bs, lr=1e-3),
                     device=device, quiet=True)
            sync(device)
            return st.history[0]["time_s"]

    def bare(layout, n=None):
        model, _, _ = make_model(preset, seed=0)
        model.to(device)
        x, y = torch.from_numpy(xn[:n]).to(device), torch.from_numpy(yn[:n]).to(device)
        if layout == "channels_last":
            model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=g).to(device)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            loss = classification_loss(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        sync(device)
        return time.perf_counter() - t0

    # warm-up (first-call costs: oneDNN primitives, allocator)
    bare("contiguous", 2 * bs)
    bare("channels_last", 2 * bs)
    times = {"shared": [], "bare_contiguous": [], "bare_channels_last": []}
    for _ in range(args.train_reps):            # interleaved: fair under varying load
        times["shared"].append(shared())
        times["bare_contiguous"].append(bare("contiguous"))
        times["bare_channels_last"].append(bare("channels_last"))
    best = {k: min(v) for k, v in times.items()}
    out["load_into_memory_s"] = min(loads)
    out["s"] = best
    out["img_s"] = {k: args.train_n / v for k, v in best.items()}
    bare_best = max(out["img_s"]["bare_contiguous"], out["img_s"]["bare_channels_last"])
    out["shared_over_bare_best"] = out["img_s"]["shared"] / bare_best
    out["load_end"] = loadavg()
    log(f"  shared {out['img_s']['shared']:.1f} img/s, bare contiguous {out['img_s']['bare_contiguous']:.1f}, "
        f"bare channels-last {out['img_s']['bare_channels_last']:.1f} → ratio {out['shared_over_bare_best']:.2f}")
    return out


# --------------------------------------------------------------------------- peak RSS
# A child forked from this (large) process counts the pages it inherits in its ru_maxrss until
# it execs, so the command is started from a small fresh interpreter that reports
# RUSAGE_CHILDREN for its one child: the command's own peak RSS.
_RSS_WRAPPER = ("import json, resource, subprocess, sys\n"
                "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
                "sys.stderr.buffer.write(r.stderr[-2000:])\n"
                "print(json.dumps({'rc': r.returncode, "
                "'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n")


def run_child(cmd: list[str]) -> dict:
    """Run a command; its own peak RSS and wall time."""
    t0 = time.perf_counter()
    env = {**os.environ, "RDM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *cmd], capture_output=True, env=env)
    wall = time.perf_counter() - t0
    try:
        rep = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        rep = {"rc": proc.returncode}
    if proc.returncode != 0 or rep.get("rc") != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({rep.get('rc')}): {proc.stderr.decode()[-500:]}")
    return {"peak_rss_mb": rep["maxrss_kb"] / 1024, "wall_s": wall}


def bench_rss(args, tmp: Path) -> dict:
    from rdm.data.checkpoint import save_checkpoint

    model, p, arch = make_model("lung", filters=8)
    ck = save_checkpoint(tmp / "slim-lung.ckpt", model, {
        "kind": "cnn", "arch": arch, "classes": list(p.classes), "input_shape": list(p.shape),
        "preset": p.as_dict()})
    bindir = Path(sys.executable).parent
    block_x, block_y = phantoms(p, 5000, seed=3)
    out = {"model": "lung CNN, 8 filters (slim: the measurement is of streaming)", "threads": 1, "sets": {},
           "load_start": loadavg()}
    for n in args.rss_sizes:
        log(f"[rss] {n} images (load {loadavg()})")
        reps = (n + len(block_x) - 1) // len(block_x)
        s = write_set(tmp / f"clean-{n}.h5", p, ((block_x[:n - i * len(block_x)], block_y[:n - i * len(block_y)])
                                                 for i in range(reps)))
        adv = tmp / f"adv-{n}.h5"
        env_cmd = ["--device", "cpu", "--quiet"]
        # one thread: the children measure streaming memory, and on a shared 2-core machine
        # two OpenMP threads per tiny elementwise op cost a scheduler slice each
        a = run_child([str(bindir / "rdm-attack"), str(ck), str(s), "--attack", "fgsm", "--eps", str(EPS),
                       "-o", str(adv), *env_cmd])
        e = run_child([str(bindir / "rdm-eval"), str(ck), str(s), str(adv), "--json", *env_cmd])
        out["sets"][str(n)] = {"file_mb": s.stat().st_size / 2**20, "rdm_attack": a, "rdm_eval": e}
        log(f"  rdm-attack peak {a['peak_rss_mb']:.0f} MB ({a['wall_s']:.1f} s), "
            f"rdm-eval peak {e['peak_rss_mb']:.0f} MB ({e['wall_s']:.1f} s)")
        s.unlink()
        adv.unlink()
    lo, hi = str(min(args.rss_sizes)), str(max(args.rss_sizes))
    out["ratio_large_over_small"] = {
        k: out["sets"][hi][k]["peak_rss_mb"] / out["sets"][lo][k]["peak_rss_mb"] for k in ("rdm_attack", "rdm_eval")}
    out["load_end"] = loadavg()
    return out


# --------------------------------------------------------------------------- report
def targets(rows: list[dict], train: dict | None, rss: dict | None, square: dict | None = None) -> dict:
    t: dict = {}
    for name, r in (square or {}).get("presets", {}).items():
        if r.get("compile_used"):
            t[f"square_compiled_over_eager_{name}"] = r["speedup"]
        if r.get("incremental", {}).get("used"):
            t[f"square_incremental_over_compiled_{name}"] = r["incremental"]["speedup"]
        if "pieces" in r:
            t[f"square_pieces_over_whole_{name}"] = r["pieces"]["speedup"]
    for r in rows:
        if r["preset"] == "brain" and r["batch"] == 128:
            res = r["results"]
            for lib in ("torchattacks", "art"):
                for att in ("fgsm", "pgd3", "pgd10"):
                    if att in res.get(lib, {}) and "s" in res[lib][att]:
                        t[f"rdm_{att}_over_{lib}_{r['device']}"] = res[lib][att]["s"] / res["rdm"][att]["s"]
        if "pgd10" in r["results"]["rdm"]:
            key = f"pgd10_over_floor_{r['preset']}_{r['batch']}_{r['device']}"
            t[key] = r["results"]["rdm"]["pgd10"]["vs_floor"]
    if train:
        t["training_shared_over_bare"] = train["shared_over_bare_best"]
    if rss:
        for k, v in rss["ratio_large_over_small"].items():
            t[f"rss_{k}_50k_over_5k"] = v
    goal = lambda k: (1.5, ">=") if "_over_torchattacks" in k or "_over_art" in k else (1.1, ">=") \
        if k.startswith("square_pieces") else (2.0, ">=") if k.startswith("square_incremental") else (1.15, ">=") if k.startswith("square_") else (
        (1.15, "<=") if k.startswith("pgd10_over_floor") else (0.9, ">=") if k.startswith("training")
        else (1.2, "<="))
    return {k: {"value": v, "target": f"{goal(k)[1]} {goal(k)[0]}",
                "met": (v >= goal(k)[0]) if goal(k)[1] == ">=" else (v <= goal(k)[0])} for k, v in t.items()}


def print_tables(result: dict) -> None:
    m = result["machine"]
    print(f"machine: {m['nproc']} CPUs ({m['cpu_model']}), torch {m['torch']}, "
          f"{m['threads']['torch_num_threads']} threads; matmul peak {result['matmul_gflops']:.1f} GFLOP/s; "
          f"load {result['load']['start']} → {result['load']['end']}")
    for r in result["attacks"]:
        fb = r["floor_best"]
        print(f"\n{r['preset']} {tuple(r['shape'])} batch {r['batch']} {r['device']}: "
              f"fwd {r['batch'] / fb['fwd_s']:.1f} img/s, fwd+bwd {r['batch'] / fb['fwd_bwd_s']:.1f} img/s "
              f"(contiguous {r['batch'] / r['floor']['contiguous']['fwd_bwd_s']:.1f}), "
              f"peak share fwd {100 * r['peak_share']['fwd']:.0f}% fwd+bwd {100 * r['peak_share']['fwd_bwd']:.0f}%")
        libs = list(r["results"])
        print(f"  {'attack':14s} {'floor img/s':>11s} " + " ".join(f"{lib + ' img/s':>18s}" for lib in libs)
              + "  rdm/floor  max|Δ| vs rdm (APGD: fooled share)")
        for att in ATTACKS:
            cells, deltas = [], []
            for lib in libs:
                v = r["results"][lib].get(att)
                cells.append(f"{v['img_s']:18.1f}" if v and "img_s" in v else f"{'—':>18s}")
                if v and lib != "rdm":
                    if "max_abs_delta_vs_rdm" in v:
                        deltas.append(f"{lib} {v['max_abs_delta_vs_rdm']:.1e}")
                    elif "fooled" in v:
                        deltas.append(f"{lib} {v['fooled']:.2f}")
            rv = r["results"]["rdm"].get(att, {})
            if att == "apgd" and "fooled" in rv:
                deltas.insert(0, f"rdm {rv['fooled']:.2f}")
            print(f"  {LABEL[att]:14s} {r['batch'] / r['floors'][att]:11.1f} " + " ".join(cells)
                  + f"  {rv.get('vs_floor', float('nan')):9.2f}  " + ", ".join(deltas))
    if result.get("training"):
        tr = result["training"]
        print(f"\ntraining ({tr['preset']}, {tr['n']} images, batch {tr['batch_size']}): "
              + ", ".join(f"{k} {v:.1f} img/s" for k, v in tr["img_s"].items())
              + f"; shared/bare {tr['shared_over_bare_best']:.2f}")
    if result.get("rss"):
        print("\npeak RSS (MB): " + "; ".join(
            f"{n} images: rdm-attack {v['rdm_attack']['peak_rss_mb']:.0f}, rdm-eval {v['rdm_eval']['peak_rss_mb']:.0f}"
            for n, v in result["rss"]["sets"].items()))
    al = result.get("allocator")
    if al and "speedup" in al:
        print(f"\nallocator (brain, one thread; kernel THP {al['thp_enabled_kernel']}): default → THP wall s "
              "(sys s, page faults)")
        for w, x in al["speedup"].items():
            d, t = al["default"][w], al["thp"][w]
            print(f"  {w:8s} {d['wall_s']:6.2f} ({d['sys_s']:.2f}, {d['minflt']:,}) → {t['wall_s']:6.2f} "
                  f"({t['sys_s']:.2f}, {t['minflt']:,})  {x:.2f}×")
        print(f"  peak RSS {al['default']['maxrss_mb']:.0f} → {al['thp']['maxrss_mb']:.0f} MB")
    sq = result.get("square")
    if sq:
        print(f"\nsquare ({sq['rows']} rows × {sq['queries']} queries, one thread): row-queries/s, the model "
              "itself → its compiled copy")
        for name, r in sq["presets"].items():
            print(f"  {name:9s} {r['eager']['row_queries_s']:8.0f} → {r['compiled']['row_queries_s']:8.0f}  "
                  f"{r['speedup']:.2f}×  (compile + warm-up {r['compiled']['warmup_s']:.1f} s; same points "
                  f"{r['same_points']}{'' if r['compile_used'] else '; NOT compiled here'})")
            if "incremental" in r:
                ic = r["incremental"]
                print(f"  {'':9s} small windows: compiled {ic['compiled_row_queries_s']:8.0f} → incremental "
                      f"{ic['incremental_row_queries_s']:8.0f}  {ic['speedup']:.2f}×  (same points {ic['same_points']}"
                      f"{'' if ic['used'] else '; engine NOT used'})")
            if "pieces" in r:
                pc = r["pieces"]
                print(f"  {'':9s} {pc['rows']} rows at once {pc['whole_row_queries_s']:8.0f} → in pieces of "
                      f"{pc['search_rows']} {pc['pieces_row_queries_s']:8.0f}  {pc['speedup']:.2f}×  (same points "
                      f"{pc['same_points']})")
    print("\ntargets:")
    for k, v in result["targets"].items():
        print(f"  {k:45s} {v['value']:7.2f}  ({v['target']})  {'ok' if v['met'] else 'MISSED'}")


def import_libs(args) -> dict:
    """The comparison libraries that import (name → version); a failing one is skipped with a message."""
    libs: dict = {}
    if not args.no_libs:
        for name, mod in (("torchattacks", "torchattacks"), ("art", "art")):
            try:
                m = __import__(mod)
                libs[name] = getattr(m, "__version__", "?")
            except Exception as e:
                log(f"skipping {name}: it does not import ({type(e).__name__}: {e}); "
                    "`make bench` installs it (pip --no-deps)")
    return libs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 128 only, fewer repetitions")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "bench.json")
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    ap.add_argument("--batches", nargs="+", type=int, default=None)
    ap.add_argument("--no-libs", action="store_true", help="rdm only (no torchattacks/ART)")
    ap.add_argument("--rss-sizes", nargs=2, type=int, default=None, help="set sizes (default 5000 50000)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["attacks", "training", "rss", "allocator", "square"])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cpu: the CPU sections (bench/bench.json); cuda: the GPU section "
                         "(bench/bench-cuda.json, see bench_cuda.py), skipped cleanly without CUDA")
    ap.add_argument("--cuda-dry-run", action="store_true",
                    help="with --device cuda: run the GPU section's code on the CPU at tiny sizes")
    ap.add_argument("--cuda-presets", nargs="+", default=None, choices=PRESETS,
                    help="presets of the GPU section (default brain lung)")
    ap.add_argument("--no-experiments", action="store_true", help="GPU section: no CUDA graph / torch.compile")
    args = ap.parse_args()
    args.out_given = any(a == "--out" or a.startswith("--out=") for a in sys.argv[1:])

    from rdm.cli import configure_threads
    configure_threads()                               # RDM_THREADS, as the commands do
    if args.device == "cuda":
        from bench_cuda import main_cuda
        return main_cuda(args, import_libs(args))
    args.batches = args.batches or ([128] if args.quick else [128, 256])
    args.floor_reps = 1 if args.quick else 2
    args.reps_short = 1 if args.quick else 2          # FGSM; every other attack runs once
    args.train_n = 256 if args.quick else 768
    args.train_reps = 1 if args.quick else 2
    args.rss_sizes = args.rss_sizes or [5000, 50000]

    # What runs where, to keep the full run near 10 minutes on 2 cores: at the first batch
    # size rdm runs everything and the libraries FGSM, PGD-3 and PGD-10 on every preset,
    # plus their 6-call sweep and APGD on brain (the target preset); at the larger batch
    # sizes rdm runs FGSM, the sweep, PGD-3 and PGD-10 against the floor.
    def plan(lib, preset, att, batch):
        if batch == args.batches[0]:
            return lib == "rdm" or att in ("fgsm", "pgd3", "pgd10") or preset == "brain"
        return lib == "rdm" and att != "apgd"
    args.plan = plan

    libs = import_libs(args)
    t_start = time.perf_counter()
    result: dict = {"machine": machine_info(), "versions": libs, "quick": args.quick,
                    "eps": EPS, "sweep": list(SWEEP), "apgd_steps": APGD_STEPS,
                    "load": {"start": loadavg()}}
    devices = [torch.device("cpu")]                     # the GPU has its own section: --device cuda
    result["matmul_gflops"] = matmul_gflops(devices[0], 2048, 5)
    result["matmul_gflops_by_device"] = {str(d): matmul_gflops(d, 4096 if d.type == "cuda" else 2048, 5)
                                         for d in devices}
    log(f"matmul: {result['matmul_gflops']:.1f} GFLOP/s")
    result["attacks"] = []
    if "attacks" not in args.skip:
        for d in devices:
            result["attacks"] += bench_attacks(args, d, result["matmul_gflops_by_device"][str(d)], libs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))       # partial results, in case of a kill
    tmp = Path(tempfile.mkdtemp(prefix="rdm-bench-"))
    try:
        result["training"] = None if "training" in args.skip else bench_training(args, devices[0], tmp)
        args.out.write_text(json.dumps(result, indent=1))
        result["rss"] = None if "rss" in args.skip else bench_rss(args, tmp)
        args.out.write_text(json.dumps(result, indent=1))
        if "allocator" not in args.skip:
            from allocator import allocator_section
            log("allocator: THP_MEM_ALLOC_ENABLE 0 vs 1, each in its own process")
            result["allocator"] = allocator_section(1 if args.quick else 2)
        if "square" not in args.skip:
            from square_speed import square_section
            log("square: the model itself vs its compiled copy (rdm.attacks.compiled), one thread")
            torch.set_num_threads(1)
            result["square"] = square_section(args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["load"]["end"] = loadavg()
    result["wall_s"] = time.perf_counter() - t_start
    result["targets"] = targets(result["attacks"], result["training"], result["rss"], result.get("square"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print_tables(result)
    print(f"\nwall time {result['wall_s']:.0f} s; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
