"""Per-pixel maximum and minimum over the scan: :class:`MaxUDF`, :class:`MinUDF`."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from libertem_gpu import host_threads
from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import (
    flat_buffer,
    flat_tile,
    kernel_backends,
    kernel_input_dtype,
    on_worker,
    preferences,
    refuse_complex,
    swaps_while_reading,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace


def _lowest(dtype: np.dtype) -> Any:
    if dtype.kind == "b":
        return False
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return -np.inf


def _highest(dtype: np.dtype) -> Any:
    if dtype.kind == "b":
        return True
    if dtype.kind in "iu":
        return np.iinfo(dtype).max
    return np.inf


class _ExtremumUDF(UDF):
    """Shared machinery: a sig buffer in the input dtype, started at the identity element."""

    _op: ClassVar[str]

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the kernels read directly (float32 where they cannot)."""
        refuse_complex(
            self.meta,
            type(self).__name__,
            "complex numbers have no order; run it on their magnitude or real part, e.g. with "
            "ctx.map(dataset, f=np.abs) or a UDF of your own",
        )
        return kernel_input_dtype(self.meta, self._op)

    def get_backends(self) -> tuple[str, ...]:
        """Where its kernel runs: the CPU and, where a GPU is, CuPy."""
        return kernel_backends(self._op)

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs, and big-endian integers unswapped (the kernel
        swaps as it reads)."""
        return preferences(stored_byteorder=swaps_while_reading(self.meta, self._op))

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity``: a sig buffer in the data set's (native) dtype, so values stay exact."""
        assert self.meta is not None
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def _identity(self, dtype: np.dtype) -> Any:
        raise NotImplementedError

    def preprocess(self) -> None:
        """Start from the identity of the reduction; look the kernel up once per partition."""
        assert self.meta is not None
        buf = self.results.intensity
        buf[...] = self._identity(np.dtype(buf.dtype))
        if on_worker(self.meta):
            self._kernel = get_kernel(self._op, self.meta.kernels)
            self._swap = self.meta.byteswapped

    def process_tile(self, tile: Any) -> None:
        """Fold the tile's frames (or row slabs) into the running extremum."""
        self._kernel(flat_tile(tile), flat_buffer(self.results.intensity), swap=self._swap)


class MaxUDF(_ExtremumUDF):
    """Per-pixel maximum over the selected frames.

    NaN propagates, as in :func:`numpy.max`. With no frame selected the result holds the
    dtype's minimum (``-inf`` for floats).

    Results
    -------
    intensity : sig, dtype of the data set
        The per-pixel maximum.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, MaxUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5))
    >>> int(ctx.run_udf(dataset=ds, udf=MaxUDF())["intensity"].data[0, 0])
    100
    """

    _op = "max"

    def _identity(self, dtype: np.dtype) -> Any:
        return _lowest(dtype)

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """The maximum of two partial maxima."""
        host_threads.combine_into(np.maximum, dest.intensity, src.intensity)


class MinUDF(_ExtremumUDF):
    """Per-pixel minimum over the selected frames.

    NaN propagates, as in :func:`numpy.min`. With no frame selected the result holds the
    dtype's maximum (``inf`` for floats).

    Results
    -------
    intensity : sig, dtype of the data set
        The per-pixel minimum.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, MinUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5))
    >>> int(ctx.run_udf(dataset=ds, udf=MinUDF())["intensity"].data[0, 0])
    0
    """

    _op = "min"

    def _identity(self, dtype: np.dtype) -> Any:
        return _highest(dtype)

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """The minimum of two partial minima."""
        host_threads.combine_into(np.minimum, dest.intensity, src.intensity)
