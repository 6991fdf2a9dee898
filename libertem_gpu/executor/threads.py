"""Run tasks on a pool of threads, one per core. The kernels release the GIL, so the cores work in
parallel."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from threadpoolctl import ThreadpoolController

from libertem_gpu.errors import ExecutorError, RunTimeoutError
from libertem_gpu.executor.base import Executor

T = TypeVar("T")


def default_worker_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ThreadsExecutor(Executor):
    """Runs tasks on a thread pool.

    Parameters
    ----------
    n_threads : int, optional
        Number of threads; defaults to the number of cores this process may use.
    """

    name = "threads"

    def __init__(self, n_threads: int | None = None) -> None:
        self._n = int(n_threads) if n_threads else default_worker_count()
        if self._n <= 0:
            raise ValueError(f"n_threads must be positive, got {n_threads}")
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=self._n, thread_name_prefix="libertem_gpu"
        )
        # Found once, on the first run: scanning the loaded libraries costs ~0.4 ms, which
        # is half of a small run's overhead. The kernels' BLAS is NumPy's, loaded before us.
        self._blas: ThreadpoolController | None = None

    @property
    def n_workers(self) -> int:
        return self._n

    def run_tasks(
        self, tasks: Sequence[Callable[[], T]], timeout: float | None = None
    ) -> Iterator[T]:
        if self._pool is None:
            raise ExecutorError("this ThreadsExecutor is closed")
        pool = self._pool
        # One BLAS thread per worker thread: the workers already use every core, and nested
        # BLAS threads (mask GEMMs) would oversubscribe them.
        if self._blas is None:
            self._blas = ThreadpoolController()
        with self._blas.limit(limits=1, user_api="blas"):
            yield from self._run(pool, tasks, timeout)

    def _run(
        self, pool: ThreadPoolExecutor, tasks: Sequence[Callable[[], T]], timeout: float | None
    ) -> Iterator[T]:
        pending = list(reversed(tasks))
        in_flight: set[Future[T]] = set()
        max_in_flight = 2 * self._n  # keep workers busy without queueing every task up front
        try:
            while pending or in_flight:
                while pending and len(in_flight) < max_in_flight:
                    in_flight.add(pool.submit(pending.pop()))
                done, in_flight = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
                if not done:
                    raise RunTimeoutError(
                        f"no partition finished within {timeout} s ({len(in_flight)} running); "
                        "raise config task_timeout_s if partitions are that slow"
                    )
                for future in done:
                    yield future.result()
        finally:
            for future in in_flight:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
