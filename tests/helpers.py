"""What the tests share, in one place (import from ``helpers``; fixtures are in conftest.py).

* phantom sets (:func:`write_phantom_set`), and a tiny 3-class 1×24×24 preset with phantom and
  noisy "adversarial" sets of it for the training tests;
* small checkpoints (:func:`make_ckpt`) and the one-line-error check for the command tests;
* :func:`fabricate`: every metrics file the experiment plan's graph would write, with designed
  numbers, so the report can be tested on the whole grid without running a model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rdm.data.checkpoint import read_raw, save_checkpoint
from rdm.evaluation.metrics import AdvCounts, Counts, summarize
from rdm.models import build, cnn_arch, dcae_arch
from rdm.pipeline import plan as P
from rdm.pipeline import steps
from rdm.prep.synthetic import generate
from rdm.data.presets import load_preset
from rdm.data.sets import SetReader, SetWriter, make_provenance


# --------------------------------------------------------------------------- sets
def write_phantom_set(path: Path, preset: str = "lung", n: int = 64, seed: int = 0,
                      shape: tuple[int, int, int] | None = None) -> Path:
    p = load_preset(preset)
    shape = shape or p.shape
    x, y, g = generate(n, p.num_classes, shape, seed=seed)
    with SetWriter(path, shape=shape, classes=p.classes, modality=p.modality, preset=p.name,
                   provenance=make_provenance(command="test", seed=seed), columns=["group", "id"]) as w:
        w.append(x, y, group=g, id=[f"img{i}.png" for i in range(n)])
    return Path(path)


# --------------------------------------------------------------------------- training: a tiny preset
TINY = """name = "tiny"
modality = "test"
classes = ["a", "b", "c"]
channels = 1
size = [24, 24]
split = { train = 0.6, val = 0.2, test = 0.2 }
[model]
hidden = [32]
dropout = 0.0
binary = false
[train]
epochs = 6
batch_size = 32
lr = 2e-3
patience = 3
"""


def tiny_preset(folder: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    p = Path(folder) / name
    p.write_text(text)
    return p


def small_train_val(folder: Path, n_train: int = 128, n_val: int = 48) -> dict[str, Path]:
    """The 16×16 tiny preset in ``folder`` with a train set (seed 0) and a validation set (seed 1):
    ``{"dir", "preset", "train", "val"}``, for the training tests."""
    pre = tiny_preset(folder, TINY.replace("size = [24, 24]", "size = [16, 16]"))
    return {"dir": Path(folder), "preset": pre, "train": phantoms(Path(folder) / "train.h5", pre, n_train, seed=0),
            "val": phantoms(Path(folder) / "val.h5", pre, n_val, seed=1)}


def phantoms(path: Path, preset: Path | str, n: int, seed: int, shape=None) -> Path:
    p = load_preset(str(preset))
    shape = shape or p.shape
    x, y, g = generate(n, p.num_classes, shape, seed=seed)
    with SetWriter(path, shape=shape, classes=p.classes, modality=p.modality, preset=p.name,
                   provenance=make_provenance(command="test", seed=seed), columns=["group"]) as w:
        w.append(x, y, group=g)
    return Path(path)


def noisy_copy(path: Path, clean: Path, eps: float = 0.05, seed: int = 0, with_source: bool = True,
               record_input: bool = True, rows: np.ndarray | None = None,
               source_index: np.ndarray | None = None) -> Path:
    """A stand-in adversarial set: clean rows + ε·sign(noise), with source_index and provenance."""
    with SetReader(clean) as r:
        idx = np.arange(r.n) if rows is None else np.asarray(rows)
        d = r.read_rows(idx, names=("x", "y"))
        info = r.info
    rng = np.random.default_rng(seed)
    x = np.clip(d["x"] + eps * np.sign(rng.standard_normal(d["x"].shape)), 0, 1).astype(np.float32)
    prov = make_provenance(command="noise", seed=seed, inputs=[clean] if record_input else [])
    with SetWriter(path, shape=info.shape, classes=info.classes, modality=info.modality, preset=info.preset,
                   provenance=prov, columns=["source_index"] if with_source else []) as w:
        src = idx if source_index is None else np.asarray(source_index)
        w.append(x, d["y"], **({"source_index": src} if with_source else {}))
    return Path(path)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_raw(path)["state_dict"]


def same_weights(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def accuracy(ckpt: Path, test: Path) -> float:
    from rdm.data.checkpoint import load_checkpoint
    from rdm.models import predict

    m = load_checkpoint(ckpt).model
    with SetReader(test) as r:
        d = r.read(0, r.n)
    with torch.no_grad():
        p = predict(m(torch.from_numpy(d["x"]))).numpy()
    return float((p == d["y"]).mean())


# --------------------------------------------------------------------------- attacks: a tiny model and batch
class Tiny(nn.Module):
    """A small conv net; one logit (binary) or K logits; optional dropout to catch train mode."""

    def __init__(self, c: int = 1, k: int = 2, binary: bool = False, seed: int = 0, dropout: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(c, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 1 if binary else k)
        self.drop = nn.Dropout(dropout)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        h = F.adaptive_avg_pool2d(torch.tanh(self.conv(x)), 4).flatten(1)
        return self.fc(self.drop(h))


def data(n=6, c=1, hw=8, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, hw, hw, generator=g)
    x[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])     # pixels on the box edges
    return x, torch.randint(0, k, (n,), generator=g)


def exactly_inside(x, xa, eps):
    """The attack's output is in [0, 1] and within ε of x, in float32 and in float64."""
    assert xa.dtype == torch.float32 and xa.shape == x.shape
    assert bool((xa >= 0).all()) and bool((xa <= 1).all())
    assert float((xa - x).abs().max()) <= float(torch.tensor(eps, dtype=torch.float32))   # float32
    assert bool(((xa.double() - x.double()).abs() <= eps).all())                          # float64


