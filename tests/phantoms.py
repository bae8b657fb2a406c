"""Tiny phantom sets written by the tests themselves (importable as ``phantoms``)."""

from __future__ import annotations

from pathlib import Path

from rdm.presets import load_preset
from rdm.prep.synthetic import generate
from rdm.sets import SetWriter, make_provenance


def write_phantom_set(path: Path, preset: str = "lung", n: int = 64, seed: int = 0,
                      shape: tuple[int, int, int] | None = None) -> Path:
    p = load_preset(preset)
    shape = shape or p.shape
    x, y, g = generate(n, p.num_classes, shape, seed=seed)
    with SetWriter(path, shape=shape, classes=p.classes, modality=p.modality, preset=p.name,
                   provenance=make_provenance(command="test", seed=seed), columns=["group", "id"]) as w:
        w.append(x, y, group=g, id=[f"img{i}.png" for i in range(n)])
    return Path(path)
