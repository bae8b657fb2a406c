"""What every command shares: error handling, device and thread settings, output.

A tool in ``tools/`` parses its options with Typer, then runs its one library call
inside :func:`guard`, which turns any failure into ``error: <one line>`` on stderr:
exit 2 for bad usage (:class:`~rdm.errors.UsageError`, and Typer's own usage errors),
exit 1 for a failed run (a traceback only with ``--debug``). Results go to stdout through
:func:`emit`; everything else goes to stderr through :data:`console`.

Nothing here imports torch at import time: ``--help`` and ``--version`` answer at once, and
``RDM_THREADS`` is applied when a command starts its work (:func:`guard`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import functools
import inspect

import typer
from rich.console import Console

from rdm import __version__
from rdm.errors import RdmError, UsageError

console = Console(stderr=True, highlight=False)
_CLICK_ERRORS = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

# Shared options, one definition each (nnU-Net keeps them in one helper too); the groups of them
# (Run, Report, AttackFlags, Training) are in rdm.cli.options
from rdm.cli.options import OUT, OUT_DIR, DebugOpt, DeviceOpt, JsonOpt, PrecisionOpt, QuietOpt, SeedOpt  # noqa: E402,F401


def _print_version(ctx, value: bool | None) -> None:
    if value and not ctx.resilient_parsing:
        sys.stdout.write(f"{ctx.find_root().info_name or 'rdm'} (rdm) {__version__}\n")
        raise typer.Exit(0)


VersionOpt = Annotated[Optional[bool], typer.Option(
    "--version", callback=_print_version, is_eager=True, help="print the rdm version and exit")]


def make_app(help: str) -> typer.Typer:
    """The Typer app of one command; every command it registers also takes ``--version``."""
    app = typer.Typer(add_completion=False, help=help, pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]},
                      rich_markup_mode=None)
    register = app.command

    def command(*args, **kwargs):
        def add(fn):
            from rdm.cli.options import AttackFlags, grouped

            if AttackFlags in inspect.get_annotations(fn, eval_str=True).values():
                deco = register(*args, **{"cls": _attack_help_command(), **kwargs})
            else:
                deco = register(*args, **kwargs)
            deco(_with_version(grouped(fn)))
            return fn
        return add

    app.command = command
    return app


def _attack_help_command():
    """A command class whose ``--help`` ends with the registered attacks, one line each (the registry
    is imported only when the help is shown)."""
    from typer.core import TyperCommand

    class AttackHelpCommand(TyperCommand):
        def format_epilog(self, ctx, formatter) -> None:
            from rdm.attacks.options import help_section

            formatter.write_paragraph()
            formatter.write_text("Attacks (--attack NAME; --list-attacks shows their hyper-parameters):")
            formatter.indent()
            for line in help_section().splitlines():
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")
            formatter.dedent()
            super().format_epilog(ctx, formatter)

    return AttackHelpCommand


def _with_version(fn):
    """``fn`` with one more keyword parameter, ``--version`` (eager: answered before anything else)."""
    @functools.wraps(fn)
    def wrapper(*args, version: bool | None = None, **kwargs):
        return fn(*args, **kwargs)

    sig = inspect.signature(fn, eval_str=True)
    extra = inspect.Parameter("version", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=VersionOpt)
    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), "version": VersionOpt}
    return wrapper


def run(app: typer.Typer) -> None:
    """Console-script entry point: RDM_THREADS and RDM_COMPILE checked before parsing, SIGTERM
    handled like Ctrl-C (temporary files removed, exit 143)."""
    from rdm.attacks.compiled import mode as compile_mode

    try:
        threads_from_env()
        progress_seconds_from_env()
        compile_mode()
    except UsageError as e:
        sys.stderr.write(f"error: {e}\n")
        raise SystemExit(2) from None
    signal.signal(signal.SIGTERM, _on_sigterm)
    app()


def pipe_closed() -> "typer.Exit":
    """stdout's reader went away (``| head``): end quietly with the shell's code for a SIGPIPE
    (:func:`rdm.errors.quiet_pipe`)."""
    from rdm.errors import quiet_pipe

    return typer.Exit(quiet_pipe())


def _on_sigterm(signum, frame) -> None:
    # the first SIGTERM unwinds like Ctrl-C (temporary outputs removed); a second one while that runs
    # (``timeout`` then ``pkill``, a scheduler's repeated kill) lands in the interpreter's exit hooks,
    # where a raised SystemExit only prints a traceback: end the process there and then
    signal.signal(signum, _exit_now)
    raise SystemExit(128 + signum)


def _exit_now(signum, frame) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:       # a closed pipe: nothing left to say
            pass
    os._exit(128 + signum)


def threads_from_env() -> int | None:
    """RDM_THREADS as a positive integer (None when unset); UsageError otherwise."""
    raw = os.environ.get("RDM_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"RDM_THREADS={raw!r}: expected a positive integer (the CPU threads torch uses)")
    return n


def progress_seconds_from_env() -> float:
    """RDM_PROGRESS_SECONDS (seconds between plain progress lines; default 30; 0: every update) as
    a number ≥ 0; UsageError for anything else (``abc``, ``-1``, ``nan``) rather than silently 30."""
    raw = os.environ.get("RDM_PROGRESS_SECONDS", "").strip()
    if not raw:
        return 30.0
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not (0 <= v < float("inf")):
        raise UsageError(f"RDM_PROGRESS_SECONDS={raw!r}: expected a number of seconds ≥ 0")
    return v


def configure_threads() -> None:
    """Same thread settings under `python -m` and the console script."""
    n = threads_from_env()
    if n:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


@contextmanager
def guard(debug: bool = False) -> Iterator[None]:
    """Turn failures into one line on stderr: exit 2 for bad usage, 1 for a failed run.

    Until the command writes its first output, Ctrl-C ends it at once (:mod:`rdm.interrupts`);
    from then on it raises KeyboardInterrupt, which ends here as ``error: interrupted``, 130,
    once the temporary files are removed."""
    try:
        configure_threads()
        yield
    except (typer.Exit, typer.Abort, _CLICK_ERRORS):    # Typer's usage errors: its own message, exit 2
        raise
    except BrokenPipeError:
        raise pipe_closed() from None
    except KeyboardInterrupt:
        if debug:
            raise
        console.print("error: interrupted", style="red")
        raise typer.Exit(130)
    except UsageError as e:
        if debug:
            raise
        fail(str(e), code=2)
    except RdmError as e:
        if debug:
            raise
        fail(str(e))
    except MemoryError:
        if debug:
            raise
        fail("out of memory")
    except Exception as e:  # unexpected: still one line unless --debug
        if debug:
            raise
        from rdm.data.atomic import is_no_space

        if is_no_space(e):
            path = getattr(e, "filename", None)
            fail(f"no space left on device{f' writing {path}' if path else ''}")
        msg = str(e).strip().splitlines()
        fail(f"{type(e).__name__}: {msg[0] if msg else ''} (run with --debug for a traceback)")


def fail(message: str, code: int = 1) -> None:
    message = " ".join(str(message).split("\n"))
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def emit(result: Any, as_json: bool = False) -> None:
    """Print a result on stdout: paths one per line, or JSON (once per torchrun job: rank 0)."""
    from rdm.training.distributed import is_main

    if not is_main():
        return
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    elif isinstance(result, (list, tuple)):
        for r in result:
            sys.stdout.write(f"{r}\n")
    else:
        sys.stdout.write(f"{result}\n")
    sys.stdout.flush()


def resolve_device(spec: str):
    """``--device`` as a torch device (:func:`rdm.environment.resolve_device`; torch is imported only here)."""
    from rdm.environment import resolve_device as resolve

    return resolve(spec)


def say(message: str) -> None:
    """A progress or summary line on stderr (what the library hands its ``log`` callback)."""
    console.print(message, soft_wrap=True, markup=False)


def warn(message: str) -> None:
    """A warning line on stderr (what the library hands its ``warn`` callback)."""
    console.print(f"warning: {message}", style="yellow", soft_wrap=True, markup=False)


def progress(disable: bool = False):
    """Progress on stderr: a Rich bar on a terminal; plain lines every RDM_PROGRESS_SECONDS
    (default 30) when stderr is a file or a pipe (logs of batch jobs); nothing when disabled."""
    if disable or os.environ.get("RDM_NO_PBAR"):
        return PlainProgress(disable=True)
    if not console.is_terminal:
        return PlainProgress()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=console)


class PlainProgress:
    """The part of Rich's Progress API the commands use, as plain periodic lines."""

    def __init__(self, disable: bool = False, interval: float | None = None, stream=None):
        self.disable = disable
        self.interval = float(interval) if interval is not None else progress_seconds_from_env()
        self.stream = stream
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *a) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, info: str = "", **_) -> int:
        tid = len(self.tasks)
        now = time.monotonic()
        self.tasks[tid] = {"desc": description, "total": total, "done": 0, "t0": now, "last": now, "info": info}
        return tid

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, *, advance: float = 0, completed: float | None = None,
               total: float | None = None, info: str | None = None, description: str | None = None, **_) -> None:
        t = self.tasks[task]
        t["done"] = completed if completed is not None else t["done"] + advance
        for k, v in (("total", total), ("info", info), ("desc", description)):
            if v is not None:
                t[k] = v
        now = time.monotonic()
        finished = t["total"] is not None and t["done"] >= t["total"]
        # a line every interval; the last one only if the task was long enough to have had one
        if not self.disable and (now - t["last"] >= self.interval or finished and t.get("said")):
            t["last"] = now
            t["said"] = not finished
            self._line(t, now)

    def remove_task(self, task: int) -> None:
        self.tasks.pop(task, None)

    def _line(self, t: dict, now: float) -> None:
        el = now - t["t0"]
        total, done = t["total"], t["done"]
        if total:
            left = el / done * (total - done) if done else float("nan")
            rest = "" if done >= total else f", ~{left:.0f}s left"
            msg = f"{t['desc']}: {done:g}/{total:g} ({100 * done / total:.0f}%), {el:.0f}s{rest}"
        else:
            msg = f"{t['desc']}: {done:g}, {el:.0f}s"
        if t["info"]:
            msg += f" {t['info']}"
        stream = self.stream or sys.stderr
        stream.write(msg + "\n")
        stream.flush()


