"""Run tasks one after the other in the calling thread (debugging, small data, notebooks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from libertem_gpu.executor.base import Executor

T = TypeVar("T")


class InlineExecutor(Executor):
    """Runs each task in the calling thread, in order."""

    name = "inline"

    @property
    def n_workers(self) -> int:
        return 1

    def run_tasks(
        self, tasks: Sequence[Callable[[], T]], timeout: float | None = None
    ) -> Iterator[T]:
        for task in tasks:
            yield task()
