"""Read ahead in a background thread, so that reading and decompressing HDF5 overlaps compute.

:func:`prefetch` runs an iterator (typically the batches of a set) in one daemon thread and
hands its items over through a small bounded queue: while the caller computes on batch ``i``
(a GPU kernel, or a CPU operator that releases the GIL), the thread reads and decompresses
batch ``i + 1``. The order and the items are exactly those of the iterator; an exception in
the thread is raised in the caller at the point it would have been; leaving the loop early
(``break``, an exception, ``close()``) stops the thread before the next item is produced.

``depth=0`` (or ``RDM_PREFETCH=0`` in the environment) turns read-ahead off: the iterator is
consumed in the calling thread, as before.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


def default_depth() -> int:
    try:
        return max(int(os.environ.get("RDM_PREFETCH", "2")), 0)
    except ValueError:
        return 2


def prefetch(items: Iterable[T], depth: int | None = None,
             transform: Callable[[T], T] | None = None) -> Iterator[T]:
    """The items of ``items``, produced ``depth`` ahead in a background thread.

    ``transform`` (e.g. pinning or a non-blocking copy to the GPU) runs in the thread too.
    """
    depth = default_depth() if depth is None else int(depth)
    if depth <= 0:
        for it in items:
            yield transform(it) if transform is not None else it
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(v) -> bool:
        while not stop.is_set():
            try:
                q.put(v, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(items)
        try:
            for v in it:
                if stop.is_set() or not put(("item", transform(v) if transform is not None else v)):
                    return
            put(("done", _DONE))
        except BaseException as e:   # handed to the consumer, raised there
            put(("error", e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass

    t = threading.Thread(target=work, name="rdm-prefetch", daemon=True)
    t.start()
    try:
        while True:
            kind, v = q.get()
            if kind == "item":
                yield v
            elif kind == "done":
                return
            else:
                raise v
    finally:
        stop.set()
        t.join()
