"""Executors: where partition tasks run. Looked up by name; others are imported when used."""

from __future__ import annotations

import importlib
from typing import Any

from libertem_gpu.errors import ExecutorError
from libertem_gpu.executor.base import Executor

_EXECUTORS: dict[str, str | type[Executor]] = {
    "inline": "libertem_gpu.executor.inline:InlineExecutor",
    "threads": "libertem_gpu.executor.threads:ThreadsExecutor",
    "dask": "libertem_gpu.executor.dask:DaskExecutor",
    "dask-cuda": "libertem_gpu.executor.dask:DaskCUDAExecutor",
}


def register_executor(name: str, target: str | type[Executor]) -> None:
    """Add an executor class, or a ``"module:Class"`` string imported when first used."""
    _EXECUTORS[name] = target


def get_executor_class(name: str) -> type[Executor]:
    """The executor class registered as ``name`` (the error lists the valid names)."""
    target = _EXECUTORS.get(name)
    if target is None:
        raise ExecutorError(
            f"unknown executor {name!r}; valid executors: {', '.join(sorted(_EXECUTORS))}, "
            "or an Executor instance"
        )
    if isinstance(target, str):
        module_name, _, class_name = target.partition(":")
        target = getattr(importlib.import_module(module_name), class_name)
        _EXECUTORS[name] = target
    return target


def make_executor(spec: str | Executor, **kwargs: Any) -> Executor:
    """An executor from a name (with constructor arguments) or an instance (returned as is)."""
    if isinstance(spec, Executor):
        return spec
    return get_executor_class(spec)(**kwargs)


__all__ = ["Executor", "get_executor_class", "make_executor", "register_executor"]
