"""Ctrl-C during a command's start-up: one line, exit 130, nothing written.

Importing torch and the libraries around it takes a second or more, and an interrupt that lands
inside it can be lost (swallowed by an import that catches everything) or turn into a long
traceback from the import machinery. So each command's file in ``tools/`` calls
:func:`at_startup` as its first statement, before any heavy import: until the command begins to
write its first output (:func:`started`, called by :func:`rdm.data.atomic.atomic_outputs` before
it makes a temporary file), SIGINT writes ``error: interrupted`` and ends the process at once with
130. No output exists yet at that point, so there is nothing to clean up. From then on Ctrl-C
raises KeyboardInterrupt as usual, and the command's guard removes its temporary files and exits 130.

Only the console scripts (``rdm-*``) and ``python -m rdm_tools.<command>`` install the handler;
importing a command's module (the tests do) changes nothing.
"""

from __future__ import annotations

import os
import signal
import sys

INTERRUPTED = 128 + signal.SIGINT      # 130, the shell's code for a Ctrl-C
_state = {"installed": False}


def _quit(signum, frame) -> None:
    try:
        os.write(2, b"error: interrupted\n")
    except OSError:
        pass
    os._exit(INTERRUPTED)


def at_startup(module_name: str) -> None:
    """Install the start-up SIGINT handler when this process is a command (not an importer)."""
    prog = os.path.basename(sys.argv[0] if sys.argv else "")
    if module_name != "__main__" and not prog.startswith("rdm-"):
        return
    try:
        signal.signal(signal.SIGINT, _quit)
    except ValueError:          # not the main thread: leave signals alone
        return
    _state["installed"] = True


def started() -> None:
    """The command begins to write: Ctrl-C raises KeyboardInterrupt again (temporary files removed)."""
    if _state["installed"]:
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        except ValueError:      # not the main thread: the main thread's next write arms it
            return
        _state["installed"] = False
