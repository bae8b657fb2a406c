"""How a command turns ``-o`` into output paths (the library receives paths; it never names files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from rdm.errors import UsageError
from rdm.evaluation.labels import fmt_eps   # the one spelling of ε in file names (the plan's targets use it)


def output_paths(output: os.PathLike | str, specs: Sequence, set_path: os.PathLike | str,
                 shard: tuple[int, int] | None = None) -> list[Path]:
    """``rdm-attack -o``: one path per spec: a pattern with ``{eps}`` (``adv/test-fgsm-{eps}.h5``),
    an existing directory (files ``<set>-<attack>-<eps>[.part<i>of<n>].h5``), or (one ε) a file path."""
    out = str(output)
    suffix = f".part{shard[0]}of{shard[1]}" if shard else ""
    if "{eps}" in out:
        paths = [Path(out.replace("{eps}", fmt_eps(s.eps))) for s in specs]
    elif Path(out).is_dir() or out.endswith(os.sep):
        paths = [Path(out) / f"{Path(set_path).stem}-{s.name}-{fmt_eps(s.eps)}{suffix}.h5" for s in specs]
    elif len(specs) == 1:
        paths = [Path(out)]
    else:
        raise UsageError(f"-o {out}: several --eps need -o with '{{eps}}' in it "
                         "(e.g. adv/test-fgsm-{eps}.h5) or an existing directory")
    if len(set(paths)) != len(paths):
        raise UsageError(f"-o {out}: two ε values map to the same file")
    for p in paths:
        if p.is_dir():
            raise UsageError(f"{p}: is a directory, expected a file path for -o")
    return paths
