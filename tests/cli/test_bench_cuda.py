"""`bench.py --device cuda` (the GPU section of `make bench`) skips cleanly where there is no CUDA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the section would run")
def test_cuda_section_skips_cleanly_without_cuda(tmp_path):
    out = tmp_path / "bench-cuda.json"
    r = subprocess.run([sys.executable, str(BENCH), "--device", "cuda", "--no-libs", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "skipping the CUDA section" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and r.stdout == ""
