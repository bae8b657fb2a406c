"""Bounds of every seed and count a command takes: one definition each, checked when parsed.

A value outside its bound is bad usage (exit 2), never a run that wraps a seed modulo 2⁶⁴ or
counts to 10²⁰ until it is killed. The maxima sit far above any sensible run and far below harm.

=================  ==========================================  ============
name               options                                     maximum
=================  ==========================================  ============
``SEED_MAX``       ``--seed`` (every command; minimum 0)       2⁶³ − 1
``MAX_EPOCHS``     ``--epochs``, ``--patience``                100 000
``MAX_STEPS``      ``--steps`` (attacks, on-line training)     100 000
``MAX_RESTARTS``   ``--restarts``                              10 000
``MAX_QUERIES``    ``--queries``                               100 000 000
``MAX_SAMPLES``    ``rdm-certify --n``, ``--n0``               100 000 000
``MAX_IMAGES``     ``rdm-prep --n``, ``--group-cap``           10 000 000 (a set's row bound)
``MAX_BATCH``      ``--batch-size``                            1 000 000
``MAX_HYPER_INT``  any integer ``--attack-param NAME=VALUE``   100 000 000
=================  ==========================================  ============
"""

from __future__ import annotations

SEED_MIN = 0
SEED_MAX = 2 ** 63 - 1          # torch.manual_seed and numpy take 64-bit seeds; larger ones would wrap
MAX_EPOCHS = 100_000
MAX_STEPS = 100_000
MAX_RESTARTS = 10_000
MAX_QUERIES = 100_000_000
MAX_SAMPLES = 100_000_000
MAX_IMAGES = 10_000_000
MAX_BATCH = 1_000_000
MAX_HYPER_INT = MAX_QUERIES     # any integer hyper-parameter of an attack (--attack-param NAME=VALUE too)


def check_seed(seed: int, what: str = "--seed") -> int:
    """``seed`` as an int in [SEED_MIN, SEED_MAX]; ValueError otherwise (the library's own check,
    for callers that bypass the command line)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not SEED_MIN <= seed <= SEED_MAX:
        raise ValueError(f"{what} must be an integer in [{SEED_MIN}, 2**63 - 1], got {seed!r}")
    return seed
