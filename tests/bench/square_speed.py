"""The Square section of ``make bench``: its queries answered by the model itself (``RDM_COMPILE=0``)
against a compiled copy (``RDM_COMPILE=1``, :mod:`rdm.attacks.compiled`), in this process, one thread.

Per preset CNN (random weights, seed 0; phantom inputs): 128 rows, an ε too small to fool any
row (1e-4), so every query is a forward pass of the whole batch; each setting runs ``queries``
iterations after a warm-up call (which, for the compiled copy, includes the compilation: reported
apart as ``warmup_s``). Recorded: row-queries per second of each, their ratio, and whether both
returned the same points (they should: the copy only answers queries, and on these models its
logits were bit-identical).

The compiled copy is measured with the incremental engine (:mod:`rdm.attacks.incremental`) switched off, since
on an rdm CNN the engine answers in its place. The engine is measured apart (``incremental``), on the
small windows where a search spends most of its queries (``p_init`` = 0.05: windows of 14, 10, then 7
px on a 64 px side, as at iterations 500–4,000 of a 5,000-query search) against the compiled copy on the
same windows: 128 rows, 80 queries, after a warm-up of each.

Then the search in pieces (``rdm.attacks.square.SEARCH_ROWS`` rows at a time on CPU) against one search of all
rows: 256 rows, answered by the compiled copy, after a warm-up of each; recorded as ``pieces``.
"""

from __future__ import annotations

import os
import time

import torch


def square_section(quick: bool) -> dict:
    from bench import make_model, phantoms, PRESETS, log
    from rdm.attacks import compiled
    from rdm.attacks import incremental
    from rdm.models import predict
    from rdm.attacks.square import square_linf

    queries = 30 if quick else 80
    old = os.environ.get("RDM_COMPILE")
    real_engine = incremental.engine
    out: dict = {"queries": queries, "rows": 128, "eps": 1e-4, "presets": {}}
    try:
        for name in PRESETS:
            model, p, _ = make_model(name)
            xs, _ys = phantoms(p, 128, seed=2)
            x = torch.from_numpy(xs)
            with torch.no_grad():
                y = predict(model(x))
            r: dict = {}
            pts = {}
            incremental.engine = lambda *a: None                          # the compiled copy alone
            for mode in ("0", "1"):
                os.environ["RDM_COMPILE"] = mode
                t0 = time.perf_counter()
                square_linf(model, x, y, 1e-4, 2, seed=0)                  # warm-up (and compile)
                warm = time.perf_counter() - t0
                count: list[int] = []
                t0 = time.perf_counter()
                pts[mode] = square_linf(model, x, y, 1e-4, queries, seed=0, count=count)
                s = time.perf_counter() - t0
                r["compiled" if mode == "1" else "eager"] = {"s": s, "row_queries_s": sum(count) / s,
                                                             "warmup_s": warm}
            r["compile_used"] = model in compiled._used
            incremental.engine = real_engine
            r["incremental"] = _incremental(model, x, y, queries, square_linf, incremental)
            r["pieces"] = _pieces(model, name, queries, square_linf)
            r["speedup"] = r["compiled"]["row_queries_s"] / r["eager"]["row_queries_s"]
            r["same_points"] = bool(torch.equal(pts["0"], pts["1"]))
            out["presets"][name] = r
            log(f"square {name}: eager {r['eager']['row_queries_s']:.0f}, compiled "
                f"{r['compiled']['row_queries_s']:.0f} row-queries/s ({r['speedup']:.2f}×, "
                f"compile+warm-up {r['compiled']['warmup_s']:.1f} s, same points {r['same_points']})")
            inc = r["incremental"]
            log(f"square {name}, small windows: compiled {inc['compiled_row_queries_s']:.0f}, incremental "
                f"{inc['incremental_row_queries_s']:.0f} row-queries/s ({inc['speedup']:.2f}×, engine used "
                f"{inc['used']}, same points {inc['same_points']})")
            log(f"square {name}: 256 rows in pieces of {r['pieces']['search_rows']}: "
                f"{r['pieces']['pieces_row_queries_s']:.0f} against {r['pieces']['whole_row_queries_s']:.0f} "
                f"row-queries/s at once ({r['pieces']['speedup']:.2f}×, same points {r['pieces']['same_points']})")
    finally:
        incremental.engine = real_engine
        if old is None:
            os.environ.pop("RDM_COMPILE", None)
        else:
            os.environ["RDM_COMPILE"] = old
    return out


def _incremental(model, x, y, queries: int, square_linf, incremental) -> dict:
    """The engine against the compiled copy on Square's late, small windows (``p_init`` = 0.05)."""
    real = incremental.engine
    used: list = []
    out: dict = {"p_init": 0.05}
    pts = {}
    os.environ["RDM_COMPILE"] = "1"
    try:
        for label in ("compiled", "incremental"):
            if label == "compiled":
                incremental.engine = lambda *a: None
            else:
                incremental.engine = lambda *a: used.append(real(*a)) or used[-1]
            square_linf(model, x, y, 1e-4, 2, p_init=0.05, seed=0)                       # warm-up
            count: list[int] = []
            t0 = time.perf_counter()
            pts[label] = square_linf(model, x, y, 1e-4, queries, p_init=0.05, seed=0, count=count)
            out[f"{label}_row_queries_s"] = sum(count) / (time.perf_counter() - t0)
    finally:
        incremental.engine = real
    out["used"] = bool(used) and all(e is not None for e in used)
    out["speedup"] = out["incremental_row_queries_s"] / out["compiled_row_queries_s"]
    out["same_points"] = bool(torch.equal(pts["compiled"], pts["incremental"]))
    return out


def _pieces(model, name: str, queries: int, square_linf) -> dict:
    from bench import phantoms
    from rdm.attacks import square
    from rdm.models import predict
    from rdm.data.presets import load_preset

    xs, _ = phantoms(load_preset(name), 256, seed=3)
    x = torch.from_numpy(xs)
    with torch.no_grad():
        y = predict(model(x))
    from rdm.attacks import incremental

    os.environ["RDM_COMPILE"] = "1"
    keep, real = square.SEARCH_ROWS, incremental.engine
    incremental.engine = lambda *a: None              # the compiled copy answers, as documented
    out: dict = {"search_rows": keep, "rows": 256}
    pts = {}
    try:
        for label, rows in (("whole", 10**9), ("pieces", keep)):
            square.SEARCH_ROWS = rows
            square_linf(model, x, y, 1e-4, 2, seed=0)                      # warm-up
            count: list[int] = []
            t0 = time.perf_counter()
            pts[label] = square_linf(model, x, y, 1e-4, queries, seed=0, count=count)
            out[f"{label}_row_queries_s"] = sum(count) / (time.perf_counter() - t0)
    finally:
        square.SEARCH_ROWS, incremental.engine = keep, real
    out["speedup"] = out["pieces_row_queries_s"] / out["whole_row_queries_s"]
    out["same_points"] = bool(torch.equal(pts["whole"], pts["pieces"]))
    return out
