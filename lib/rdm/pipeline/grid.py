"""``python -m rdm.pipeline.grid``: the experiment graph's command line, as the Makefile, the Slurm scripts
and ``shell/reproduce.sh`` call it. The logic lives in :mod:`rdm.pipeline` (the plan, its
renderings and the small steps); this module only parses and prints.

Sub-commands: ``makefile`` (make rules), ``script`` (one modality as bash), ``cells`` (the Slurm
levels), ``check-data`` (each modality's data folder is there), ``matched`` (matched.json), ``get`` (a value of a JSON file, for a recipe), ``subset``,
``fingerprint`` and ``stamp`` (the content stamps), ``timed`` (run a command, log its wall time), ``run``
(the needed steps in a pool of long-lived worker processes: :mod:`rdm.pipeline.runner`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rdm.errors import RdmError, UsageError
from rdm.pipeline import render, runner, steps
from rdm.pipeline.config import MODES, TIERS, load_grid, paper_of
from rdm.pipeline.plan import Plan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rdm.pipeline.grid", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, kw in (("makefile", {}), ("script", {}),
                     ("cells", {"help": "the steps as LEVEL<TAB>STAGE<TAB>TARGET lines (levels run in order)"})):
        p = sub.add_parser(name, **kw)
        p.add_argument("--grid", default=None)
        p.add_argument("--mode", choices=MODES, default="tables")
        if name == "script":
            p.add_argument("--modality", required=True)
        else:
            p.add_argument("--modality", action="append")
        p.add_argument("--seed", type=int, default=0, help="the base seed (the split's)")
        p.add_argument("--seeds", type=int, default=1, help="how many seeds: SEED, SEED+1, …")
        p.add_argument("--tier", choices=TIERS, default="full", help="core ([tiers.core]) or full (every cell)")
    p.add_argument("--level", type=int, help="only this level's targets, one per line")
    p = sub.add_parser("run", help="run the needed steps in JOBS long-lived worker processes (make's rules, "
                                   "one torch import per worker)")
    p.add_argument("--grid", default=None)
    p.add_argument("--mode", choices=MODES, default="tables")
    p.add_argument("--modality", action="append")
    p.add_argument("--seed", type=int, default=0, help="the base seed (the split's)")
    p.add_argument("--seeds", type=int, default=1, help="how many seeds: SEED, SEED+1, …")
    p.add_argument("--tier", choices=TIERS, default="full", help="core ([tiers.core]) or full (every cell)")
    p.add_argument("-j", "--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--results", help="also write the report (REPORT.md …) here, as `make report` does")
    p.add_argument("settings", nargs="*", metavar="NAME=VALUE",
                   help="make's variables the commands use: " + ", ".join(runner.DEFAULTS))
    p = sub.add_parser("check-data", help="exit 1 with one line when a modality's data folder is missing")
    p.add_argument("--grid", default=None)
    p.add_argument("--modality", action="append")
    p.add_argument("--data-root", required=True)
    p = sub.add_parser("matched")
    p.add_argument("--grid", default=None)
    p.add_argument("--modality", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("sweeps", nargs="+")
    p = sub.add_parser("get")
    p.add_argument("file")
    p.add_argument("key")
    p = sub.add_parser("subset")
    p.add_argument("src")
    p.add_argument("n", type=int)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("fingerprint", help="write the content hash of a data folder to a file if it changed")
    p.add_argument("src")
    p.add_argument("-o", "--output", required=True)
    p = sub.add_parser("stamp", help="write VALUE to FILE if it differs (a make prerequisite on a variable)")
    p.add_argument("file")
    p.add_argument("value")
    p = sub.add_parser("timed")
    p.add_argument("log")
    p.add_argument("stage")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "makefile":
            sys.stdout.write(render.makefile(Plan(a.grid, a.mode, a.modality, a.seed, a.seeds, a.tier)))
        elif a.cmd == "cells":
            for lv, stage, target in render.levels(Plan(a.grid, a.mode, a.modality, a.seed, a.seeds, a.tier)):
                if a.level is None:
                    print(f"{lv}\t{stage}\t{target}")
                elif lv == a.level:
                    print(target)
        elif a.cmd == "script":
            sys.stdout.write(render.shell_script(Plan(a.grid, a.mode, [a.modality], a.seed, a.seeds, a.tier), a.modality))
        elif a.cmd == "run":
            plan = Plan(a.grid, a.mode, a.modality, a.seed, a.seeds, a.tier)
            settings = runner.parse_settings(a.settings, {**runner.DEFAULTS, "PY": sys.executable})
            settings["GRID"] = a.grid or plan.path
            return runner.run_plan(plan, settings, a.jobs, a.results)
        elif a.cmd == "check-data":
            steps.check_data(load_grid(a.grid), a.data_root, a.modality)
        elif a.cmd == "matched":
            g = load_grid(a.grid)
            paper = paper_of(g, a.modality) if a.modality in g["modalities"] else g.get("paper", {}).get(a.modality, {})
            steps.write_matched(paper, a.modality, a.sweeps, a.output)
        elif a.cmd == "get":
            print(json.loads(Path(a.file).read_text())[a.key])
        elif a.cmd == "subset":
            steps.write_subset(a.src, a.n, a.output, a.seed)
        elif a.cmd == "fingerprint":
            steps.write_if_changed(a.output, steps.fingerprint(a.src))
        elif a.cmd == "stamp":
            steps.write_if_changed(a.file, a.value + "\n")
        elif a.cmd == "timed":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            rc, dt = steps.timed(a.log, a.stage, cmd)
            if rc == 0:
                sys.stderr.write(f"[{a.stage}] {dt:.1f}s\n")
            return rc
    except UsageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except RdmError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    from rdm.errors import module_main

    sys.exit(module_main(main))
