"""Square's queries on an rdm CNN, answered by recomputing only what the window changed.

Square (:mod:`rdm.attacks.square`) changes one small square window of the current point per query: from
iteration 500 the window is at most 14 px of a 64 px side, from 1,000 at most 10 (AutoAttack's p
schedule). A 3×3 convolution changes only the window and a 1-pixel ring around it, a 2×2
max-pooling only the pooled cells that cover those, and so on down the encoder. This engine
keeps every row's activations at the input of each convolution and at the encoder's output, and
for a candidate recomputes each convolution on the smallest patch that holds every value the
window can change (the same patch size for every row of an iteration, each row at its own
place), then runs the dense head on the whole feature map (a few per cent of the work).

It answers exactly what the model computes, up to the last bits of float32 rounding (a
convolution over a patch may sum in another order than over the whole image). So, like the
compiled copy (:mod:`rdm.attacks.compiled`), it is used only where that cannot change a result:

* it is checked against the model on the first batch: the logits of the start point and of one
  small-window candidate per row must pass :func:`rdm.attacks.compiled.agrees` (within
  :data:`rdm.attacks.compiled.AGREE`, the same predicted classes); else the model (or its compiled copy) answers every query;
* it only guides the random search (which candidate to keep); a row counts as fooled only when
  the model itself is fooled by that candidate, and the suite re-classifies every returned image
  with the model.

It applies to :class:`rdm.models.CNN` itself in eval mode, float32, on CPU, with no hooks and
autocast off (anything else, a user's adapter included, is answered by the model), under the same
switch as the compiled copy: ``RDM_COMPILE=auto`` on CPU for a search of at least
:data:`MIN_QUERIES` queries per row, however few its rows (unlike the copy it costs nothing to set
up: two forward passes and one query for its check; it pays once the window has shrunk, after the
first 10 iterations), ``1`` always on CPU, ``0`` never.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rdm.attacks.compiled import agrees, mode
from rdm.models import CNN

MIN_QUERIES = 100       # per row; at iterations 11–50 the window is 40 of 64 px and a query already
                        # costs 0.65 of a forward pass (leukaemia TRADES model, 64 rows, one thread)


def wanted(device: torch.device, queries: int) -> bool:
    """Whether a search of ``queries`` queries per row on ``device`` should ask the engine."""
    m = mode()
    if m == "0" or device.type != "cpu":
        return False
    return m == "1" or int(queries) >= MIN_QUERIES

def supports(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether the engine can answer for ``model`` on ``x``: a plain CNN, eval mode, float32 CPU."""
    if type(model) is not CNN or model.training or x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    enc = model.encoder
    convs = [getattr(enc, f"conv{i + 1}") for i in range(enc.blocks)]
    for conv in convs:
        if (conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1)
                or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"):
            return False
        if conv.weight.dtype != torch.float32:
            return False
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return False
    h, w = x.shape[2:]
    for _ in convs:
        if h < 2 or w < 2:
            return False
        h, w = h // 2, w // 2
    return h >= 1 and w >= 1


