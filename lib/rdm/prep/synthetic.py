"""Procedural phantoms per preset: class-dependent shapes and textures a CNN can learn.

Deterministic by seed. Used by ``rdm-prep synthetic``, ``make demo`` and the tests,
so that everything runs without the real data.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("disk", "square", "ring", "cross", "bar")


def _shape_mask(kind: str, h: int, w: int, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    if kind == "disk":
        return (u ** 2 + v ** 2 <= r ** 2).astype(np.float32)
    if kind == "square":
        return ((np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)).astype(np.float32)
    if kind == "ring":
        d = np.sqrt(u ** 2 + v ** 2)
        return ((d <= r) & (d >= r * 0.55)).astype(np.float32)
    if kind == "cross":
        return (((np.abs(u) <= r * 0.3) & (np.abs(v) <= r)) | ((np.abs(v) <= r * 0.3) & (np.abs(u) <= r))).astype(np.float32)
    if kind == "bar":
        return ((np.abs(u) <= r * 1.4) & (np.abs(v) <= r * 0.3)).astype(np.float32)
    raise ValueError(kind)


def phantom(label: int, num_classes: int, shape: tuple[int, int, int], rng: np.random.Generator,
            brightness: float = 0.3) -> np.ndarray:
    """One C×H×W float32 image in [0, 1] for ``label``.

    Classes differ in shape, texture frequency and (by up to ``brightness``) in the
    foreground level; ``brightness=0`` leaves shape and texture as the only cues.
    """
    c, h, w = shape
    kind = SHAPES[label % len(SHAPES)]
    freq = 0.15 + 0.35 * label / max(1, num_classes - 1)          # class-dependent texture
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = 0.25 + 0.1 * rng.standard_normal((h, w)).astype(np.float32)
    r = rng.uniform(0.14, 0.24) * min(h, w)
    cy, cx = rng.uniform(r + 1, h - r - 1), rng.uniform(r + 1, w - r - 1)
    angle = rng.uniform(0, np.pi)
    mask = _shape_mask(kind, h, w, cy, cx, r, angle)
    tex = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 6.28))
    # class-dependent brightness shift (overlapping between neighbours) on top of shape and texture
    shift = brightness * (label / max(1, num_classes - 1) - 0.5)
    fg = rng.uniform(0.55, 0.85) + 0.15 * tex + shift
    img = bg * (1 - mask) + fg * mask
    img = img + 0.05 * rng.standard_normal((h, w)).astype(np.float32)
    out = np.empty((c, h, w), dtype=np.float32)
    tint = rng.uniform(0.85, 1.0, size=c).astype(np.float32)
    for ch in range(c):
        out[ch] = img * tint[ch]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def generate(n: int, num_classes: int, shape: tuple[int, int, int], seed: int = 0,
             group_size: int = 4, brightness: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` phantoms with balanced labels; rows in groups of ``group_size`` share a 'patient'.

    Returns (x N×C×H×W float32, y int64, group str array). Same seed → same arrays.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % num_classes
    rng.shuffle(y)
    x = np.stack([phantom(int(lbl), num_classes, shape, rng, brightness) for lbl in y]) if n else np.zeros((0, *shape), np.float32)
    group = np.array([f"p{i // group_size:05d}" for i in range(n)], dtype=object)
    return x, y, group
