"""Run partition tasks on a dask.distributed cluster: a local one started here (one worker process
per core, or one per GPU with dask-cuda) or an existing one reached through its scheduler.

Tasks are ordinary :mod:`distributed` futures: the scheduler places them, retries the tasks of a
worker that died (``distributed.scheduler.allowed-failures``) and cancels them on request. This
module only decides what to ship, with which resources, and how many tasks to keep in flight.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from libertem_gpu.errors import ExecutorError, RunTimeoutError
from libertem_gpu.executor.base import Executor
from libertem_gpu.executor.threads import default_worker_count

T = TypeVar("T")
log = logging.getLogger(__name__)

# A task asks for the worker resource its backend names (``task.resource``: "CPU", "CUDA").
# Workers started by this module (and by ``libertem-gpu worker``) advertise theirs; workers that
# advertise none take any task.


def _run_partition(plan: Any, partition: Any) -> Any:
    """Worker side: rebuild the partition task around the worker's copy of the run plan."""
    from libertem_gpu.udf.partition_task import PartitionTask

    return PartitionTask(plan, partition)()


def _identity(value: T) -> T:
    return value


def _call(task: Callable[[], T]) -> T:
    return task()


def _worker_backends() -> list[str]:
    """Worker side: the backends that can run in this worker process."""
    from libertem_gpu.backends.registry import available_backends

    return available_backends()


