"""The notebook API: your own ``nn.Module`` on your own data, in one call each.

    import rdm
    ev = rdm.evaluate(model, (x, y), attack="pgd", eps=8/255, steps=10)
    ev.clean.accuracy, ev.robust.accuracy          # Estimate(value, low, high): 95 % intervals
    ev.robust.fooled                               # per row: right on the clean image, wrong after
    ev.to_json()                                   # the report rdm-eval writes, same schema

* ``model``: any ``torch.nn.Module`` returning logits N×K (or N×1 for two classes), differentiable
  in its input. It is put in eval mode for the call (its mode restored after), moved to ``device``
  and its weights made channels-last (values unchanged).
* ``data``: a pair ``(x, y)`` of tensors or arrays, a torch ``Dataset`` of ``(x, y)`` rows, a
  ``DataLoader`` of ``(x, y)`` batches (dict rows/batches with ``x``/``y`` or ``image``/``label``
  keys work too), an rdm set path, or (``evaluate``) a list of set paths: clean sets and
  adversarial sets made by ``rdm-attack``, evaluated as transfer or white-box like ``rdm-eval``.
* The input scale is explicit: ``input_range=(lo, hi)`` is the range of the values in ``data``
  and of what the model takes (default ``(0, 1)``); ``mean``/``std`` (per channel, in the same
  units) normalise inside the call, so give the images before normalisation. ε is measured on
  the [0, 1] scale of the range (ε = 8/255 is 8 grey levels of an 8-bit image whatever the
  range); a value outside the declared range is an :class:`~rdm.errors.RdmError`.

Everything runs through the code ``rdm-eval``, ``rdm-attack`` and ``rdm-certify`` run (the same
attacks, counts, per-row results, masking warnings): data that is not a set file is streamed
once into a temporary set, and the report names it ``name`` with the sha256 of its contents.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from rdm.data.checkpoint import Checkpoint
from rdm.errors import RdmError, UsageError

__all__ = ["Estimate", "Result", "Evaluation", "Attacked", "Certification", "evaluate", "attack", "certify",
           "module_sha256"]

PathLike = os.PathLike | str


# --------------------------------------------------------------------------- typed results
@dataclass(frozen=True)
class Estimate:
    """A rate with its 95 % interval (:func:`rdm.evaluation.stats.interval`: bootstrap over the rows,
    exact where every row is alike)."""

    value: float
    low: float
    high: float

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        return f"{self.value:.1%} [{self.low:.1%}, {self.high:.1%}]"


def estimate(correct: np.ndarray, y: np.ndarray | None = None) -> Estimate | None:
    """Accuracy of the 0/1 vector ``correct`` (balanced over the classes of ``y`` when given)."""
    from rdm.evaluation.stats import balanced_weights, interval

    if len(correct) == 0:
        return None
    correct = np.asarray(correct, dtype=np.float64)
    iv = interval(correct, weights=None if y is None else balanced_weights(y))
    # the point value exactly as the report's metrics compute it (the weighted sum rounds differently)
    value = float(correct.mean()) if y is None else float(np.mean([correct[y == c].mean() for c in np.unique(y)]))
    return Estimate(value, min(iv.lo, value), max(iv.hi, value))


@dataclass
class Result:
    """One line of the report: the clean rows, a stored adversarial set or one attack at one ε."""

    set: str
    protocol: str                       # clean, white-box or transfer
    attack: dict | None                 # the attack's spec (name, eps, hyper-parameters), None on clean
    n: int
    accuracy: Estimate | None           # on these images: robust accuracy under an attack
    balanced_accuracy: Estimate | None
    index: np.ndarray                   # the row of the clean data each entry is about
    y: np.ndarray
    pred: np.ndarray                    # the prediction on the evaluated image
    pred_clean: np.ndarray | None       # (attacks) the prediction on the clean image
    fooled: np.ndarray | None           # (attacks) right on the clean image and wrong on this one
    metrics: dict                       # every metric of rdm-eval's report (P/R/F1, norms, SSIM, …)
    adversarial: torch.Tensor | None = None    # (``return_adversarial``) the images, in ``input_range``

    @property
    def eps(self) -> float | None:
        return None if self.attack is None else float(self.attack["eps"])

    @classmethod
    def from_report(cls, r: dict) -> "Result":
        rows = r.get("per_row") or {}
        col = lambda k, dt: None if k not in rows else np.asarray(rows[k], dtype=dt)
        y, pred = col("y", np.int64), col("pred", np.int64)
        right = pred == y
        return cls(set=r["set"], protocol=r["protocol"], attack=r.get("attack"), n=int(r["metrics"]["n"]),
                   accuracy=estimate(right), balanced_accuracy=estimate(right, y), index=col("index", np.int64),
                   y=y, pred=pred, pred_clean=col("pred_clean", np.int64), fooled=col("fooled", bool),
                   metrics=r["metrics"])


@dataclass
class Evaluation:
    """What :func:`evaluate` returns: one :class:`Result` per line of ``rdm-eval``'s report, and the
    report itself (``report``, the dict ``to_json`` writes)."""

    results: list[Result]
    warnings: list[str]
    environment: dict
    report: dict = field(repr=False)

    @classmethod
    def from_report(cls, report: dict) -> "Evaluation":
        return cls([Result.from_report(r) for r in report["results"]], list(report.get("warnings", [])),
                   dict(report.get("environment", {})), report)

    @property
    def clean(self) -> Result:
        """The first clean result (the rows before any attack)."""
        return next(r for r in self.results if r.protocol == "clean")

    @property
    def attacks(self) -> list[Result]:
        """Every adversarial result (attacks run here, then stored adversarial sets), in report order."""
        return [r for r in self.results if r.protocol != "clean"]

    @property
    def robust(self) -> Result:
        """The adversarial result, when there is exactly one (one attack at one ε)."""
        adv = self.attacks
        if len(adv) != 1:
            raise RdmError(f"{len(adv)} adversarial results; pick one from .attacks")
        return adv[0]

    def to_json(self) -> str:
        """The report as ``rdm-eval -o`` writes it (same schema, same layout)."""
        from rdm.api.eval import report_text

        return report_text(self.report)

    def to_csv(self, path: PathLike) -> Path:
        """The per-row results as CSV (``.parquet``: Parquet, needs pyarrow), as ``rdm-eval --rows`` writes."""
        from rdm.attacks.per_row import write_table

        return write_table(self.report, path)

    def per_row(self) -> list[dict[str, Any]]:
        """One dict per row and result (:func:`rdm.attacks.per_row.table`):
        ``pandas.DataFrame(ev.per_row())``."""
        from rdm.attacks.per_row import table

        return table(self.report)


@dataclass
class Attacked:
    """What :func:`attack` returns: the adversarial images of every row and what they did."""

    adversarial: torch.Tensor           # N×C×H×W, in ``input_range``
    y: np.ndarray
    pred_clean: np.ndarray
    pred: np.ndarray                    # the prediction on the adversarial image
    success: np.ndarray                 # right on the clean image, wrong on the adversarial one
    linf: np.ndarray                    # ‖x_adv − x‖∞ per row, on the [0, 1] scale
    attack: dict

    @property
    def success_rate(self) -> float:
        """Of the rows right on the clean image, the share the attack fooled."""
        right = int((self.pred_clean == self.y).sum())
        return float(self.success.sum() / right) if right else float("nan")

    @property
    def robust_accuracy(self) -> Estimate | None:
        return estimate((self.pred_clean == self.y) & (self.pred == self.y))


@dataclass
class Certification:
    """What :func:`certify` returns: per-row certified L2 radii and the report ``rdm-certify`` writes."""

    pred: np.ndarray                    # the smoothed classifier's class, −1 where it abstains
    radius: np.ndarray                  # certified L2 radius on the [0, 1] scale (0 when abstaining)
    y: np.ndarray
    certified_accuracy: dict[str, float]
    abstain: float
    report: dict = field(repr=False)

    def to_json(self) -> str:
        """The report as ``rdm-certify -o`` writes it."""
        from rdm.evaluation.certify import report_text

        return report_text(self.report)


# --------------------------------------------------------------------------- the model
def module_sha256(model: nn.Module) -> str:
    """A content hash of the module's state (names, shapes, dtypes and bytes, in name order): what
    ``model_sha256`` means for a model that is not a file."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}\0{list(t.shape)}\0{t.dtype}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class Scaled(nn.Module):
    """The user's model behind rdm's [0, 1] inputs: x·(hi − lo) + lo, then (· − mean)/std."""

    def __init__(self, model: nn.Module, input_range: tuple[float, float], mean, std, channels: int):
        super().__init__()
        self.model = model
        shape = (1, channels, 1, 1)
        # buffers, so that the model's hash (module_sha256) covers the scale it is evaluated at
        self.register_buffer("lo", torch.tensor(float(input_range[0])))
        self.register_buffer("span", torch.tensor(float(input_range[1] - input_range[0])))
        self.register_buffer("mean", _per_channel(mean, 0.0, channels, "mean").view(shape))
        self.register_buffer("std", _per_channel(std, 1.0, channels, "std").view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x * self.span + self.lo - self.mean) / self.std)


