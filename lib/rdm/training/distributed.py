"""Data-parallel training under ``torchrun`` (the launcher clusters already have; rdm has none).

``torchrun --nproc-per-node K $(which rdm-train-cnn) …`` starts K copies of a training
command with ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` (and the rendezvous address) in the
environment. :func:`rdm.training.loop.fit` then calls :func:`setup`: the process group is
initialised (gloo on CPU, nccl on GPU, each rank on GPU ``LOCAL_RANK``), the model is
wrapped in DistributedDataParallel, and each rank trains on its strided slice of every
GLOBAL batch (``--batch-size`` keeps its meaning: the rows per optimizer step over all
ranks). Each rank's loss is weighted by its share of the global batch, so the all-reduced
gradient is the gradient of the global batch mean and the weights follow a
single-process run with the same seed (up to float summation order). Only rank 0 logs
and writes files. Without these variables (no torchrun, or ``WORLD_SIZE=1``) nothing
changes.

Not bit-identical to one process, only close: summation order of the all-reduce; the
RNG-driven parts of a step see each rank's own rows (dropout masks — the leukemia head
has dropout — and on-line PGD random starts are drawn per rank, from the same seed, so
a run is reproducible for a given K but not equal to the K = 1 run).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rdm.errors import RdmError

if TYPE_CHECKING:   # torch is imported where it is used: cli.emit asks is_main() in every tool
    import torch


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def main(self) -> bool:
        return self.rank == 0


def env_world() -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) from torchrun's environment, or None when not under it."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        rank = int(os.environ.get("RANK", "0") or 0)
        local = int(os.environ.get("LOCAL_RANK", str(rank)) or 0)
    except ValueError:
        raise RdmError("WORLD_SIZE/RANK/LOCAL_RANK must be integers (set by torchrun)") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise RdmError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return rank, world, local


def is_main() -> bool:
    """True unless this is a non-zero rank of a torchrun job (then it must not write files)."""
    w = env_world()
    return w is None or w[0] == 0


def setup(device: torch.device) -> tuple[Context | None, torch.device]:
    """Join the torchrun job (once per process); returns the context and this rank's device."""
    w = env_world()
    if w is None:
        return None, device
    import torch
    import torch.distributed as dist

    rank, world, local = w
    if not dist.is_available():
        raise RdmError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise RdmError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} GPU(s) are visible")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)   # env:// rendezvous set up by torchrun
        atexit.register(_teardown)
    return Context(rank, world, local, dist.get_backend()), device


def _teardown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def finish() -> None:
    """End the job together: wait until every rank is here (rank 0 has written its files), then
    destroy the process group. A rank that left first and tore gloo down while its peer was
    still writing was seen to abort ("terminate called without an active exception") in CI.

    The DistributedDataParallel wrapper holds the process group and sits in reference cycles (its
    reducer's hooks), so it may be freed only by the cyclic collector — at interpreter exit, after
    the group was destroyed, where gloo's threads are torn down with the interpreter and the rank
    aborted the same way (once in CI at 19f4f23, the non-writing rank). Collect it here, while
    the group and the interpreter are alive."""
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
        gc.collect()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel (parameters broadcast from rank 0)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def all_sum(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Sum the numbers of a dict over all ranks (same keys on every rank)."""
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: (int(v) if isinstance(values[k], int) else float(v)) for k, v in zip(keys, t.tolist())}
