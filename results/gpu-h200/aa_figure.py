"""The standard suite's (aa) accuracy of every model, per modality, at the paper's two ε and the matched ε,
with each cell's 95 % bootstrap interval over its rows (rdm.stats.interval), as one figure.

    python aa_figure.py WORK OUT.png   (WORK: a grid's OUT folder, or this folder's metrics/)

Lung is drawn in balanced accuracy (the report decides lung on it), the others in accuracy. The paper-ε
cells run on the 300-row subset, the matched-ε cells on the whole test set; the clean accuracy of the
same rows is the open marker above each bar. Intervals are per model; the paired differences are
aa_table.py's.
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rdm.stats import balanced_weights, interval  # noqa: E402

root, out = Path(sys.argv[1]), Path(sys.argv[2])
MODELS = ["baseline", "rdmaa", "advtrain-online", "advtrain-trades", "advtrain-fast"]
NAMES = {"baseline": "no defence", "rdmaa": "RDMAA", "advtrain-online": "on-line PGD-AT",
         "advtrain-trades": "TRADES", "advtrain-fast": "fast AT"}
COLOURS = {"baseline": "#888888", "rdmaa": "#d62728", "advtrain-online": "#1f77b4",
           "advtrain-trades": "#2ca02c", "advtrain-fast": "#9467bd"}
MODS = [m for m in ("lung", "brain-grouped", "leukemia") if (root / m / "s0" / "metrics").is_dir()]


def cells(mod, k):
    """{column: (accuracy interval, clean accuracy of the same rows, rows)} of one model."""
    got, bal = {}, mod == "lung"
    for f in ("wb-aa", "matched-wb-aa"):
        p = root / mod / "s0" / "metrics" / k / f"{f}.json"
        if not p.exists():
            continue
        clean = None
        for res in json.load(open(p))["results"]:
            pr = res["per_row"]
            y = np.asarray(pr["y"])
            right = (np.asarray(pr["pred"]) == y).astype(float)
            w = balanced_weights(y) if bal else None
            if res.get("attack") is None:
                clean = interval(right, weights=w).mean
                continue
            e = res["attack"]["eps"]
            col = f"matched ε\n({e:g})" if f == "matched-wb-aa" else f"ε = {e:g}"
            got[col] = (interval(right, weights=w), clean, len(y))
    return got


fig, axes = plt.subplots(1, len(MODS), figsize=(5.2 * len(MODS), 4.6), sharey=True, squeeze=False)
for ax, mod in zip(axes[0], MODS):
    per = {k: cells(mod, k) for k in MODELS}
    cols = ["ε = 0.002", "ε = 0.005"] + sorted({c for v in per.values() for c in v if c.startswith("matched")})
    width = 0.8 / len(MODELS)
    for j, k in enumerate(MODELS):
        for i, col in enumerate(cols):
            if col not in per[k]:
                continue
            iv, clean, n = per[k][col]
            x = i + (j - (len(MODELS) - 1) / 2) * width
            ax.bar(x, 100 * iv.mean, width * 0.92, color=COLOURS[k], label=NAMES[k])
            ax.errorbar(x, 100 * iv.mean, yerr=[[100 * (iv.mean - iv.lo)], [100 * (iv.hi - iv.mean)]],
                        color="black", lw=0.8, capsize=2)
            if clean is not None:
                ax.plot(x, 100 * clean, marker="o", mfc="none", mec=COLOURS[k], ms=4, ls="none")
    rows = {col: next((v[col][2] for v in per.values() if col in v), None) for col in cols}
    ax.set_xticks(range(len(cols)), [f"{c}\n{rows[c]} rows" if rows[c] else c for c in cols])
    ax.set_title(f"{mod}{' (balanced accuracy)' if mod == 'lung' else ''}")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
axes[0][0].set_ylabel("accuracy under the standard suite aa (%)")
seen = {}
for ax in axes[0]:
    for h, lab in zip(*ax.get_legend_handles_labels()):
        seen.setdefault(lab, h)
fig.legend(seen.values(), seen.keys(), loc="lower center", ncol=len(seen), frameon=False)
fig.suptitle("APGD-CE → APGD-T → Square 5,000 on each model itself; seed 0; bars: 95 % bootstrap over rows; "
             "o: clean accuracy of the same rows", fontsize=9)
fig.tight_layout(rect=(0, 0.07, 1, 0.95))
fig.savefig(out, dpi=120)
print(out)
