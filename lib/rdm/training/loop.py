"""The one training loop behind rdm-train-cnn, rdm-pretrain-dcae, rdm-finetune and rdm-advtrain.

Pieces, each small enough to swap:

- :class:`Source` (in :mod:`rdm.data.batches`) — one HDF5 set fed to the loop; an adversarial set may carry a
  *target* set (its clean source, rows matched by ``source_index``) for reconstruction.
- :class:`Batches` (in :mod:`rdm.data.batches`) — streams seeded, shuffled mini-batches from the sets. An epoch's
  order depends only on ``(seed, epoch)``: the chunk-aligned row blocks of all sources
  are permuted, gathered into buffers of about ``buffer_rows`` rows, and the rows of
  each buffer are permuted (with the default buffer every set of the paper is shuffled
  whole). Reads are contiguous chunk reads, never one row at a time (a gzip chunk of
  128 rows would be decompressed once per row otherwise). ``rank``/``world_size``
  give each data-parallel process its slice of every global batch, so a
  DistributedDataParallel run only has to wrap the model and pass these two numbers
  (:func:`fit` does both under ``torchrun``: see :mod:`rdm.training.distributed`). :func:`fit`
  holds sets that fit in memory (``RDM_IN_MEMORY_MB``, default 2048) as tensors on the
  training device and gathers each batch there by index, in the same order (the order
  algorithm is run on row numbers), so the batches and the trained weights are the same
  as streamed; larger sets stream, read ahead by a background thread.
- :class:`Classification` / :class:`Reconstruction` — the objective: per-batch loss
  and the validation metrics. Classification keeps the weights with the best
  validation *balanced accuracy* (ties broken by the lower validation loss): 83 % of
  the lung patches are non-nodules, so plain accuracy would reward a model that calls
  everything benign. Reconstruction keeps the lowest validation MSE.
- :func:`fit` — Adam, one epoch at a time: train, validate, keep the best weights,
  stop after ``patience`` epochs without improvement, and hand a :class:`TrainerState`
  to ``on_epoch_end`` (the API saves it as the checkpoint's ``trainer`` field), from
  which :func:`fit` continues bit-identically (RNG state, optimizer moments, counters).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rdm.errors import RdmError
from rdm.models import classification_loss, predict
from rdm.precision import autocast
# the loop's data lives in rdm.data.batches; re-exported here for the callers of rdm.training.loop
from rdm.data.batches import (DEFAULT_BUFFER_ROWS, Batches, Source, default_in_memory_bytes,  # noqa: F401
                      epoch_seed, to_device)


# --------------------------------------------------------------------------- objectives
class Classification:
    """Cross-entropy (single-logit binary heads included); best = highest val balanced accuracy."""

    name = "classification"
    monitor = "balanced_accuracy"
    with_target = False

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        logits = model(batch["x"])
        loss = classification_loss(logits, batch["y"])
        correct = (predict(logits.detach()) == batch["y"]).sum()     # a tensor: no host sync
        return loss, {"correct": correct}

    def running(self, totals: dict) -> str:
        n = max(totals["n"], 1)
        return f"loss {totals['loss'] / n:.4f} acc {totals.get('correct', 0) / n:.3f}"

    def train_metrics(self, totals: dict) -> dict:
        n = max(totals["n"], 1)
        return {"loss": totals["loss"] / n, "accuracy": totals.get("correct", 0) / n}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Batches, device: torch.device) -> dict:
        from sklearn.metrics import balanced_accuracy_score

        was = model.training
        model.eval()
        ys, ps, losses = [], [], []
        for b in batches.epoch(0):
            t = to_device(b, device)
            logits = model(t["x"])
            losses.append(classification_loss(logits, t["y"], reduction="sum").double())
            ys.append(t["y"])
            ps.append(predict(logits))
        model.train(was)
        y, p = torch.cat(ys).cpu().numpy(), torch.cat(ps).cpu().numpy()    # one host sync
        loss_sum = sum(float(v) for v in torch.stack(losses).cpu())   # summed as before, in order
        return {"loss": loss_sum / len(y), "accuracy": float((y == p).mean()),
                "balanced_accuracy": float(balanced_accuracy_score(y, p)), "n": int(len(y))}

    def better(self, new: dict, best: dict | None) -> bool:
        if best is None:
            return True
        a, b = new["balanced_accuracy"], best["balanced_accuracy"]
        return a > b + 1e-12 or (abs(a - b) <= 1e-12 and new["loss"] < best["loss"])

    def summary(self, m: dict) -> str:
        return f"loss {m['loss']:.4f} acc {m['accuracy']:.3f} bal {m['balanced_accuracy']:.3f}"


class Reconstruction:
    """MSE of the DCAE output against the clean target; best = lowest val MSE.

    Validation also reports PSNR (dB, data range 1): the mean over images of
    10·log10(1 / per-image MSE).
    """

    name = "reconstruction"
    monitor = "mse"
    with_target = True

    def __init__(self, mean: Sequence[float] | None = None):
        # the training set's channel means: validation also reports the MSE of answering that
        # constant image ("mse_mean_image"), the floor any useful reconstruction must beat
        self.mean = None if mean is None else torch.as_tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        return F.mse_loss(model(batch["x"]), batch["target"]), {}

    def running(self, totals: dict) -> str:
        return f"mse {totals['loss'] / max(totals['n'], 1):.5f}"

    def train_metrics(self, totals: dict) -> dict:
        return {"loss": totals["loss"] / max(totals["n"], 1)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Batches, device: torch.device) -> dict:
        was = model.training
        model.eval()
        parts, n, px = [], 0, 0
        for b in batches.epoch(0):
            t = to_device(b, device)
            err = (model(t["x"]) - t["target"]).pow(2).flatten(1)
            per = err.mean(1).clamp_min(1e-12)
            sq0_b = ((t["target"] - self.mean.to(device)).pow(2).sum() if self.mean is not None
                     else err.new_zeros(()))
            parts.append(torch.stack([err.sum(), sq0_b, (10 * torch.log10(1.0 / per)).sum()]))
            n += err.shape[0]
            px += err.numel()
        model.train(was)
        sq, sq0, psnr = 0.0, 0.0, 0.0
        for a, b0, c in (torch.stack(parts).cpu().tolist() if parts else []):   # one host sync
            sq, sq0, psnr = sq + a, sq0 + b0, psnr + c
        mse = sq / px
        out = {"loss": mse, "mse": mse, "psnr": psnr / n, "n": n}
        if self.mean is not None:
            out["mse_mean_image"] = sq0 / px
        return out

    def better(self, new: dict, best: dict | None) -> bool:
        return best is None or new["mse"] < best["mse"]

    def summary(self, m: dict) -> str:
        ref = f" (the mean image: {m['mse_mean_image']:.5f})" if "mse_mean_image" in m else ""
        return f"mse {m['mse']:.5f}{ref} psnr {m['psnr']:.2f} dB"

    def warning(self, m: dict) -> str | None:
        """A DCAE that explains less than half the variance around the mean image has learnt little."""
        ref = m.get("mse_mean_image")
        if ref and m["mse"] > 0.5 * ref:
            return (f"the DCAE barely beats a constant image: val MSE {m['mse']:.5f} against "
                    f"{ref:.5f} for the training set's mean colour; its encoder is a poor start for "
                    "fine-tuning (more epochs, another --seed or --lr may help)")
        return None


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    patience: int = 0                 # 0: never stop early
    weight_decay: float = 0.0


@dataclass
class TrainerState:
    """Everything :func:`fit` needs to continue: saved as the checkpoint's ``trainer`` field."""

    epoch: int = 0                    # epochs completed
    model: dict | None = None         # current weights
    best: dict | None = None          # best weights so far
    best_metrics: dict | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    optimizer: dict | None = None
    rng: torch.Tensor | None = None
    cuda_rng: list | None = None
    history: list = field(default_factory=list)
    wall_time_s: float = 0.0
    signature: dict = field(default_factory=dict)

    def to_blob(self) -> dict:
        """Tensors and plain containers only (loads with ``weights_only=True``)."""
        return {"epoch": self.epoch, "model": self.model, "best": self.best,
                "best_metrics": json.dumps(self.best_metrics), "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "stopped": self.stopped, "optimizer": self.optimizer,
                "rng": self.rng, "cuda_rng": self.cuda_rng, "history": json.dumps(self.history),
                "wall_time_s": self.wall_time_s, "signature": json.dumps(self.signature, sort_keys=True)}

    @classmethod
    def from_blob(cls, b: dict) -> "TrainerState":
        try:
            return cls(epoch=int(b["epoch"]), model=b["model"], best=b["best"],
                       best_metrics=json.loads(b["best_metrics"]), best_epoch=int(b["best_epoch"]),
                       bad_epochs=int(b["bad_epochs"]), stopped=bool(b["stopped"]),
                       optimizer=b["optimizer"], rng=b["rng"], cuda_rng=b.get("cuda_rng"),
                       history=json.loads(b["history"]), wall_time_s=float(b["wall_time_s"]),
                       signature=json.loads(b["signature"]))
        except (KeyError, TypeError, ValueError) as e:
            raise RdmError(f"the saved trainer state is incomplete or corrupt ({e})") from None


