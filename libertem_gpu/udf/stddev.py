"""Per-pixel mean, variance and standard deviation over the scan: :class:`StdDevUDF`."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import (
    PARTIAL_FRAMES,
    first_slab,
    flat_buffer,
    flat_tile,
    kernel_backends,
    kernel_input_dtype,
    on_worker,
    pixel_range,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace


class StdDevUDF(UDF):
    """Mean, variance and standard deviation of each pixel over the selected frames, in one pass.

    Each partition accumulates sums of deviations from its first frame (shifted sums: no
    catastrophic cancellation for data with a large mean), turns them into a sum and a sum of
    squared deviations from the mean, and partitions combine with the pairwise formula of Chan,
    Golub and LeVeque, in any order.

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
        selected.
    sum : sig, float64
        The per-pixel sum.
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
        return kernel_input_dtype(self.meta, "moments")

    def get_backends(self) -> tuple[str, ...]:
        """Where its kernel runs: the CPU and, where a GPU is, CuPy."""
        return kernel_backends("moments")

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs."""
        return dict(PARTIAL_FRAMES)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``sum``, ``varsum`` (sig), ``num_frames`` (single) and, computed from them at the end,
        ``mean``, ``var``, ``std`` (sig); all float64 but ``num_frames``."""
        f8 = np.float64
        return {
            "varsum": self.buffer(kind="sig", dtype=f8),
            "num_frames": self.buffer(kind="single", dtype=np.int64),
            "sum": self.buffer(kind="sig", dtype=f8),
            "var": self.buffer(kind="sig", dtype=f8, use="result_only"),
            "std": self.buffer(kind="sig", dtype=f8, use="result_only"),
            "mean": self.buffer(kind="sig", dtype=f8, use="result_only"),
        }

    def preprocess(self) -> None:
        """Look the kernel up and allocate the per-pixel shift, once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            self._kernel = get_kernel("moments", self.meta.backend)
            self._shift = self.xp.zeros(self.meta.dataset_shape.sig_size, dtype=np.float64)

    def process_tile(self, tile: Any) -> None:
        """Accumulate deviations from the partition's first frame into ``sum`` (first moment)
        and ``varsum`` (second moment); :meth:`postprocess` converts them."""
        assert self.meta is not None and self.meta.tile is not None
        flat = flat_tile(tile)
        p0, p1 = pixel_range(self.meta)
        shift = self._shift[p0:p1]
        if self.meta.tile.nav_start == 0:  # first stack of the partition: fix the shift
            shift[...] = flat[0]
        self._kernel(flat, shift, flat_buffer(self.results.sum), flat_buffer(self.results.varsum))
        if first_slab(self.meta):
            self.results.num_frames[0] += flat.shape[0]

    def postprocess(self) -> None:
        """Turn the shifted moments into the partition's sum and sum of squared deviations."""
        n = int(self.results.num_frames[0])
        if n == 0:
            return
        s1 = flat_buffer(self.results.sum)
        s2 = flat_buffer(self.results.varsum)
        xp = self.xp
        # M2 = s2 - s1**2 / n (the shift cancels); clipped, since rounding may leave it at -0.
        s2[...] = xp.maximum(s2 - s1 * (s1 / n), 0.0)
        s1[...] = s1 + self._shift * n

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Combine partitions with the pairwise update of Chan et al."""
        from libertem_gpu.kernels import moments

        n_a = int(dest.num_frames[0])
        n_b = int(src.num_frames[0])
        if n_b == 0:
            return
        if n_a == 0:
            dest.sum[...] = src.sum
            dest.varsum[...] = src.varsum
        else:
            _, _, m2 = moments.merge(
                n_a, dest.sum / n_a, dest.varsum, n_b, src.sum / n_b, src.varsum
            )
            dest.varsum[...] = m2
            dest.sum[...] += src.sum
        dest.num_frames[0] = n_a + n_b

    def get_results(self) -> dict[str, Any]:
        """Mean, variance and standard deviation from the merged moments."""
        n = int(self.results.num_frames[0])
        if n == 0:
            nan = np.full_like(self.results.sum, np.nan)
            var, mean = nan, nan
        else:
            var = self.results.varsum / n
            mean = self.results.sum / n
        return {
            "varsum": self.results.varsum,
            "num_frames": self.results.num_frames,
            "sum": self.results.sum,
            "var": var,
            "std": np.sqrt(var),
            "mean": mean,
        }
