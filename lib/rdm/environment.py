"""Where a computation ran: the ``environment`` record of evaluation reports and checkpoints.

``{"device": "cpu" | "cuda:0", "device_name": <CPU model or GPU name>, "torch": <version>,
"precision": "fp32" | "bf16"}``: the same four keys in every ``rdm-eval`` report and in the
training metadata of every checkpoint, so a table can say on what hardware each number was made.
"""

from __future__ import annotations

import platform
from functools import lru_cache

import torch

from rdm.errors import RdmError, UsageError
from rdm.precision import check_precision


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model (``model name`` of /proc/cpuinfo; the platform's word where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def environment(device: torch.device | str = "cpu", precision: str = "fp32") -> dict[str, str]:
    """The record of where a run on ``device`` at ``precision`` happens (see the module doc)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return {"device": f"cuda:{index}", "device_name": torch.cuda.get_device_name(index),
                "torch": torch.__version__, "precision": check_precision(precision)}
    return {"device": dev.type, "device_name": cpu_name(), "torch": torch.__version__,
            "precision": check_precision(precision)}


def resolve_device(spec: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a torch device; one line for a device this machine lacks."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        try:
            dev = torch.device(spec)
        except (RuntimeError, ValueError):
            raise UsageError(f"--device {spec}: expected auto, cpu, cuda or cuda:N") from None
        if not torch.cuda.is_available():
            raise RdmError(f"--device {spec}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RdmError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise UsageError(f"--device {spec}: expected auto, cpu, cuda or cuda:N")   # meta, mps, ...: bad usage
