"""Atomic writes: a temporary file beside the target, renamed into place on success.

An interrupted or failed run never leaves a half-written output that `make`
would take for finished, and two processes writing the same folder never see
each other's partial files.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence


def temp_path_for(target: Path) -> Path:
    target = Path(target)
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


@contextmanager
def atomic_outputs(targets: Sequence[os.PathLike | str]) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets``; rename all into place only if the block succeeds."""
    targets = [Path(t) for t in targets]
    for t in targets:
        if t.parent and not t.parent.exists():
            t.parent.mkdir(parents=True, exist_ok=True)
    temps = [temp_path_for(t) for t in targets]
    try:
        yield temps
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp in temps:
        if not tmp.exists():
            raise FileNotFoundError(f"internal error: {tmp} was not written")
    for tmp, t in zip(temps, targets):
        os.replace(tmp, t)


@contextmanager
def atomic_output(target: os.PathLike | str) -> Iterator[Path]:
    """Yield one temporary path; it becomes ``target`` only if the block succeeds."""
    with atomic_outputs([target]) as temps:
        yield temps[0]