# --------------------------------------------------------------------------- commands
def make_ckpt(path: Path, preset: str = "lung", size=(16, 16), seed: int = 0, kind: str = "cnn",
              filters: int | None = None) -> Path:
    p = dataclasses.replace(load_preset(preset), size=tuple(size))
    arch = cnn_arch(p) if kind == "cnn" else dcae_arch(p)
    torch.manual_seed(seed)
    model = build(arch)
    save_checkpoint(path, model, {"kind": kind, "arch": arch, "classes": list(p.classes),
                                  "input_shape": list(p.shape), "preset": p.as_dict()})
    return path


def one_line_error(res, code: int = 1) -> str:
    """The one error line; exit 1 for a failed run, 2 for bad usage."""
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    return lines[0]


def files(d: Path) -> set[str]:
    return {p.name for p in d.rglob("*")}


BIN = Path(sys.executable).parent          # where the rdm-* commands are installed
TOOLS = ("rdm-prep", "rdm-train-cnn", "rdm-pretrain-dcae", "rdm-finetune", "rdm-advtrain", "rdm-attack", "rdm-eval",
         "rdm-certify")
def error_line(res, code: int) -> str:
    """The one `error:` line of a failed command, with its exit code."""
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), res.stderr
    assert sum(ln.startswith("error") for ln in lines) == 1 and "Traceback" not in res.stderr
    return lines[-1]


def tool_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RDM_THREADS"}
    env.update(RDM_THREADS="1", RDM_NO_PBAR="1", **extra)
    return env


# --------------------------------------------------------------------------- two runs of the graph
#: what differs between any two runs of the same step: creation and wall times, and the sha256 of
#: files that embed them (HDF5 object times, provenance ``created``)
VOLATILE = ("created", "wall_time_s", "seconds", "time_s")


