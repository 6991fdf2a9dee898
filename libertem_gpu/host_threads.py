"""Element-wise work on large host arrays, spread over the client's threads.

A run's last merge and its final results (``get_results``) run on the client once every
partition is done, while the cores that computed the partitions wait. Over 4096 x 4096 frames
(float64 buffers of 128 MiB) StdDevUDF's last merge took 35 ms and its results 41 ms on one
thread, a fifth of the run on a 2-vCPU Zen 4 VM; on a machine with more cores the partitions
finish sooner and that serial tail weighs more. :func:`map_flat` cuts such arrays into
contiguous chunks and works on them in parallel: NumPy's ufuncs and the ``nogil`` Numba
kernels let go of the GIL. Each element is computed by the same operation as on one thread, so
the results are the same bits. Measured there, 16 Mi float64 elements on two threads: the
moments merge 37-43 -> 24-25 ms, StdDevUDF's results 39-44 -> 20-27 ms.

The ``client_threads`` setting says how many threads (0: one per available core, up to
:data:`MAX_AUTO_THREADS`, and no more than the run's executor has workers: a run on one thread,
or on two of a shared node's cores, keeps the client to that; 1: the calling thread only).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from libertem_gpu import config

__all__ = [
    "MAX_AUTO_THREADS",
    "MIN_CHUNK_ELEMENTS",
    "combine_into",
    "limited_to",
    "map_flat",
    "threads",
]

#: Elements per chunk at least: below two chunks' worth, the work stays on the calling thread
#: (handing a chunk to another thread costs tens of microseconds).
MIN_CHUNK_ELEMENTS = 1 << 18
#: Threads at most where ``client_threads`` is 0: element-wise passes are bound by memory
#: bandwidth, which a few cores already fill.
MAX_AUTO_THREADS = 8
# Chunk boundaries fall on multiples of this many elements (whole cache lines, and whole
# vectors for the kernels' loops).
_ALIGN = 4096


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "libertem_gpu_client_threads_limit", default=None
)


@contextlib.contextmanager
def limited_to(workers: int | None) -> Iterator[None]:
    """Within the block, the automatic number of threads is at most ``workers`` (None: no
    limit): a run's merges and results use no more of the client's cores than its executor has
    workers."""
    token = _LIMIT.set(workers)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def threads() -> int:
    """The number of threads :func:`map_flat` uses: the ``client_threads`` setting, where 0
    means one per available core, up to :data:`MAX_AUTO_THREADS` and to the limit of an
    enclosing :func:`limited_to`."""
    wanted = int(config.get("client_threads"))
    if wanted < 0:
        raise ValueError(f"client_threads must be 0 (automatic) or more, got {wanted}")
    if wanted > 0:
        return wanted
    auto = min(MAX_AUTO_THREADS, _available_cores())
    limit = _LIMIT.get()
    return max(1, auto if limit is None else min(auto, limit))


class _Pool:
    """The helper threads, started on first use; a forked child starts its own."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._size = 0
        self._lock = threading.Lock()
        self.local = threading.local()  # ``in_pool``: this thread is one of the helpers

    def executor(self, helpers: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._size < helpers:
                # A smaller executor is dropped, not shut down: another thread may be about to
                # submit to it; its idle threads exit once it is collected.
                self._executor = ThreadPoolExecutor(
                    helpers, thread_name_prefix="libertem-gpu-client", initializer=self._mark
                )
                self._size = helpers
            return self._executor

    def _mark(self) -> None:
        self.local.in_pool = True

    def reset_after_fork(self) -> None:
        # The parent's threads do not exist in a forked child: its executor would queue work
        # that nothing runs.
        self._executor = None
        self._size = 0
        self._lock = threading.Lock()


_POOL = _Pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL.reset_after_fork)


def _bounds(n: int, parts: int) -> list[tuple[int, int]]:
    step = -(-n // parts)
    step = -(-step // _ALIGN) * _ALIGN
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def map_flat(fn: Callable[..., Any], *arrays: Any) -> None:
    """Call ``fn`` on matching contiguous chunks of ``arrays``, in parallel on the client's
    threads, and return when every chunk is done.

    Parameters
    ----------
    fn : callable
        Element-wise work on its arguments, which it may write in place (``np.add(a, b,
        out=a)``): it gets 1-D views of the same elements of each array. It must not depend on
        the chunks' boundaries.
    *arrays : array-like
        Arrays of the same number of elements. Where they are all C-contiguous NumPy arrays of
        at least two chunks (:data:`MIN_CHUNK_ELEMENTS` elements each), they are flattened and
        cut; otherwise (CuPy arrays, views with strides, small arrays) ``fn`` gets them whole,
        once, on the calling thread.

    Notes
    -----
    An exception in any chunk is raised here, after every chunk has finished. Called from one
    of the helper threads, everything runs on that thread.
    """
    n = arrays[0].size if arrays else 0
    splittable = all(
        isinstance(a, np.ndarray) and a.flags.c_contiguous and a.size == n for a in arrays
    )
    parts = min(threads(), n // MIN_CHUNK_ELEMENTS) if splittable else 1
    if parts <= 1 or getattr(_POOL.local, "in_pool", False):
        fn(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]
    bounds = _bounds(n, parts)
    executor = _POOL.executor(len(bounds) - 1)
    futures: list[Future] = [
        executor.submit(fn, *(f[lo:hi] for f in flat)) for lo, hi in bounds[1:]
    ]
    first_error: BaseException | None = None
    try:
        lo, hi = bounds[0]
        fn(*(f[lo:hi] for f in flat))
    except BaseException as error:  # the other chunks finish before it is raised
        first_error = error
    for future in futures:
        failed = future.exception()
        if first_error is None and failed is not None:
            first_error = failed
    if first_error is not None:
        raise first_error


def combine_into(ufunc: np.ufunc, dest: Any, src: Any) -> None:
    """``ufunc(dest, src, out=dest)`` through :func:`map_flat`: a merge of partial results such
    as ``np.add`` (sums) or ``np.maximum`` (maxima)."""
    map_flat(lambda d, s: ufunc(d, s, out=d), dest, src)
