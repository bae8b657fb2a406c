"""Square Attack, L∞ (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020): gradient-free.

A random search over the vertices of the ε-ball: start from vertical stripes of ±ε; at each
iteration, for every row still classified right, set one random square window of side ``s``
(all channels, one random sign ±ε per channel) and keep the change if the margin loss
``z_y − max_{j≠y} z_j`` fell (or the row is now misclassified). The window's share of the
image, p, follows AutoAttack's schedule from ``p_init`` = 0.8 (halved after 10, 50, 200,
500, 1000, 2000, 4000, 6000 and 8000 iterations; AutoAttack does not rescale it to the
query budget, nor does this).

As in the paper's code, each row draws its own window position, and a sign pattern that
would leave the window unchanged is drawn again once and then flipped, so every query
tries a new point. A row stops when it is fooled; the query budget counts every forward
pass of a row, the start included (``queries`` = 5000: at most 5000 forward passes per row).

Exactness: a candidate pixel is one of the per-pixel bounds ``[max(x−ε, 0), min(x+ε, 1)]``
(:func:`rdm.attacks.functions.eps_bounds`, rounded inward) or the current point's value, so the ε-ball
and [0, 1] hold exactly with no arithmetic on pixels. Randomness comes from one generator per
row seeded by ``(seed, row_id, restart)``: a row gets the same search in any batch or shard.

Speed: on CPU, a search on an rdm CNN (≥ :data:`rdm.attacks.incremental.MIN_QUERIES` queries per row) asks
the incremental engine (:mod:`rdm.attacks.incremental`), which recomputes only the activations the window
changed; on any other model a long search (≥ :data:`rdm.attacks.compiled.MIN_ROW_QUERIES` row-queries)
asks a compiled copy (:mod:`rdm.attacks.compiled`). Either is checked to agree with the model, and a row
counts as fooled only when the model itself is.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from rdm.attacks.losses import margin
from rdm.attacks import incremental
from rdm.attacks.compiled import query_model
from rdm.attacks.functions import (check_eps, eval_logits, fast_layout, prepare_batch, row_id_list, take_rows, attack_mode,
                      eps_bounds, row_generator)
from rdm.errors import RdmError, UsageError
from rdm.models import as_class_logits

P_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
              (8000, 256))
CHUNK = 64          # iterations of random numbers drawn per row at a time
# On CPU the search runs on at most this many rows at a time, one piece after the other: the same
# points (each row draws from its own generator), and faster, since a smaller piece's images and
# activations stay in the cache. Measured on the real brain-grouped TRADES model (256 test rows,
# 40 queries, one thread): 64 rows at a time 1.20× the whole batch's row-queries/s answered by the
# model, 1.32× by its compiled copy. On a GPU a piece is one more run of every iteration: no pieces.
SEARCH_ROWS = 64


def p_selection(p_init: float, it: int) -> float:
    """AutoAttack's schedule of the window's share of the image at iteration ``it``."""
    for bound, div in P_SCHEDULE:
        if it <= bound:
            return p_init / div
    return p_init / 512


def window_side(p: float, c: int, h: int, w: int) -> int:
    return min(max(int(round(math.sqrt(p * c * h * w / c))), 1), h, w)


class _RowRandom:
    """Uniform numbers per row from that row's own generator, CHUNK iterations at a time."""

    def __init__(self, seed: int | None, ids: Sequence[int], restart: int, width: int, device):
        self.gens = [row_generator(seed, i, restart) for i in ids]
        self.width, self.device = width, device
        self.buf: torch.Tensor | None = None
        self.pos = CHUNK

    def next(self, alive: torch.Tensor) -> torch.Tensor:
        """Numbers for the next iteration of the rows ``alive`` (indices into the original rows);
        every row advances its own stream, alive or not, so a row's draws never depend on others."""
        if self.pos == CHUNK:
            self.buf = torch.stack([torch.rand(CHUNK, self.width, generator=g) for g in self.gens])
            self.pos = 0
        u = self.buf[:, self.pos]
        self.pos += 1
        return u.index_select(0, alive.cpu()).to(self.device)


