"""The interface every executor implements: run partition tasks, yield results as they complete."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import ClassVar, TypeVar

T = TypeVar("T")


class Executor(ABC):
    """Runs partition tasks somewhere: in this thread, in a thread pool, on a cluster.

    Executors are plug-ins registered by name (see :mod:`libertem_gpu.executor`).
    """

    #: Name used in ``Context(executor=...)``.
    name: ClassVar[str]

    @property
    @abstractmethod
    def n_workers(self) -> int:
        """How many tasks run at once; partitions are sized to give each several."""

    @property
    def worker_backends(self) -> tuple[str, ...]:
        """Backends the workers can run: by default whatever this process can."""
        from libertem_gpu.backends.registry import backend_names

        return backend_names()

    @abstractmethod
    def run_tasks(
        self, tasks: Sequence[Callable[[], T]], timeout: float | None = None
    ) -> Iterator[T]:
        """Run every task once and yield the results in completion order.

        Closing the iterator early (an exception in the caller, Ctrl-C) cancels the tasks that
        have not started. An exception in a task is raised here. ``timeout`` bounds the wait for
        each next result (:class:`~libertem_gpu.errors.RunTimeoutError`).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers; the executor cannot be used afterwards."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
