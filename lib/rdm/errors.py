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
