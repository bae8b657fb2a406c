"""White-box L∞ attacks in pixel space [0, 1]: FGSM, PGD/BIM, APGD-CE.

Every attack is a pure tensor → tensor function (torchattacks style):

* it works on a detached copy of ``x`` and returns a detached tensor;
* gradients come from :func:`torch.autograd.grad` with respect to the INPUT only:
  the model's parameters are set ``requires_grad_(False)`` for the attack and their
  flags restored after, so no parameter ``.grad`` is ever created or changed;
* the model runs in eval mode and its previous train/eval mode is restored after
  (:func:`attack_mode`);
* after every step the iterate is projected onto the ε-ball AND [0, 1]: it is clamped
  to ``[max(x−ε, 0), min(x+ε, 1)]``, bounds that are rounded INWARD in float32 so
  that ``|x_adv − x| ≤ ε`` and ``0 ≤ x_adv ≤ 1`` hold exactly (both when the
  difference is evaluated in float32 and in float64);
* the loss is :func:`rdm.models.classification_loss` (cross-entropy; equals BCE for a
  single-logit binary head);
* random starts are seeded PER ROW from ``(seed, row_id, restart)`` (a counter-based hash
  computed on the attack's device, :func:`uniform_rows`), so an image gets the same start
  whatever batch, shard or device it is processed on — pass ``row_ids`` (the row's index
  in its set) when attacking a slice of a set;
* ``ε = 0`` returns ``x`` unchanged.

Restarts keep, per image, the first restart that fools the model, else the one with
the highest loss; a later restart runs only on the rows no earlier one fooled (their pick
is final, so the output is the same as running every row).

Performance (measured by ``make bench``): 4-D batches are worked on in channels-last
layout (convolutions run about 1.4–1.6× faster on CPU; elementwise results are
identical in any layout) and returned contiguous; projection is one ``clamp`` against
the precomputed bounds; no per-step host synchronisation in PGD or APGD; PGD with one
restart skips the extra forward pass on the final iterate when nothing needs its loss.

The attack classes (hyper-parameters, defaults, labels, CLI flags) and
:class:`~rdm.attacks.registry.AttackSpec` are in :mod:`rdm.attacks.registry`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from rdm.errors import RdmError, UsageError
from rdm.models import as_class_logits, classification_loss

__all__ = [
    "attack_mode", "fgsm", "fgsm_sweep", "pgd", "apgd", "apgd_ce", "eps_bounds", "project", "row_generator",
    "uniform_rows", "check_eps", "sign_noise",
]

KEEP_CHOICES = ("fooled", "best", "last")


# --------------------------------------------------------------------------- model mode
@contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the duration of an attack; both restored after.

    4-D parameters and buffers (convolution weights) are also viewed channels-last for
    the attack (a one-channel input alone cannot select the channels-last kernels) and
    their original tensors put back after: nothing about the model changes.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    swapped = []
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        for t in [*model.parameters(), *model.buffers()]:
            if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last):
                swapped.append((t, t.data))
                t.data = t.data.contiguous(memory_format=torch.channels_last)
        yield model
    finally:
        for t, data in swapped:
            t.data = data
        for p, f in flags:
            p.requires_grad_(f)
        model.train(was_training)


# --------------------------------------------------------------------------- projection
@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Run a burst of small elementwise CPU ops on one thread.

    They are memory-bound (a second thread gains little), and on a busy machine every
    two-thread op waits for a scheduler slice: ``make bench`` measured ``eps_bounds`` on a
    128×3×64×64 batch at 3.95 s with two threads vs 0.42 s with one under load.
    """
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def eps_bounds(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel bounds ``[max(x−ε, 0), min(x+ε, 1)]``, rounded inward in ``x``'s dtype.

    Rounding inward (one ulp at a time, where needed) makes ``|b − x| ≤ ε`` true
    exactly, whether the difference is computed in float32 or in float64.
    """
    with _one_thread(x.device):
        return _eps_bounds(x, float(eps))


def _eps_bounds(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    eps = float(eps)
    x64 = x.double()
    eps_t = torch.tensor(eps, dtype=x.dtype, device=x.device)  # ε as the dtype sees it
    eps_lo = min(eps, float(eps_t))  # the stricter of the two readings of ε

    hi = torch.clamp(x64 + eps, max=1.0).to(x.dtype)
    lo = torch.clamp(x64 - eps, min=0.0).to(x.dtype)
    down = torch.tensor(-math.inf, dtype=x.dtype, device=x.device)
    up = torch.tensor(math.inf, dtype=x.dtype, device=x.device)

    def too_high(h, x_, x64_):
        return (h.double() - x64_ > eps_lo) | (h - x_ > eps_t) | (h > 1)

    def too_low(l_, x_, x64_):
        return (x64_ - l_.double() > eps_lo) | (x_ - l_ > eps_t) | (l_ < 0)

    # The first check runs on every pixel; the (few) pixels that fail it are gathered and
    # nudged one ulp at a time on their own: an element's test never depends on another's,
    # so this gives the same bounds as nudging whole tensors, at a fraction of the passes.
    for b, bad_of, toward in ((hi, too_high, down), (lo, too_low, up)):
        bad = bad_of(b, x, x64)
        if not bool(bad.any()):
            continue
        bs, xs, x64s = b[bad], x[bad], x64[bad]
        for _ in range(8):
            bad_s = bad_of(bs, xs, x64s)
            if not bool(bad_s.any()):
                break
            bs = torch.where(bad_s, torch.nextafter(bs, toward), bs)
        b[bad] = bs
    # x itself always satisfies the constraints, so the bounds never cross it
    hi = torch.maximum(hi, torch.clamp(x, 0, 1))
    lo = torch.minimum(lo, torch.clamp(x, 0, 1))
    return lo, hi


def project(x_adv: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Clamp to the precomputed bounds (selects values: exact, no arithmetic).

    ``clamp(x, lo, hi)`` is ``min(max(x, lo), hi)`` in one pass (NaN propagates alike).
    """
    return torch.clamp(x_adv, min=lo, max=hi)


# --------------------------------------------------------------------------- helpers
def _loss_and_grad(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, loss_fn=None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row loss, input gradient of the summed loss, and logits (all detached).

    ``loss_fn(class_logits, y)`` (:mod:`rdm.attacks.losses`) replaces the cross-entropy.

    The model's parameters are frozen by :func:`attack_mode`, so backward computes the
    input gradient only. ``x_adv`` is a fresh tensor at every call site: no copy is made.
    """
    xg = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        loss = classification_loss(logits, y, reduction="none") if loss_fn is None else loss_fn(as_class_logits(logits), y)
        (grad,) = torch.autograd.grad(loss.sum(), [xg])
    return loss.detach(), grad.detach(), as_class_logits(logits.detach())


def fast_layout(x: torch.Tensor) -> torch.memory_format:
    """Channels-last for image batches (faster convolutions), else as is."""
    return torch.channels_last if x.dim() == 4 else torch.contiguous_format


def prepare_batch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A private copy of ``x`` in the fast layout (converted once per batch) and long labels."""
    x = x.detach().clone(memory_format=fast_layout(x))
    y = torch.as_tensor(y, device=x.device).detach().long().reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    return x, y


def check_eps(eps: float) -> float:
    eps = float(eps)
    if not (0.0 <= eps <= 1.0) or math.isnan(eps):
        raise UsageError(f"eps must be in [0, 1], got {eps:g}")
    return eps


def row_id_list(row_ids: Sequence[int] | torch.Tensor | np.ndarray | None, n: int) -> list[int]:
    if row_ids is None:
        return list(range(n))
    ids = [int(i) for i in (row_ids.tolist() if hasattr(row_ids, "tolist") else row_ids)]
    if len(ids) != n:
        raise ValueError(f"row_ids has {len(ids)} entries for {n} rows")
    return ids


def row_generator(seed: int | None, row_id: int, restart: int = 0) -> torch.Generator:
    """A CPU generator seeded from ``(seed, row_id, restart)`` alone (not the batch)."""
    state = np.random.SeedSequence([int(seed or 0) & 0xFFFFFFFF, int(row_id), int(restart)])
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state.generate_state(1, dtype=np.uint64)[0] & ((1 << 63) - 1)))
    return g


