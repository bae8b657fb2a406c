"""The experiment plan and its renderings: the one place that names every output, the Makefile and
Slurm levels made from it, the content stamps, the matched ε and the demo's shortened attacks."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rdm.pipeline import grid as cli
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
        assert f"$(OUT)/{m}/s0/metrics/rdmaa/transfer.json" in rebuilt
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


# --------------------------------------------------------------------------- the plan's own words
def test_plan_lists_every_cell_with_its_output():
    r = subprocess.run([sys.executable, "-m", "rdm.pipeline.plan", "--list", "--mode", "demo", "--modality", "lung"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    plan = P.Plan(None, "demo", ["lung"])
    mp = plan.modality("lung")
    assert len(lines) == len(mp.cells) > 200
    # every metrics file make builds holds at least one cell, and no cell points anywhere else
    assert {line.split("\t")[0] for line in lines} == set(mp.metrics) - {P.matched_path("lung", 0)}
    assert ("lung/s0/metrics/rdmaa/transfer.json\tset=test-fgsm-0.005.h5\tlung / RDMAA / transfer / FGSM ε=.005 / "
            "whole test set") in lines
    assert ("lung/s0/metrics/baseline/wb-apgd.json\teps=0.005\tlung / No defence / white-box / APGD-CE ε=.005, "
            "20 steps / seeded subset") in lines
    r = subprocess.run([sys.executable, "-m", "rdm.pipeline.plan", "--modality", "nowhere"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and r.stderr.startswith("error: unknown modality 'nowhere'") and not r.stdout


def test_every_path_reads_back_through_its_inverse():
    plan = P.Plan(None, "tables", seed=4, seeds=2)
    for s in plan.steps():
        for path in [*s.outputs, *s.inputs]:
            kind, fields = P.parse_path(path)
            assert fields["m"] == s.modality, path
            again = {"set": P.set_path, "model": P.model_path, "metrics": P.metrics_path,
                     "matched": P.matched_path, "matched-set": P.matched_set_path,
                     "source-stamp": P.source_stamp_path, "subset-stamp": P.subset_stamp_path,
                     "certificate": P.certificate_path,
                     "audit": P.audit_path,
                     "adv": lambda m, split, attack, eps, seed: P.adv_path(m, split, attack, eps, seed)}[kind](**fields)
            assert fields.get("seed", s.seed) == s.seed or kind == "set" or s.kind == "prep", (path, s.stage)
            assert again == path, (kind, fields)
    with pytest.raises(RdmError, match="not a path of the experiment plan"):
        P.parse_path("lung/elsewhere/x.json")


FAKE_PY = """#!/usr/bin/env bash
# stands for `python -m rdm.pipeline.grid SUB ...`: runs timed commands, answers get, logs the rest
shift 2
sub=$1; shift
case $sub in
  timed) shift 2; [ "$1" = "--" ] && shift; exec "$@" ;;
  get) echo 0.0123 ;;
  *) echo "rdm.pipeline.grid $sub $*" >> "$LOG" ;;
