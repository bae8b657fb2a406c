"""The experiment plan and its renderings: the one place that names every output, the Makefile and
Slurm levels made from it, the content stamps, the matched ε and the demo's shortened attacks."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rdm import grid as cli
from rdm.errors import RdmError
from rdm.pipeline import config
from rdm.pipeline import plan as P
from rdm.pipeline import render, steps


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "RDM_THREADS": "1"}


# --------------------------------------------------------------------------- graph shape
def _rules(mk: str) -> list[tuple[list[str], list[str]]]:
    out = []
    for line in mk.splitlines():
        m = re.match(r"^([^\t#][^:=]*?)\s*&?:\s(.*?)\s*\|\s*\$\(STAMP\)$", line)
        if m:
            out.append((m.group(1).split(), m.group(2).split()))
    return out


def test_touching_one_modality_rebuilds_only_that_modality():
    """In the real grid's graph, everything downstream of lung's raw data is under $(OUT)/lung/."""
    g = config.load_grid()
    rules = _rules(render.makefile(P.Plan(g, "tables")))
    assert len(rules) > 50
    for m, spec in g["modalities"].items():
        dirty = {f"$(OUT)/{P.source_stamp_path(m)}"}
        changed = True
        while changed:
            changed = False
            for targets, deps in rules:
                if dirty & set(deps) and not set(targets) <= dirty:
                    dirty |= set(targets)
                    changed = True
        rebuilt = dirty - {f"$(OUT)/{P.source_stamp_path(m)}"}
        assert f"$(OUT)/{m}/metrics/rdmaa/transfer.json" in rebuilt
        assert all(t.startswith(f"$(OUT)/{m}/") for t in rebuilt), sorted(t for t in rebuilt if not t.startswith(f"$(OUT)/{m}/"))


def test_data_mtimes_do_not_rebuild_but_content_does(tmp_path):
    """A dataset copied, re-mounted or touched keeps its sets; a changed byte rebuilds them;
    a new SUBSET_N rebuilds the subset only. The stamp rules are the ones `make tables` uses."""
    import time

    data = tmp_path / "data" / "lung-nodule"
    (data / "nodule").mkdir(parents=True)
    (data / "labels.csv").write_text("file,label\nnodule/a.png,1\n")
    (data / "nodule" / "a.png").write_bytes(b"\x89PNG fake")
    (data / "SOURCE.md").write_text("notes")
    mk = tmp_path / "t.mk"
    mk.write_text(".PHONY: FORCE\nFORCE:\n" + render.stamp_rules("lung", "lung-nodule") +
                  "$(OUT)/lung/train.h5: $(OUT)/lung/source.sha256\n\techo prep >> $(OUT)/log\n\ttouch $@\n"
                  "$(OUT)/lung/sub.h5: $(OUT)/lung/subset-n\n\techo subset >> $(OUT)/log\n\ttouch $@\n"
                  "all: $(OUT)/lung/train.h5 $(OUT)/lung/sub.h5\n")
    out = tmp_path / "work"

    def make(n=10):
        r = subprocess.run(["make", "-s", "-f", str(mk), f"OUT={out}", f"DATA_ROOT={tmp_path / 'data'}",
                            f"PY={sys.executable}", "STAMP=", f"SUBSET_N={n}", "all"],
                           capture_output=True, text=True, env=_env())
        assert r.returncode == 0, r.stderr
        return (out / "log").read_text().split()

    assert make() == ["prep", "subset"]
    assert (out / "lung" / "source.sha256").read_text().count("  ") == 2       # SOURCE.md is not data
    later = time.time() + 100
    for f in [data / "labels.csv", data / "nodule" / "a.png", data / "SOURCE.md"]:
        os.utime(f, (later, later))                                         # a copy with new mtimes
    assert make() == ["prep", "subset"]
    time.sleep(1.1)                                                          # mtime granularity
    (data / "nodule" / "a.png").write_bytes(b"\x89PNG changed")
    assert make() == ["prep", "subset", "prep"]
    time.sleep(1.1)
    assert make(20) == ["prep", "subset", "prep", "subset"]
    assert make(20) == ["prep", "subset", "prep", "subset"]


def test_fingerprint_errors(tmp_path):
    with pytest.raises(RdmError, match="no such data folder"):
        steps.fingerprint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RdmError, match="empty"):
        steps.fingerprint(tmp_path / "empty")
    assert cli.main(["fingerprint", str(tmp_path / "nope"), "-o", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- matched ε
def test_matched_eps_interpolates_log_linearly():
    curve = [(0.0, 0.9), (0.001, 0.85), (0.01, 0.5), (0.1, 0.1)]
    eps, reached = steps.matched_eps(curve, 0.3)
    # between .01 (50 %) and .1 (10 %): halfway in accuracy → halfway in log ε
    assert reached and eps == pytest.approx(math.sqrt(0.01 * 0.1), rel=1e-3)
    eps, reached = steps.matched_eps(curve, 0.5)
    assert reached and eps == pytest.approx(0.01, rel=1e-3)


def test_matched_eps_edges():
    curve = [(0.0, 0.9), (0.002, 0.6), (0.02, 0.4)]
    assert steps.matched_eps(curve, 0.7) == (0.002, True)        # already below at the smallest ε
    assert steps.matched_eps(curve, 0.1) == (0.02, False)        # never reached: the largest ε, flagged
    # a non-monotone curve: the first crossing counts
    eps, reached = steps.matched_eps([(0.001, 0.8), (0.01, 0.2), (0.1, 0.6)], 0.5)
    assert reached and 0.001 < eps < 0.01
    with pytest.raises(RdmError):
        steps.matched_eps([(0.0, 0.9)], 0.5)


def test_demo_section_shortens_only_the_demo(tmp_path):
    g = config.load_grid()
    demo, tables = config.for_mode(g, "demo"), config.for_mode(g, "tables")
    wb = {w["name"]: w for w in demo["evaluate"]["whitebox"]}
    assert (wb["pgd50x5"]["steps"], wb["pgd50x5"]["restarts"]) == (10, 2) and wb["apgd"]["steps"] == 20
    assert demo["evaluate"]["sweep_pgd"]["steps"] == 5
    assert {w["name"]: w for w in g["evaluate"]["whitebox"]}["pgd50x5"]["steps"] == 50      # not modified
    assert tables is g
    assert "--steps 50 --restarts 5" in render.makefile(P.Plan(g, "tables", ["lung"]))
    assert "--steps 50" not in render.makefile(P.Plan(g, "demo", ["lung"]))
    text = Path(g["_path"]).read_text()
    bad = tmp_path / "g.toml"
    bad.write_text(text.replace("sweep_pgd = { steps = 5 }", "sweep_pdg = { steps = 5 }"))
    with pytest.raises(RdmError, match="sweep_pdg"):
        config.load_grid(bad)
    bad.write_text(text.replace("apgd = { steps = 20 }", "apdg = { steps = 20 }"))
    with pytest.raises(RdmError, match="apdg"):
        config.load_grid(bad)