def _starts(r: torch.Tensor, length: int, pooled: int) -> tuple[torch.Tensor, int]:
    """Pooled cells a change of ``length`` from ``r`` (per row) can reach through conv + pool:
    their first index per row and their (fixed) count, kept inside ``pooled``."""
    n = min(int(length + 2) // 2 + 1, pooled)
    first = torch.div(r - 1, 2, rounding_mode="floor").clamp_(min=0).clamp_(max=pooled - n)
    return first, n


def _patch_index(r: torch.Tensor, c: torch.Tensor, ph: int, pw: int):
    """Row/column index tensors of a ph×pw patch starting at (r, c), one per row, for
    advanced indexing of an N×H×W×C tensor."""
    dev = r.device
    ri = r.view(-1, 1, 1) + torch.arange(ph, device=dev).view(1, ph, 1)
    ci = c.view(-1, 1, 1) + torch.arange(pw, device=dev).view(1, 1, pw)
    return ri, ci


class Engine:
    """The activations of one search's rows and the queries on them (see the module's docstring)."""

    def __init__(self, model: CNN):
        self.model = model
        enc = model.encoder
        self.convs = [getattr(enc, f"conv{i + 1}") for i in range(enc.blocks)]
        self.mean = model.normalize.mean
        self.std = model.normalize.std
        self.acts: list[torch.Tensor] = []     # padded conv inputs (N×H+2×W+2×C), then the encoder's output

    # ------------------------------------------------------------------ whole rows
    def _full(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        a = (x - self.mean) / self.std
        acts = []
        for conv in self.convs:
            p = F.pad(a, (1, 1, 1, 1))
            acts.append(p.permute(0, 2, 3, 1).contiguous())
            a = F.max_pool2d(F.relu(F.conv2d(p, conv.weight, conv.bias)), 2)
        acts.append(a.permute(0, 2, 3, 1).contiguous())
        return self._head(acts[-1]), acts

    def _head(self, feat_nhwc: torch.Tensor) -> torch.Tensor:
        return self.model.head(torch.flatten(feat_nhwc.permute(0, 3, 1, 2), 1))

    def start(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits on ``x`` (the search's start points), keeping every row's activations."""
        with torch.no_grad():
            logits, self.acts = self._full(x)
        return logits

    # ------------------------------------------------------------------ one window per row
    def query(self, alive: torch.Tensor, vh: torch.Tensor, vw: torch.Tensor, s: int, win: torch.Tensor):
        """Logits of the rows ``alive`` with their s×s window at (vh, vw) set to ``win``
        (alive×s×s×C pixels), and what :meth:`accept` needs to make those the current points."""
        with torch.no_grad():
            c_ = self.mean.numel()
            new = (win - self.mean.view(1, 1, 1, c_)) / self.std.view(1, 1, 1, c_)   # alive×s×s×C, normalised
            r, c, lr, lc = vh, vw, s, s                                    # changed region of this level
            m = alive.numel()
            rows = torch.arange(m, device=alive.device).view(-1, 1, 1)
            sel = alive.view(-1, 1, 1)
            patches = [(r, c, new)]
            for li, conv in enumerate(self.convs):
                cache = self.acts[li]                                      # padded input, N×H+2×W+2×C
                h, w = cache.shape[1] - 2, cache.shape[2] - 2
                pr, nr = _starts(r, lr, h // 2)
                pc, nc = _starts(c, lc, w // 2)
                ri, ci = _patch_index(2 * pr, 2 * pc, 2 * nr + 2, 2 * nc + 2)
                patch = cache[sel, ri, ci]                                 # m×(2nr+2)×(2nc+2)×C
                ri2, ci2 = _patch_index(r + 1 - 2 * pr, c + 1 - 2 * pc, lr, lc)
                patch[rows, ri2, ci2] = new
                out = F.max_pool2d(F.relu(F.conv2d(patch.permute(0, 3, 1, 2), conv.weight, conv.bias)), 2)
                new = out.permute(0, 2, 3, 1)                              # m×nr×nc×F
                r, c, lr, lc = pr, pc, nr, nc
                patches.append((r, c, new))
            feat = self.acts[-1].index_select(0, alive)
            ri, ci = _patch_index(r, c, lr, lc)
            feat[rows, ri, ci] = new
            logits = self._head(feat)
        return logits, patches

    def accept(self, alive: torch.Tensor, take: torch.Tensor, patches) -> None:
        """Make the candidates of ``alive[take]`` (from :meth:`query`) those rows' current points."""
        if not bool(take.any()):
            return
        keep = alive[take].view(-1, 1, 1)
        for li, (r, c, new) in enumerate(patches):
            r, c, new = r[take], c[take], new[take]
            if li < len(self.convs):                                       # a conv input: padded
                ri, ci = _patch_index(r + 1, c + 1, new.shape[1], new.shape[2])
            else:
                ri, ci = _patch_index(r, c, new.shape[1], new.shape[2])
            self.acts[li][keep, ri, ci] = new


def engine(model: nn.Module, x: torch.Tensor, queries: int) -> Engine | None:
    """An :class:`Engine` for a search of ``queries`` queries per row on ``x``, or None (not
    wanted, not a plain CNN, or it disagreed with the model on ``x``: see the module's docstring)."""
    if not supports(model, x) or not wanted(x.device, queries):
        return None
    eng = Engine(model)
    try:
        with torch.no_grad():
            want = model(x)
            got = eng.start(x)
            if not agrees(got, want):
                return None
            # one small-window candidate per row, in the middle, all channels at their maximum
            n, _, h, w = x.shape
            s = max(1, min(h, w) // 6)
            vh = torch.full((n,), (h - s) // 2, dtype=torch.long)
            vw = torch.full((n,), (w - s) // 3, dtype=torch.long)
            win = torch.ones(n, s, s, x.shape[1])
            got, _ = eng.query(torch.arange(n), vh, vw, s, win)
            cand = x.clone()
            cand[:, :, (h - s) // 2:(h - s) // 2 + s, (w - s) // 3:(w - s) // 3 + s] = 1.0
            if not agrees(got, model(cand)):
                return None
    except Exception:          # an optimisation: any failure means the model answers
        return None
    return eng