def square_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, queries: int = 5000, *,
                p_init: float = 0.8, restarts: int = 1, seed: int | None = None,
                row_ids: Sequence[int] | None = None, first_restart: int = 0,
                count: list | None = None) -> torch.Tensor:
    """Square Attack (L∞, margin loss, untargeted) on one batch; returns, per row, the first point
    that fooled the model, else the lowest-margin point over all restarts. ``restarts`` > 1 reruns
    the search on the rows still classified right; restart r draws from ``(seed, row_id,
    first_restart + r)``.
    ``count``, if given, gets the number of rows of every
    forward pass appended (for tests of the query budget)."""
    eps = check_eps(eps)
    if int(queries) < 1:
        raise UsageError(f"--queries must be at least 1, got {queries}")
    if not 0 < float(p_init) <= 1:
        raise RdmError(f"p_init must be in (0, 1], got {p_init:g}")
    if int(restarts) < 1:
        raise RdmError(f"restarts must be at least 1, got {restarts}")
    if x.dim() != 4:
        raise RdmError(f"Square needs N×C×H×W images, got shape {tuple(x.shape)}")
    x, y = prepare_batch(x, y)
    if eps == 0:
        return x.contiguous()
    ids = row_id_list(row_ids, x.shape[0])
    lo, hi = eps_bounds(x, eps)
    best = x.clone()
    best_m = torch.full((x.shape[0],), math.inf, device=x.device)
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    with attack_mode(model):
        for r in range(int(restarts)):
            rows = torch.arange(x.shape[0], device=x.device) if r == 0 else (~fooled).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            xr, mr, f = _search_in_pieces(model, x, y, lo, hi, rows, int(queries), float(p_init), seed, ids,
                                          int(first_restart) + r, count)
            # a restart's point replaces the earlier one only where it fools or has a lower margin
            # (the rows here are all unfooled so far): the returned point is the best of all restarts
            take = f | (mr < best_m.index_select(0, rows))
            keep = rows[take]
            best[keep], best_m[keep], fooled[keep] = xr[take], mr[take], f[take]
    return best.detach().contiguous()


def _search_in_pieces(model, x, y, lo, hi, rows, queries, p_init, seed, ids, restart, count):
    """:func:`_search` on ``rows``, :data:`SEARCH_ROWS` at a time on CPU (all at once elsewhere); the
    compiled copy is asked for on the whole search's row-queries, so every piece answers alike."""
    step = rows.numel() if x.device.type != "cpu" else max(1, int(SEARCH_ROWS))
    row_queries = rows.numel() * queries
    out = []
    for k in range(0, rows.numel(), step):
        sel = rows[k:k + step]
        out.append(_search(model, take_rows(x, sel), take_rows(y, sel), take_rows(lo, sel), take_rows(hi, sel), queries, p_init,
                           seed, [ids[i] for i in sel.tolist()], restart, count, row_queries))
    if len(out) == 1:
        return out[0]
    return tuple(torch.cat(parts) for parts in zip(*out))


