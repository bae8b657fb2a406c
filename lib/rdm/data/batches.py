"""The training loop's data: :class:`Source` (one set, with an optional clean target set) and
:class:`Batches` (seeded, shuffled mini-batches, held on the training device when the sets fit in
memory, else streamed with a read-ahead thread; each data-parallel rank gets its slice of every
global batch). :func:`rdm.training.loop.fit` uses them; the order rules are in :mod:`rdm.training.loop`'s notes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from rdm.errors import RdmError
from rdm.data.prefetch import prefetch
from rdm.data.sets import SetReader


DEFAULT_BUFFER_ROWS = 8192


# --------------------------------------------------------------------------- data
@dataclass
class Source:
    """One set fed to the loop. ``target`` (a clean set path) makes each row's target
    the clean row ``target[source_index[row]]``; without it the target is the row itself."""

    path: Path
    target: Path | None = None


class Batches:
    """Seeded mini-batches from one or more sets.

    Each batch has ``x`` (float32 N×C×H×W), ``y`` (int64) and, with
    ``with_target=True``, ``target`` (the clean image to reconstruct).

    Two ways to deliver the same batches:

    * streamed (the default, and for sets larger than ``in_memory_bytes``): chunk reads as
      described in the module notes, read ahead by a background thread
      (:func:`rdm.data.prefetch.prefetch`), batches as numpy arrays;
    * in memory (after :meth:`prepare` on sets of at most ``in_memory_bytes``): every set is
      read once into one tensor (on the GPU for a CUDA device, pinned host memory being the
      staging area), and an epoch's batches are gathered from it by index on the device.
      The epoch's row order is computed by the very same algorithm run on row numbers
      instead of rows, so both ways give the same batches, byte for byte.
    """

    def __init__(self, sources: Sequence[Source], batch_size: int, *, shuffle: bool, seed: int = 0,
                 with_target: bool = False, buffer_rows: int = DEFAULT_BUFFER_ROWS,
                 rank: int = 0, world_size: int = 1, in_memory_bytes: int | None = None):
        if batch_size < 1:
            raise RdmError(f"--batch-size must be at least 1, got {batch_size}")
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.with_target, self.buffer_rows = with_target, max(int(buffer_rows), 1)
        self.rank, self.world_size = int(rank), int(world_size)
        self.in_memory_bytes = default_in_memory_bytes() if in_memory_bytes is None else int(in_memory_bytes)
        self._sources = [Source(Path(s.path), None if s.target is None else Path(s.target)) for s in sources]
        self._readers: list[SetReader] = []
        self._targets: list[SetReader | None] = []
        self._src_index: list[np.ndarray | None] = []
        self._blocks: list[tuple[int, int, int]] = []          # (source, start, stop)
        self._offsets: list[int] = []                          # first global row of each source
        self._mem: dict[str, torch.Tensor] | None = None       # in-memory mode (see prepare)
        try:
            for si, s in enumerate(self._sources):
                r = SetReader(s.path)
                self._offsets.append(sum(x.n for x in self._readers))
                self._readers.append(r)
                t = SetReader(s.target) if (with_target and s.target is not None) else None
                self._targets.append(t)
                self._src_index.append(np.asarray(r.column("source_index"), dtype=np.int64) if t else None)
                chunk = r._f["x"].chunks[0] if r._f["x"].chunks else 128
                for b0 in range(0, r.n, chunk):
                    self._blocks.append((si, b0, min(b0 + chunk, r.n)))
        except BaseException:
            self.close()
            raise
        self.n = sum(r.n for r in self._readers)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    @property
    def in_memory(self) -> bool:
        return self._mem is not None

    def _read_block(self, si: int, b0: int, b1: int) -> dict[str, np.ndarray]:
        r = self._readers[si]
        d = r.read(b0, b1, ["x", "y"])
        if self.with_target:
            t = self._targets[si]
            if t is None:
                d["target"] = d["x"]
            else:
                d["target"] = t.read_rows(self._src_index[si][b0:b1], names=("x",))["x"]
        return d

    def _row_block(self, si: int, b0: int, b1: int) -> dict[str, np.ndarray]:
        """The global row numbers of a block: the order algorithm run on indices."""
        o = self._offsets[si]
        return {"row": np.arange(o + b0, o + b1, dtype=np.int64)}

    def _stream(self, epoch: int, read_block, keys: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        """The epoch's batches by :func:`shuffled_batches`, its generator seeded by (seed, epoch)."""
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch)) if self.shuffle else None
        return shuffled_batches(self._blocks, read_block, keys, g, self.batch_size, self.buffer_rows)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The epoch's global row numbers in batch order (batch ``i`` is rows ``i·B … (i+1)·B``)."""
        parts = [d["row"] for d in self._stream(epoch, self._row_block, ["row"])]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def epoch(self, epoch: int) -> Iterator[dict]:
        """The batches of one epoch; the same ``(seed, epoch)`` gives the same batches."""
        if self._mem is not None:
            yield from self._memory_epoch(epoch)
            return
        keys = ["x", "y"] + (["target"] if self.with_target else [])
        for b in prefetch(self._stream(epoch, self._read_block, keys)):
            yield self._shard(b)

    # ---------------------------------------------------------------- in memory
    def nbytes(self) -> int:
        """Bytes the in-memory mode would hold (images of every source and extra target set)."""
        row = int(np.prod(self._readers[0].info.shape)) * 4 if self._readers else 0
        extra = sum(t.n for t in self._extra_targets().values())
        return (self.n + extra) * (row + 8)

    def _extra_targets(self) -> dict[Path, SetReader]:
        """Target sets that are not themselves among the sources (read into the pool after them)."""
        own = {s.path.resolve() for s in self._sources}
        out: dict[Path, SetReader] = {}
        for s, t in zip(self._sources, self._targets):
            if t is not None and s.target.resolve() not in own:
                out.setdefault(s.target.resolve(), t)
        return out

    def prepare(self, device: torch.device | str) -> "Batches":
        """Hold the sets in memory on ``device`` when they fit in ``in_memory_bytes``; else stream."""
        device = torch.device(device)
        if self._mem is not None or not self.n or self.nbytes() > self.in_memory_bytes:
            return self
        extra = self._extra_targets()
        shape = tuple(self._readers[0].info.shape)
        pin = device.type == "cuda"
        pool, ys, pos = read_pool([*self._readers, *extra.values()], self.n, shape, pin)
        mem = {"x": pool.to(device, non_blocking=pin), "y": ys.to(device, non_blocking=pin)}
        if self.with_target:
            tgt = np.arange(self.n, dtype=np.int64)
            for si, (s, t) in enumerate(zip(self._sources, self._targets)):
                if t is not None:
                    o = self._offsets[si]
                    tgt[o:o + self._readers[si].n] = pos[s.target.resolve()] + self._src_index[si]
            mem["target_row"] = torch.from_numpy(tgt).to(device)
        if pin:
            torch.cuda.synchronize(device)
        self._mem = mem
        return self

    def _memory_epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        mem = self._mem
        order = torch.from_numpy(self.epoch_order(epoch)).to(mem["x"].device)
        for b0 in range(0, self.n, self.batch_size):
            idx = order[b0:b0 + self.batch_size]
            if self.world_size > 1:
                idx = idx[self.rank::self.world_size]
            b = {"y": mem["y"][idx], "x": mem["x"][idx]}
            if self.with_target:
                b["target"] = mem["x"][mem["target_row"][idx]]
            yield b

    # ---------------------------------------------------------------- the rest
    def global_rows(self, i: int) -> int:
        """Rows of the ``i``-th batch of an epoch before the split across ranks (all batches
        are full but the last)."""
        return min(self.batch_size, self.n - i * self.batch_size)

    def _shard(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.world_size == 1:
            return batch
        return {k: v[self.rank::self.world_size] for k, v in batch.items()}

    def close(self) -> None:
        self._mem = None
        for r in [*self._readers, *[t for t in self._targets if t is not None]]:
            try:
                r.close()
            except Exception:
                pass

    def __enter__(self) -> "Batches":
        return self

    def __exit__(self, *a) -> None:
        self.close()


# --------------------------------------------------------------------------- helpers of Batches
def shuffled_batches(blocks: Sequence[tuple[int, int, int]], read_block, keys: Sequence[str],
                     g: torch.Generator | None, batch_size: int,
                     buffer_rows: int) -> Iterator[dict[str, np.ndarray]]:
    """The order algorithm (module notes): blocks permuted, buffers of rows permuted.

    ``blocks`` are ``(source, start, stop)``, read by ``read_block`` into arrays under ``keys``;
    ``g`` (None: no shuffling) draws the block order, then one permutation per buffer (blocks are
    read until it holds ``buffer_rows`` rows); every batch has ``batch_size`` rows but the epoch's last."""
    order = list(range(len(blocks)))
    if g is not None:
        order = torch.randperm(len(order), generator=g).tolist()
    pending: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    held = 0
    i = 0
    while i < len(order) or held:
        while i < len(order) and held < buffer_rows:
            d = read_block(*blocks[order[i]])
            for k in keys:
                pending[k].append(d[k])
            held += len(d[keys[0]])
            i += 1
        buf = {k: np.concatenate(v) for k, v in pending.items()}
        if g is not None:
            perm = torch.randperm(held, generator=g).numpy()
            buf = {k: v[perm] for k, v in buf.items()}
        last = i >= len(order)
        cut = held if last else (held // batch_size) * batch_size
        for b0 in range(0, cut, batch_size):
            yield {k: v[b0:b0 + batch_size] for k, v in buf.items()}
        pending = {k: [v[cut:]] for k, v in buf.items()}
        held -= cut


def read_pool(readers: Sequence[SetReader], n: int, shape: tuple[int, ...],
              pin: bool) -> tuple[torch.Tensor, torch.Tensor, dict[Path, int]]:
    """Every row of ``readers``, one after the other, in one float32 tensor (pinned when ``pin``):
    ``(images, labels of the first n rows, first row of each set by its resolved path)``."""
    total = sum(r.n for r in readers)
    pool = torch.empty((total, *shape), dtype=torch.float32, pin_memory=pin)
    ys = torch.empty(n, dtype=torch.int64, pin_memory=pin)
    pos: dict[Path, int] = {}
    at = 0
    for r in readers:
        pos.setdefault(Path(r.path).resolve(), at)
        for b0 in range(0, r.n, 4096):
            d = r.read(b0, min(b0 + 4096, r.n), ["x", "y"])
            pool[at + b0:at + b0 + len(d["y"])] = torch.from_numpy(d["x"])
            if at < n:
                ys[at + b0:at + b0 + len(d["y"])] = torch.from_numpy(d["y"].astype(np.int64))
        at += r.n
    return pool, ys, pos


def default_in_memory_bytes() -> int:
    """Sets up to this size are held in memory by :meth:`Batches.prepare` (``RDM_IN_MEMORY_MB``,
    default 2048 MB; 0 always streams)."""
    try:
        return int(float(os.environ.get("RDM_IN_MEMORY_MB", "2048")) * 2 ** 20)
    except ValueError:
        return 2048 * 2 ** 20


def epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2 ** 63)


def to_device(batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors on ``device`` (numpy arrays or tensors in); images channels-last (about 25 %
    faster convolutions on CPU)."""
    out = {}
    for k, v in batch.items():
        t = v if torch.is_tensor(v) else torch.from_numpy(np.ascontiguousarray(v))
        t = t.to(device, non_blocking=True)
        out[k] = t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
    return out