class DaskExecutor(Executor):
    """Runs partition tasks on a dask.distributed cluster.

    With no ``scheduler`` and no ``client``, starts a :class:`distributed.LocalCluster` of
    ``n_workers`` single-threaded worker processes listening on 127.0.0.1 only. With ``gpus`` (or
    ``cuda=True``), starts a ``dask_cuda.LocalCUDACluster`` with one worker per GPU instead, and
    falls back to the CPU cluster with a logged warning where dask-cuda or a GPU is missing.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes of a local CPU cluster; defaults to the cores this process may use.
    scheduler : str, optional
        Address of an existing scheduler (``"tcp://host:8786"``); its workers are used as they are
        and it is left running on :meth:`close`.
    client : distributed.Client, optional
        An existing client to use (left open on :meth:`close`).
    gpus : int or sequence of int, optional
        Local GPUs to start one worker each on: a count or device ids.
    cuda : bool
        Start a dask-cuda cluster on all visible GPUs (``Context(executor="dask-cuda")``).
    dashboard : bool or str
        Serve the dask dashboard (``True``: on 127.0.0.1:8787; a string: that address).
    max_in_flight : int, optional
        Tasks submitted ahead of results; defaults to four per thread of the cluster.
    cluster_kwargs : dict, optional
        Extra arguments for the local cluster's constructor.
    worker_ttl : float
        Seconds without a heartbeat after which the scheduler of a local cluster restarts a worker
        and reschedules its tasks (a stopped or hung worker delays a run by about this much).
        Clusters reached through ``scheduler`` or ``client`` keep their own setting
        (``distributed.scheduler.worker-ttl``, 5 minutes by default).

    Attributes
    ----------
    client : distributed.Client
        The client; use it for anything dask (``client.dashboard_link``, ``client.processing()``).
    cluster : distributed.LocalCluster or None
        The local cluster this executor started (None when connected to a scheduler).
    """

    name = "dask"

    def __init__(
        self,
        n_workers: int | None = None,
        *,
        scheduler: str | None = None,
        client: Any = None,
        gpus: int | Sequence[int] | None = None,
        cuda: bool = False,
        dashboard: bool | str = False,
        max_in_flight: int | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        worker_ttl: float = 60.0,
    ) -> None:
        from distributed import Client

        self._owns_client = client is None
        self.cluster: Any = None
        self._max_in_flight = max_in_flight
        self._closed = False
        if client is not None:
            self.client = client
        elif scheduler is not None:
            self.client = Client(scheduler, set_as_default=False)
        else:
            self.cluster = _start_local_cluster(
                n_workers,
                gpus,
                cuda or gpus is not None,
                dashboard,
                {"worker_ttl": worker_ttl, **(cluster_kwargs or {})},
            )
            try:
                self.client = Client(self.cluster, set_as_default=False)
            except BaseException:
                self.cluster.close()
                raise
        self._backends_cache: tuple[frozenset[str], tuple[str, ...]] | None = None

    @classmethod
    def connect(cls, address: str, **kwargs: Any) -> DaskExecutor:
        """An executor on the running cluster whose scheduler listens at ``address``."""
        return cls(scheduler=address, **kwargs)

    # --- cluster facts ------------------------------------------------------------------------

    def _workers(self) -> dict[str, dict[str, Any]]:
        return self.client.scheduler_info(n_workers=-1)["workers"]

    @property
    def n_workers(self) -> int:
        """The cluster's total threads (at least 1, so that a cluster still starting can plan)."""
        self._check_open()
        return max(1, sum(self.client.nthreads().values()))

    @property
    def worker_backends(self) -> tuple[str, ...]:
        """Backends some worker can run: from the resources the workers advertise, or where they
        advertise none, from asking them."""
        self._check_open()
        workers = self._workers()
        key = frozenset(workers)
        if self._backends_cache is not None and self._backends_cache[0] == key:
            return self._backends_cache[1]
        from libertem_gpu.backends.registry import backend_names, backends_for_resources

        found: set[str] = set()
        unannotated = False
        for info in workers.values():
            offered = [r for r, amount in (info.get("resources") or {}).items() if amount]
            names = backends_for_resources(offered)
            found.update(names)
            unannotated |= not names
        if unannotated or not workers:
            try:
                answers = self.client.run(_worker_backends)
            except Exception as e:  # a worker that cannot import us: the run itself will say why
                log.warning("could not ask the dask workers for their backends: %r", e)
                answers = {"": list(backend_names())}
            for names in answers.values():
                found.update(names)
        result = tuple(b for b in backend_names() if b in found)
        result = result or tuple(backends_for_resources(["CPU"]))
        self._backends_cache = (key, result)
        return result

    def _advertised_resources(self) -> set[str]:
        """Names of the resources some worker advertises (asked once per run: a round trip)."""
        return {
            name
            for info in self._workers().values()
            for name, amount in (info.get("resources") or {}).items()
            if amount
        }

    # --- running ------------------------------------------------------------------------------

    def run_tasks(
        self, tasks: Sequence[Callable[[], T]], timeout: float | None = None
    ) -> Iterator[T]:
        self._check_open()
        from distributed import as_completed

        client = self.client
        run_id = uuid.uuid4().hex[:12]
        limit = self._max_in_flight or 4 * self.n_workers
        # Top up in batches (one scheduler message each) once half the window has drained; the
        # other half keeps every worker busy meanwhile.
        refill_at = max(1, limit // 2)
        shared_futures: dict[tuple[Any, ...], Any] = {}
        submissions = self._plan_submissions(tasks, run_id, shared_futures)
        position = 0
        in_flight: set[Any] = set()
        ac = as_completed([], loop=client.loop, with_results=True)
        try:
            while position < len(submissions) or in_flight:
                if position < len(submissions) and len(in_flight) <= refill_at:
                    batch = submissions[position : position + limit - len(in_flight)]
                    position += len(batch)
                    futures = _submit_batch(client, batch)
                    in_flight.update(futures)
                    ac.update(futures)
                if timeout is not None and not _wait_ready(ac, timeout):
                    raise RunTimeoutError(
                        f"no partition finished within {timeout} s ({len(in_flight)} running on "
                        "the dask cluster); raise config task_timeout_s if partitions are that "
                        "slow"
                    )
                try:
                    future, result = next(ac)
                except StopIteration:  # defensive: every future was cancelled elsewhere
                    raise ExecutorError(
                        "the dask cluster dropped the run's tasks (cancelled by another client?)"
                    ) from None
                except Exception as e:
                    _reraise_cluster_error(e)
                    raise
                in_flight.discard(future)
                if future.cancelled() or isinstance(result, BaseException):
                    # as_completed hands over cancelled futures with their exception as the
                    # result: the scheduler went away, or another client cancelled the run.
                    raise ExecutorError(
                        f"the dask cluster cancelled a partition task ({result}); was the "
                        "scheduler stopped or restarted?"
                    )
                future.release()
                yield result
        finally:
            if in_flight:
                client.cancel(list(in_flight))
            for shared in shared_futures.values():
                shared.release()

    def _plan_submissions(
        self,
        tasks: Sequence[Callable[[], T]],
        run_id: str,
        shared_futures: dict[tuple[Any, ...], Any],
    ) -> list[_Submission]:
        """One submission per task. Partition tasks are split into their run plan, which each
        worker fetches once, and the partition, which is all that travels per task."""
        from libertem_gpu.udf.partition_task import PartitionTask

        client = self.client
        advertised = self._advertised_resources()

        def resources_for(task: Any) -> dict[str, int] | None:
            # Ask for the task's resource only where some worker offers it; workers started
            # without resources (plain `dask worker`) then take any task.
            resource = getattr(task, "resource", None)
            return {resource: 1} if resource in advertised else None

        submissions: list[_Submission] = []
        for i, task in enumerate(tasks):
            if isinstance(task, PartitionTask):
                ident = (id(task.plan),)
                shared = shared_futures.get(ident)
                if shared is None:
                    # A task that returns the plan, not scattered data: workers fetch its result
                    # once each, and if the worker holding it dies the scheduler computes it
                    # again (scattered data would be lost, and the run's tasks with it).
                    shared = client.submit(
                        _identity, task.plan, key=f"libertem-plan-{run_id}", pure=False
                    )
                    shared_futures[ident] = shared
                key = f"libertem-partition-{task.partition.index}-{run_id}"
                submissions.append(
                    _Submission(_run_partition, (shared, task.partition), key, resources_for(task))
                )
            else:
                key = f"libertem-task-{i}-{run_id}"
                submissions.append(_Submission(_call, (task,), key, resources_for(task)))
        return submissions

    # --- lifetime -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ExecutorError("this DaskExecutor is closed")

    def close(self) -> None:
        """Close the client, and the local cluster if this executor started it."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self.client.close(timeout=10)
        if self.cluster is not None:
            self.cluster.close(timeout=20)
            self.cluster = None


class DaskCUDAExecutor(DaskExecutor):
    """:class:`DaskExecutor` on a local dask-cuda cluster: one worker per GPU
    (``Context(executor="dask-cuda")``). Falls back to a CPU cluster, with a logged warning, where
    dask-cuda or a GPU is missing."""

    name = "dask-cuda"

    def __init__(self, n_workers: int | None = None, **kwargs: Any) -> None:
        if kwargs.get("scheduler") is None and kwargs.get("client") is None:
            kwargs.setdefault("cuda", True)
        super().__init__(n_workers, **kwargs)


def _wait_ready(ac: Any, timeout: float) -> bool:
    """Wait up to ``timeout`` s for a finished future in ``ac`` (as_completed only knows a
    deadline for the whole iteration, not one per result)."""
    deadline = time.monotonic() + timeout
    while not ac.has_ready():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(0.01, remaining))
    return True


@dataclass
class _Submission:
    """One task to submit: ``func(*args)`` under ``key``, needing ``resources``."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    key: str
    resources: dict[str, int] | None


def _submit_batch(client: Any, batch: Sequence[_Submission]) -> list[Any]:
    """Submit ``batch`` with one ``client.map`` per run of equal function and resources."""
    futures: list[Any] = []
    start = 0
    while start < len(batch):
        first = batch[start]
        stop = start + 1
        while (
            stop < len(batch)
            and batch[stop].func is first.func
            and batch[stop].resources == first.resources
            and len(batch[stop].args) == len(first.args)
        ):
            stop += 1
        group = batch[start:stop]
        columns = [[s.args[i] for s in group] for i in range(len(first.args))]
        futures += client.map(
            first.func,
            *columns,
            key=[s.key for s in group],
            pure=False,
            resources=first.resources,
            batch_size=None,
        )
        start = stop
    return futures


def _reraise_cluster_error(error: BaseException) -> None:
    """Turn the cluster's own failures (not a UDF's exception) into an ExecutorError."""
    from distributed import KilledWorker

    if isinstance(error, KilledWorker):
        raise ExecutorError(
            f"a partition task was running on workers that died too often ({error}); see the "
            "workers' logs (out of memory?) or raise distributed.scheduler.allowed-failures"
        ) from error


def _dashboard_address(dashboard: bool | str) -> str | None:
    if dashboard is True:
        return "127.0.0.1:8787"
    if dashboard:
        return str(dashboard)
    return None


def _start_local_cluster(
    n_workers: int | None,
    gpus: int | Sequence[int] | None,
    cuda: bool,
    dashboard: bool | str,
    cluster_kwargs: dict[str, Any],
) -> Any:
    """A LocalCUDACluster where asked and possible, else a LocalCluster; loopback only."""
    cluster_kwargs = dict(cluster_kwargs)
    scheduler_kwargs: dict[str, Any] = {"worker_ttl": cluster_kwargs.pop("worker_ttl", None)}
    common: dict[str, Any] = {
        "host": "127.0.0.1",
        "dashboard_address": _dashboard_address(dashboard),
        "threads_per_worker": 1,
        "silence_logs": logging.WARNING,
    }
    if not dashboard:
        # The scheduler serves health and metrics over HTTP even without a dashboard; keep that
        # on a free loopback port rather than 8787, where it would clash with other clusters.
        scheduler_kwargs["dashboard_address"] = "127.0.0.1:0"
    common["scheduler_kwargs"] = {**scheduler_kwargs, **cluster_kwargs.pop("scheduler_kwargs", {})}
    if cuda:
        cluster = _try_cuda_cluster(gpus, {**common, **cluster_kwargs})
        if cluster is not None:
            return cluster
    from distributed import LocalCluster

    kwargs = {
        **common,
        "n_workers": int(n_workers) if n_workers else default_worker_count(),
        "processes": True,
        "resources": {"CPU": 1},
        **cluster_kwargs,
    }
    if kwargs["n_workers"] <= 0:
        raise ExecutorError(f"n_workers must be positive, got {n_workers}")
    return LocalCluster(**kwargs)


def _try_cuda_cluster(gpus: int | Sequence[int] | None, kwargs: dict[str, Any]) -> Any:
    """A dask-cuda cluster on ``gpus``, or None (with a warning) where that is not possible."""
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as e:
        log.warning(
            "dask-cuda is not installed (%s): starting a CPU LocalCluster instead; install the "
            "'gpu' extra for one worker per GPU",
            e,
        )
        return None
    if gpus is None:
        devices = None
    elif isinstance(gpus, int):
        devices = ",".join(str(i) for i in range(gpus))
    else:
        devices = ",".join(str(int(i)) for i in gpus)
    if devices == "":
        log.warning("gpus=%r selects no GPU: starting a CPU LocalCluster instead", gpus)
        return None
    try:
        return LocalCUDACluster(
            CUDA_VISIBLE_DEVICES=devices, resources={"CUDA": 1, "CPU": 1}, **kwargs
        )
    except Exception as e:  # NVML finds no GPU, driver missing, ...
        log.warning("dask-cuda could not start (%r): starting a CPU LocalCluster instead", e)
        return None