# --------------------------------------------------------------------------- counter-based uniforms
# A row's random numbers are a hash of (seed, row id, stream, element index) alone, computed with
# integer tensor ops on the attack's device: the same numbers for a row whatever its batch, shard
# or device, and no generator per row (a CPU generator per row cost 0.48 s per 4,096-row brain
# restart, half of APGD's overhead on a GPU). The mixer is Wellons' "lowbias32" on 32-bit values
# held in int64: every product is of a value < 2^32 and a constant of magnitude < 2^31 (a constant
# ≥ 2^31 is used as c − 2^32, the same residue mod 2^32), so no int64 product overflows; the
# result is then masked back to 32 bits.
_M32 = 0xFFFFFFFF
_MIX = tuple(c - (1 << 32) if c >= 1 << 31 else c for c in (0x7FEB352D, 0x846CA68B))


def _mix32_(h: torch.Tensor, tmp: torch.Tensor | None = None) -> torch.Tensor:
    """lowbias32 in place on an int64 tensor of values in [0, 2^32) (a bijection of 32-bit values)."""
    t = torch.empty_like(h) if tmp is None else tmp
    for shift, mul in ((16, _MIX[0]), (15, _MIX[1]), (16, None)):
        torch.bitwise_right_shift(h, shift, out=t)
        h.bitwise_xor_(t)
        if mul is not None:
            h.mul_(mul).bitwise_and_(_M32)
    return h