def show(renderable) -> None:
    """A table on stderr, wide enough for it even when stderr is a file."""
    Console(stderr=True, highlight=False, width=max(console.width, 150)).print(renderable)


def finish_report(report: dict, where, *, text: str | None = None, warnings=(), summary=(),
                  rows: Path | None = None) -> None:
    """The end of every command that makes a report (``where``: its :class:`rdm.cli.options.Report`):
    the warnings on stderr; ``-o`` written atomically (``text``: the file's text, default the
    ``rdm-eval`` layout); ``rows`` the per-row table; then on stdout the JSON with ``--json``, else
    the path ``-o`` wrote, else the ``summary`` lines: the result always reaches stdout or a file,
    ``-q`` or not."""
    from rdm.api.eval import report_text
    from rdm.attacks.per_row import write_table
    from rdm.data.atomic import write_text
    from rdm.data.guard import is_stdout

    for w in warnings:
        console.print(f"warning: {w}", style="yellow")
    if where.output is not None:
        write_text(where.output, report_text(report) if text is None else text)
    if rows is not None:
        write_table(report, rows)
    if where.as_json:
        emit(report, as_json=True)
    elif where.output is not None and not is_stdout(where.output):
        emit(where.output)
    elif where.output is None:        # with -o - the report itself went to stdout
        emit(list(summary))


def merge_only(other_options: Any) -> None:
    """``--merge`` with options that belong to a run (an attack, ε, a shard …): a usage error."""
    if other_options:
        raise UsageError("--merge takes only the part files and -o")


def emit_written(paths) -> None:
    """The paths a command wrote, one per line on stdout; ``-`` left out (the output itself went there)."""
    from rdm.data.guard import is_stdout

    emit([p for p in paths if not is_stdout(p)])

