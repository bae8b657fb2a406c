"""What every command shares: error handling, device and thread settings, output.

A tool in ``tools/`` parses its options with Typer, then runs its one library call
inside :func:`guard`, which turns any failure into ``error: <one line>`` on stderr
and exit 1 (a traceback only with ``--debug``). Results go to stdout through
:func:`emit`; everything else goes to stderr through :data:`console`.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator

import typer
from rich.console import Console

from .errors import RdmError

console = Console(stderr=True, highlight=False)

# Shared options, one definition each (nnU-Net keeps them in one helper too).
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N")]
SeedOpt = Annotated[int, typer.Option("--seed", help="random seed; same seed, same bytes on CPU")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show a traceback on failure")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar or summary on stderr")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]
PrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="fp32, or bf16: autocast (bfloat16 convolutions, on CUDA; slow on CPUs without native "
                        "bf16); the ε-ball, the weights and the written outputs stay float32")]


def make_app(help: str) -> typer.Typer:
    return typer.Typer(add_completion=False, help=help, pretty_exceptions_enable=False,
                       context_settings={"help_option_names": ["-h", "--help"]},
                       rich_markup_mode=None)


def run(app: typer.Typer) -> None:
    """Console-script entry point."""
    configure_threads()
    app()


def configure_threads() -> None:
    """Same thread settings under `python -m` and the console script."""
    import torch

    n = os.environ.get("RDM_THREADS")
    if n:
        torch.set_num_threads(int(n))


@contextmanager
def guard(debug: bool = False) -> Iterator[None]:
    """Turn failures into one line on stderr and exit 1."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        console.print("error: interrupted", style="red")
        raise typer.Exit(130)
    except RdmError as e:
        if debug:
            raise
        fail(str(e))
    except Exception as e:  # unexpected: still one line unless --debug
        if debug:
            raise
        msg = str(e).strip().splitlines()
        fail(f"{type(e).__name__}: {msg[0] if msg else ''} (run with --debug for a traceback)")


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def emit(result: Any, as_json: bool = False) -> None:
    """Print a result on stdout: paths one per line, or JSON (once per torchrun job: rank 0)."""
    from .distributed import is_main

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
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RdmError(f"--device {spec}: CUDA is not available on this machine")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RdmError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise RdmError(f"--device {spec}: expected auto, cpu, cuda or cuda:N")


def say(message: str) -> None:
    """A progress or summary line on stderr (what the library hands its ``log`` callback)."""
    console.print(message, soft_wrap=True, markup=False)


def warn(message: str) -> None:
    """A warning line on stderr (what the library hands its ``warn`` callback)."""
    console.print(f"warning: {message}", style="yellow", soft_wrap=True, markup=False)


def progress(disable: bool = False):
    """A Rich progress bar on stderr."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=console, disable=disable or bool(os.environ.get("RDM_NO_PBAR")))


def check_output_path(path: Path, *, overwrite: bool = True) -> Path:
    path = Path(path)
    if path.exists() and path.is_dir():
        raise RdmError(f"{path}: is a directory, expected a file path for -o")
    return path
