"""The Slurm scripts (shell/slurm/) without Slurm: ``submit.sh --dry-run`` writes the cell list
from the grid file and prints the sbatch commands (one array per dependency level, each after
the previous one, then the report job); every array task is then run by hand with
``SLURM_ARRAY_TASK_ID`` and ``RDM_LEVEL`` set, level by level, and the report job after them.
The report must equal the one ``make`` builds from the same tiny grid, a re-run of a task must
skip its finished cell, and the GPU variant must ask for a GPU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import gridtext as G
from rdm.pipeline import render
from rdm.pipeline.plan import Plan

REPO = Path(__file__).resolve().parents[2]
SLURM = REPO / "shell" / "slurm"

TINY = G.grid(G.LUNG, G.BRAIN, G.attack("fgsm", [0.005], ["test"]), G.BASELINE,
              G.evaluate(["baseline"], [0.005], []), G.paper_lung())

# the demo's own defaults (epochs, batch, subset) come from the Makefile on both paths
VARS = {"MODE": "demo", "DEMO_N": "40", "DEVICE": "cpu", "SEED": "0"}


def _env(**more) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "MAKE", "MFLAGS")) and k not in ("OUT", "RESULTS", "TRAIN_FLAGS", "SUBSET_N")}
    return {**env, "OMP_NUM_THREADS": "1", "RDM_THREADS": "1", "VENV": sys.prefix, **VARS, **more}


def _run(cmd, env, **kw):
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-3000:])
    return r


def _numbers(results: Path) -> dict:
    """Every number report.json shows (text and source values), by table, row and column;
    wall times aside."""
    rep = json.loads((results / "report.json").read_text())
    out = {}
    for name, t in rep["tables"].items():
        cols = t.get("columns") or []
        for i, row in enumerate(t["rows"]):
            for j, cell in enumerate(row["cells"]):
                if "wall" in name or (j + 1 < len(cols) and "wall time" in cols[j + 1]):
                    continue
                out[(name, row.get("label"), j)] = (cell.get("text"), [p.get("value") for p in cell.get("parts", [])])
    return out


def _make_demo(d: Path, out: Path, results: Path, grid: Path, *flags: str, **env) -> subprocess.CompletedProcess:
    """`make demo` on the tiny grid (the venv is installed: a stamp file stands for `make install`)."""
    (d / "stamp").touch()
    return _run(["make", *flags, "-f", "Makefile", f"STAMP={d / 'stamp'}", f"GRID={grid}", f"DEMO_OUT={out}",
                 f"DEMO_RESULTS={results}", "DEMO_MODALITIES=lung", "demo"], _env(**env))


def _task(env: dict, level: int, i: int, **more) -> subprocess.CompletedProcess:
    return _run(["bash", str(SLURM / "cell.sbatch")],
                {**env, "RDM_LEVEL": str(level), "SLURM_ARRAY_TASK_ID": str(i), **more})


def _levels(subs: list[str]) -> list[tuple[int, int]]:
    levels = []
    for line in subs[:-1]:
        m = re.search(r"--array=0-(\d+) .*RDM_LEVEL=(\d+)", line)
        assert m, line
        levels.append((int(m.group(2)), int(m.group(1)) + 1))
    return levels


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    d = tmp_path_factory.mktemp("slurm")
    grid = d / "tiny.toml"
    grid.write_text(TINY)
    # the cluster run: submit --dry-run, then each array task by hand (two at a time), level by level
    env = _env(GRID=str(grid), OUT=str(d / "work"), RESULTS=str(d / "results"), MODALITIES="lung")
    subs = _run(["bash", str(SLURM / "submit.sh"), "--dry-run"], env).stdout.strip().splitlines()
    levels = _levels(subs)
    for level, n in levels:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda i: _task(env, level, i), range(n)))
    _run(["bash", str(SLURM / "report.sbatch")], env)
    return {"dir": d, "env": env, "subs": subs, "levels": levels, "grid": grid}


def test_cells_list_every_rule_once_in_dependency_order(runs):
    plan = Plan(runs["grid"], "demo", ["lung"])
    cells = render.levels(plan)
    steps = plan.modality("lung").steps
    # the steps `make demo` needs: here the sweep's transfer sets are not (only defended models use them)
    assert sorted(c[2] for c in cells) == sorted(render.make_path(s.outputs[0]) for s in steps
                                                  if "sweep-" not in s.stage or "eval" in s.stage)
    first = {c[2]: c[0] for c in cells}
    level = {t: first[render.make_path(s.outputs[0])] for s in steps if render.make_path(s.outputs[0]) in first
             for t in s.outputs}
    for s in steps:   # every input made by a step sits at a lower level
        for dep in s.inputs:
            if dep in level and s.outputs[0] in level:
                assert level[dep] < level[s.outputs[0]], (dep, s.outputs[0])
    tsv = (runs["dir"] / "work" / "slurm" / "cells.tsv").read_text().splitlines()
    assert [tuple(x.split("\t")) for x in tsv] == [(str(a), b, c) for a, b, c in cells]


def test_submission_chains_levels_then_the_report(runs):
    subs, levels = runs["subs"], runs["levels"]
    assert [lv for lv, _ in levels] == list(range(len(levels))) and len(levels) >= 3
    assert "--dependency" not in subs[0] and "--gres" not in " ".join(subs)
    for prev, line in zip(subs, subs[1:]):
        assert "--dependency=afterok:" in line
    assert subs[-1].endswith("shell/slurm/report.sbatch")
    gpu = _run(["bash", str(SLURM / "submit.sh"), "--dry-run"], {**runs["env"], "RDM_GPU": "1"}).stdout
    assert all("--gres=gpu:1" in line for line in gpu.splitlines()[:-1])


def test_tasks_run_the_recipes_make_demo_runs(runs):
    """Dry run (make -n) of every task and of `make demo` on empty folders: the same commands."""
    d, grid = runs["dir"], runs["grid"]
    env = {**runs["env"], "OUT": str(d / "dry-slurm"), "RESULTS": str(d / "dry-slurm-res")}
    subs = _run(["bash", str(SLURM / "submit.sh"), "--dry-run"], env).stdout.strip().splitlines()
    slurm = ""
    for level, n in _levels(subs):
        for i in range(n):
            slurm += _task(env, level, i, RDM_MAKE_FLAGS="-n").stdout
    slurm += _run(["bash", str(SLURM / "report.sbatch")], {**env, "RDM_MAKE_FLAGS": "-n"}).stdout
    mk_out = d / "dry-make"
    mk_out.mkdir()
    shutil.copy(d / "dry-slurm" / "grid.mk", mk_out / "grid.mk")   # `make -n demo` does not run its @ lines
    laptop = _make_demo(d, mk_out, d / "dry-make-res", grid, "-n").stdout

    def recipes(text: str, out: Path, res: Path) -> set[str]:
        return {line.replace(str(out), "OUT").replace(str(res), "RESULTS") for line in text.splitlines()
                if "rdm.pipeline.grid timed" in line}

    a = recipes(slurm, d / "dry-slurm", d / "dry-slurm-res")
    b = recipes(laptop, mk_out, d / "dry-make-res")
    assert len(a) == len(render.levels(Plan(grid, "demo", ["lung"]))) + 1 and a == b


def test_cluster_report_equals_make_demo(runs):
    """The report job's report equals `make demo`'s: by default `make demo` on the cluster run's
    outputs (it must find every cell done and only write the report); with RDM_SLOW_TESTS=1 also
    an independent `make demo` from scratch."""
    d, grid = runs["dir"], runs["grid"]
    log = d / "work" / "timings.jsonl"
    before = log.read_text().splitlines()
    _make_demo(d, d / "work", d / "make-results", grid, "-j2")
    new = [json.loads(x)["stage"] for x in log.read_text().splitlines()[len(before):]]
    assert new == ["report"]                     # every cell was already done
    a, b = _numbers(d / "results"), _numbers(d / "make-results")
    assert len(a) > 50 and a == b
    if os.environ.get("RDM_SLOW_TESTS") == "1":
        _make_demo(d, d / "laptop", d / "laptop-results", grid, "-j2")
        assert _numbers(d / "laptop-results") == a


def test_the_pool_runner_writes_what_make_writes(runs):
    """`make demo RUNNER=pool JOBS=2` (python -m rdm.pipeline.grid run: 2 long-lived workers, each step's tool
    called in-process) on the tiny grid writes what the make rules wrote for the tasks above: the same
    sets, weights, attributes, provenance and results, field by field, with only what differs between
    any two runs set aside (creation and wall times, and the sha256 of files that embed them; the
    output folder's name). Its timings.jsonl has make's stage names; a second run does nothing."""
    from helpers import output_differences
    from rdm.pipeline.plan import needed_steps

    d, grid = runs["dir"], runs["grid"]
    r = _make_demo(d, d / "pool", d / "pool-results", grid, "RUNNER=pool", "JOBS=2")
    assert "0 up to date" in r.stderr
    assert output_differences(d / "pool", d / "work", skip=("timings.jsonl", "grid.mk", "cells.tsv")) == []
    assert _numbers(d / "pool-results") == _numbers(d / "results")
    stages = [json.loads(x)["stage"] for x in (d / "pool" / "timings.jsonl").read_text().splitlines()]
    assert sorted(stages) == sorted([s.stage for s in needed_steps(Plan(grid, "demo", ["lung"]))] + ["report"])
    r = _make_demo(d, d / "pool", d / "pool-results", grid, "RUNNER=pool", "JOBS=2")
    assert f"0 steps run, {len(stages)} up to date" in r.stderr
    assert len((d / "pool" / "timings.jsonl").read_text().splitlines()) == len(stages)


def test_rerun_after_preemption_skips_finished_cells(runs):
    env, work = runs["env"], runs["dir"] / "work"
    level1 = [x.split("\t")[2] for x in (work / "slurm" / "cells.tsv").read_text().splitlines()
              if x.startswith("1\t")]
    ck = work / "lung" / "s0" / "models" / "baseline.ckpt"
    before = ck.stat().st_mtime_ns
    r = _task(env, 1, level1.index("$(OUT)/lung/s0/models/baseline.ckpt"))
    assert "up to date" in r.stdout + r.stderr and ck.stat().st_mtime_ns == before
    sub = work / "lung" / "test-sub.h5"      # a lost output is rebuilt by its own task alone
    sub.unlink()
    _task(env, 1, level1.index("$(OUT)/lung/test-sub.h5"))
    assert sub.exists() and ck.stat().st_mtime_ns == before


def test_task_errors_are_one_line(runs):
    r = subprocess.run(["bash", str(SLURM / "cell.sbatch")], cwd=REPO, capture_output=True, text=True,
                       env={**runs["env"], "RDM_LEVEL": "0", "SLURM_ARRAY_TASK_ID": "99"})
    assert r.returncode == 1 and r.stderr.strip() == f"error: no cell 99 at level 0 in {runs['dir']}/work/slurm/cells.tsv"
    r = subprocess.run(["bash", str(SLURM / "cell.sbatch")], cwd=REPO, capture_output=True, text=True,
                       env={**runs["env"], "RDM_LEVEL": "0"})
    assert r.returncode != 0 and "SLURM_ARRAY_TASK_ID" in r.stderr
