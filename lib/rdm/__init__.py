"""rdm: adversarial robustness of medical-image classifiers (RDMAA reproduction).

The notebook API (:mod:`rdm.api.notebook`, loaded on first use: ``import rdm`` imports no torch)::

    import rdm
    ev = rdm.evaluate(model, (x, y), attack="pgd", eps=8/255)    # typed results, 95 % intervals
    adv = rdm.attack(model, (x, y), attack="fgsm", eps=0.01).adversarial
    cert = rdm.certify(model, (x, y), sigma=0.25, n=1000)
"""

import os as _os

# Transparent huge pages for PyTorch's large CPU tensors (PyTorch reads THP_MEM_ALLOC_ENABLE once, at
# its first CPU allocation, so it is set here, before any rdm module imports torch). Without it every
# activation of ≥ 32 MiB (a brain batch of 64 through the first convolution) is a fresh mmap whose
# 4 KiB pages fault in one by one: a third to a half of a CPU run's time went to the kernel. Measured
# on this repository's CPU (brain CNN, one thread; tests/bench/allocator.py, `make bench`): training
# 1.7×, PGD-10 1.6–1.8×, a DCAE step 1.5× and 1,000 noisy forwards 1.8× faster, page faults 10–25×
# fewer, peak RSS no higher. THP_MEM_ALLOC_ENABLE=0 in the environment turns it off; no effect where
# the kernel's transparent_hugepage is "never", or where torch was imported (and allocated) before rdm.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"

_LAZY = {"evaluate": "rdm.api.notebook", "attack": "rdm.api.notebook", "certify": "rdm.api.notebook",
         "Evaluation": "rdm.api.notebook", "Result": "rdm.api.notebook", "Estimate": "rdm.api.notebook",
         "Attacked": "rdm.api.notebook", "Certification": "rdm.api.notebook", "RdmError": "rdm.errors"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rdm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
