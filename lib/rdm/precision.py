"""``--precision fp32|bf16``: where the arithmetic of a forward/backward pass may drop to bfloat16.

``bf16`` runs the model under :func:`torch.autocast` (bfloat16 convolutions and matrix
products; the loss, reductions and softmax stay float32 by autocast's own rules). Everything
outside the model stays float32: the inputs and their gradients, the optimizer and weights,
the ε-ball bounds and the projection (an attack's ``clamp`` against float32 bounds), and
every stored image, so ``|x_adv − x| ≤ ε`` and ``[0, 1]`` hold exactly in either precision.
CUDA runs bf16 natively (Ampere and later); on CPU autocast works everywhere but is only
fast on cores with native bf16 (AVX512-BF16/AMX), so ``fp32`` stays the default.
"""

from __future__ import annotations

import contextlib
from enum import Enum

import torch

from rdm.errors import RdmError


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"

    def __str__(self) -> str:
        return self.value


def check_precision(p: str | Precision | None) -> str:
    v = str(p.value if isinstance(p, Precision) else (p or "fp32")).lower()
    if v not in {e.value for e in Precision}:
        raise RdmError(f"--precision {p}: expected fp32 or bf16")
    return v


def autocast(device: torch.device | str, precision: str | Precision | None = "fp32"):
    """A context in which the model computes in ``precision`` on ``device`` (fp32: no change)."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
