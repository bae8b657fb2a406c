"""A compiled copy of a model's forward pass, for the gradient-free attack that queries it thousands of times.

Square (:mod:`rdm.attacks.square`) spends nearly all its time in forward passes: 5,000 queries per row
still classified right. On a row that stays robust that is about 10× the cost of the suite's two
APGD stages (lung CNN, 128 rows, one thread: a forward 0.215 s, a forward+backward 0.50 s; 5,000
forwards against 200 gradient steps). ``torch.compile`` (Inductor) fuses the ReLU and max-pooling
after each convolution, which eager PyTorch runs as separate memory-bound passes (on the lung CNN,
256 rows: the first ReLU + pooling 0.18 s of a 0.31 s forward). Measured on the real models' shapes, one
thread (``make bench``, section "square"): 1.3–2.2× the queries per second of the model itself.

It is used only where it cannot change a result:

* the copy must agree with the model on the first batch it sees: the same predicted class on
  every row and logits within :data:`AGREE` (on the real models they were bit-identical); else
  the model itself answers every query;
* the attack's stopping rule ("this row is fooled") is confirmed on the model itself
  (:func:`confirm_fooled`), and the suite re-classifies every returned image with the model, so
  the copy only decides which candidate the random search keeps next;
* any failure to compile (no C++ compiler, an operation Inductor does not take, a user's model
  it cannot trace) falls back to the model itself, silently: the numbers are the same, slower.

On an rdm CNN the incremental engine (:mod:`rdm.attacks.incremental`) answers in its place, under the same
switch: it recomputes only what Square's window changed, 2–3× the copy's queries per second on the
small windows where a search spends most of its queries (``make bench``, section "square").

When: ``RDM_COMPILE=auto`` (the default) compiles on CPU when an attack will make at least
:data:`MIN_ROW_QUERIES` row-forward passes, where the compilation (5–15 s once per process and
model) pays back; ``RDM_COMPILE=1`` compiles whenever asked (any device), ``RDM_COMPILE=0`` never.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Callable

from rdm.errors import UsageError

if TYPE_CHECKING:                # torch is imported where a model is compiled: `rdm.cli.run` reads
    import torch                 # RDM_COMPILE (mode) before parsing, and `--help` must not pay for torch
    from torch import nn

MIN_ROW_QUERIES = 200_000        # e.g. 40 rows × 5,000 queries; the demo's 24 × 40 stays eager
AGREE = 1e-4                     # logits' largest allowed difference, relative to max(1, |logit|)

# models whose copy disagreed or failed (never retried in this process) and those it answered for;
# weak, so a model is never kept alive here. The compiled code itself is cached by torch (Dynamo),
# so a new ``torch.compile`` wrapper of the same model, or of another of the same class, is free.
_failed: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()
_used: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


def mode() -> str:
    """``RDM_COMPILE`` as one of auto, 1, 0; one clear error otherwise."""
    raw = os.environ.get("RDM_COMPILE", "auto").strip().lower() or "auto"
    if raw not in ("auto", "0", "1"):
        raise UsageError(f"RDM_COMPILE={raw!r}: expected auto, 1 or 0")
    return raw


def wanted(device: torch.device, row_queries: int) -> bool:
    """Whether an attack of ``row_queries`` row-forward passes on ``device`` should use a compiled copy."""
    m = mode()
    if m != "auto":
        return m == "1"
    return device.type == "cpu" and int(row_queries) >= MIN_ROW_QUERIES


def agrees(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Whether a stand-in's logits ``got`` may answer for the model's ``want``: same shape, finite,
    within :data:`AGREE` of them (relative to max(1, |logit|)) and the same predicted class on every
    row (the argmax of a multi-logit head, the sign of a single logit)."""
    got, want = got.float(), want.float()
    if got.shape != want.shape or got.dim() != 2 or not bool(got.isfinite().all()):
        return False
    if not bool((got - want).abs().le(AGREE * want.abs().clamp(min=1)).all()):
        return False
    if got.shape[1] == 1:
        return bool(((got > 0) == (want > 0)).all())
    return bool((got.argmax(1) == want.argmax(1)).all())


def query_model(model: nn.Module, x: torch.Tensor, row_queries: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function that answers the attack's queries: a compiled copy of ``model`` that agrees
    with it on ``x`` (checked here, once per call), else ``model`` itself. Call under ``no_grad``
    with the model in eval mode (:func:`rdm.attacks.functions.attack_mode`)."""
    if not wanted(x.device, row_queries) or model in _failed:
        return model
    import torch

    try:
        fast = torch.compile(model, dynamic=True)
        with torch.no_grad():
            got, want = fast(x), model(x)
        ok = agrees(got, want)
    except Exception:            # compilation is an optimisation: any failure means the model itself
        ok = False
    if not ok:
        _failed.add(model)
        return model
    _used.add(model)
    return fast