def _per_channel(v, default: float, channels: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(default if v is None else v, dtype=torch.float32).reshape(-1)
    if t.numel() == 1:
        t = t.expand(channels)
    if t.numel() != channels:
        raise UsageError(f"{what}: {t.numel()} values for {channels} channels")
    if what == "std" and not bool((t > 0).all()):
        raise UsageError(f"std must be > 0, got {t.tolist()}")
    return t.clone()


def _check_range(input_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise UsageError(f"input_range must be a pair (lo, hi), got {input_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise UsageError(f"input_range must be finite with lo < hi, got ({lo:g}, {hi:g})")
    return lo, hi


def _check_outputs(model: nn.Module, shape: Sequence[int], classes: list[str], name: str, device) -> None:
    """One forward pass of two zero images: a tensor N×K (or N×1 for two classes), else one line."""
    out = _probe(model, shape, name, device)
    k = len(classes)
    if out.dim() != 2 or out.shape[0] != 2 or out.shape[1] not in ((k, 1) if k == 2 else (k,)):
        raise RdmError(f"{name}: the model gives {list(out.shape)} for a batch of 2; the set has {k} classes, "
                       f"so logits 2×{k}" + (" or 2×1" if k == 2 else "") + " are expected")


def _probe(model: nn.Module, shape: Sequence[int], name: str, device) -> torch.Tensor:
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *shape, device=device))
    except Exception as e:   # a user's model: any failure is one line naming it
        raise RdmError(f"{name}: the model fails on a batch 2×{'×'.join(map(str, shape))} "
                       f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if not isinstance(out, torch.Tensor):
        raise RdmError(f"{name}: the model returns {type(out).__name__}, expected a tensor of logits")
    return out


# --------------------------------------------------------------------------- the data
def _is_path(data) -> bool:
    return isinstance(data, (str, os.PathLike))


def _xy(item, what: str) -> tuple[Any, Any]:
    if isinstance(item, dict):
        for kx, ky in (("x", "y"), ("image", "label"), ("img", "label")):
            if kx in item and ky in item:
                return item[kx], item[ky]
        raise RdmError(f"{what}: a dict batch needs keys x/y or image/label, got {sorted(item)}")
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return item[0], item[1]
    raise RdmError(f"{what}: expected (x, y) pairs, got {type(item).__name__}")


def _tensor(v, what: str, dtype) -> torch.Tensor:
    try:
        t = v.detach() if torch.is_tensor(v) else torch.as_tensor(np.asarray(v))
    except (TypeError, ValueError) as e:
        raise RdmError(f"{what}: not an array ({e})") from None
    return t.cpu().to(dtype)


def _batches(data, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` batches of a pair of arrays, a Dataset or a DataLoader, in their order."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(data, DataLoader):
        source, what = data, "DataLoader"
    elif isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                       and not isinstance(data, (tuple, list))):
        source, what = DataLoader(data, batch_size=batch_size, shuffle=False), type(data).__name__
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (_tensor(v, "data", torch.float32 if i == 0 else torch.int64) for i, v in enumerate(data))
        if len(x) != len(y):
            raise RdmError(f"data: x has {len(x)} rows, y {len(y)}")
        source, what = ((x[s:s + batch_size], y[s:s + batch_size]) for s in range(0, len(x), batch_size)), "data"
    else:
        raise RdmError(f"data: expected (x, y) tensors, a Dataset, a DataLoader or an rdm set path, "
                       f"got {type(data).__name__}")
    for item in source:
        x, y = _xy(item, what)
        x, y = _tensor(x, what, torch.float32), _tensor(y, what, torch.int64).reshape(-1)
        if x.dim() == 3:           # N×H×W: one channel
            x = x[:, None]
        if x.dim() != 4 or len(x) != len(y):
            raise RdmError(f"{what}: expected images N×C×H×W and N labels, got {list(x.shape)} and {len(y)}")
        yield x, y


@contextmanager
def as_set(data, *, input_range: tuple[float, float], classes: Sequence[str] | None, model: nn.Module,
           batch_size: int, device) -> Iterator[tuple[Path, str | None, list[str]]]:
    """``data`` as an rdm set file: a set path as it is, anything else streamed into a temporary
    set (values mapped from ``input_range`` to [0, 1], checked against it). Yields the path, the
    sha256 of the data's contents (None for a set file) and the class names."""
    from rdm.data.sets import SetWriter, make_provenance, validate_set
    from rdm.data.torchsets import H5Dataset

    if isinstance(data, H5Dataset) and data.transform is None and data.target_transform is None \
            and not data.as_dict:
        data = data.path
    if _is_path(data):
        info = validate_set(data, check_values=False)
        if classes is not None and list(classes) != list(info.classes):
            raise RdmError(f"{data}: has classes {list(info.classes)}, classes= says {list(classes)}")
        yield Path(data), None, list(info.classes)
        return
    lo, hi = input_range
    h = hashlib.sha256()
    batches = _batches(data, batch_size)
    first = next(batches, None)
    if first is None:
        raise RdmError("data: no rows")
    if classes is None:
        where = next(iter(model.parameters()), torch.empty(0)).device if isinstance(model, nn.Module) else device
        out = _probe(model, first[0].shape[1:], "model", where)     # its output width: the number of classes
        classes = [str(i) for i in range(2 if out.dim() == 2 and out.shape[1] == 1 else int(out.shape[-1]))]
    classes = [str(c) for c in classes]
    with tempfile.TemporaryDirectory(prefix="rdm-data-") as d:
        path = Path(d) / "data.h5"
        with SetWriter(path, shape=first[0].shape[1:], classes=classes, modality="unknown", preset="custom",
                       provenance=make_provenance(command="rdm.api.notebook")) as writer:
            for x, y in itertools.chain([first], batches):
                _check_rows(x, y, input_range, classes)
                x01 = ((x - lo) / (hi - lo)).clamp_(0, 1).numpy()
                h.update(x01.tobytes())
                h.update(y.numpy().tobytes())
                writer.append(x01, y.numpy())
        yield path, h.hexdigest(), classes


def _check_rows(x: torch.Tensor, y: torch.Tensor, input_range: tuple[float, float], classes: list[str]) -> None:
    lo, hi = input_range
    if x.numel():
        xmin, xmax = float(x.min()), float(x.max())
        if not (np.isfinite(xmin) and np.isfinite(xmax)) or xmin < lo or xmax > hi:
            raise RdmError(f"data: values in [{xmin:g}, {xmax:g}] fall outside input_range=({lo:g}, {hi:g}); "
                           "give images before normalisation (mean=, std= normalise inside) and the range "
                           "they are in")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise RdmError(f"data: labels {int(y.min())}…{int(y.max())} do not index the {len(classes)} classes {classes}")


def _renamed(report: dict, tmp: Path, name: str, sha: str) -> dict:
    """A report on a temporary set, with the set named ``name`` and hashed by its contents."""
    for r in report["results"]:
        for key in ("set", "source"):
            if r.get(key) == str(tmp):
                r[key] = name
        if r.get("set") == name:
            r["set_sha256"] = sha
    return report


@contextmanager
def _model_for(model: nn.Module, shape, classes, name: str, device, input_range, mean, std
               ) -> Iterator[Checkpoint]:
    """The user's model as an in-memory checkpoint (behind :class:`Scaled` when the inputs are not
    plain [0, 1] pixels), in eval mode on ``device`` for the block, its mode restored after."""
    if not isinstance(model, nn.Module):
        raise RdmError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}")
    plain = tuple(input_range) == (0.0, 1.0) and mean is None and std is None
    net = model if plain else Scaled(model, input_range, mean, std, shape[0])
    was_training = model.training
    net.to(device).eval()
    try:
        _check_outputs(net, shape, list(classes), name, device)
        yield Checkpoint(path=Path(name), model=net, trainer=None, sha256=module_sha256(net),
                         meta={"kind": "cnn", "arch": {"name": type(model).__name__}, "classes": list(classes),
                               "input_shape": list(shape)})
    finally:
        model.train(was_training)


def _specs(attack: str | None, eps, seed: int, params: dict) -> list:
    from rdm.attacks.registry import spec_from_options

    eps_list = [] if eps is None else [float(eps)] if isinstance(eps, (int, float)) else [float(e) for e in eps]
    if (attack is None) != (not eps_list):
        raise UsageError("attack and eps go together")
    if attack is None and params:
        raise UsageError(f"{', '.join(sorted(params))}: attack settings without an attack")
    return [spec_from_options(attack, e, seed=seed, **params) for e in eps_list] if attack else []


# --------------------------------------------------------------------------- the calls
def evaluate(model: nn.Module, data, *, attack: str | None = None, eps: float | Sequence[float] | None = None,
             input_range: tuple[float, float] = (0, 1), mean=None, std=None,
             classes: Sequence[str] | None = None, return_adversarial: bool = False,
             source: PathLike | None = None, name: str = "user-model", batch_size: int = 256,
             device: str | torch.device = "cpu", precision: str = "fp32", seed: int = 0,
             output: PathLike | None = None, **attack_params: Any) -> Evaluation:
    """``rdm-eval`` of ``model`` on ``data``: the clean rows, and with ``attack`` (a registered
    attack: fgsm, pgd, apgd, aa, square, …; ``rdm-eval --list-attacks``) and ``eps`` (one or
    several) the white-box attack on the model itself. ``attack_params`` are the attack's
    hyper-parameters (``steps=50, restarts=5, random_start=True, alpha=…, queries=…``).

    ``return_adversarial`` keeps each attack's images in its result (``Result.adversarial``, in
    ``input_range``; rows the model already gets wrong keep their clean image, as rdm-eval
    attacks only the rows it gets right). ``output`` also writes the report there, atomically.
    Bad input raises :class:`rdm.errors.RdmError` (one line) before any attack runs."""
    from rdm.api import eval as eval_api

    input_range = _check_range(input_range)
    specs = _specs(attack, eps, seed, attack_params)
    dev = torch.device(device)
    sets = list(data) if isinstance(data, (list, tuple)) and data and all(_is_path(d) for d in data) else None
    with as_set(sets[0] if sets else data, input_range=input_range, classes=classes, model=model,
                batch_size=batch_size, device=dev) as (path, sha, names):
        paths = [path, *(sets[1:] if sets else [])]
        from rdm.data.sets import validate_set

        shape = validate_set(path, check_values=False).shape
        kept: dict[tuple[int, int], list] = {}

        def keep(k, j, rows, xa):
            kept.setdefault((k, j), []).append(xa.detach().cpu())

        with _model_for(model, shape, names, name, dev, input_range, mean, std) as ck:
            report = eval_api.evaluate_checkpoint(ck, paths, source=source, specs=specs, batch_size=batch_size,
                                                  device=dev, seed=seed, precision=precision,
                                                  on_adversarial=keep if return_adversarial else None)
        if sha is not None:
            _renamed(report, path, "<data>" if name == "user-model" else f"<{name} data>", sha)
    ev = Evaluation.from_report(report)
    if return_adversarial:
        lo, hi = input_range
        fly = [res for res, raw in zip(ev.results, report["results"]) if raw.get("on_the_fly")]
        for (k, j), res in zip(sorted(kept), fly):
            res.adversarial = torch.cat(kept[(k, j)]) * (hi - lo) + lo
    if output is not None:
        eval_api.write_report(report, output)
    return ev


def attack(model: nn.Module, data, *, attack: str, eps: float, input_range: tuple[float, float] = (0, 1),
           mean=None, std=None, classes: Sequence[str] | None = None, batch_size: int = 128,
           device: str | torch.device = "cpu", precision: str = "fp32", seed: int = 0,
           **attack_params: Any) -> Attacked:
    """``rdm-attack`` of ``model`` on ``data`` in memory: the adversarial image of EVERY row (as
    ``rdm-attack`` writes them; :func:`evaluate` attacks only the rows right on the clean image)."""
    from rdm.attacks.registry import run_attack_sweep
    from rdm.data.sets import SetReader
    from rdm.models import predict_rows
    from rdm.precision import autocast, check_precision

    input_range = _check_range(input_range)
    check_precision(precision)
    if isinstance(eps, (list, tuple)):
        raise UsageError("attack takes one eps; call it once per ε (or evaluate(…, eps=[…]))")
    spec = _specs(attack, eps, seed, attack_params)[0]
    dev = torch.device(device)
    parts: dict[str, list] = {k: [] for k in ("adversarial", "y", "pred_clean", "pred", "linf")}
    with as_set(data, input_range=input_range, classes=classes, model=model, batch_size=batch_size,
                device=dev) as (path, _, names):
        with SetReader(path) as r:
            with _model_for(model, r.info.shape, names, "model", dev, input_range, mean, std) as ck:
                for b in r.batches(int(batch_size)):
                    x, y = torch.from_numpy(b["x"]).to(dev), torch.from_numpy(b["y"]).to(dev)
                    with autocast(dev, precision):
                        xa = run_attack_sweep([spec], ck.model, x, y, row_ids=b["index"])[0]
                    parts["pred_clean"].append(predict_rows(ck.model, x).cpu())
                    parts["pred"].append(predict_rows(ck.model, xa).cpu())
                    parts["adversarial"].append(xa.detach().cpu())
                    parts["linf"].append((xa - x).abs().flatten(1).amax(1).cpu())
                    parts["y"].append(y.cpu())
    lo, hi = input_range
    y, pc, pa = (torch.cat(parts[k]).numpy() for k in ("y", "pred_clean", "pred"))
    return Attacked(adversarial=torch.cat(parts["adversarial"]) * (hi - lo) + lo, y=y, pred_clean=pc, pred=pa,
                    success=(pc == y) & (pa != y), linf=torch.cat(parts["linf"]).numpy(), attack=spec.to_dict())


def certify(model: nn.Module, data, *, sigma: float, n: int = 100_000, n0: int = 100, alpha: float = 0.001,
            eps: Sequence[float] = (), input_range: tuple[float, float] = (0, 1), mean=None, std=None,
            classes: Sequence[str] | None = None, name: str = "user-model", batch_size: int = 1000,
            device: str | torch.device = "cpu", seed: int = 0) -> Certification:
    """``rdm-certify`` of ``model`` on ``data``: randomized smoothing with noise N(0, σ²) on the
    [0, 1] scale (CERTIFY, Cohen et al. 2019): per-row class and certified L2 radius, certified
    accuracy at radii (among them the L2 ball around each L∞ ``eps``)."""
    from rdm.evaluation import certify as cert

    input_range = _check_range(input_range)
    cert.check_params(sigma, n0, n, alpha, batch_size)
    dev = torch.device(device)
    with as_set(data, input_range=input_range, classes=classes, model=model, batch_size=256,
                device=dev) as (path, sha, names):
        from rdm.data.sets import validate_set

        shape = validate_set(path, check_values=False).shape
        with _model_for(model, shape, names, name, dev, input_range, mean, std) as ck:
            report = cert.certify_checkpoint(ck, path, sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch_size,
                                             seed=seed, device=dev, eps=list(eps))
        if sha is not None:
            report["set"], report["set_sha256"] = "<data>", sha
    rows = report["per_row"]
    return Certification(pred=np.asarray(rows["pred"]), radius=np.asarray(rows["radius"]),
                         y=np.asarray(rows["y"]), certified_accuracy=report["certified_accuracy"],
                         abstain=report["abstain"], report=report)
