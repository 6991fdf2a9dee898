"""LiberTEM's ``libertem.executor.inline``: :class:`InlineJobExecutor`."""

from __future__ import annotations

from typing import Any

from libertem_gpu.executor import get_executor_class

__all__ = ["InlineJobExecutor"]

_Base: Any = get_executor_class("inline")


class InlineJobExecutor(_Base):  # type: ignore[misc]
    """Runs every partition in the calling thread, in order (``Context(executor=...)``).

    Parameters
    ----------
    debug : bool
        LiberTEM pickles tasks to check them when True; ignored here.
    inline_threadpool : bool
        Ignored: tasks here run single-threaded anyway.
    """

    def __init__(self, debug: bool = False, inline_threadpool: bool = True, **kwargs: Any) -> None:
        super().__init__()
