"""The output guard: the one check every output path of every command goes through.

A command collects what it writes (``-o``, ``--history``, ``--preview``, part files, the
``OUTPUT.partial`` beside a checkpoint) and everything it reads (sets, checkpoints, the preset
file, the source folder of ``rdm-prep`` with its manifest, a resume file, a DCAE, adversarial
sets) and calls :func:`check_outputs` before any work. It refuses with one line (exit 2):

- an output that is one of the inputs: the same resolved path, or the same file reached by a
  symbolic or a hard link (same ``st_dev``/``st_ino``);
- an output inside (or equal to) a folder the command reads from (``rdm-prep``'s source tree:
  ``--preview tree/a/a0.png`` would replace an image the next run trains on);
- two outputs that are the same file;
- an output that is a folder, a block device, a socket or anything else that is neither a
  regular file nor a stream.

Streams: ``-`` means stdout, and a character device or a FIFO (or a symbolic link to one:
``/dev/null``, ``/dev/stdout``) is *written into*, never replaced: the output is built in a
temporary file and its bytes are copied into the stream once complete (:mod:`rdm.data.atomic`).
An output that needs a regular file beside it (a training checkpoint keeps ``OUTPUT.partial``
next to it) refuses streams (``streams=False``). Regular files keep the temp-then-rename write.

Inputs that are not regular files (a FIFO given as a checkpoint or a set) are refused by
:func:`require_regular_file` instead of blocking on the open.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, Sequence, Tuple, Union

from rdm.errors import RdmError, UsageError

STDOUT = "-"

Labeled = Union[os.PathLike, str, None, Tuple[str, Union[os.PathLike, str, None]]]


def is_stdout(path: os.PathLike | str | None) -> bool:
    return path is not None and str(path) == STDOUT


def output_kind(path: os.PathLike | str) -> str:
    """``stdout``, ``missing``, ``regular``, ``stream`` (character device or FIFO, also through a
    symbolic link), ``dir`` or ``other`` (block device, socket, a dangling link loop...)."""
    if is_stdout(path):
        return "stdout"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "other" if os.path.lexists(path) else "missing"
    m = st.st_mode
    if stat.S_ISREG(m):
        return "regular"
    if stat.S_ISDIR(m):
        return "dir"
    if stat.S_ISCHR(m) or stat.S_ISFIFO(m):
        return "stream"
    return "other"


_KIND_WORDS = {"dir": "a directory", "other": "not a regular file (a block device, a socket or a broken link)"}


def _labeled(items: Iterable[Labeled], default: str) -> list[tuple[str, str]]:
    out = []
    for it in items:
        if isinstance(it, tuple):
            label, p = it
        else:
            label, p = default, it
        if p is None:
            continue
        out.append((label, str(p)))
    return out


def _key(path: str) -> tuple[str, tuple[int, int] | None]:
    real = os.path.realpath(path)
    try:
        st = os.stat(path)
        ident = (st.st_dev, st.st_ino)
    except OSError:
        ident = None
    return real, ident


def _idents_under(folder: str) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of every file under ``folder`` (asked only for an output with hard links)."""
    out = set()
    for root, _dirs, names in os.walk(folder):
        for n in names:
            try:
                st = os.stat(os.path.join(root, n))
            except OSError:
                continue
            out.add((st.st_dev, st.st_ino))
    return out


def _inside(child: str, folder: str) -> bool:
    try:
        return os.path.commonpath([child, folder]) == folder
    except ValueError:
        return False


def check_outputs(outputs: Iterable[Labeled], inputs: Iterable[os.PathLike | str | None] = (), *,
                  streams: bool = True, dirs_ok: Sequence[str] = ()) -> None:
    """Refuse (:class:`UsageError`, exit 2) any output the module notes rule out.

    ``outputs``: paths, or ``(option, path)`` pairs naming the option in the message (default
    ``-o``); ``None`` entries are skipped. ``inputs``: every file or folder the command reads;
    missing ones and ``None`` are skipped (they are checked when read). A folder among the inputs
    guards everything under it. ``streams=False``: refuse stdout and devices too. ``dirs_ok``:
    the options whose path is a folder the command writes into (``rdm-prep -o``)."""
    outs = _labeled(outputs, "-o")
    ins = []
    for p in inputs:
        if p is None or is_stdout(p):
            continue
        real, ident = _key(str(p))
        if ident is None:
            continue
        ins.append((str(p), real, ident, os.path.isdir(real)))
    seen: list[tuple[str, str, str, tuple | None]] = []
    for label, o in outs:
        kind = output_kind(o)
        if kind == "stdout":
            if not streams:
                raise UsageError(f"{label} -: this output must be a file path (not stdout)")
            seen.append((label, o, STDOUT, None))
            continue
        if kind == "dir" and label not in dirs_ok:
            raise UsageError(f"{label} {o}: is a directory, expected a file path")
        if kind == "other":
            raise UsageError(f"{label} {o}: is {_KIND_WORDS['other']}; refused")
        if kind == "stream" and not streams:
            raise UsageError(f"{label} {o}: is a device or a pipe; this output must be a regular file path")
        real, ident = _key(o)
        for p, preal, pident, is_dir in ins:
            if is_dir:
                if _inside(real, preal):
                    where = "is" if real == preal else "lies inside"
                    raise UsageError(f"{label} {o}: {where} the folder {p} this command reads from; write elsewhere")
                if ident is not None and kind == "regular" and os.stat(o).st_nlink > 1 and ident in _idents_under(preal):
                    raise UsageError(f"{label} {o}: is a hard link to a file in the folder {p} this command reads "
                                     "from; write elsewhere")
                continue
            if real == preal or (ident is not None and ident == pident):
                how = ("" if os.path.abspath(o) == os.path.abspath(p) else
                       " (a symbolic link to it)" if real == preal else " (a hard link to it)")
                raise UsageError(f"{label} {o}: would overwrite the input {p}{how}")
        for olabel, other, oreal, oident in seen:
            if oreal == real or (ident is not None and ident == oident):
                raise UsageError(f"{label} {o}: is the same file as {olabel} {other}")
        seen.append((label, o, real, ident))


def require_regular_file(path: os.PathLike | str, what: str = "file") -> Path:
    """``path`` as a Path if it is a regular file (through links); one-line RdmError otherwise, so
    that a FIFO or a device given as an input is refused instead of blocking the open."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RdmError(f"{path}: no such {what}") from None
    except OSError as e:
        raise RdmError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise RdmError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise RdmError(f"{path}: is not a regular file (a pipe or a device); a {what} must be a file")
    return path