def _clone_sd(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def set_determinism(device: torch.device) -> None:
    """Deterministic kernels where it is cheap (CPU is deterministic already)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


class _NoBar:
    def add_task(self, *a, **k) -> int:
        return 0

    def update(self, *a, **k) -> None:
        pass

    def remove_task(self, *a, **k) -> None:
        pass


def _totals(sums: dict[str, torch.Tensor], n: int) -> dict[str, float]:
    """The epoch's running sums as Python numbers (one host synchronisation)."""
    out: dict[str, Any] = {"n": n}
    for k, v in sums.items():
        out[k] = float(v) if v.is_floating_point() else int(v)
    return out


def _nonfinite(losses: list[torch.Tensor], ep: int) -> None:
    vals = torch.stack(losses).float().cpu()
    i = int((~torch.isfinite(vals)).nonzero()[0, 0])
    raise RdmError(f"the training loss became {float(vals[i])} at epoch {ep}, batch {i + 1}; try a lower --lr")


def fit(model: nn.Module, objective, train: Batches, val: Batches | None, cfg: TrainConfig, *,
        device: torch.device, state: TrainerState | None = None,
        on_epoch_end: Callable[[TrainerState], None] | None = None,
        transform: Callable[[nn.Module, dict, int, int], dict] | None = None,
        params: Sequence[nn.Parameter] | None = None, quiet: bool = False,
        signature: dict | None = None, precision: str = "fp32",
        log: Callable[[str], None] | None = None, progress=None) -> TrainerState:
    """Train ``model`` in place; it ends holding the best weights. Returns the final state.

    The caller seeds torch *before* building the model (so initial weights follow
    ``cfg.seed``). ``state`` continues a saved run: weights, optimizer, RNG and counters
    are restored, so an interrupted and resumed run ends with the same weights as an
    uninterrupted one (on CPU). ``transform(model, batch, epoch, step)`` may replace a
    batch before the step (on-line adversarial training). ``params``: the parameters
    to optimise (default: all with ``requires_grad``).

    ``precision="bf16"`` runs the forward pass and the loss under autocast (bfloat16 on CUDA,
    and on CPUs that support it); the weights, the optimizer and the stored state stay float32.
    ``log`` receives the per-epoch lines and ``progress`` (a started Rich ``Progress``, or
    anything with its ``add_task``/``update``/``remove_task``) shows the steps; without them
    nothing is shown (library code never prints: the commands pass the console's).
    The training batches are held in memory on ``device`` when they fit (see
    :meth:`Batches.prepare`) and the running loss stays on the device, so a step never
    waits for the host.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel,
    each rank trains on its slice of every global batch of ``cfg.batch_size`` rows, and only
    rank 0 logs and calls ``on_epoch_end`` (see :mod:`rdm.training.distributed`).
    """
    from rdm.training import distributed

    ctx, device = distributed.setup(device)
    if ctx is not None:
        quiet = quiet or not ctx.main
        train.rank, train.world_size = ctx.rank, ctx.world_size
    say = (lambda msg: None) if (quiet or log is None) else log
    showing = progress is not None and not quiet
    set_determinism(device)
    model.to(device=device, memory_format=torch.channels_last)
    opt, state = _start(model, params, cfg, state, signature, device, say)
    run = _Epoch(model, distributed.wrap(model, device) if ctx is not None else model, objective, opt, train,
                 device, precision, ctx, transform, progress if showing else _NoBar(), showing)
    train.prepare(device)
    if val is not None:
        val.prepare(device)
    while state.epoch < cfg.epochs and not state.stopped:
        ep = state.epoch + 1
        t0 = time.perf_counter()
        totals = run(ep, cfg.epochs)
        rec: dict[str, Any] = {"epoch": ep, "train": objective.train_metrics(totals)}
        improved = _judge(model, objective, val, device, cfg, state, rec, ep)
        dt = time.perf_counter() - t0
        _record(model, opt, device, state, rec, ep, dt)
        msg = f"epoch {ep}/{cfg.epochs}  train {objective.running(totals)}"
        if "val" in rec:
            msg += f"  | val {objective.summary(rec['val'])}" + ("  *" if improved else "")
        say(msg + f"  ({dt:.1f}s)")
        if state.stopped:
            say(f"early stop: no improvement for {cfg.patience} epochs; best epoch {state.best_epoch}")
        if on_epoch_end is not None and (ctx is None or ctx.main):
            on_epoch_end(state)
    if state.best is not None:
        model.load_state_dict(state.best)
    model.eval()
    return state


def _start(model: nn.Module, params, cfg: TrainConfig, state: TrainerState | None, signature: dict | None,
           device: torch.device, say) -> tuple[torch.optim.Optimizer, TrainerState]:
    """The optimizer over the trainable parameters, and the state: a fresh one, or a saved run's
    weights, optimizer, RNG and counters restored."""
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    if not params:
        raise RdmError("nothing to train: every parameter is frozen")
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state is None:
        return opt, TrainerState(signature=dict(signature or {}))
    model.load_state_dict(state.model)
    opt.load_state_dict(state.optimizer)
    torch.set_rng_state(state.rng)
    if state.cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state_all(state.cuda_rng)
    if state.epoch:
        say(f"resuming after epoch {state.epoch} (best epoch {state.best_epoch})")
    return opt, state


class _Epoch:
    """One pass over the training batches: the steps, the running sums (kept on the device, float64,
    the sums a Python float would make: no host synchronisation per step; the progress line reads them
    at most twice a second) and the check for a non-finite loss."""

    def __init__(self, model, net, objective, opt, train: Batches, device, precision, ctx, transform, bar,
                 showing: bool):
        self.model, self.net, self.objective, self.opt, self.train = model, net, objective, opt, train
        self.device, self.precision, self.ctx, self.transform = device, precision, ctx, transform
        self.bar, self.showing = bar, showing

    def step(self, batch: dict[str, torch.Tensor], i: int) -> tuple[torch.Tensor, dict]:
        self.opt.zero_grad(set_to_none=True)
        n = int(batch["y"].shape[0])
        if self.ctx is not None and n == 0:     # a short last batch left this rank no row
            (self.net(batch["x"]).sum() * 0.0).backward()
            self.opt.step()
            return torch.zeros((), device=self.device), {}
        with autocast(self.device, self.precision):
            loss, stats = self.objective.loss(self.net, batch)
        if self.ctx is not None:   # DDP averages over ranks: weight by this rank's share of the global batch
            (loss * (n * self.ctx.world_size / self.train.global_rows(i))).backward()
        else:
            loss.backward()
        self.opt.step()
        return loss.detach(), stats

    def __call__(self, ep: int, epochs: int) -> dict:
        from rdm.training import distributed

        device, train, bar = self.device, self.train, self.bar
        self.model.train()
        task = bar.add_task(f"epoch {ep}/{epochs}", total=len(train), info="")
        sums: dict[str, torch.Tensor] = {}
        losses: list[torch.Tensor] = []
        n_rows, shown = 0, time.perf_counter()
        for i, b in enumerate(train.epoch(ep)):
            t = to_device(b, device)
            if self.transform is not None and len(t["y"]):
                with autocast(device, self.precision):
                    t = self.transform(self.model, t, ep, i)
            loss, stats = self.step(t, i)
            k = int(t["y"].shape[0])
            losses.append(loss)
            n_rows += k
            for key, v in (("loss", loss.double() * k), *stats.items()):
                sums[key] = sums[key] + v if key in sums else torch.as_tensor(v, device=device).clone()
            if device.type == "cpu" and not math.isfinite(float(loss)):
                _nonfinite(losses, ep)
            now = time.perf_counter()
            if self.showing and (now - shown > 0.5 or i + 1 == len(train)):
                bar.update(task, advance=0, info=self.objective.running(_totals(sums, n_rows)))
                shown = now
            bar.update(task, advance=1)
        if losses and not bool(torch.isfinite(torch.stack(losses)).all()):
            _nonfinite(losses, ep)
        totals = _totals(sums, n_rows)
        bar.remove_task(task)
        if self.ctx is not None:
            totals = distributed.all_sum(totals, device)
        return totals


def _judge(model, objective, val, device, cfg: TrainConfig, state: TrainerState, rec: dict, ep: int) -> bool:
    """Whether epoch ``ep`` improved on the best so far (on the validation set, or on training alone);
    keeps its weights if so, else counts towards early stopping."""
    improved = True
    if val is not None:
        vm = objective.evaluate(model, val, device)
        rec["val"] = vm
        improved = objective.better(vm, state.best_metrics)
        if improved:
            state.best_metrics = vm
    else:
        state.best_metrics = rec["train"]
    if improved:
        state.best, state.best_epoch, state.bad_epochs = _clone_sd(model), ep, 0
    else:
        state.bad_epochs += 1
        if cfg.patience and state.bad_epochs >= cfg.patience:
            state.stopped = True
    return improved


def _record(model, opt, device, state: TrainerState, rec: dict, ep: int, dt: float) -> None:
    """The epoch's line in the history, and everything a resumed run needs."""
    rec["time_s"] = round(dt, 3)
    state.wall_time_s += dt
    state.history.append(rec)
    state.epoch = ep
    state.model = _clone_sd(model)
    state.optimizer = opt.state_dict()
    state.rng = torch.get_rng_state()
    state.cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
