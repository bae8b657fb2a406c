"""The exception types a command turns into one ``error: <message>`` line.

``RdmError`` exits 1 (a failed run), :class:`UsageError` exits 2 (bad usage: a parameter
value out of range, options that exclude each other), as the README promises.
"""


class RdmError(Exception):
    """A user-facing failure: bad input, a mismatch, a corrupt file.

    The message is a single line that names the file and the problem, e.g.
    ``test.h5 has 1 channel but baseline.ckpt expects 3``.
    """


class UsageError(RdmError):
    """Bad usage: a parameter value out of range or options that do not go together (exit 2)."""


class NoSpaceError(RdmError):
    """A write failed for lack of space (ENOSPC, EDQUOT, EFBIG); ``path`` is the file being written."""

    def __init__(self, path):
        super().__init__(f"no space left on device writing {path}")
        self.path = path


def quiet_pipe() -> int:
    """stdout's reader went away (``| head``): point stdout at /dev/null so that the interpreter's
    final flush cannot fail again; the shell's exit code for a SIGPIPE (141)."""
    import os
    import sys

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def module_main(main) -> int:
    """The entry of a ``python -m rdm.…`` helper: its ``main()``'s exit code, or 141 and no traceback
    when stdout is closed early (``python -m rdm.pipeline.grid cells | head``). Here, not in :mod:`rdm.cli`:
    ``rdm.pipeline.grid timed`` wraps every step of the grid and must not import Typer."""
    try:
        return main()
    except BrokenPipeError:
        return quiet_pipe()
