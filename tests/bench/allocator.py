"""The CPU allocator section of ``make bench``: PyTorch's transparent-huge-page allocation
(``THP_MEM_ALLOC_ENABLE``, which ``import rdm`` turns on) against the default, on the brain preset.

PyTorch reads the variable once per process, so each setting runs in its own interpreter (this file
with ``--child``), one thread, the settings alternated ``reps`` times and the best wall time of each
kept. Per workload: wall, user and system CPU seconds, minor page faults, and peak RSS of the child.
Workloads (random weights, phantom images): 8 training steps of the CNN at batch 64, 4 DCAE steps at
batch 64, PGD-10 on 128 rows, and 1,000 noisy copies of one image through ``predict_rows``
(randomized smoothing's inner loop).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = ("train", "dcae", "pgd10", "predict")


def _child() -> None:
    import torch  # noqa: E402  (after the environment is set by the parent)
    import torch.nn.functional as F

    sys.path.insert(0, str(HERE))
    from bench import make_model, phantoms
    from rdm.attacks import functions as A
    from rdm.models import build, predict_rows

    torch.set_num_threads(1)
    model, p, _ = make_model("brain")
    xs, ys = phantoms(p, 512, seed=1)
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    net = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    dcae = build({"name": "dcae", "args": {"in_channels": 3, "height": 64, "width": 64}}).train()
    dopt = torch.optim.Adam(dcae.parameters(), 1e-3)

    def train():
        net.train()
        for i in range(0, 512, 64):
            xb = x[i:i + 64].contiguous(memory_format=torch.channels_last)
            opt.zero_grad()
            F.cross_entropy(net(xb), y[i:i + 64]).backward()
            opt.step()
        net.eval()

    def dcae_steps():
        for i in range(0, 256, 64):
            dopt.zero_grad()
            F.mse_loss(dcae(x[i:i + 64]), x[i:i + 64]).backward()
            dopt.step()

    def pgd10():
        A.pgd(net, x[:128], y[:128], 0.01, 0.0025, 10)

    def predict():
        g = torch.Generator().manual_seed(0)
        predict_rows(net, x[0:1] + 0.25 * torch.randn(1000, *x.shape[1:], generator=g))

    out = {}
    for name, fn in zip(WORKLOADS, (train, dcae_steps, pgd10, predict)):
        fn()                                        # warm-up
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        fn()
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        out[name] = {"wall_s": t1 - t0, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
                     "minflt": r1.ru_minflt - r0.ru_minflt}
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def allocator_section(reps: int = 2) -> dict:
    """Both settings, alternated ``reps`` times; per workload the run with the best wall time."""
    runs: dict[str, list[dict]] = {"0": [], "1": []}
    for _ in range(reps):
        for thp in ("0", "1"):
            env = {**os.environ, "THP_MEM_ALLOC_ENABLE": thp, "OMP_NUM_THREADS": "1"}
            r = subprocess.run([sys.executable, str(Path(__file__)), "--child"], env=env, capture_output=True,
                               text=True, cwd=HERE)
            if r.returncode != 0:
                return {"error": r.stderr.strip().splitlines()[-1:]}
            runs[thp].append(json.loads(r.stdout.strip().splitlines()[-1]))
    res: dict = {"reps": reps, "thp_enabled_kernel": _kernel_thp()}
    for thp, key in (("0", "default"), ("1", "thp")):
        res[key] = {w: min((r[w] for r in runs[thp]), key=lambda v: v["wall_s"]) for w in WORKLOADS}
        res[key]["maxrss_mb"] = max(r["maxrss_mb"] for r in runs[thp])
    res["speedup"] = {w: res["default"][w]["wall_s"] / res["thp"][w]["wall_s"] for w in WORKLOADS}
    return res


def _kernel_thp() -> str | None:
    try:
        return Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        return None


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child()
    else:
        print(json.dumps(allocator_section(), indent=1))
