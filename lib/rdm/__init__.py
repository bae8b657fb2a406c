"""rdm: adversarial robustness of medical-image classifiers (RDMAA reproduction)."""

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
