"""LiberTEM's ``libertem.executor.dask``: :class:`DaskJobExecutor` and ``cluster_spec``."""

from __future__ import annotations

from typing import Any

from libertem_gpu.executor import get_executor_class

__all__ = ["DaskJobExecutor", "cluster_spec"]

_Base: Any = get_executor_class("dask")


def cluster_spec(
    cpus: Any = None, cudas: Any = (), has_cupy: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """A description of a local cluster for :meth:`DaskJobExecutor.make_local`: ``cpus`` (a
    count or an iterable of core ids) worker processes and one worker per id in ``cudas``."""
    n_cpus = len(list(cpus)) if cpus is not None and not isinstance(cpus, int) else cpus
    return {"n_workers": n_cpus, "gpus": list(cudas) or None}


class DaskJobExecutor(_Base):  # type: ignore[misc]
    """Runs partitions on a dask.distributed cluster (see
    :class:`libertem_gpu.executor.dask.DaskExecutor` for the constructor's arguments)."""

    @classmethod
    def make_local(
        cls,
        spec: dict[str, Any] | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> DaskJobExecutor:
        """Start a local cluster: ``spec`` from :func:`cluster_spec` (default: a worker per
        core); ``cluster_kwargs`` go to the cluster, ``client_kwargs`` are ignored."""
        spec = spec or {}
        gpus = spec.get("gpus")
        return cls(n_workers=spec.get("n_workers"), gpus=gpus, cluster_kwargs=cluster_kwargs)

    @classmethod
    def connect(cls, scheduler_uri: str, *args: Any, **kwargs: Any) -> DaskJobExecutor:
        """An executor on the running cluster whose scheduler listens at ``scheduler_uri``."""
        return cls(scheduler=scheduler_uri)
