"""The small steps the graph runs besides the rdm-* commands (``python -m rdm.pipeline.grid SUBCOMMAND``):
the matched ε, the seeded subset, the content stamps and the stage timer."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

from rdm.data.atomic import atomic_output
from rdm.errors import RdmError


# --------------------------------------------------------------------------- matched ε
def accuracy_curve(path: str | Path) -> list[tuple[float, float]]:
    """(ε, accuracy) of every result of a white-box sweep's metrics file (clean = ε 0)."""
    rep = json.loads(Path(path).read_text())
    pts = []
    for r in rep["results"]:
        e = float(r["attack"]["eps"]) if r.get("attack") else 0.0
        pts.append((e, float(r["metrics"]["accuracy"])))
    return sorted(set(pts))


def matched_eps(curve: list[tuple[float, float]], target: float) -> tuple[float, bool]:
    """Smallest ε where accuracy falls to ``target`` (log-linear interpolation between
    sweep points). Returns (ε, reached); when never reached, the largest ε swept."""
    pts = [(e, a) for e, a in curve if e > 0]
    if not pts:
        raise RdmError("the sweep has no ε > 0")
    if pts[0][1] <= target:
        return pts[0][0], True
    for (e0, a0), (e1, a1) in zip(pts, pts[1:]):
        if a1 <= target < a0 or a1 <= target <= a0:
            t = (a0 - target) / (a0 - a1) if a0 != a1 else 1.0
            le = math.log(e0) + t * (math.log(e1) - math.log(e0))
            return float(f"{math.exp(le):.4g}"), True
    return pts[-1][0], False


def sweep_kind(path: str | Path) -> str:
    """The attack of a white-box ε sweep's metrics file (``fgsm``), as its results record it."""
    try:
        rep = json.loads(Path(path).read_text())
        kinds = {str(r["attack"]["name"]) for r in rep["results"] if r.get("attack")}
    except FileNotFoundError:
        raise RdmError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RdmError(f"{path}: not an rdm-eval report ({e})") from None
    if len(kinds) != 1:
        raise RdmError(f"{path}: expected the results of one attack over ε, found {sorted(kinds) or 'none'}")
    return kinds.pop()


def write_matched(paper: dict[str, Any], modality: str, sweeps: list[str | Path], out: str | Path) -> dict:
    """``matched.json``: for the attack of each of the baseline's white-box sweeps (fgsm, pgd), the ε
    where the baseline falls to the paper's accuracy (``paper[kind]``, default 50 %)."""
    res: dict[str, Any] = {"modality": modality}
    for f in sweeps:
        kind = sweep_kind(f)
        target = float(paper.get(kind, 0.5))
        curve = accuracy_curve(f)
        eps, reached = matched_eps(curve, target)
        res[kind] = eps
        res[f"{kind}_detail"] = {"paper_accuracy": target, "reached": reached, "curve": curve,
                                 "sweep": str(f)}
    with atomic_output(out) as tmp:
        Path(tmp).write_text(json.dumps(res, indent=2) + "\n")
    return res


# --------------------------------------------------------------------------- the seeded subset
def subset_rows(of: int, n: int, seed: int = 0):
    """The rows of a set of ``of`` rows that :func:`write_subset` keeps (sorted): ``n`` of them, seeded."""
    import numpy as np

    return np.sort(np.random.default_rng(seed).permutation(int(of))[:min(int(n), int(of))])


def subset_index(sub: str | Path, full: str | Path):
    """The row of ``full`` each row of the subset ``sub`` came from (from the subset's provenance:
    its seed, rows and the size of its source), or None when that cannot be told: no such
    provenance, or the labels of those rows of ``full`` are not the subset's labels."""
    import numpy as np

    from rdm.data.sets import SetReader

    with SetReader(sub) as rs, SetReader(full) as rf:
        prov = rs.info.provenance
        args = prov.get("arguments") or {}
        if not isinstance(args, dict) or args.get("of") != rf.n or args.get("rows") != rs.n or prov.get("seed") is None:
            return None
        rows = subset_rows(rf.n, rs.n, int(prov["seed"]))
        if len(rows) != rs.n or not np.array_equal(rf.column("y")[rows], rs.column("y")):
            return None
    return rows


def write_subset(src: str, n: int, out: str, seed: int = 0) -> None:
    """A seeded random subset of ``n`` rows (order kept), for the expensive white-box attacks."""
    from rdm.data.sets import SetReader, SetWriter, make_provenance, validate_set

    validate_set(src, check_values=False)
    with SetReader(src) as r:
        rows = subset_rows(r.n, n, seed)
        k = len(rows)
        cols = [c for c in ("group", "id") if r.has(c)]
        data = r.read_rows(rows, names=["x", "y", *cols])
        prov = make_provenance(arguments={"rows": k, "of": r.n}, seed=seed, inputs=[src])
        with SetWriter(out, shape=r.info.shape, classes=r.info.classes, modality=r.info.modality,
                       preset=r.info.preset, provenance=prov, columns=cols) as w:
            w.append(data["x"], data["y"], **{c: data[c] for c in cols})


# --------------------------------------------------------------------------- the raw data
def check_data(grid: dict[str, Any], data_root: str | Path, modalities: list[str] | None = None) -> None:
    """RdmError (one line) unless each modality's data folder (the grid's ``source``) is under ``data_root``."""
    names = modalities or list(grid["modalities"])
    for m in names:
        if m not in grid["modalities"]:
            raise RdmError(f"unknown modality '{m}' (grid has {', '.join(grid['modalities'])})")
        src = grid["modalities"][m]["source"]
        if not (Path(data_root) / src).is_dir():
            raise RdmError(f"DATA_ROOT={data_root} lacks {src}/ (the data of {m}; README: 'Getting the data'), "
                           "or run: make tables DATA_ROOT=/path/to/data")


# --------------------------------------------------------------------------- content stamps
def write_if_changed(path: str | Path, text: str) -> bool:
    """Replace ``path`` atomically with ``text`` unless it already holds it (its mtime is then kept)."""
    p = Path(path)
    if p.is_file() and p.read_text() == text:
        return False
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(p) as tmp:
        Path(tmp).write_text(text)
    return True


def fingerprint(src: str | Path) -> str:
    """``sha256sum``-style lines for every file under ``src`` (sorted; ``*.md`` notes skipped)."""
    root = Path(src)
    if not root.is_dir():
        raise RdmError(f"{src}: no such data folder")
    lines = []
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() != ".md"):
        lines.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(root).as_posix()}\n")
    if not lines:
        raise RdmError(f"{src}: the data folder is empty")
    return "".join(lines)


# --------------------------------------------------------------------------- the stage timer
def timed(log: str | Path, stage: str, cmd: list[str]) -> tuple[int, float]:
    """Run ``cmd``; append ``{stage, seconds, rc, end}`` to the JSON-lines ``log``. (rc, seconds)."""
    t0 = time.time()
    rc = subprocess.call(cmd)
    dt = time.time() - t0
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(json.dumps({"stage": stage, "seconds": round(dt, 2), "rc": rc, "end": time.time()}) + "\n")
    return rc, dt