esac
"""
STUB = '#!/usr/bin/env bash\necho "$(basename "$0") $*" >> "$LOG"\n'


def test_bash_script_runs_what_make_runs(tmp_path):
    """The bash script and the Makefile are both rendered from the plan's steps: with stub commands,
    the script runs exactly the commands `make -n` prints (the ε pattern of a multi-ε attack
    included, whose ${OUT} a single-quoted rendering never expanded)."""
    import shlex

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("rdm-prep", "rdm-train-cnn", "rdm-pretrain-dcae", "rdm-finetune", "rdm-advtrain", "rdm-attack",
                 "rdm-eval", "rdm-certify"):
        (bin_ / tool).write_text(STUB)
    (bin_ / "py").write_text(FAKE_PY)
    for f in bin_.iterdir():
        f.chmod(0o755)
    plan = P.Plan(None, "demo", ["lung"])
    out, log = tmp_path / "out", tmp_path / "log"
    settings = {"OUT": str(out), "RDM": f"{bin_}/", "PY": str(bin_ / "py"), "SEED": "3", "DEVICE": "cpu",
                "DEMO_N": "40", "SUBSET_N": "10", "TRAIN_FLAGS": "--epochs 1 --batch-size 8", "GRID": "g.toml"}
    script = tmp_path / "lung.sh"
    script.write_text(render.shell_script(plan, "lung"))
    r = subprocess.run(["bash", str(script)], env={**_env(), **settings, "LOG": str(log)}, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    ran = sorted(log.read_text().splitlines())

    mk = tmp_path / "grid.mk"
    mk.write_text(render.makefile(plan))
    r = subprocess.run(["make", "-n", "-f", str(mk), "STAMP=", f"TIMED={bin_ / 'py'} -m rdm.pipeline.grid timed t.jsonl",
                        *[f"{k}={v}" for k, v in settings.items()], "lung"], capture_output=True, text=True,
                       env=_env())
    assert r.returncode == 0, r.stderr[-2000:]
    made = []
    for line in r.stdout.splitlines():
        if " -m rdm.pipeline.grid timed " in line:
            cmd = line.split(" -- ", 1)[1]
            cmd = re.sub(r"\$\(\S+ -m rdm\.pipeline\.grid get \S+ \w+\)", "0.0123", cmd)
            words = shlex.split(cmd)
            name = Path(words[0]).name
            made.append(" ".join(["rdm.pipeline.grid " + words[3] if name == "py" else name,
                                  *words[4 if name == "py" else 1:]]))
    assert len(made) == len(plan.modality("lung").steps)
    assert ran == sorted(made)
    assert any(f"-o {out}/lung/s0/adv/test-fgsm-{{eps}}.h5" in c for c in ran)


def test_missing_data_folder_is_one_line_naming_the_grids_source(tmp_path):
    """`make tables` and the Slurm submission check the data folders the grid names (no second list)."""
    def check(*mods):
        return subprocess.run([sys.executable, "-m", "rdm.pipeline.grid", "check-data", "--data-root", str(tmp_path),
                               *[a for m in mods for a in ("--modality", m)]], capture_output=True, text=True)

    r = check("brain")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "lacks brain-mri/ (the data of brain" in r.stderr
    (tmp_path / "brain-mri").mkdir()
    assert check("brain").returncode == 0
    assert "lacks lung-nodule/" in check().stderr
    assert "unknown modality 'kidney'" in check("kidney").stderr


# --------------------------------------------------------------------------- seeds
def test_seeds_repeat_every_model_set_and_evaluation_on_one_shared_split():
    plan = P.Plan(None, "demo", ["lung"], seed=5, seeds=3)
    mp = plan.modality("lung")
    assert plan.seeds == [5, 6, 7]
    shared = [s for s in mp.steps if s.seed is None]
    assert sorted(s.kind for s in shared) == ["prep", "subset"]
    assert all("--seed 5" in " ".join(render.make_word(w) for w in s.command) for s in shared)
    # every other step exists once per seed, with its seed in the command and its files under s<seed>/
    per = {}
    for s in mp.steps:
        if s.seed is not None:
            per.setdefault(re.sub(r"^lung/s\d+/", "", s.stage), []).append(s)
            assert all(o.startswith(f"lung/s{s.seed}/") for o in s.outputs), s.outputs
    # randomized smoothing ([certify]) and the white-box runs beside it are the first seed's only
    first = {k for k in per if k.startswith("certify-") or any(k.startswith(f"eval-{m}-") for m, _ in plan.certify.models)}
    assert first and all(sorted(x.seed for x in per[k]) == [5] for k in first)
    # the standard suite with Square on the first seed (square_seeds = 1), its gradient part on the others
    whole = {k for k in per if k.endswith("wb-aa") and k not in first}
    grad = {k for k in per if k.endswith("wb-aa-apgd")}
    assert whole and {k + "-apgd" for k in whole} == grad
    assert all(sorted(x.seed for x in per[k]) == [5] for k in whole)
    assert all(sorted(x.seed for x in per[k]) == [6, 7] for k in grad)
    assert per and all(sorted(x.seed for x in v) == [5, 6, 7] for k, v in per.items()
                       if k not in first | whole | grad)
    words = {x.seed: " ".join(render.make_word(w) for w in x.command) for x in per["control"]}
    assert all(f"--seed {sd + 1000} " in words[sd] for sd in (5, 6, 7)), words
    base = {x.seed: " ".join(render.make_word(w) for w in x.command) for x in per["baseline"]}
    assert all(f"--seed {sd} " in base[sd] for sd in (5, 6, 7))
    # the transfer sets a seed's RDMAA is tested on were crafted on that seed's baseline
    for sd in (6, 7):
        c = mp.transfer("rdmaa", plan.test_attacks[0], plan.test_attacks[0].eps[0])
        same = mp.seeds_of(c)
        assert [x.seed for x in same] == [5, 6, 7] and len({x.output for x in same}) == 3
        craft = next(s for s in mp.steps if s.seed == sd and same[sd - 5].inputs[1] in s.outputs)
        assert P.model_path("lung", "baseline", sd) in craft.inputs
    assert mp.find("rdmaa", "clean", seed=7).seed == 7 and mp.clean("rdmaa").seed == 5
    assert mp.seeds_of(None) == []


def test_the_seed_control_is_judged_under_transfer_only():
    plan = P.Plan(None, "demo", ["lung"])
    mp = plan.modality("lung")
    fams = {c.family for c in mp.cells if c.model == "control"}
    assert fams == {"clean", "transfer", "sweep-transfer", "matched-transfer"}
    assert "control" not in plan.defended and "control" in plan.controls
    assert all(c.protocol in ("clean", "transfer") for c in mp.cells if c.model == "control")
    g = config.load_grid()
    g["evaluate"]["controls"] = ["nobody"]
    with pytest.raises(RdmError, match="names model 'nobody'"):
        P.Plan(g, "demo", ["lung"])


def test_stage_names_of_seeds_sum_in_the_wall_time_table():
    assert P.stage_name("lung", "baseline", 2) == "lung/s2/baseline"
    assert P.parse_stage("lung/s2/baseline", ["baseline"]) == ("lung", "train", "baseline")
    assert P.parse_stage("lung/s11/eval-rdmaa-clean", ["rdmaa"]) == ("lung", "eval", "eval-rdmaa")
    assert P.parse_stage("lung/prep", []) == ("lung", "prep", "prep")


def test_the_grid_runs_cheap_cells_first_and_the_standard_suite_last():
    """make's GRID_METRICS and the step runner order cells by the plan's cost estimate: an interrupted
    CPU run has every clean and transfer cell before any white-box one, and the AA cascade and the
    certificates (the costly ones) last; the order is a permutation of the plan's metrics."""
    plan = P.Plan(config.DEFAULT_GRID, "tables", ["brain"], seeds=1)
    mp = plan.modality("brain")
    mk = render.makefile(plan)
    order = re.search(r"^GRID_METRICS := (.*)$", mk, re.M).group(1).split()
    names = [o.replace("$(OUT)/", "") for o in order]
    assert sorted(names) == sorted(mp.metrics) and len(names) == len(set(names))
    kind = [("wb" if "/wb-" in n or "/matched-wb-" in n or "/sweep-wb-" in n else
             "certify" if "/certify/" in n else "cheap") for n in names]
    last_cheap = max(i for i, k in enumerate(kind) if k == "cheap")
    assert last_cheap < min(i for i, k in enumerate(kind) if k == "wb")
    aa = [i for i, n in enumerate(names) if n.endswith("wb-aa.json")]
    steps = [i for i, n in enumerate(names) if "/wb-steps-" in n or "/wb-pgd.json" in n or "/wb-noise" in n]
    assert aa and steps and max(steps) < min(aa)
    hours = [mp.hours_of(n) for n in names]
    assert hours == sorted(hours) and hours[-1] > 1.0 and mp.hours_of(names[0]) == 0.0
    cert = [n for n in names if "/certify/" in n]
    assert cert and all(mp.hours_of(c) > mp.hours_of(n) for c in cert for n in names if "/wb-pgd.json" in n)
    # the step runner: among ready jobs, as many waiting on each, the cheaper goes first
    from rdm.pipeline import runner as R
    jobs = R.plan_jobs(plan, {"OUT": "/o", "GRID": "g.toml", "PY": "python", "RDM": "", "DEVICE": "cpu",
                              "SUBSET_N": "300", "DATA_ROOT": "/d", "DEMO_N": "10", "TRAIN_FLAGS": ""})
    by = {j.outputs[0]: j for j in jobs}
    assert by["/o/" + names[-1]].hours == hours[-1] > 0 and by["/o/brain/s0/metrics/baseline/clean.json"].hours == 0
