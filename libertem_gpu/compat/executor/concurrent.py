"""LiberTEM's ``libertem.executor.concurrent``: :class:`ConcurrentJobExecutor` (a thread pool)."""

from __future__ import annotations

from typing import Any

from libertem_gpu.executor import get_executor_class

__all__ = ["ConcurrentJobExecutor"]

_Base: Any = get_executor_class("threads")


class ConcurrentJobExecutor(_Base):  # type: ignore[misc]
    """Runs partitions on a pool of threads in this process.

    Parameters
    ----------
    client : concurrent.futures.Executor, optional
        LiberTEM's own pool; not used here (the executor owns its threads).
    is_local : bool
        Ignored.
    n_threads : int, optional
        Number of threads (default: one per core).
    """

    def __init__(
        self, client: Any = None, is_local: bool = False, n_threads: int | None = None
    ) -> None:
        workers = getattr(client, "_max_workers", None) if n_threads is None else n_threads
        super().__init__(n_threads=workers)

    @classmethod
    def make_local(cls, n_threads: int | None = None) -> ConcurrentJobExecutor:
        """A pool of ``n_threads`` threads (default: one per core)."""
        return cls(n_threads=n_threads)
