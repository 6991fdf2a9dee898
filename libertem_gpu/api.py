"""The user's entry point: :class:`Context` loads data sets and runs UDFs on an executor."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from libertem_gpu import host_memory
from libertem_gpu.analysis.context import AnalysisMixin
from libertem_gpu.errors import ExecutorError, UDFDefinitionError
from libertem_gpu.executor import Executor, make_executor
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.registry import load as load_dataset
from libertem_gpu.io.tiles import TilingScheme
from libertem_gpu.plan import plan_run
from libertem_gpu.udf import run_cache
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferResult
from libertem_gpu.udf.client import UDFResults, UDFRun

log = logging.getLogger(__name__)


class Context(AnalysisMixin):
    """Loads data sets and runs UDFs over them.

    Parameters
    ----------
    executor : str or Executor
        ``"threads"`` (default: one thread per core), ``"inline"`` (the calling thread), a
        registered name such as ``"dask"``, or an :class:`~libertem_gpu.executor.Executor`.
    backend : str, optional
        ``"auto"`` (a GPU where one is usable, else the CPU), ``"numpy"`` or ``"cupy"``;
        default: the ``backend`` setting (``"auto"`` unless changed).
    devices : int or sequence of int, optional
        CUDA devices the cupy backend uses (worker threads take them round-robin); checked
        when a run is planned. Default: the current device.
    **executor_args
        Passed to the executor's constructor when ``executor`` is a name (e.g. ``n_threads``).

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, SumUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 4, 5), dtype=np.uint16))
    >>> ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data.shape
    (4, 5)
    """

    def __init__(
        self,
        executor: str | Executor = "threads",
        *,
        backend: str | None = None,
        devices: Any = None,
        **executor_args: Any,
    ) -> None:
        self.executor = make_executor(executor, **executor_args)
        self.backend = backend
        self.devices = devices

    @classmethod
    def make_with(
        cls,
        executor: str = "threads",
        *,
        cpus: int | None = None,
        gpus: int | Sequence[int] | None = None,
        **kwargs: Any,
    ) -> Context:
        """LiberTEM-style constructor: ``Context.make_with("dask", cpus=8, gpus=2)``.

        Parameters
        ----------
        executor : str
            ``"inline"``, ``"threads"``, ``"dask"`` or ``"dask-cuda"`` (LiberTEM's
            ``"dask-make-default"`` and ``"dask-integration"`` mean ``"dask"``; its
            ``"delayed"`` and ``"pipelined"`` are not available: the error says so).
        cpus : int, optional
            Worker threads (``threads``) or worker processes (``dask``).
        gpus : int or sequence of int, optional
            GPUs to use: a count or device ids. With ``threads`` or ``inline`` the run uses the
            cupy backend on them; with ``dask``, one worker per GPU.
        **kwargs
            Passed to :class:`Context`.
        """
        name = {"dask-make-default": "dask", "dask-integration": "dask"}.get(executor, executor)
        if name in ("delayed", "pipelined"):
            raise ExecutorError(
                f"LiberTEM's {executor!r} executor has no equivalent here; use 'dask' for a "
                "cluster or 'threads' on one machine"
            )
        devices = list(range(gpus)) if isinstance(gpus, int) else gpus
        if name in ("dask", "dask-cuda"):
            if cpus is not None:
                kwargs.setdefault("n_workers", cpus)
            if devices is not None:
                kwargs.setdefault("gpus", devices)
            return cls(name, **kwargs)
        if cpus is not None and name == "threads":
            kwargs.setdefault("n_threads", cpus)
        if devices:
            kwargs.setdefault("backend", "cupy")
            kwargs.setdefault("devices", devices)
        return cls(name, **kwargs)

    @classmethod
    def connect(cls, address: str, *, backend: str | None = None, **kwargs: Any) -> Context:
        """A Context on a running dask cluster, given its scheduler's address.

        Parameters
        ----------
        address : str
            The scheduler, e.g. ``"tcp://10.0.0.1:8786"``; its workers were started with
            ``libertem-gpu worker ADDRESS`` or ``dask worker ADDRESS``.
        backend : str
            As for :class:`Context`.
        **kwargs
            Passed to :class:`~libertem_gpu.executor.dask.DaskExecutor` (e.g. ``max_in_flight``).
        """
        from libertem_gpu.executor.dask import DaskExecutor

        return cls(DaskExecutor(scheduler=address, **kwargs), backend=backend)

    def make_dask_array(self, dataset: DataSet, roi: Any = None) -> Any:
        """The frames of ``dataset`` as a lazy dask array, one chunk per partition.

        The scan is flattened: shape ``(n, *sig_shape)``, ``n`` the scan size or the number of
        positions in ``roi``. See :func:`libertem_gpu.io.dask_array.make_dask_array`.
        """
        from libertem_gpu.io.dask_array import make_dask_array

        return make_dask_array(dataset, roi=roi, n_workers=self.executor.n_workers)

    def load(self, filetype: str, *args: Any, **kwargs: Any) -> DataSet:
        """Open a data set.

        Parameters
        ----------
        filetype : str
            A format name (``"raw"``, ``"npy"``, ``"memory"``, ...) or ``"auto"`` to detect it
            from ``path``.
        *args, **kwargs
            The format's parameters, e.g. ``path=``, ``nav_shape=``, ``sig_shape=``, ``dtype=``;
            and ``corrections=``: a :class:`~libertem_gpu.corrections.CorrectionSet` that runs
            over this data set apply unless they pass their own.
        """
        corrections = kwargs.pop("corrections", None)
        dataset = load_dataset(filetype, *args, **kwargs)
        if corrections is not None:
            dataset.set_corrections(corrections)
        return dataset

    def run_udf(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi: Any = None,
        progress: bool = False,
        backends: str | Sequence[str] | None = None,
        tiling: TilingScheme | None = None,
        corrections: Any = None,
        plots: Any = None,
    ) -> dict[str, BufferResult] | tuple[dict[str, BufferResult], ...]:
        """Run one or several UDFs over ``dataset`` in one pass.

        Parameters
        ----------
        dataset : DataSet
            From :meth:`load`.
        udf : UDF or list of UDF
            The analyses to run together.
        roi : numpy.ndarray of bool, optional
            Scan positions to process, shaped like the scan (or flat).
        progress : bool
            Show a progress bar: frames done out of the frames to process, and GB/s of stored
            data read.
        backends : str, optional
            Override the context's backend for this run (``"numpy"``, ``"cupy"``, ``"auto"``).
        tiling : TilingScheme, optional
            Force a tile depth and frame split (normally chosen from the UDFs and backend).
        corrections : CorrectionSet, optional
            Detector corrections (dark frame, gain map, excluded pixels) applied to every frame
            before the UDFs see it; default: the data set's (see :meth:`load`).
        plots : True or list, optional
            Live plots that follow the run as partitions merge, redrawn at most every
            ``plot_interval_s`` seconds (a setting) and always at the end: ``True`` for every
            2-D result of every UDF; a list with one list of result names (or ``(name,
            function)`` pairs) per UDF; or a list of :class:`~libertem_gpu.viz.LivePlot`
            objects. The first two need matplotlib (see :mod:`libertem_gpu.viz`).

        Returns
        -------
        dict or tuple of dict
            For one UDF, its results by name; for a list, a tuple with one dict per UDF. Each
            result has ``.data`` (scan-shaped for ``nav`` results) and ``.raw_data``.
        """
        step = None
        for step in self._execute(  # noqa: B007
            dataset, udf, roi, progress, backends, tiling, corrections, plots
        ):
            pass
        assert step is not None
        results = step.results()
        if isinstance(udf, UDF):
            return results.buffers[0]
        return results.buffers

    def export_dataset(
        self,
        dataset: DataSet,
        path: str | os.PathLike[str],
        *,
        progress: bool = False,
        overwrite: bool = False,
        compression: str | None = None,
        chunk_bytes: int | None = None,
        bin_sig: int | Sequence[int] | None = None,
        crop_nav: Sequence[Any] | None = None,
        crop_sig: Sequence[Any] | None = None,
        bin_nav: int | Sequence[int] | None = None,
    ) -> str:
        """Write every frame of ``dataset`` to a new ``.npy``, chunked HDF5 (``.h5``) or Zarr
        (``.zarr``) file, streamed with bounded memory; the file appears complete or not at
        all; ``compression``: ``"gzip"``, ``"lz4"`` or ``"zstd"``; ``chunk_bytes``: target
        chunk size; ``bin_sig``: sum blocks of this many detector pixels per signal axis;
        ``crop_nav``, ``crop_sig``: only a box of scan positions, of each frame, one
        ``(start, stop[, step])`` (or slice, or None) per axis; ``bin_nav``: sum blocks of
        this many scan positions per scan axis (see
        :func:`libertem_gpu.export.export_dataset`; ``libertem-gpu convert`` on the command
        line).

        Examples
        --------
        >>> import numpy as np, os, tempfile
        >>> ctx = Context("inline")
        >>> ds = ctx.load("memory", data=np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5))
        >>> out = ctx.export_dataset(ds, path=os.path.join(tempfile.mkdtemp(), "copy.npy"))
        >>> np.load(out).shape
        (2, 3, 4, 5)
        """
        from libertem_gpu.export import export_dataset
        from libertem_gpu.progress import FrameProgress

        bar = FrameProgress(dataset.shape.nav_size, dataset.frame_bytes) if progress else None
        try:
            return export_dataset(
                dataset,
                path,
                overwrite=overwrite,
                progress=None if bar is None else lambda done, _total: bar.update(done - bar.n),
                compression=compression,
                bin_sig=bin_sig,
                crop_nav=crop_nav,
                crop_sig=crop_sig,
                bin_nav=bin_nav,
                **({} if chunk_bytes is None else {"chunk_bytes": chunk_bytes}),
            )
        finally:
            if bar is not None:
                bar.close()

    def map(
        self,
        dataset: DataSet,
        f: Any,
        roi: Any = None,
        progress: bool = False,
        backends: str | Sequence[str] | None = None,
        corrections: Any = None,
    ) -> BufferResult:
        """Apply ``f`` to every frame and return what it gives, shaped like the scan (see
        :class:`~libertem_gpu.udf.auto.AutoUDF`).

        Examples
        --------
        >>> import numpy as np
        >>> ctx = Context("inline")
        >>> ds = ctx.load("memory", data=np.ones((2, 3, 4, 5)))
        >>> ctx.map(dataset=ds, f=np.sum).data.shape
        (2, 3)
        """
        from libertem_gpu.udf.auto import AutoUDF

        result = self.run_udf(
            dataset=dataset,
            udf=AutoUDF(f=f),
            roi=roi,
            progress=progress,
            backends=backends,
            corrections=corrections,
        )
        assert isinstance(result, dict)
        return result["result"]

    def run_udf_iter(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi: Any = None,
        progress: bool = False,
        backends: str | Sequence[str] | None = None,
        tiling: TilingScheme | None = None,
        corrections: Any = None,
        plots: Any = None,
    ) -> Iterator[UDFResults]:
        """Like :meth:`run_udf`, but yield :class:`~libertem_gpu.udf.client.UDFResults` after each
        merged partition (partial results, with ``damage`` marking processed positions).

        Live plots (``plots=``) are redrawn before the results they show are yielded. Closing
        the iterator early cancels the partitions not yet started.
        """
        for step in self._execute(
            dataset, udf, roi, progress, backends, tiling, corrections, plots
        ):
            yield step.results()

    def _execute(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi: Any,
        progress: bool,
        backends: str | Sequence[str] | None,
        tiling: TilingScheme | None,
        corrections: Any = None,
        plots: Any = None,
    ) -> Iterator[_Step]:
        """Plan a run and yield after each merged partition (once if nothing is selected),
        advancing the progress bar and redrawing the live plots that are due."""
        if isinstance(udf, UDF):
            given = [udf]
        elif isinstance(udf, Sequence) and not isinstance(udf, str):
            given = list(udf)
        else:
            raise UDFDefinitionError(
                f"udf must be a UDF instance or a list of them, got {udf!r}"
                + (f"; did you mean {udf.__name__}()?" if isinstance(udf, type) else "")
            )
        if plots:
            from libertem_gpu.viz.driver import matplotlib_plot_class, needs_matplotlib

            if needs_matplotlib(plots):
                matplotlib_plot_class()  # a missing matplotlib fails before planning
        # Run state (meta, buffers, prepared kernels) lives on copies owned by this run, so that
        # runs sharing a user's UDF instance, concurrently or interleaved, never see each other's.
        udfs = [u.copy() if isinstance(u, UDF) else u for u in given]
        requested = backends if isinstance(backends, str) or backends is None else backends[0]
        plan = plan_run(
            dataset,
            udfs,
            roi=roi,
            backend=requested or self.backend,
            devices=self.devices,
            n_workers=self.executor.n_workers,
            worker_backends=self.executor.worker_backends,
            tiling=tiling,
            corrections=corrections,
        )
        run = UDFRun(plan, udfs, client_threads=self.executor.n_workers)
        driver = None
        if plots:
            from libertem_gpu.viz.driver import PlotDriver, make_plots

            driver = PlotDriver(make_plots(plots, given, run))
        bar = None
        if progress:
            from libertem_gpu.progress import FrameProgress

            bar = FrameProgress(sum(plan.processed), dataset.frame_bytes)
        try:
            if not run.tasks:  # an empty roi: nothing to process, results stay initial
                step = _Step(run)
                if driver is not None:
                    driver.draw(step.results())
                yield step
                return
            timeout = plan.settings["task_timeout_s"]
            remaining = len(run.tasks)
            for result in self.executor.run_tasks(run.tasks, timeout=timeout):
                if run.merge(result):
                    remaining -= 1
                    if bar is not None:
                        bar.update(result.num_frames)
                    step = _Step(run)
                    if driver is not None and driver.due(final=remaining == 0):
                        driver.draw(step.results())
                    yield step
        finally:
            if bar is not None:
                bar.close()
            # Values its partitions shared in this process (tasks on threads or inline):
            # kept whatever their size while it ran (see run_cache), not needed after.
            run_cache.forget_run(plan.run_id)

    def close(self) -> None:
        """Shut the executor down, and let go of the free blocks of the host-memory pool."""
        self.executor.close()
        host_memory.release_pool()

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Step:
    """A run after one more merged partition; its results are computed once, when asked (by
    the plots, by ``run_udf_iter``, or by ``run_udf`` at the end)."""

    def __init__(self, run: UDFRun) -> None:
        self.run = run
        self._results: UDFResults | None = None

    def results(self) -> UDFResults:
        if self._results is None:
            self._results = self.run.results()
        return self._results
