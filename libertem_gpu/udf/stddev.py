"""Per-pixel mean, variance and standard deviation over the scan: :class:`StdDevUDF`."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu import host_memory, host_threads
from libertem_gpu.kernels import get_kernel, moments
from libertem_gpu.udf._common import (
    PARTIAL_FRAMES,
    first_slab,
    flat_buffer,
    flat_tile,
    kernel_backends,
    kernel_input_dtype,
    on_worker,
    pixel_range,
    real_view,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace


class StdDevUDF(UDF):
    """Mean, variance and standard deviation of each pixel over the selected frames, in one pass.

    Each partition accumulates sums of deviations from its first frame (shifted sums: no
    catastrophic cancellation for data with a large mean), turns them into a sum and a sum of
    squared deviations from the mean, and partitions combine with the pairwise formula of Chan,
    Golub and LeVeque, in any order.

    Complex data (complex64, complex128) is accepted: the mean is complex and the variance is
    ``mean(|x - mean|**2)``, real, the sum of the variances of the real and imaginary parts
    (each accumulated by the same kernel, reading the complex frames as interleaved reals).

    Parameters
    ----------
    dtype : dtype, optional
        Accepted for LiberTEM compatibility; accumulation and results are float64.
    use_numba : bool
        Accepted for LiberTEM compatibility; the compiled kernel is always used.

    Results
    -------
    mean, var, std : sig, float64
        Mean, population variance (``ddof=0``) and standard deviation; NaN where no frame was
        selected. ``mean`` is complex128 for complex data; ``var`` and ``std`` stay real.
    sum : sig, float64
        The per-pixel sum (complex128 for complex data).
    varsum : sig, float64
        The sum of squared deviations from the mean (``var * num_frames``).
    num_frames : single, int64, shape (1,)
        The number of frames that went in.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, StdDevUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5))
    >>> res = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    >>> float(res["mean"].data[0, 0]), int(res["num_frames"].data[0])
    (50.0, 6)
    """

    def __init__(self, dtype: Any = None, use_numba: bool = True) -> None:
        super().__init__(dtype=dtype, use_numba=use_numba)

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the kernels read directly (float32 where they cannot)."""
        return kernel_input_dtype(self.meta, "moments", complex_ok=True)

    @property
    def _complex(self) -> bool:
        return self.meta is not None and self.meta.input_dtype.kind == "c"

    def get_backends(self) -> tuple[str, ...]:
        """Where its kernel runs: the CPU and, where a GPU is, CuPy."""
        return kernel_backends("moments")

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs."""
        return dict(PARTIAL_FRAMES)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``sum``, ``varsum`` (sig), ``num_frames`` (single) and, computed from them at the end,
        ``mean``, ``var``, ``std`` (sig); all float64 but ``num_frames``. For complex data
        ``sum`` and ``mean`` are complex128 and the moments of the real and imaginary parts
        accumulate in a private complex128 buffer ``varsum_parts`` (one part each)."""
        f8 = np.float64
        c16 = np.complex128
        if not self._complex:
            return {
                "varsum": self.buffer(kind="sig", dtype=f8),
                "num_frames": self.buffer(kind="single", dtype=np.int64),
                "sum": self.buffer(kind="sig", dtype=f8),
                "var": self.buffer(kind="sig", dtype=f8, use="result_only"),
                "std": self.buffer(kind="sig", dtype=f8, use="result_only"),
                "mean": self.buffer(kind="sig", dtype=f8, use="result_only"),
            }
        return {
            "varsum_parts": self.buffer(kind="sig", dtype=c16, use="private"),
            "varsum": self.buffer(kind="sig", dtype=f8, use="result_only"),
            "num_frames": self.buffer(kind="single", dtype=np.int64),
            "sum": self.buffer(kind="sig", dtype=c16),
            "var": self.buffer(kind="sig", dtype=f8, use="result_only"),
            "std": self.buffer(kind="sig", dtype=f8, use="result_only"),
            "mean": self.buffer(kind="sig", dtype=c16, use="result_only"),
        }

    def _moments(self, ns: BufferNamespace) -> tuple[Any, Any]:
        """Flat real views of the first and second moments: complex buffers as interleaved
        (real, imaginary) float64, so that both parts go through the same real arithmetic."""
        if not self._complex:
            return flat_buffer(ns.sum), flat_buffer(ns.varsum)
        return real_view(flat_buffer(ns.sum)), real_view(flat_buffer(ns.varsum_parts))

    def preprocess(self) -> None:
        """Look the kernel up and allocate the per-pixel shift, once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            self._kernel = get_kernel("moments", self.meta.kernels)
            size = (2 if self._complex else 1) * self.meta.dataset_shape.sig_size
            # Host memory from the pool: for large frames a fresh array's pages cost the
            # kernel's zeroing (see host_memory).
            if self.xp is np:
                self._shift = host_memory.zeros(size, np.float64)
            else:
                self._shift = self.xp.zeros(size, dtype=np.float64)

    def process_tile(self, tile: Any) -> None:
        """Accumulate deviations from the partition's first frame into ``sum`` (first moment)
        and ``varsum`` (second moment); :meth:`postprocess` converts them."""
        assert self.meta is not None and self.meta.tile is not None
        flat = flat_tile(tile)
        p0, p1 = pixel_range(self.meta)
        if self._complex:  # interleaved (real, imaginary): two reals per pixel
            flat, p0, p1 = real_view(flat), 2 * p0, 2 * p1
        shift = self._shift[p0:p1]
        if self.meta.tile.nav_start == 0:  # first stack of the partition: fix the shift
            shift[...] = flat[0]
        self._kernel(flat, shift, *self._moments(self.results))
        if first_slab(self.meta):
            self.results.num_frames[0] += flat.shape[0]

    def postprocess(self) -> None:
        """Turn the shifted moments into the partition's sum and sum of squared deviations."""
        n = int(self.results.num_frames[0])
        if n == 0:
            return
        # M2 = s2 - s1**2 / n (the shift cancels); the sum is s1 + shift * n
        assert self.meta is not None
        moments.finalize_sums_into(
            n, self._shift, *self._moments(self.results), kernels=self.meta.kernels
        )

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Combine partitions with the pairwise update of Chan et al."""
        n_a = int(dest.num_frames[0])
        n_b = int(src.num_frames[0])
        if n_b == 0:
            return
        assert self.meta is not None
        moments.merge_sums_into(
            n_a, *self._moments(dest), n_b, *self._moments(src), kernels=self.meta.kernels
        )
        dest.num_frames[0] = n_a + n_b

    def get_results(self) -> dict[str, Any]:
        """Mean, variance and standard deviation from the merged moments."""
        n = int(self.results.num_frames[0])
        if self._complex:
            parts = self.results.varsum_parts
            varsum = parts.real + parts.imag
        else:
            varsum = self.results.varsum
        # Into pooled host memory: for large frames, fresh result arrays cost the kernel's
        # zeroing of their pages, serially at the end of the run (see host_memory).
        var = host_memory.empty(varsum.shape, varsum.dtype)
        std = host_memory.empty(var.shape, var.dtype)
        mean = host_memory.empty(self.results.sum.shape, self.results.sum.dtype)
        if n == 0:
            var.fill(np.nan)
            std.fill(np.nan)
            mean.fill(np.nan)
        else:

            def finish(varsum: Any, total: Any, var: Any, std: Any, mean: Any) -> None:
                np.divide(varsum, n, out=var)
                np.sqrt(var, out=std)
                np.divide(total, n, out=mean)

            # the end of the run, after every partition: on all of the client's threads
            host_threads.map_flat(finish, varsum, self.results.sum, var, std, mean)
        return {
            "varsum": varsum,
            "num_frames": self.results.num_frames,
            "sum": self.results.sum,
            "var": var,
            "std": std,
            "mean": mean,
        }
