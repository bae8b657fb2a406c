"""Figures of a set (matplotlib, Agg) and the helpers every figure uses.

:func:`fig_samples` draws a few images per class of one set: ``rdm-prep --preview`` and the
report's data section use it, so that the images are looked at. The report's own figures (the
paper's Fig. 3/4, 9 and 10) are in :mod:`rdm.pipeline.figures`.
"""

from __future__ import annotations

from pathlib import Path
import numpy as np

from rdm.data.atomic import atomic_output


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_dir: Path, stem: str) -> list[str]:
    """``out_dir/stem.png`` and ``.pdf``, each written atomically; the figure is closed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = out_dir / f"{stem}.{ext}"
        with atomic_output(p) as tmp:
            fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight")
        paths.append(str(p))
    pyplot().close(fig)
    return paths


def image_of(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """C×H×W in [0, 1] → something imshow takes."""
    if x.shape[0] == 1:
        return x[0], "gray"
    return np.clip(np.transpose(x, (1, 2, 0)), 0, 1), None


# --------------------------------------------------------------------------- class samples
def pick_per_class(y: np.ndarray, n_classes: int, per_class: int, seed: int = 0) -> list[list[int]]:
    """Up to ``per_class`` seeded random rows of each class (sorted), so a preview is not just the first files."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_classes):
        hit = np.flatnonzero(y == k)
        if len(hit) > per_class:
            hit = np.sort(rng.choice(hit, per_class, replace=False))
        out.append([int(i) for i in hit])
    return out


PREVIEW_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def fig_samples(set_path: Path, out_paths: Path | list[Path], per_class: int = 6, seed: int = 0,
                title: str | None = None) -> list[str]:
    """A grid of a few images per class of one set (one row per class), at the set's stored size.

    Written atomically to each of ``out_paths``; the format follows the suffix (.png, .pdf, ...). Used by
    ``rdm-prep --preview`` and by the report's data section, so that the images are looked at.
    """
    from rdm.data.sets import SetReader

    with SetReader(set_path) as r:
        classes = list(r.info.classes)
        picks = pick_per_class(r.column("y", 0, r.n), len(classes), per_class, seed)
        flat = [i for rows in picks for i in rows]
        x = r.read_rows(np.array(flat, dtype=np.int64), ("x",))["x"] if flat else None
        size = "×".join(str(v) for v in r.info.shape)
    plt = pyplot()
    cols = max(1, max((len(p) for p in picks), default=1))
    fig, axes = plt.subplots(len(classes), cols, figsize=(1.5 * cols + 1.2, 1.55 * len(classes)), squeeze=False)
    j0 = 0
    for k, rows in enumerate(picks):
        for j in range(cols):
            ax = axes[k, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(rows):
                im, cmap = image_of(x[j0 + j].astype(np.float64))
                ax.imshow(im, cmap=cmap, vmin=0, vmax=1)
            elif j > 0 or rows:
                ax.axis("off")            # keep the first axis of an empty class, for its label
        axes[k, 0].set_ylabel(f"{classes[k]}\n({len(rows)} shown)" if len(rows) < per_class else classes[k],
                              fontsize=9)
        j0 += len(rows)
    fig.suptitle(title or f"{Path(set_path).name}: {per_class} random images per class ({size})", fontsize=10)
    written = []
    for out_path in [out_paths] if isinstance(out_paths, (str, Path)) else out_paths:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out_path) as tmp:
            fig.savefig(tmp, format=out_path.suffix.lstrip(".").lower() or "png", dpi=130, bbox_inches="tight")
        written.append(str(out_path))
    plt.close(fig)
    return written