def _same(a, b, where: str, roots: tuple[str, str], out: list[str]) -> None:
    import re

    def text(v, root):
        return re.sub(r"[0-9a-f]{64}", "<sha256>", v.replace(root, "<OUT>"))

    if isinstance(a, bytes) and isinstance(b, bytes):
        if a != b:
            out.append(f"{where}: bytes differ")
    elif isinstance(a, str) and isinstance(b, str):
        if a[:1] in "{[" and b[:1] in "{[":
            try:
                a, b = json.loads(a), json.loads(b)
            except ValueError:
                pass
            else:
                return _same(a, b, where, roots, out)
        if text(a, roots[0]) != text(b, roots[1]):
            out.append(f"{where}: {a[:200]!r} != {b[:200]!r}")
    elif isinstance(a, dict) and isinstance(b, dict):
        ka = {text(str(k), roots[0]): k for k in a if k not in VOLATILE}
        kb = {text(str(k), roots[1]): k for k in b if k not in VOLATILE}
        if set(ka) != set(kb):
            out.append(f"{where}: keys {sorted(set(ka) ^ set(kb))}")
        for k in set(ka) & set(kb):
            _same(a[ka[k]], b[kb[k]], f"{where}.{k}", roots, out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} != {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]", roots, out)
    elif isinstance(a, torch.Tensor) or isinstance(a, np.ndarray):
        if not (type(a) is type(b) and a.shape == b.shape and a.dtype == b.dtype
                and (torch.equal(a, b) if isinstance(a, torch.Tensor)
                     else np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))):
            out.append(f"{where}: arrays differ")
    elif a != b and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
        out.append(f"{where}: {a!r} != {b!r}")