def _row_keys(seed: int | None, ids: Sequence[int] | torch.Tensor | np.ndarray, stream: int,
              device: torch.device) -> torch.Tensor:
    """One 32-bit key per row: a bijection of the row id (ids < 2^32 never share a key) under a
    salt made from the seed (all 64 bits) and the stream."""
    seed = int(seed or 0)
    salt = torch.tensor([(seed & _M32) ^ 0x9E3779B9], dtype=torch.int64)
    for part in ((seed >> 32) & _M32, int(stream) & _M32):
        salt = _mix32_(_mix32_(salt) ^ part)
    r = torch.as_tensor(np.asarray(ids, dtype=np.int64) if not torch.is_tensor(ids) else ids,
                        dtype=torch.int64, device=device).reshape(-1)
    return _mix32_(_mix32_(((r >> 32) & _M32) ^ int(salt)) ^ (r & _M32))


def _hashed_rows(shape: Sequence[int], seed: int | None, ids, stream: int, device: torch.device,
                 scale: float, shift: float, chunk: int | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """``(h >> 8)·scale + shift`` as float32 rows of ``shape``, h the 32-bit hash of (row key,
    element index in ``shape[1:]``, row-major); written straight into a tensor of ``memory_format``
    (a layout change of the numbers, not of which number an element gets), in pieces of about
    ``chunk`` elements (the result does not depend on it)."""
    shape = tuple(int(s) for s in shape)
    n, numel = shape[0], math.prod(shape[1:])
    device = torch.device(device)
    keys = _row_keys(seed, ids, stream, device)
    if keys.numel() != n:
        raise ValueError(f"row_ids has {keys.numel()} entries for {n} rows")
    cols = _mix32_(torch.arange(numel, dtype=torch.int64, device=device) ^ 0x5BD1E995)
    out = torch.empty(shape, dtype=torch.float32, device=device, memory_format=memory_format)
    if chunk is None:
        chunk = 1 << (24 if device.type == "cuda" else 17)     # CPU: a piece stays in cache
    step = max(1, min(n, chunk // max(numel, 1)))
    h = torch.empty((step, numel), dtype=torch.int64, device=device)
    t = torch.empty_like(h)
    for i in range(0, n, step):
        j = min(n, i + step)
        hi, ti = h[:j - i], t[:j - i]
        torch.bitwise_xor(cols[None, :], keys[i:j, None], out=hi)
        _mix32_(hi, ti).bitwise_right_shift_(8)                # 24 bits: exact in float32
        o = out[i:j]
        o.copy_(hi.view(o.shape))
        o.mul_(scale).add_(shift)
    return out


def uniform_rows(shape: Sequence[int], seed: int | None, row_ids: Sequence[int] | torch.Tensor | np.ndarray,
                 stream: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """U[0, 1) float32 numbers of ``shape`` (rows first, multiples of 2^-24), computed on ``device``.

    Row ``i`` is a function of ``(seed, row_ids[i], stream)`` and the element's index alone: the
    same numbers for that row in any batch, shard, order or device. ``stream`` tells independent
    draws for the same row apart (the attacks pass the restart). For per-row random signs:
    ``torch.where(uniform_rows(...) < 0.5, -1.0, 1.0)``."""
    return _hashed_rows(shape, seed, row_ids, stream, torch.device(device), 2.0 ** -24, 0.0)


def _uniform_rows(shape: torch.Size, seed: int | None, ids: list[int], restart: int,
                  like: torch.Tensor) -> torch.Tensor:
    """U[−1, 1) noise for a random start (:func:`uniform_rows` at stream ``restart``, times 2 minus
    1, exact), in ``like``'s device, dtype and layout; the same row gets the same noise anywhere."""
    u = _hashed_rows(shape, seed, ids, restart, like.device, 2.0 ** -23, -1.0,
                     memory_format=fast_layout(like) if len(shape) == 4 else torch.contiguous_format)
    return u.to(dtype=like.dtype)


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-row boolean mask shaped to broadcast over ``like``'s rows."""
    return mask.view((-1,) + (1,) * (like.dim() - 1))


def _put_rows(dst: torch.Tensor, mask: torch.Tensor, src: torch.Tensor) -> None:
    """In place ``dst[mask] = src[mask]`` by selection (exact), without a host sync."""
    dst.copy_(torch.where(_rows(mask, dst), src, dst))


def _select(best: torch.Tensor, best_loss: torch.Tensor, best_fooled: torch.Tensor,
            cand: torch.Tensor, cand_loss: torch.Tensor, cand_fooled: torch.Tensor) -> None:
    """In place: take ``cand`` where it fools and ``best`` does not, or neither fools and it has higher loss."""
    take = (cand_fooled & ~best_fooled) | ((cand_fooled == best_fooled) & ~best_fooled & (cand_loss > best_loss))
    _put_rows(best, take, cand)
    _put_rows(best_loss, take, cand_loss)
    _put_rows(best_fooled, take, cand_fooled)


def _unfooled(best_fooled: torch.Tensor) -> torch.Tensor:
    """Indices of the rows no restart has fooled yet (a later restart runs on these only)."""
    return (~best_fooled).nonzero().squeeze(1)


def take_rows(t: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """Rows ``rows`` of ``t`` (all when None), image batches kept in the fast layout."""
    return t if rows is None else t.index_select(0, rows).contiguous(memory_format=fast_layout(t))


def _select_at(rows: torch.Tensor | None, best: torch.Tensor, best_loss: torch.Tensor,
               best_fooled: torch.Tensor, cand: torch.Tensor, cand_loss: torch.Tensor,
               cand_fooled: torch.Tensor) -> None:
    """:func:`_select` for candidates of the rows ``rows`` only (all rows when None)."""
    if rows is None:
        _select(best, best_loss, best_fooled, cand, cand_loss, cand_fooled)
        return
    b, bl, bf = take_rows(best, rows), best_loss[rows], best_fooled[rows]
    _select(b, bl, bf, cand, cand_loss, cand_fooled)
    best[rows], best_loss[rows], best_fooled[rows] = b, bl, bf


# --------------------------------------------------------------------------- the control
#: the stream of the noise control's per-row signs: a block of its own, so the noise never equals a
#: PGD/APGD random start (streams = restarts 0, 1, …) nor the cascade's stages (blocks 0–2000)
NOISE_RESTART = 3000


def sign_noise(x: torch.Tensor, eps: float, *, seed: int | None = None,
               row_ids: Sequence[int] | None = None) -> torch.Tensor:
    """Random sign noise, the control of the masking checks: ``x + ε·s``, ``s`` a ±1 pattern per
    row drawn from the random starts' per-row uniform (:func:`uniform_rows`, stream
    :data:`NOISE_RESTART`): the same row gets the same pattern in any batch, shard or device. No
    model, no gradient. Each pixel is one of its bounds ``[max(x−ε, 0), min(x+ε, 1)]`` (selected,
    not computed), so the ε-ball and [0, 1] hold exactly."""
    eps = check_eps(eps)
    x = x.detach()
    if eps == 0:
        return x.clone(memory_format=torch.contiguous_format)
    u = uniform_rows(x.shape, seed, row_id_list(row_ids, x.shape[0]), NOISE_RESTART, x.device)
    lo, hi = eps_bounds(x, eps)
    return torch.where(u < 0.5, lo, hi).contiguous()


# --------------------------------------------------------------------------- FGSM
#: FGSM on float32 inputs in [0, 1] steps by ε − 2⁻²² instead of ε. The scalar and the sum each
#: round by at most 2⁻²⁴ (values below 2), so the realised |x_adv − x| is at most ε − 2⁻²³: below ε
#: in float64 and, rounding being monotone, at most float32(ε) in float32 — the exact ball without
#: the per-pixel bounds (``eps_bounds``), which cost more than the gradient on a small CNN. The
#: step is 2.4e-7 short of ε (5e-5 of ε = .005), far below one grey level.
FGSM_SHRINK = 2.0 ** -22


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
         targeted: bool = False) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): ``x + ε·sign(∇ₓL)``, projected
    (for float32 inputs the step is ε − 2⁻²², see :data:`FGSM_SHRINK`).

    ``targeted=True`` reads ``y`` as target labels and steps down the loss.
    """
    return fgsm_sweep(model, x, y, [eps], targeted=targeted)[0]


def fgsm_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_list: Sequence[float], *,
               targeted: bool = False) -> list[torch.Tensor]:
    """FGSM at several ε from ONE gradient (FGSM's direction does not depend on ε)."""
    eps_list = [check_eps(e) for e in eps_list]
    x, y = prepare_batch(x, y)
    if all(e == 0 for e in eps_list):
        return [x.clone(memory_format=torch.contiguous_format) for _ in eps_list]
    with attack_mode(model):
        _, grad, _ = _loss_and_grad(model, x, y)
    direction = -grad.sign() if targeted else grad.sign()
    out = []
    with _one_thread(x.device):  # elementwise only from here on
        for e in eps_list:
            if e == 0:
                out.append(x.clone(memory_format=torch.contiguous_format))
            elif x.dtype == torch.float32 and e > 2 * FGSM_SHRINK:
                # one step needs no per-pixel bounds: stepping by ε − 2⁻²² keeps |x_adv − x| ≤ ε − 2⁻²³
                # after float32 rounding (see FGSM_SHRINK), so the ball holds exactly as it is
                out.append(torch.clamp(x + (e - FGSM_SHRINK) * direction, 0.0, 1.0).contiguous())
            else:
                lo, hi = eps_bounds(x, e)
                out.append(project(x + e * direction, lo, hi).contiguous())
    return out


# --------------------------------------------------------------------------- PGD / BIM
def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int, *,
        random_start: bool = False, restarts: int = 1, seed: int | None = None,
        row_ids: Sequence[int] | None = None, targeted: bool = False,
        keep: str = "fooled") -> torch.Tensor:
    """Projected gradient descent on the L∞ ball (Madry et al. 2018); BIM without random start.

    Each step: ``x ← Π(x + α·sign(∇ₓL))``. With ``random_start`` the start is
    ``Π(x + U(−ε, ε))`` seeded per row from ``(seed, row_id, restart)``.

    ``keep`` picks what is returned per image:

    * ``"fooled"`` (default): each restart's FINAL iterate; across restarts the first
      that fools the model, else the one with the highest loss. With one restart this is
      textbook PGD/BIM.
    * ``"best"``: over every iterate of every restart, the first that fools, else the
      highest-loss one (never weaker than "fooled").
    * ``"last"``: the final iterate of the last restart, no selection.
    """
    eps = check_eps(eps)
    if int(steps) < 1:
        raise RdmError(f"steps must be at least 1, got {steps}")
    if not float(alpha) > 0 and eps > 0:  # α is moot at ε = 0 (the default α = 2.5·ε/steps is 0)
        raise RdmError(f"alpha must be > 0, got {alpha:g}")
    if int(restarts) < 1:
        raise RdmError(f"restarts must be at least 1, got {restarts}")
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {KEEP_CHOICES}, got {keep!r}")
    x, y = prepare_batch(x, y)
    if eps == 0:
        return x.contiguous()
    ids = row_id_list(row_ids, x.shape[0])
    alpha, steps, sign = float(alpha), int(steps), (-1.0 if targeted else 1.0)
    lo, hi = eps_bounds(x, eps)
    # With one restart and keep="fooled" the selection always takes the final iterate
    # (its loss beats −∞), and keep="last" takes it outright: its loss is never needed.
    final_eval = keep == "best" or (keep == "fooled" and int(restarts) > 1)

    best = x.clone()
    best_loss = torch.full((x.shape[0],), -math.inf, device=x.device)
    best_fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    def fooled_of(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # targeted: "fooled" means the target class is predicted
        return (pred == y) if targeted else (pred != y)

    with attack_mode(model):
        for r in range(int(restarts)):
            # a later restart runs only on the rows no earlier one fooled: the pick of a fooled
            # row is final under "fooled" and "best" (same output, less work)
            rows = None if r == 0 or keep == "last" else _unfooled(best_fooled)
            if rows is not None and rows.numel() == 0:
                break
            xr, yr, lor, hir = (take_rows(t, rows) for t in (x, y, lo, hi))
            x_adv = xr.clone()
            if random_start:
                idr = ids if rows is None else [ids[i] for i in rows.tolist()]
                x_adv = project(xr + eps * _uniform_rows(xr.shape, seed, idr, r, xr), lor, hir)
            for _ in range(steps):
                loss, grad, logits = _loss_and_grad(model, x_adv, yr)
                if keep == "best":  # the iterate the gradient was taken at
                    _select_at(rows, best, best_loss, best_fooled, x_adv, sign * loss,
                               fooled_of(logits.argmax(1), yr))
                # x + α·sign(g) in one kernel (α·(±1) is exact), then one clamp
                x_adv = project(torch.add(x_adv, grad.sign_(), alpha=sign * alpha), lor, hir)
            if not final_eval:
                best = x_adv
                continue
            loss, logits = eval_logits(model, x_adv, yr)
            _select_at(rows, best, best_loss, best_fooled, x_adv, sign * loss, fooled_of(logits.argmax(1), yr))
    return best.detach().contiguous()


def eval_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = model(x)
        return classification_loss(logits, y, reduction="none"), as_class_logits(logits)


# --------------------------------------------------------------------------- APGD
def _apgd_checkpoint_lengths(steps: int) -> tuple[int, int, int]:
    """First period, its decrement and its minimum (Croce & Hein 2020: 0.22, 0.03, 0.06 of N)."""
    return max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)


def apgd_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 100, *,
            restarts: int = 1, seed: int | None = None, row_ids: Sequence[int] | None = None,
            rho: float = 0.75, momentum: float = 0.75) -> torch.Tensor:
    """Auto-PGD with the cross-entropy loss (Croce & Hein, ICML 2020), L∞: :func:`apgd` with ``loss="ce"``."""
    return apgd(model, x, y, eps, steps, loss="ce", restarts=restarts, seed=seed, row_ids=row_ids,
                rho=rho, momentum=momentum)


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 100, *,
         loss: str = "ce", target: torch.Tensor | None = None, restarts: int = 1, seed: int | None = None,
         row_ids: Sequence[int] | None = None, rho: float = 0.75, momentum: float = 0.75,
         first_restart: int = 0, early_stop: bool = True) -> torch.Tensor:
    """Auto-PGD (Croce & Hein, ICML 2020), L∞, ascending the per-row ``loss``
    (:mod:`rdm.attacks.losses`: ``ce``, ``margin``, ``dlr``, or ``dlr-targeted`` /
    ``margin-targeted`` towards ``target``, one label per row).

    Step size starts at 2ε per image. Each step takes a sign-gradient step to ``z``
    and moves with momentum: ``x ← Π(x + m·(Π(z) − x) + (1 − m)·(x − x_prev))``
    (m = 1 on the first step, then ``momentum`` = 0.75). At checkpoints (the first
    after 22 % of the budget, then periods shrinking by 3 % to at least 6 %), an image's
    step size is halved and it restarts from its best point when either
    (1) the loss rose in at most ``rho`` (75 %) of the steps since the last checkpoint, or
    (2) the step size was not halved at the last checkpoint and the best loss did not
    improve since. The start is ``x + ε·t/‖t‖∞``, ``t ~ U(−1, 1)``, seeded per row from
    ``(seed, row_id, first_restart + restart)``.

    A row is fooled when it is misclassified (any class, targeted losses included). Returns
    per image the first point that fooled the model, else the highest-loss point; a later
    restart runs only on the rows no earlier one fooled, and within a run a fooled row takes no
    further steps (``early_stop``; False: every row every step, the same result).
    """
    from rdm.attacks.losses import TARGETED, get_loss

    eps = check_eps(eps)
    if int(steps) < 1:
        raise RdmError(f"steps must be at least 1, got {steps}")
    if int(restarts) < 1:
        raise RdmError(f"restarts must be at least 1, got {restarts}")
    if loss in TARGETED and target is None:
        raise ValueError(f"the {loss} loss needs target labels")
    get_loss(loss, target)                    # an unknown loss fails before any work
    x, y = prepare_batch(x, y)
    if eps == 0:
        return x.contiguous()
    ids = row_id_list(row_ids, x.shape[0])
    n = x.shape[0]
    lo, hi = eps_bounds(x, eps)
    view = (-1,) + (1,) * (x.dim() - 1)
    if target is not None:
        target = torch.as_tensor(target, device=x.device).long().reshape(-1)

    best = x.clone()
    best_loss = torch.full((n,), -math.inf, device=x.device)
    best_fooled = torch.zeros(n, dtype=torch.bool, device=x.device)

    with attack_mode(model):
        for r in range(int(restarts)):
            rows = None if r == 0 else _unfooled(best_fooled)
            if rows is not None and rows.numel() == 0:
                break
            xr, yr, lor, hir = (take_rows(t, rows) for t in (x, y, lo, hi))
            idr = ids if rows is None else [ids[i] for i in rows.tolist()]
            tr = None if target is None else take_rows(target, rows)

            def loss_of(idx, tr=tr):
                return get_loss(loss, tr if tr is None or idx is None else tr[idx])
            x_r, loss_r, fooled_r = _apgd_run(model, xr, yr, eps, int(steps), lor, hir, view,
                                              _uniform_rows(xr.shape, seed, idr, first_restart + r, xr), rho,
                                              momentum, loss_of, early_stop)
            _select_at(rows, best, best_loss, best_fooled, x_r, loss_r, fooled_r)
    return best.detach().contiguous()


def _apgd_run(model, x, y, eps, steps, lo, hi, view, noise, rho, momentum, loss_of=None, early_stop=True):
    """One APGD run on every row of ``x``; ``loss_of(idx)``: the per-row loss of rows ``idx`` (None:
    cross-entropy). A row's returned point is its first fooling iterate, which no later step can
    replace, so with ``early_stop`` a row leaves the batch once fooled: later steps work on the rows
    still standing (the same result, less work — at a large ε, where rows fall at the first steps,
    most of it; one host sync per step). ``early_stop=False`` runs every row every step (the check)."""
    n = x.shape[0]
    t = noise
    tmax = t.abs().reshape(n, -1).max(1)[0].view(view)
    x_adv = project(x + eps * t / (tmax + 1e-12), lo, hi)
    loss_fn = None if loss_of is None else loss_of(None)

    loss, grad, logits = _loss_and_grad(model, x_adv, y, loss_fn)
    fooled = logits.argmax(1) != y
    # the returned point: first fooling iterate, else the highest-loss one
    out, out_loss, out_fooled = x_adv.clone(), loss.clone(), fooled.clone()
    # the restart point for step-size halving: highest loss so far
    x_best, loss_best, grad_best = x_adv.clone(), loss.clone(), grad.clone()

    step = torch.full((n,) + view[1:], 2.0 * eps, device=x.device, dtype=x.dtype)
    period, decr, min_period = _apgd_checkpoint_lengths(steps)
    since_check = 0
    increases = torch.zeros(n, device=x.device)           # loss rises since the last checkpoint
    prev_loss = loss.clone()
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones(n, dtype=torch.bool, device=x.device)
    x_prev = x_adv.clone()
    # the rows still standing (indices into this run's rows): the per-row state below is theirs
    active: torch.Tensor | None = None
    state = [x_adv, x_prev, grad, x_best, loss_best, grad_best, step, increases, prev_loss,
             loss_best_last_check, reduced_last_check, y, lo, hi]

    def shrink(keep: torch.Tensor) -> None:
        nonlocal active, loss_fn
        active = keep if active is None else active[keep]
        for i, v in enumerate(state):
            state[i] = take_rows(v, keep) if v.dim() > 1 else v[keep]
        loss_fn = None if loss_of is None else loss_of(active)

    if early_stop and bool(fooled.any()):
        shrink((~fooled).nonzero().squeeze(1))
    for i in range(steps):
        (x_adv, x_prev, grad, x_best, loss_best, grad_best, step, increases, prev_loss,
         loss_best_last_check, reduced_last_check, ya, loa, hia) = state
        if ya.shape[0] == 0:
            break
        with torch.no_grad():
            m = 1.0 if i == 0 else momentum
            z = project(x_adv + step * grad.sign(), loa, hia)
            x_new = project(x_adv + m * (z - x_adv) + (1.0 - m) * (x_adv - x_prev), loa, hia)
            x_prev, x_adv = x_adv, x_new

        loss, grad, logits = _loss_and_grad(model, x_adv, ya, loss_fn)
        fooled = logits.argmax(1) != ya
        _select_at(active, out, out_loss, out_fooled, x_adv, loss, fooled)

        with torch.no_grad():
            increases += (loss > prev_loss).float()
            prev_loss = loss.clone()
            _keep_best(loss, x_adv, grad, loss_best, x_best, grad_best)

            since_check += 1
            if since_check == period:
                reduced_last_check, loss_best_last_check = _apgd_checkpoint(
                    period, rho, increases, reduced_last_check, loss_best_last_check, loss_best,
                    step, x_adv, grad, x_best, grad_best)
                since_check = 0
                period = max(period - decr, min_period)
        state = [x_adv, x_prev, grad, x_best, loss_best, grad_best, step, increases, prev_loss,
                 loss_best_last_check, reduced_last_check, ya, loa, hia]
        if early_stop and bool(fooled.any()):
            shrink((~fooled).nonzero().squeeze(1))
    return out, out_loss, out_fooled


def _keep_best(loss, x_adv, grad, loss_best, x_best, grad_best) -> None:
    """Where ``loss`` beats ``loss_best``, the iterate, its gradient and its loss become the row's
    best (in place): the point a halved step restarts from."""
    better = loss > loss_best
    _put_rows(x_best, better, x_adv)
    _put_rows(grad_best, better, grad)
    _put_rows(loss_best, better, loss)


def _apgd_checkpoint(period, rho, increases, reduced_last_check, loss_best_last_check, loss_best,
                     step, x_adv, grad, x_best, grad_best):
    """APGD's checkpoint, reached every ``period`` steps: a row halves its step and restarts from its
    best point and gradient (``step``, ``x_adv``, ``grad`` changed in place) when its loss rose in at
    most ``rho`` of those steps, or when its best loss did not rise since the last checkpoint, which
    did not halve it. Zeroes ``increases``; returns the new ``(reduced_last_check, loss_best_last_check)``."""
    cond1 = increases <= period * rho
    cond2 = ~reduced_last_check & (loss_best_last_check >= loss_best)
    reduce = cond1 | cond2
    reduced, best_at_check = reduce.clone(), loss_best.clone()
    if bool(reduce.any()):
        step[reduce] = step[reduce] / 2.0
        x_adv[reduce] = x_best[reduce]
        grad[reduce] = grad_best[reduce]
    increases.zero_()
    return reduced, best_at_check
