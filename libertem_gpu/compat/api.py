"""LiberTEM's ``libertem.api``: :class:`Context` with LiberTEM's signatures."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from libertem_gpu.api import Context as _Context
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.udf.client import UDFResults

__all__ = ["Context"]

# LiberTEM's backend names that mean a GPU; the sparse ones mean the CPU here.
_GPU_BACKENDS = {"cupy", "cuda", "cupy.ndarray"}


def _data_set_class(filetype: str) -> Any:
    """The compat data set class that takes LiberTEM's parameters for ``filetype``, if any."""
    name = str(filetype).lower()
    if name == "memory":
        from libertem_gpu.compat.io.dataset.memory import MemoryDataSet

        return MemoryDataSet
    if name == "raw":
        from libertem_gpu.compat.io.dataset.raw import RawFileDataSet

        return RawFileDataSet
    if name == "npy":
        from libertem_gpu.compat.io.dataset.npy import NPYDataSet

        return NPYDataSet
    if name in ("hdf5", "h5"):
        from libertem_gpu.compat.io.dataset.hdf5 import H5DataSet

        return H5DataSet
    if name == "mib":
        from libertem_gpu.compat.io.dataset.mib import MIBDataSet

        return MIBDataSet
    if name == "raw_csr":
        from libertem_gpu.compat.io.dataset.raw_csr import RawCSRDataSet

        return RawCSRDataSet
    return None


def _backend(backends: Any) -> str | None:
    """LiberTEM's ``backends=`` (names or a list of them) as one of ours."""
    if backends is None:
        return None
    names = [backends] if isinstance(backends, str) else list(backends)
    if any(n in _GPU_BACKENDS for n in names) and "numpy" not in names:
        return "cupy"
    return "numpy" if names else None


def _dense_roi(roi: Any) -> Any:
    """A roi as a dense boolean array (LiberTEM also takes sparse arrays)."""
    if roi is None or isinstance(roi, np.ndarray):
        return roi
    for method in ("todense", "toarray"):
        if hasattr(roi, method):
            return np.asarray(getattr(roi, method)(), dtype=bool)
    return np.asarray(roi, dtype=bool)


def _check_unsupported(sync: bool) -> None:
    if not sync:
        raise InvalidParameterError(
            "sync=False (awaitable runs) is not supported; call run_udf_iter for partial "
            "results, or run in a thread"
        )


class Context(_Context):
    """LiberTEM's ``Context``: ours, with LiberTEM's call signatures.

    ``load`` takes LiberTEM's data set parameters (``tileshape``, ``io_backend``, ``scan_size``,
    ...) for ``raw``, ``npy``, ``hdf5``, ``mib`` and ``memory``; ``run_udf`` and
    ``run_udf_iter`` take LiberTEM's ``corrections``, ``plots`` (ignored) and
    ``sync`` (True only). Executors are names or executors, LiberTEM's
    :mod:`libertem_gpu.compat.executor` classes included; without one, a thread per core.

    Parameters
    ----------
    executor : str or Executor, optional
        As for :class:`libertem_gpu.Context`; default ``"threads"``.
    plot_class : optional
        LiberTEM's live-plot class; ignored.
    **kwargs
        Passed to :class:`libertem_gpu.Context`.
    """

    def __init__(self, executor: Any = None, plot_class: Any = None, **kwargs: Any) -> None:
        super().__init__("threads" if executor is None else executor, **kwargs)

    def load(self, filetype: str, *args: Any, io_backend: Any = None, **kwargs: Any) -> DataSet:
        """Open a data set, taking LiberTEM's parameters.

        Parameters
        ----------
        filetype : str
            ``"raw"``, ``"npy"``, ``"hdf5"``, ``"mib"``, ``"memory"`` (LiberTEM's parameters),
            or any other format name or ``"auto"`` (our parameters).
        *args, **kwargs
            The format's parameters.
        io_backend : optional
            Ignored: the run plan chooses how to read.
        """
        cls = _data_set_class(filetype)
        if cls is None:
            kwargs.pop("enable_direct", None)
            return super().load(filetype, *args, **kwargs)
        corrections = kwargs.pop("corrections", None)
        dataset: DataSet = cls(*args, **kwargs)
        if corrections is not None:
            dataset.set_corrections(corrections)
        return dataset

    def run_udf(  # type: ignore[override]
        self,
        dataset: DataSet,
        udf: Any,
        roi: Any = None,
        corrections: Any = None,
        progress: Any = False,
        backends: Any = None,
        plots: Any = None,
        sync: bool = True,
    ) -> Any:
        """Run one or several UDFs in one pass, with LiberTEM's signature.

        Parameters
        ----------
        dataset : DataSet
            The data set.
        udf : UDF or list of UDF
            The UDFs.
        roi : array of bool, optional
            Scan positions to process (dense, or a sparse array with ``todense``).
        corrections : CorrectionSet, optional
            Detector corrections (ours or LiberTEM's); default: the data set's.
        progress : bool
            Show a progress bar.
        backends : str or list of str, optional
            LiberTEM's backend names; ``"cupy"``/``"cuda"`` mean the GPU.
        plots : optional
            Live plots: True, one list of result names per UDF, or
            :class:`~libertem_gpu.viz.LivePlot` objects (see :meth:`libertem_gpu.Context.run_udf`).
        sync : bool
            Must be True.
        """
        _check_unsupported(sync)
        return super().run_udf(
            dataset,
            udf,
            roi=_dense_roi(roi),
            progress=bool(progress),
            backends=_backend(backends),
            corrections=corrections,
            plots=plots,
        )

    def run_udf_iter(  # type: ignore[override]
        self,
        dataset: DataSet,
        udf: Any,
        roi: Any = None,
        corrections: Any = None,
        progress: Any = False,
        backends: Any = None,
        plots: Any = None,
        sync: bool = True,
    ) -> Iterator[UDFResults]:
        """Like :meth:`run_udf`, yielding partial results (``.buffers``, ``.damage``) after each
        merged partition."""
        _check_unsupported(sync)
        return super().run_udf_iter(
            dataset,
            udf,
            roi=_dense_roi(roi),
            progress=bool(progress),
            backends=_backend(backends),
            corrections=corrections,
            plots=plots,
        )

    def run(  # type: ignore[override]
        self, job: Any, roi: Any = None, progress: Any = False, corrections: Any = None
    ) -> Any:
        """Run an analysis from a ``create_*_analysis`` method (see
        :meth:`libertem_gpu.Context.run`)."""
        return super().run(
            job, roi=_dense_roi(roi), progress=bool(progress), corrections=corrections
        )

    def map(  # type: ignore[override]
        self,
        dataset: DataSet,
        f: Any,
        roi: Any = None,
        progress: Any = False,
        corrections: Any = None,
        backends: Sequence[str] | None = None,
    ) -> Any:
        """Apply ``f`` to every frame; the result is shaped like the scan."""
        return super().map(
            dataset,
            f,
            roi=_dense_roi(roi),
            progress=bool(progress),
            backends=_backend(backends),
            corrections=corrections,
        )