def _content(path: Path):
    """A graph output as plain values: an HDF5 set's datasets and attributes (JSON ones parsed), a
    checkpoint's whole dict, a JSON file's object, else the text."""
    import h5py

    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return {"attrs": dict(f.attrs), **{k: f[k][()] for k in f}}
    if path.suffix == ".ckpt":
        return read_raw(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    data = path.read_bytes()
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def output_differences(a: Path, b: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Where the graph outputs under ``a`` and ``b`` differ (every file under ``a`` but the ``skip``
    names; the output folder's own path and :data:`VOLATILE` fields aside). [] when they agree."""
    out: list[str] = []
    names = sorted(str(p.relative_to(a)) for p in Path(a).rglob("*") if p.is_file() and p.name not in skip)
    theirs = sorted(str(p.relative_to(b)) for p in Path(b).rglob("*") if p.is_file() and p.name not in skip)
    if names != theirs:
        out.append(f"files: {sorted(set(names) ^ set(theirs))}")
    for n in names:
        if (Path(b) / n).is_file():
            _same(_content(Path(a) / n), _content(Path(b) / n), n, (str(a), str(b)), out)
    return out


# --------------------------------------------------------------------------- the report's data, fabricated
_SUMMARIES: dict = {}


def _summary(c: Counts) -> dict:
    """summarize(c), computed once per distinct counts: a fabricated grid has thousands of results but
    few distinct confusion matrices, and summarize (scikit-learn's checks) was most of fabricate's
    time. A fresh copy each call, so a test may edit what it gets."""
    key = json.dumps(c.to_dict(), sort_keys=True)
    if key not in _SUMMARIES:
        _SUMMARIES[key] = json.dumps(summarize(c))
    return json.loads(_SUMMARIES[key])


def fake_result(set_path: str, protocol: str, attack: dict | None, acc: float, n: int, classes, rng,
                y=None, right=None) -> dict:
    """One rdm-eval result with accuracy ``acc`` on ``n`` rows, with its per-row lists (rows 0..n−1 of
    its set, labels ``y``, default ``i mod K``); ``right``: which rows it gets right (default: a
    random ``round(acc·n)`` of them). Wrong rows are predicted as the next class."""
    k = len(classes)
    y = np.arange(n) % k if y is None else np.asarray(y)
    if right is None:
        right = np.zeros(n, bool)
        right[rng.permutation(n)[: int(round(acc * n))]] = True
    right = np.asarray(right, bool)
    pred = np.where(right, y, (y + 1) % k)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    c = Counts(list(classes), cm,
               AdvCounts(n=n, clean_correct=n // 2, fooled=n // 4, linf_sum=0.005 * n, linf_max=0.005,
                         l2_sum=0.1 * n, ssim_sum=0.99 * n, psnr_sum=46.0 * n, psnr_finite=n) if attack else None)
    per_row = {"index": list(range(n)), "y": y.tolist(), "pred": pred.tolist()}
    if attack:      # every row right on its clean image (the masking checks read these)
        per_row.update(pred_clean=y.tolist(), fooled=(pred != y).tolist())
    return {"set": set_path, "protocol": protocol, "attack": attack, "counts": c.to_dict(), "metrics": _summary(c),
            "per_row": per_row}


def designed_accuracy(cell: P.Cell, eps: float | None, rng) -> float:
    """The numbers the report tests expect: RDMAA masks gradients (a stronger attack does worse),
    AdvTrain-PGD is honest (falls with ε, transfer weaker than white-box)."""
    if cell.attack is None:
        return 0.9 if cell.model == "baseline" else 0.88
    name = cell.attack.name
    if cell.family == "steps":      # RDMAA: accuracy RISES with steps; the others fall and converge
        n = int(cell.attack.steps)
        return min(0.9, 0.2 + 0.003 * n) if cell.model == "rdmaa" else 0.5 + 0.3 * math.exp(-n / 20)
    if name == "noise":             # RDMAA: noise costs as much as its white-box attacks
        return 0.2 if cell.model == "rdmaa" else 0.97
    if cell.model == "rdmaa" and cell.family in ("whitebox", "matched") and cell.attack.kind == "aa":
        return 0.3
    if cell.model == "rdmaa" and cell.family == "whitebox":
        return {"apgd": 0.95, "pgd50x5": 0.2, "pgd": 0.2}.get(name, float(rng.uniform(0.3, 0.8)))
    if cell.model == "advtrain-pgd":
        wb = 0.8 * math.exp(-eps / 0.01)
        return min(1.0, wb + 0.06) if cell.protocol == "transfer" else wb
    if cell.model == "baseline":
        return max(0.0, 0.9 - 20 * eps)
    return float(rng.uniform(0.3, 0.8))


SIZES = {"train": 300, "val": 60, "test": 100, "test-sub": 40}


def fake_certificate(path: Path, n: int, k: int, sigma: float, cfg, eps, shape, rng) -> dict:
    """An rdm-certify report of ``n`` rows with designed per-row results: a tenth abstain, a tenth
    wrong, the rest right with radii spread up to the largest certifiable one at ``cfg``'s n and α."""
    from rdm.evaluation.certify import ABSTAIN, certified_accuracy, linf_to_l2, max_certifiable_radius, summary_radii

    y = np.arange(n) % k
    pred = y.copy()
    order = rng.permutation(n)
    pred[order[: n // 10]] = ABSTAIN
    pred[order[n // 10: n // 5]] = (y[order[n // 10: n // 5]] + 1) % k
    radius = np.where(pred == ABSTAIN, 0.0, rng.uniform(0, max_certifiable_radius(sigma, cfg.n, cfg.alpha), n))
    radii = summary_radii(shape, eps)
    rep = {"model": "m.ckpt", "model_sha256": "0" * 64, "set": "test-sub.h5", "set_sha256": "0" * 64, "classes": [],
           "settings": {"sigma": sigma, "n0": cfg.n0, "n": cfg.n, "alpha": cfg.alpha, "seed": 0}, "rows_of": n,
           "shard": None, "eps_l2": {f"{e:g}": linf_to_l2(e, shape) for e in eps},
           "certified_accuracy": certified_accuracy(pred, radius, y, radii),
           "abstain": float(np.mean(pred == ABSTAIN)),
           "per_row": {"rows": list(range(n)), "y": y.tolist(), "pred": pred.tolist(), "radius": radius.tolist(),
                       "p_lower": [0.9] * n}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rep))
    return rep


def fabricate(work: Path, plan: P.Plan, seed: int = 0) -> None:
    """Every set, metrics file, matched.json and timings.jsonl the plan's graph would write under
    ``work``, with designed numbers (no model runs). Files go where the plan's cells say."""
    from rdm.data.presets import load_preset
    from rdm.data.sets import SetWriter, make_provenance

    work = Path(work)
    rng = np.random.default_rng(seed)
    for m, mp in plan.run.items():
        classes = list(load_preset(plan.modalities[m]["preset"]).classes)
        for split, n in SIZES.items():
            if split == "test-sub":          # the seeded subset of the test set, as the graph makes it
                steps.write_subset(str(work / P.set_path(m, "test")), n, str(work / P.set_path(m, split)), 0)
                continue
            with SetWriter(work / P.set_path(m, split), shape=(1, 4, 4), classes=classes, modality="x",
                           preset=plan.modalities[m]["preset"], provenance=make_provenance(seed=0)) as w:
                w.append(np.zeros((n, 1, 4, 4), np.float32), np.arange(n) % len(classes))
        test_y = np.arange(SIZES["test"]) % len(classes)
        sub_y = test_y[steps.subset_rows(SIZES["test"], SIZES["test-sub"], 0)]
        write_audit(work, m)              # rdm-prep --audit's audit.json beside the sets
        by_file: dict[str, list[P.Cell]] = {}
        for c in mp.cells:
            if c.family != "certified":        # certificates are written below, once matched.json is known
                by_file.setdefault(c.output, []).append(c)

        def write(out: str, cells: list[P.Cell], matched: dict | None = None) -> None:
            results = []
            for c in cells:
                s = c.inputs[1]
                n = SIZES["test-sub"] if c.rows == P.SUBSET else SIZES["test"]
                eps = c.eps if c.eps_from is None else float(matched[c.eps_from])
                attack = None if c.attack is None else {"name": c.attack.kind, "eps": eps}
                r = fake_result(str(work / s), c.protocol, attack, designed_accuracy(c, eps, rng), n, classes, rng,
                                y=sub_y if c.rows == P.SUBSET else test_y)
                if c.attack is not None and c.attack.kind in ("aa", "aa-apgd"):
                    # RDMAA: Square fools half the rows it loses (aa-apgd, the gradient part, has no Square)
                    fooled = [i for i, f in enumerate(r["per_row"]["fooled"]) if f]
                    by = [None] * n
                    for j, i in enumerate(fooled):
                        by[i] = "square" if c.model == "rdmaa" and j % 2 and c.attack.kind == "aa" else "apgd-ce"
                    r["per_row"]["fooled_by"] = by
                if s not in (P.set_path(m, "test"), P.set_path(m, "test-sub")):
                    r["source"] = str(work / P.set_path(m, "test"))   # rdm-eval names an adversarial set's clean source
                results.append(r)
            p = work / out
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"model": str(work / cells[0].inputs[0]), "model_sha256": "0" * 64,
                                     "model_kind": "cnn", "classes": classes, "results": results, "warnings": []}))

        later = {o: cs for o, cs in by_file.items() if any(c.eps_from for c in cs)}
        for o, cs in by_file.items():
            if o not in later:
                write(o, cs)
        matched = {}
        for sd in plan.seeds:
            sweeps = [work / P.metrics_path(m, "baseline", P.sweep_job(k), sd) for k in ("fgsm", "pgd")]
            matched[sd] = steps.write_matched(plan.paper.get(m, {}), m, sweeps, work / P.matched_path(m, sd))
        for o, cs in later.items():
            write(o, cs, matched[cs[0].seed])
        for c in mp.cells:
            if c.family == "certified":
                eps = [*plan.paper_eps, float(matched[c.seed]["pgd"])]
                fake_certificate(work / c.output, SIZES["test-sub"], len(classes), c.pick.value, plan.certify, eps,
                                 (1, 4, 4), rng)
    with open(work / "timings.jsonl", "w") as f:
        for m in plan.run:
            f.write(json.dumps({"stage": P.stage_name(m, "prep"), "seconds": 3.0, "rc": 0}) + "\n")
            for sd in plan.seeds:
                for stage, sec in (("baseline", 60.0), ("attack-test-fgsm", 5.0),
                                   ("eval-rdmaa-clean", 2.0), ("eval-rdmaa-wb-pgd", 7.5)):
                    f.write(json.dumps({"stage": P.stage_name(m, stage, sd), "seconds": sec, "rc": 0}) + "\n")
        f.write(json.dumps({"stage": P.stage_name("lung", "baseline", plan.seeds[0]), "seconds": 9.0, "rc": 1}) + "\n")


# --------------------------------------------------------------------------- designed per-row results (controls)
def set_rows(work: Path, cell: P.Cell, correct, classes, seed: int = 0) -> None:
    """Replace a fabricated result by one whose rows are right exactly where ``correct`` says (row i
    of the test set, label i mod K): ``per_row`` as rdm-eval writes it, the counts and metrics from it."""
    from rdm.evaluation.metrics import counts_from_predictions
    from rdm.pipeline.results import _matches

    correct = np.asarray(correct, dtype=bool)
    n, k = len(correct), len(classes)
    y = np.arange(n) % k
    pred = np.where(correct, y, (y + 1) % k)
    path = Path(work) / cell.output
    doc = json.loads(path.read_text())
    pick, _ = _matches(cell.pick)
    i = next(j for j, r in enumerate(doc["results"]) if pick(r))
    r = doc["results"][i]
    c = counts_from_predictions(y, pred, list(classes))
    if r.get("attack"):
        c.adv = AdvCounts(n=n, clean_correct=n, fooled=int((~correct).sum()))
    # an adversarial set's rows in its own (shuffled) order, as a crafted set may hold them
    order = np.random.default_rng(seed).permutation(n) if r.get("source") else np.arange(n)
    r.update(counts=c.to_dict(), metrics=_summary(c),
             per_row={"index": order.tolist(), "y": y[order].tolist(), "pred": pred[order].tolist()})
    path.write_text(json.dumps(doc))


def write_audit(work: Path, m: str, **over) -> Path:
    """An ``audit.json`` as ``rdm-prep --audit`` writes it beside the modality's sets."""
    d = {"n_train": 300, "n_test": 100, "taus": [0.02, 0.05, 0.1], "near_train": {"0.02": 0, "0.05": 3, "0.1": 40},
         "nearest_rms_quantiles": {"min": 0.03, "p10": 0.06, "median": 0.12},
         "baselines": {"knn1_pixels": 0.5, "knn1_pixels_balanced": 0.5, "colour_logreg": 0.4,
                       "colour_logreg_balanced": 0.4, "majority": 0.5}, "shared_groups": 0}
    for k, v in over.items():
        if isinstance(v, dict):
            d[k].update(v)
        else:
            d[k] = v
    p = Path(work) / P.audit_path(m)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(d))
    return p


# A small CT preset (1 channel, 8×8, HU window) for the prep tests.
CT_PRESET = """name = "ct"
modality = "CT"
classes = ["a", "b"]
channels = 1
size = [8, 8]
split = { train = 0.5, val = 0.25, test = 0.25 }
[intensity]
unit = "HU"
window = [-1000, 400]
"""


def png_tree(root: Path, per_class: int = 4) -> Path:
    """A source folder for rdm-prep: classes ``a`` and ``b``, ``per_class`` random 8×8 grey PNGs each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / c / f"{c}{i}.png")
    return root
