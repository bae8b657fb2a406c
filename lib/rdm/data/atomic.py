"""Outputs: atomic writes, the output guard, stale temporary files and a full disk.

Every output is written to a temporary file beside the target (``.NAME.tmp-HOST-PID-XXXXXXXX``)
and renamed into place only if the whole write succeeded, so an interrupted or failed run
never leaves a half-written file that `make` would take for finished, and two processes
writing the same folder never see each other's partial files.

- :func:`check_outputs` is the output guard of :mod:`rdm.data.guard` (an output may never be
  an input, lie in a folder being read, or replace anything but a regular file).
- A target that is a stream (``-`` for stdout, a character device, a FIFO, or a symbolic link to
  one) is never replaced: the output is built in a temporary file in the system's temporary
  folder and its bytes are then written into the stream. A target that is a folder, a block
  device or a socket is refused (UsageError).
- A write that fails for lack of space (ENOSPC, EDQUOT, EFBIG, however the library that
  wrote reports it) becomes :class:`~rdm.errors.NoSpaceError` naming the target; the
  temporary files and any folder the write created are removed.
- Temporary files left by a process that died (kill -9) are removed by the next write of
  the same target on the same host; a live process's (or another host's) are left alone.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from rdm.data.guard import is_stdout, output_kind
from rdm.errors import NoSpaceError, UsageError
from rdm.interrupts import started

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
_TEMP_TAIL = re.compile(r"(?:(?P<host>[A-Za-z0-9_]+)-)?(?P<pid>\d+)-[0-9a-f]{8}")


def temp_path_for(target: Path) -> Path:
    target = Path(target)
    return target.with_name(f".{target.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temps(target: os.PathLike | str) -> list[Path]:
    """Remove the temporary files of ``target`` left by dead processes of this host; returns them."""
    target = Path(target)
    prefix = f".{target.name}.tmp-"
    removed = []
    try:
        names = [n for n in os.listdir(target.parent or ".") if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        m = _TEMP_TAIL.fullmatch(name[len(prefix):])
        if not m or (m["host"] is not None and m["host"] != _HOST):
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or _pid_alive(pid):
            continue
        p = target.with_name(name)
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def is_no_space(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT/EFBIG, also when a C library (HDF5) only names the errno in its message."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        m = re.search(r"errno = (\d+)", str(exc))
        if m and int(m.group(1)) in NO_SPACE_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _missing_parents(targets: Sequence[Path]) -> list[Path]:
    """Folders that writing ``targets`` has to create, deepest last."""
    out: list[Path] = []
    for t in targets:
        chain = []
        d = t.parent
        while d != d.parent and not d.exists():
            chain.append(d)
            d = d.parent
        out.extend(p for p in reversed(chain) if p not in out)
    return out


def _remove_dirs(dirs: Iterable[Path]) -> None:
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()           # only if empty: never anything a user put there meanwhile
        except OSError:
            pass


@contextmanager
def atomic_outputs(targets: Sequence[os.PathLike | str]) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets``; rename all into place only if the block succeeds.

    On failure the temporary files and the folders created for them are removed; a lack of
    space is re-raised as one :class:`NoSpaceError` naming the target."""
    started()       # from the first temporary file on, Ctrl-C unwinds (and removes it) instead of ending at once
    targets = [Path(t) for t in targets]
    kinds = [output_kind(t) for t in targets]
    for t, k in zip(targets, kinds):
        if k in ("dir", "other"):
            raise UsageError(f"{t}: is {'a directory' if k == 'dir' else 'not a regular file'}; "
                             "an output is written only to a file path, a device, a pipe or - (stdout)")
    files = [t for t, k in zip(targets, kinds) if k not in STREAM_KINDS]
    created = _missing_parents(files)
    temps: list[Path] = []
    try:
        for d in created:
            d.mkdir(exist_ok=True)
        for t in files:
            remove_stale_temps(t)
        temps = [temp_path_for(t) if k not in STREAM_KINDS else _stream_temp(t)
                 for t, k in zip(targets, kinds)]
        yield temps
        for tmp in temps:
            if not tmp.exists():
                raise FileNotFoundError(f"internal error: {tmp} was not written")
        on_disk = [(tmp, t) for tmp, t, k in zip(temps, targets, kinds) if k not in STREAM_KINDS]
        if on_disk:
            replace_together([tmp for tmp, _ in on_disk], [t for _, t in on_disk])
        for tmp, t, k in zip(temps, targets, kinds):
            if k in STREAM_KINDS:
                _copy_into_stream(tmp, t)
                tmp.unlink(missing_ok=True)
    except BaseException as e:
        for tmp in temps:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        _remove_dirs(created)
        if is_no_space(e):
            raise NoSpaceError(_target_named(e, temps, targets)) from None
        raise


