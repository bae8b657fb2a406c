"""The one exception type a command turns into `error: <message>` and exit 1."""


class RdmError(Exception):
    """A user-facing failure: bad input, a mismatch, a corrupt file.

    The message is a single line that names the file and the problem, e.g.
    ``test.h5 has 1 channel but baseline.ckpt expects 3``.
    """
