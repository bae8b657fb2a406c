"""The standard suite's (aa) cells of one modality of a grid folder, and RDMAA paired against every other
model on the same rows (rdm.stats.paired_test, the report's rule), as Markdown.

    python aa_table.py WORK MODALITY   (WORK: a grid's OUT folder, or this folder's metrics/)
"""
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from rdm.stats import balanced_weights, paired_test

root, mod = Path(sys.argv[1]), sys.argv[2]
MODELS = ["baseline", "rdmaa", "advtrain-online", "advtrain-trades", "advtrain-fast"]
NAMES = {"baseline": "no defence", "rdmaa": "RDMAA", "advtrain-online": "on-line PGD-AT",
         "advtrain-trades": "TRADES", "advtrain-fast": "fast AT"}
bal = mod == "lung"                        # the report decides lung on balanced accuracy
# where each timings file's stages ran; a stage run twice (a part rerun on another device) keeps its
# latest successful run, the one whose output the cell holds
DEVICES = {"timings-cpu": "CPU, one core", "timings-gpu1": "H200", "timings-gpu2": "H200",
           "timings-gpu4": "H100, shared by 16 parts at once"}
timings = {}
for tf in sorted(root.glob("timings*.jsonl")):
    for line in open(tf):
        r = json.loads(line)
        if r.get("rc", 0) == 0 and r.get("end", 0) >= timings.get(r["stage"], (0, "", 0))[2]:
            timings[r["stage"]] = (r["seconds"], DEVICES.get(tf.stem, tf.stem), r.get("end", 0))


def acc(m):
    return f"{100 * m['accuracy']:.1f}" + (f" ({100 * m['balanced_accuracy']:.1f})" if bal else "")


cells, lines = {}, []
lines.append(f"| {mod} | rows (paper ε / matched ε cells) | clean (same rows) | aa ε = .002 | aa ε = .005 | aa matched ε | stages that fooled a row (all its aa cells) | aa wall time |")
lines.append("|---|---:|---:|---:|---:|---:|---|---|")
for k in MODELS:
    d = root / mod / "s0" / "metrics" / k
    row = {"rows": "", "clean": "", 0.002: "", 0.005: "", "m": "", "by": Counter(), "wall": []}
    for f in ("wb-aa", "matched-wb-aa"):
        p = d / f"{f}.json"
        if not p.exists():
            continue
        for res in json.load(open(p))["results"]:
            pr = res["per_row"]
            o = np.argsort(pr["index"])
            right = (np.asarray(pr["pred"]) == np.asarray(pr["y"]))[o].astype(float)
            if res.get("attack") is None:
                # the paper-ε cells run on the 300-row subset, the matched-ε cells on the whole test set:
                # each cell's rows and clean accuracy, paper's first
                row.setdefault("n", {})[f] = (str(res["metrics"]["n"]), acc(res["metrics"]))
                continue
            e = res["attack"]["eps"]
            cells[(k, f, e)] = (np.asarray(pr["index"])[o], np.asarray(pr["y"])[o], right)
            row["m" if f == "matched-wb-aa" else e] = acc(res["metrics"]) + (f" (ε = {e:g})" if f == "matched-wb-aa" else "")
            row["by"].update(b for b in pr["fooled_by"] if b not in (None, "clean"))
        s = timings.get(f"{mod}/s0/eval-{k}-{f}")
        # a cell run in shards (rdm-eval --shard i/n, then --merge): its wall time is the sum of its parts'
        parts = [t for st, t in timings.items()
                 if st.rsplit(".", 1)[0] == f"{mod}/s0/eval-{k}-{f}" and st.rsplit(".", 1)[-1].isdigit()]
        if s:
            row["wall"].append(f"{f}: {s[0]:,.0f} s ({s[1]})")
        elif parts:
            # on the CPU the parts' sum (one core each); on a GPU the parts ran at once, sharing the card
            # with every other part of the call, so the longest part's wall time
            by = {}
            for t in parts:
                by.setdefault(t[1], []).append(t[0])
            row["wall"].append(f"{f}: " + " + ".join(
                f"{sum(v):,.0f} s ({d}, {len(v)} shards)" if d.startswith("CPU") else
                f"{len(v)} shards ≤ {max(v):,.0f} s each ({d})" for d, v in by.items()))
    n = row.get("n", {})
    row["rows"] = " / ".join(n[f][0] for f in ("wb-aa", "matched-wb-aa") if f in n)
    row["clean"] = " / ".join(n[f][1] for f in ("wb-aa", "matched-wb-aa") if f in n)
    if row["clean"] or row["m"]:
        lines.append(f"| {NAMES[k]} | {row['rows']} | {row['clean']} | {row[0.002] or 'not run'} | {row[0.005] or 'not run'} | "
                     f"{row['m'] or 'not run'} | {', '.join(f'{s} {n}' for s, n in sorted(row['by'].items())) or 'none'} | "
                     f"{'; '.join(row['wall'])} |")
lines.append("")
lines.append(f"RDMAA minus each model, paired on the same rows (accuracy{' weighted to balanced accuracy' if bal else ''}, "
             "points, 95 % bootstrap interval, sign-flip p):")
lines.append("")
for (k0, f, e) in sorted(cells, key=lambda t: (t[1] != "wb-aa", t[2])):
    if k0 != "rdmaa":
        continue
    ia, ya, ca = cells[("rdmaa", f, e)]
    for k in MODELS:
        if k == "rdmaa" or (k, f, e) not in cells:
            continue
        ib, yb, cb = cells[(k, f, e)]
        assert (ia == ib).all() and (ya == yb).all(), "cells on different rows"
        c = paired_test(ca, cb, weights=balanced_weights(ya) if bal else None)
        lines.append(f"- ε = {e:g}{' (matched)' if f == 'matched-wb-aa' else ''}, vs {NAMES[k]}: {100 * c.diff:+.1f} "
                     f"[{100 * c.lo:+.1f}, {100 * c.hi:+.1f}], p {'< .001' if c.p < 0.001 else f'= {c.p:.3f}'}: **{c.verdict}** ({c.n_rows} rows, one seed)")
print("\n".join(lines))