STREAM_KINDS = ("stdout", "stream")


def _stream_temp(target: Path) -> Path:
    """A temporary file for an output bound for a stream, in the system's temporary folder
    (never beside a device: /dev is no place for a half-written set)."""
    fd, name = tempfile.mkstemp(prefix=f".rdm-{Path(str(target)).name or 'out'}.tmp-{os.getpid()}-")
    os.close(fd)
    os.unlink(name)         # the writer creates it: an output that was never written is noticed
    return Path(name)


def _copy_into_stream(tmp: Path, target: Path) -> None:
    """Write the finished output into stdout, a device or a FIFO (opened for writing, not replaced)."""
    with open(tmp, "rb") as src:
        if is_stdout(target):
            sys.stdout.flush()
            out = getattr(sys.stdout, "buffer", None)
            if out is None:
                sys.stdout.write(src.read().decode("utf-8", "replace"))
            else:
                shutil.copyfileobj(src, out)
                out.flush()
            return
        with open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def replace_together(temps: Sequence[Path], targets: Sequence[Path]) -> None:
    """Rename every ``temps[i]`` onto ``targets[i]``, all or nothing: the targets that existed are
    first kept under a hard link beside them; if any rename fails, the renamed targets get their
    old file back (or are removed where there was none) and the error is raised."""
    if len(targets) == 1:
        os.replace(temps[0], targets[0])
        return
    keep: dict[Path, Path | None] = {}
    done: list[Path] = []
    try:
        for t in targets:
            keep[t] = None
            if os.path.lexists(t):
                bak = t.with_name(f".{t.name}.old-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")
                try:
                    os.link(t, bak, follow_symlinks=False)
                except OSError:          # no hard links on this file system: a copy
                    shutil.copyfile(t, bak, follow_symlinks=False)
                keep[t] = bak
        for tmp, t in zip(temps, targets):
            os.replace(tmp, t)
            done.append(t)
    except BaseException:
        for t in reversed(done):
            try:
                if keep[t] is not None:
                    os.replace(keep[t], t)
                else:
                    os.unlink(t)
            except OSError:
                pass
        raise
    finally:
        for bak in keep.values():
            if bak is not None and os.path.lexists(bak):
                try:
                    os.unlink(bak)
                except OSError:
                    pass


def _target_named(e: BaseException, temps: list[Path], targets: list[Path]) -> Path:
    """The target whose write failed: the one whose temporary file the error names, else the first."""
    where = str(getattr(e, "path", "")) + " " + str(getattr(e, "filename", "")) + " " + str(e)
    for tmp, t in zip(temps, targets):
        if tmp.name in where:
            return t
    for t in targets:
        if str(t) in where:
            return t
    return targets[0] if targets else Path("?")


@contextmanager
def atomic_output(target: os.PathLike | str) -> Iterator[Path]:
    """Yield one temporary path; it becomes ``target`` only if the block succeeds."""
    with atomic_outputs([target]) as temps:
        yield temps[0]


def write_bytes(target: os.PathLike | str, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically (a full disk is one NoSpaceError)."""
    with atomic_output(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(target)


def write_text(target: os.PathLike | str, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


# --------------------------------------------------------------------------- the output guard
# one guard for every command (rdm.data.guard); re-exported here for the writers' callers
from rdm.data.guard import check_outputs  # noqa: E402,F401
