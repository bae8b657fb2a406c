"""Data: sets, checkpoints, presets, atomic writes, provenance, shards and batches.

For other pipelines (torchvision, MONAI, pandas): :class:`H5Dataset` (a torch ``Dataset`` over a
set), :func:`write_set` (a set from arrays) and :func:`columns` (the per-row columns), from
:mod:`rdm.data.torchsets`, loaded on first use so that ``import rdm.data`` stays cheap.
"""

_LAZY = {"H5Dataset": "rdm.data.torchsets", "write_set": "rdm.data.torchsets", "columns": "rdm.data.torchsets"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rdm.data' has no attribute {name!r}")
