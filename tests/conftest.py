"""Shared test fixtures: tiny phantom sets written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rdm  # noqa: F401  (first, before torch: the tests run with the commands' allocator setting)
from helpers import write_phantom_set  # noqa: F401  (re-exported for tests)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# The files that take longest (each builds a small grid or a fresh environment once, in a module fixture),
# longest first: collected first, so under `make test`'s xdist workers (--dist loadfile) they start at
# once instead of last, and the short files fill the other worker meanwhile (measured on 2 idle cores: 510 s;
# 580 s with them last, in name order). The order within a file is kept.
SLOW_FIRST = ("test_report.py", "test_slurm.py", "test_packaging.py", "test_masking.py", "test_controls.py",
              "test_ddp.py", "test_report_product.py", "test_beyond.py", "test_advtrain_recipes.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))   # stable: file order kept


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """The tests' models are tiny: one thread is fastest and does not fight other jobs for the cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
