"""Row shards of a set (``--shard i/n``) and the checks both merges make (``rdm-attack --merge``
for adversarial sets, ``rdm-eval --merge`` for metrics): every shard given once, and the parts'
rows continuing one another from row 0 to the last row."""

from __future__ import annotations

import re
from typing import Iterable, Sequence, TypeVar

from rdm.errors import RdmError, UsageError

T = TypeVar("T")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` → (i, n) with 0 ≤ i < n; None for None."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise UsageError(f"--shard {text}: expected i/n, e.g. 0/4")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or i >= n:
        raise UsageError(f"--shard {text}: need 0 ≤ i < n")
    return i, n


def shard_range(n_rows: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """Rows [⌊i·N/n⌋, ⌊(i+1)·N/n⌋) of shard (i, n); all rows for None."""
    if shard is None:
        return 0, n_rows
    i, n = shard
    return (i * n_rows) // n, ((i + 1) * n_rows) // n


def in_shard_order(parts: Sequence[tuple[str, int, T]], count: int) -> list[tuple[str, T]]:
    """``(name, shard index, part)`` → ``(name, part)`` in shard order; RdmError when a shard is
    given twice or missing."""
    by_index: dict[int, tuple[str, T]] = {}
    for name, i, part in parts:
        if i in by_index:
            raise RdmError(f"{name}: shard {i}/{count} given twice (also {by_index[i][0]})")
        by_index[i] = (name, part)
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        raise RdmError(f"shards {', '.join(f'{i}/{count}' for i in missing)} are missing")
    return [by_index[i] for i in range(count)]


def check_coverage(spans: Iterable[tuple[str, int, int]], total: int, of: str = "") -> None:
    """The rows ``(name, start, stop)`` of the parts, in shard order, cover [0, total) once;
    ``of`` names the set in the messages (`` of test.h5``)."""
    expect = 0
    for name, start, stop in spans:
        if start != expect or stop < start:
            raise RdmError(f"{name}: rows {start}..{stop}{of} do not continue at row {expect} (overlap or gap)")
        expect = stop
    if expect != total:
        raise RdmError(f"parts cover {expect} of {total} rows{of}")
