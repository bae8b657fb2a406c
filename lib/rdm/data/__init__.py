"""Data: sets, checkpoints, presets, atomic writes, provenance, shards and batches."""