def _search(model, x, y, lo, hi, queries, p_init, seed, ids, restart, count, row_queries=None):
    n, c, h, w = x.shape
    dev = x.device
    rnd = _RowRandom(seed, ids, restart, 2 + 2 * c, dev)        # position (2), two sign draws (2c)

    def confirm(logits, ys, cands):
        """Rows fooled by the answer, confirmed on the model itself when a copy answered (the copy may
        differ in the last bits); this re-classification is not a query of the attack."""
        fooled = logits.argmax(1) != ys
        if query is not model and bool(fooled.any()):
            i = fooled.nonzero().squeeze(1)
            xs = cands(i)
            fooled[i] = eval_logits(model, xs, ys.index_select(0, i))[1].argmax(1) != ys.index_select(0, i)
        return margin(logits, ys).neg(), fooled    # z_y − max other: lower is better

    def forward(xs, ys):
        if count is not None:
            count.append(int(xs.shape[0]))
        with torch.no_grad():
            logits = as_class_logits(query(xs))
        return confirm(logits, ys, lambda i: xs.index_select(0, i))

    # start: vertical stripes, one sign per (row, channel, column)
    up = torch.stack([torch.rand(c, 1, w, generator=g) for g in rnd.gens]).to(dev) < 0.5
    cur = torch.where(up, hi, lo).contiguous(memory_format=fast_layout(x))
    total = n * queries if row_queries is None else row_queries
    eng = incremental.engine(model, cur, queries)            # only what the window changes, or None
    query = query_model(model, cur, total) if eng is None else eng.start
    cur_m, fooled = forward(cur, y)
    ar = torch.arange(max(h, w), device=dev)
    alive = (~fooled).nonzero().squeeze(1)
    for it in range(queries - 1):
        if alive.numel() == 0:
            break
        u = rnd.next(alive)                                         # (alive, 2 + 2c) uniforms
        s = window_side(p_selection(p_init, it), c, h, w)
        vh = (u[:, 0] * (h - s + 1)).long().clamp_(max=h - s)
        vw = (u[:, 1] * (w - s + 1)).long().clamp_(max=w - s)
        # the window of every alive row: its pixels as alive×s×s×C (advanced indexing puts them first)
        at, ri, ci = alive.view(-1, 1, 1), (vh.view(-1, 1) + ar[:s]).view(-1, s, 1), (vw.view(-1, 1) + ar[:s]).view(-1, 1, s)
        wl, wh, wc = lo[at, :, ri, ci], hi[at, :, ri, ci], cur[at, :, ri, ci]
        sign = (u[:, 2:2 + c] < 0.5).view(-1, 1, 1, c)
        cw = torch.where(sign, wh, wl)
        same = (cw == wc).flatten(1).all(1)                         # the window would not change
        if bool(same.any()):
            sign = torch.where(same.view(-1, 1, 1, 1), (u[:, 2 + c:2 + 2 * c] < 0.5).view(-1, 1, 1, c), sign)
            cw = torch.where(sign, wh, wl)
            same = (cw == wc).flatten(1).all(1)
            sign = torch.where(same.view(-1, 1, 1, 1), ~sign, sign)
            cw = torch.where(sign, wh, wl)
        ys = y.index_select(0, alive)

        def cands(i, alive=alive, ri=ri, ci=ci, cw=cw):
            """Whole candidate images of the alive rows ``i``: the current point with its window set, in
            the fast layout (index_select returns contiguous NCHW; channels-last convolves ≈ 3× faster
            on CPU, and a compiled copy checked on channels-last input would recompile for another)."""
            xs = cur.index_select(0, alive.index_select(0, i)).contiguous(memory_format=fast_layout(x))
            xs[torch.arange(i.numel(), device=dev).view(-1, 1, 1), :, ri.index_select(0, i), ci.index_select(0, i)] = \
                cw.index_select(0, i)
            return xs

        if eng is None:
            m, f = forward(cands(torch.arange(alive.numel(), device=dev)), ys)
        else:
            if count is not None:
                count.append(int(alive.numel()))
            logits, patches = eng.query(alive, vh, vw, s, cw)
            m, f = confirm(as_class_logits(logits), ys, cands)
        take = (m < cur_m.index_select(0, alive)) | f
        keep_rows = alive[take]
        if keep_rows.numel():
            cur[keep_rows.view(-1, 1, 1), :, ri[take], ci[take]] = cw[take]
            cur_m[keep_rows] = m[take]
            if eng is not None:
                eng.accept(alive, take, patches)
        fooled[alive[f]] = True
        alive = alive[~f]
    return cur, cur_m, fooled
