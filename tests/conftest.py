"""Shared test fixtures: tiny phantom sets written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rdm.presets import load_preset
from rdm.prep.synthetic import generate
from rdm.sets import SetWriter, make_provenance

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_phantom_set(path: Path, preset: str = "lung", n: int = 64, seed: int = 0,
                      shape: tuple[int, int, int] | None = None) -> Path:
    p = load_preset(preset)
    shape = shape or p.shape
    x, y, g = generate(n, p.num_classes, shape, seed=seed)
    with SetWriter(path, shape=shape, classes=p.classes, modality=p.modality, preset=p.name,
                   provenance=make_provenance(command="test", seed=seed), columns=["group", "id"]) as w:
        w.append(x, y, group=g, id=[f"img{i}.png" for i in range(n)])
    return Path(path)


@pytest.fixture
def phantom_set(tmp_path):
    """Factory: phantom_set(name="train.h5", preset="lung", n=64, seed=0) -> path."""
    def make(name: str = "set.h5", preset: str = "lung", n: int = 64, seed: int = 0, shape=None) -> Path:
        return write_phantom_set(tmp_path / name, preset=preset, n=n, seed=seed, shape=shape)
    return make


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
