"""The plan's steps run by a pool of long-lived worker processes (``python -m rdm.pipeline.grid run``).

``make`` starts a process per step: ``import torch`` (and, on a GPU, the CUDA context) each time,
which was most of a median grid stage on a GPU. Here ``jobs`` worker processes are started once
(forked from a server that imported torch and the tools once) and each step calls its tool's entry
point in-process with the step's argument list, exactly as make would have run it:

* the steps are the plan's (:func:`rdm.pipeline.plan.needed_steps`, in
  :func:`~rdm.pipeline.render.dependency_order`), their arguments
  :func:`~rdm.pipeline.render.argv` with the run's settings (``OUT``, ``DEVICE`` …, make's variable
  names); a word that reads a value when the step runs (:func:`~rdm.pipeline.commands.read_key`,
  the matched ε) is resolved by running its command in-process and taking its output;
* make's semantics: a step whose outputs all exist and are not older than any of its inputs is
  skipped; the content stamps (``subset-n``, ``source.sha256``) are written as make's stamp rules
  write them (only on change); ``timings.jsonl`` gets make's ``$(TIMED)`` line for each step run
  (same stage names) and ``[stage] N.Ns`` goes to stderr;
* a failing step: the steps that need its outputs are not run, the others go on; the run ends with
  exit 1 and a list of the failed stages with their last log lines;
* a step's stdout and stderr are passed on when it ends (one block per step, as ``make -O``);
* between steps a worker puts back what a step may leave behind in a process: environment, working
  directory, ``sys.argv``, signal handlers, warning filters, logging handlers, torch's thread count
  and cuDNN/TF32/determinism flags, the per-process file caches
  (:func:`rdm.data.provenance.forget_files`), and on CUDA the cached memory. torch's global generator is
  reseeded at random before each step, as a fresh process is (every tool seeds what it uses).
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import multiprocessing as mp
import os
import runpy
import shlex
import signal
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable

from rdm.errors import RdmError, UsageError
from rdm.pipeline import commands as C
from rdm.pipeline.commands import Sub, Var, Word
from rdm.pipeline.plan import Plan, needed_steps, source_stamp_path, subset_stamp_path
from rdm.pipeline.render import argv as render_argv
from rdm.pipeline.render import dependency_order

#: the settings a step's words may name, with make's defaults (the Makefile's ``?=`` values)
DEFAULTS = {"OUT": "work", "DEVICE": "auto", "SUBSET_N": "300", "DEMO_N": "240", "TRAIN_FLAGS": "",
            "DATA_ROOT": "../shared/data", "PY": "python3", "RDM": ""}

#: what the workers' server imports once (then forks a worker per slot). Not rdm.pipeline.grid: a worker
#: started from ``python -m rdm.pipeline.grid`` runs that module again as ``__mp_main__``, and runpy warns
#: when it is imported already.
PRELOAD = ["torch", "h5py", "numpy", "typer", "rich", "rdm.cli", "rdm.data.sets", "rdm.data.checkpoint", "rdm.models",
           "rdm.api.train", "rdm.api.attack", "rdm.api.eval", "rdm.api.advtrain",
           "rdm_tools.prep", "rdm_tools.train_cnn", "rdm_tools.pretrain_dcae", "rdm_tools.finetune",
           "rdm_tools.advtrain", "rdm_tools.attack", "rdm_tools.eval"]


def parse_settings(pairs: list[str], base: dict[str, str] | None = None) -> dict[str, str]:
    """``NAME=VALUE`` words (make's command-line variables) over :data:`DEFAULTS`; UsageError for
    anything else."""
    out = dict(DEFAULTS if base is None else base)
    for p in pairs:
        name, eq, value = p.partition("=")
        if not eq or name not in DEFAULTS:
            raise UsageError(f"'{p}': expected NAME=VALUE with NAME one of {', '.join(DEFAULTS)}")
        out[name] = value
    return out


# =========================================================================== running one command in-process
def _entry_point(name: str):
    from importlib.metadata import entry_points

    for ep in entry_points(group="console_scripts", name=name):
        return ep.load()
    if name.startswith("rdm-"):        # the source tree on PYTHONPATH, not installed: rdm-x-y is rdm_tools.x_y:main
        import importlib

        try:
            return importlib.import_module("rdm_tools." + name[4:].replace("-", "_")).main
        except ImportError:
            pass
    raise RdmError(f"{name}: not an rdm command here (pip install -e . installs the rdm-* entry points)")


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")      # sys.exit("message"), as the interpreter prints it
    return 1


def call(args: list[str]) -> int:
    """Run one command line in this process as its own process would: ``PY -m MODULE ARGS…`` runs the
    module as ``__main__``; ``[DIR/]rdm-TOOL ARGS…`` calls the console script's entry point with
    ``sys.argv`` = ``args``. Returns the exit code (an uncaught exception: its traceback, 1)."""
    saved = list(sys.argv)
    try:
        if len(args) >= 3 and args[1] == "-m":
            sys.argv = [args[0], *args[3:]]          # runpy puts the module's file in argv[0], as -m does
            with warnings.catch_warnings():          # runpy's note that the module is imported already
                warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
                runpy.run_module(args[2], run_name="__main__", alter_sys=True)
            return 0
        fn = _entry_point(os.path.basename(args[0]))
        sys.argv = list(args)
        return _exit_code(fn())
    except SystemExit as e:
        return _exit_code(e.code)
    except KeyboardInterrupt:
        return 130
    except RdmError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except BaseException:  # noqa: BLE001 - what an interpreter does with an uncaught exception
        traceback.print_exc()
        return 1
    finally:
        sys.argv = saved
        sys.stdout.flush()
        sys.stderr.flush()


def resolve(words: list[Word], settings: dict[str, str]) -> list[str]:
    """A step's arguments; a :class:`Sub` word (a value read when the step runs) is the stripped
    stdout of its command, run in-process. RdmError (one line) when that command fails."""
    def value(sub: Sub) -> str:
        args = resolve(list(sub.words), settings)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = call(args)
        if rc != 0:
            raise RdmError(f"`{shlex.join(args)}` exited {rc}")
        return buf.getvalue().strip()

    out: list[str] = []
    for w in words:
        if any(isinstance(p, Sub) for p in w.parts):
            text = "".join(value(p) if isinstance(p, Sub) else settings[p.name] if isinstance(p, Var) else p
                           for p in w.parts)
            out += text.split()       # an unquoted $(…) in make's recipe: split by the shell
        else:
            out += render_argv([w], settings)
    return out


# =========================================================================== the worker
@contextlib.contextmanager
def fresh_state() -> Any:
    """Run a step, then put back the process state a step may change (the module's notes)."""
    import torch

    env, cwd, argv = dict(os.environ), os.getcwd(), list(sys.argv)
    sigs = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    root = logging.getLogger()
    log_handlers, log_level = list(root.handlers), root.level
    threads = torch.get_num_threads()
    flags = _torch_flags()
    torch.seed()                        # a fresh process's global generator is seeded at random
    try:
        with warnings.catch_warnings():
            yield
    finally:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv = argv
        for s, h in sigs.items():
            signal.signal(s, h)
        for h in list(root.handlers):
            if h not in log_handlers:
                root.removeHandler(h)
        root.setLevel(log_level)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        _set_torch_flags(flags)
        from rdm.data.provenance import forget_files

        forget_files()
        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()
            torch.cuda.empty_cache()


def _torch_flags() -> dict[str, Any]:
    import torch

    b = torch.backends
    return {"cudnn.benchmark": b.cudnn.benchmark, "cudnn.deterministic": b.cudnn.deterministic,
            "cudnn.allow_tf32": b.cudnn.allow_tf32, "cuda.matmul.allow_tf32": b.cuda.matmul.allow_tf32,
            "matmul_precision": torch.get_float32_matmul_precision(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "grad": torch.is_grad_enabled(), "dtype": torch.get_default_dtype()}


def _set_torch_flags(f: dict[str, Any]) -> None:
    import torch

    b = torch.backends
    b.cudnn.benchmark, b.cudnn.deterministic = f["cudnn.benchmark"], f["cudnn.deterministic"]
    b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = f["cudnn.allow_tf32"], f["cuda.matmul.allow_tf32"]
    torch.set_float32_matmul_precision(f["matmul_precision"])
    if torch.are_deterministic_algorithms_enabled() != f["deterministic"]:
        torch.use_deterministic_algorithms(f["deterministic"])
    torch.set_grad_enabled(f["grad"])
    torch.set_default_dtype(f["dtype"])


def run_captured(args: list[str]) -> tuple[int, float, list[str]]:
    """:func:`call` in :func:`fresh_state`, its fd 1 and 2 gathered and passed on when it ends.
    Returns (exit code, seconds, the last lines it wrote on stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            t0 = time.time()
            with fresh_state():
                rc = call(args)
            dt = time.time() - t0
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        tail: list[str] = []
        for f, fd in ((out, 1), (err, 2)):
            f.seek(0)
            data = f.read()
            view = memoryview(data)
            while view:                       # a pipe may take part of it at a time
                view = view[os.write(fd, view):]
            if fd == 2:
                tail = data.decode("utf-8", "replace").splitlines()[-3:]
    return rc, dt, tail


def _worker(conn, env: dict[str, str], cwd: str) -> None:
    os.environ.clear()
    os.environ.update(env)       # the runner's environment now, not the server's when it started
    os.chdir(cwd)
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return
            if msg is None:
                return
            conn.send(run_captured(msg))
    except (KeyboardInterrupt, BrokenPipeError):
        return


def _context():
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


class _Worker:
    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, dict(os.environ), os.getcwd()), daemon=True)
        self.proc.start()
        child.close()
        self.job: Job | None = None

    def stop(self, wait_s: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(wait_s)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(wait_s)
        self.conn.close()


# =========================================================================== the schedule
@dataclass
class Job:
    """A step to run: its stage, command words, and the files it reads and writes (real paths)."""

    stage: str
    words: list[Word]
    inputs: list[str]
    outputs: list[str]
    deps: list["Job"] = field(default_factory=list)
    state: str = "waiting"          # waiting, running, ok, skipped, failed, blocked
    rc: int | None = None
    tail: list[str] = field(default_factory=list)
    weight: int = 0
    hours: float = 0.0              # the plan's estimate (plan.ModalityPlan.hours_of): cheap first among equals


@dataclass
class Outcome:
    ran: list[Job]
    up_to_date: list[Job]
    failed: list[Job]
    blocked: list[Job]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def up_to_date(job: Job) -> bool:
    """make's test: every output exists and none is older than any input."""
    outs = [_mtime(p) for p in job.outputs]
    if any(t is None for t in outs):
        return False
    ins = [t for t in (_mtime(p) for p in job.inputs) if t is not None]
    return not ins or max(ins) <= min(outs)


def link(jobs: list[Job]) -> list[Job]:
    """Each job's ``deps`` (the jobs that make its inputs) and ``weight`` (how many jobs wait on it,
    directly or not: a ready job with more goes to a worker first, so training starts before the
    evaluations that do not need it)."""
    by = {o: j for j in jobs for o in j.outputs}
    for j in jobs:
        j.deps = list({id(by[i]): by[i] for i in j.inputs if i in by and by[i] is not j}.values())
    below: dict[int, set[int]] = {}
    for j in jobs:                                      # dependency order: a job's deps come first
        for d in j.deps:
            below.setdefault(id(d), set())
    for j in reversed(jobs):
        for d in j.deps:
            below[id(d)] |= {id(j)} | below.get(id(j), set())
    for j in jobs:
        j.weight = len(below.get(id(j), ()))
    return jobs


def run_jobs(jobs: list[Job], settings: dict[str, str], n: int, log: str | os.PathLike,
             say: Callable[[str], None] | None = None) -> Outcome:
    """Run ``jobs`` (linked, in dependency order) on ``n`` workers with make's semantics (module notes)."""
    say = say or (lambda m: (sys.stderr.write(m + "\n"), sys.stderr.flush()))
    ctx = None
    pool: list[_Worker] = []
    pending = list(jobs)
    out = Outcome([], [], [], [])
    try:
        while True:
            _settle(pending, out)
            ctx = _start_ready(pending, pool, n, settings, log, out, ctx)
            busy = [w for w in pool if w.job is not None]
            if not busy:
                break
            _collect(busy, pool, log, out, say)
    finally:
        for w in pool:
            if w.job is not None:
                w.proc.terminate()
            w.stop()
    return out


def _settle(pending: list[Job], out: Outcome) -> None:
    """Settle every pending job that needs no worker, until none is left to settle: blocked (a dep
    failed or was blocked), failed (an input is missing and no job makes it) or up to date."""
    progressed = True
    while progressed:
        progressed = False
        for j in list(pending):
            if any(d.state in ("failed", "blocked") for d in j.deps):
                j.state = "blocked"
            elif not all(d.state in ("ok", "skipped") for d in j.deps):
                continue
            elif missing := [i for i in j.inputs if _mtime(i) is None]:
                j.state, j.rc = "failed", 2
                j.tail = [f"no rule to make {missing[0]}, needed by {j.outputs[0]}"]
            elif up_to_date(j):
                j.state = "skipped"
            else:
                continue
            pending.remove(j)
            {"blocked": out.blocked, "failed": out.failed, "skipped": out.up_to_date}[j.state].append(j)
            progressed = True


def _start_ready(pending: list[Job], pool: list[_Worker], n: int, settings: dict[str, str],
                 log: str | os.PathLike, out: Outcome, ctx):
    """Hand the ready jobs (every dep done), heaviest first, to idle workers, starting new ones up to
    ``n``; a job whose command cannot be resolved fails here. Returns the process context (made
    when the first worker starts)."""
    ready = sorted((j for j in pending if all(d.state in ("ok", "skipped") for d in j.deps)),
                   key=lambda j: (-j.weight, j.hours))
    idle = [w for w in pool if w.job is None]
    while ready and (idle or len(pool) < n):
        j = ready.pop(0)
        pending.remove(j)
        try:
            args = resolve(j.words, settings)
        except RdmError as e:
            j.state, j.rc, j.tail = "failed", 1, [f"error: {e}"]
            out.failed.append(j)
            _log(log, j.stage, 0.0, 1)
            continue
        if not idle:
            ctx = ctx or _context()
            pool.append(_Worker(ctx))
            idle = [pool[-1]]
        w = idle.pop(0)
        for o in j.outputs:
            Path(o).parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.write(f"[{j.stage}] {shlex.join(args)}\n")
        sys.stdout.flush()
        w.conn.send(args)
        w.job, j.state = j, "running"
    return ctx


def _collect(busy: list[_Worker], pool: list[_Worker], log: str | os.PathLike, out: Outcome,
             say: Callable[[str], None]) -> None:
    """Wait until a busy worker answers (or dies) and record the result of each one that did."""
    ready_objs = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
    for w in busy:
        if w.conn not in ready_objs and w.proc.sentinel not in ready_objs:
            continue
        j, w.job = w.job, None
        try:
            rc, dt, tail = w.conn.recv()
        except (EOFError, OSError):       # the worker died (a crash, a signal): the step failed
            w.proc.join(5)
            code = w.proc.exitcode
            rc, dt = (128 - code if code is not None and code < 0 else code or 1), 0.0
            tail = [f"the worker process died (exit {w.proc.exitcode})"]
            pool.remove(w)
            w.conn.close()
        _log(log, j.stage, dt, rc)
        j.rc, j.tail = rc, tail
        if rc == 0:
            j.state = "ok"
            out.ran.append(j)
            say(f"[{j.stage}] {dt:.1f}s")
        else:
            j.state = "failed"
            out.failed.append(j)
            say(f"[{j.stage}] failed (exit {rc})")


def _log(log: str | os.PathLike, stage: str, seconds: float, rc: int) -> None:
    """make's ``$(TIMED)`` line (:func:`rdm.pipeline.steps.timed`)."""
    import json

    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(json.dumps({"stage": stage, "seconds": round(seconds, 2), "rc": rc, "end": time.time()}) + "\n")


# =========================================================================== the plan
def _real(settings: dict[str, str], path: str) -> str:
    return f"{settings['OUT']}/{path}"


def plan_jobs(plan: Plan, settings: dict[str, str], results: str | None = None) -> list[Job]:
    """The steps ``make`` would run for the report (and the report itself when ``results`` is given),
    as linked jobs in dependency order."""
    jobs = [Job(s.stage, s.command, [_real(settings, i) for i in s.inputs], [_real(settings, o) for o in s.outputs],
                hours=sum(plan.run[s.modality].hours_of(o) for o in s.outputs) if s.modality in plan.run else 0.0)
            for s in dependency_order(needed_steps(plan))]
    if results is not None:
        words = [*C.module("rdm.report"), *C.lit("--grid"), C.var("GRID"), *C.lit("--work"), C.var("OUT"),
                 *C.lit("--results", results, "--mode", plan.mode, "--tier", plan.tier.name, "--seed",
                        str(plan.seed), "--seeds", str(len(plan.seeds)))]
        metrics = [_real(settings, p) for mp_ in plan.run.values() for p in mp_.metrics]
        jobs.append(Job("report", words, [*metrics, settings["GRID"]], [f"{results}/REPORT.md"]))
    return link(jobs)


def write_stamps(plan: Plan, settings: dict[str, str]) -> None:
    """The content stamps of every modality run, as make's stamp rules write them (only on change)."""
    from rdm.pipeline.steps import fingerprint, write_if_changed

    for m in plan.run:
        write_if_changed(_real(settings, subset_stamp_path(m)), settings["SUBSET_N"] + "\n")
        if plan.mode != "demo":
            src = f"{settings['DATA_ROOT']}/{plan.modalities[m]['source']}"
            write_if_changed(_real(settings, source_stamp_path(m)), fingerprint(src))


def run_plan(plan: Plan, settings: dict[str, str], jobs: int, results: str | None = None) -> int:
    """``python -m rdm.pipeline.grid run``: exit 0 when every step ran or was up to date, else 1 with the
    failed stages and their last log lines on stderr."""
    from rdm.pipeline.steps import check_data

    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if plan.mode != "demo":
        check_data({"modalities": plan.modalities}, settings["DATA_ROOT"], list(plan.run))
    write_stamps(plan, settings)
    todo = plan_jobs(plan, settings, results)
    t0 = time.time()
    try:
        res = run_jobs(todo, settings, jobs, _real(settings, "timings.jsonl"))
    except KeyboardInterrupt:        # the workers were stopped; finished outputs stay, as with make
        sys.stderr.write("error: interrupted\n")
        return 130
    wall = time.time() - t0
    sys.stderr.write(f"{len(res.ran)} steps run, {len(res.up_to_date)} up to date, in {wall:.1f}s wall "
                     f"on {jobs} workers\n")
    sys.stderr.writelines(line + "\n" for line in failures(res))
    return 0 if res.ok else 1


def failures(res: Outcome) -> list[str]:
    """The failed stages, each with the last lines its command wrote on stderr ([] when none failed)."""
    if res.ok:
        return []
    lines = [f"error: {len(res.failed)} step(s) failed"
             f"{f', {len(res.blocked)} not run because of them' if res.blocked else ''}:"]
    for j in res.failed:
        lines += [f"  {j.stage} (exit {j.rc})", *(f"    {line}" for line in j.tail)]
    return lines
