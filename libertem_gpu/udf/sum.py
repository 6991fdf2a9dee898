"""Sum of all frames: :class:`SumUDF`."""

from __future__ import annotations

from typing import Any

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
    swaps_while_reading,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace


class SumUDF(UDF):
    """Sum up the frames, keeping the signal dimensions.

    Parameters
    ----------
    dtype : dtype, optional
        Accepted for LiberTEM compatibility. Sums are always accumulated and returned in
        float64, which is exact for integer data up to 2**53 per pixel.

    Results
    -------
    intensity : sig, float64
        The per-pixel sum over the selected frames.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, SumUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5))
    >>> ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data.shape
    (4, 5)
    """

    def __init__(self, dtype: Any = "float32") -> None:
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the kernels read directly (float32 where they cannot)."""
        return kernel_input_dtype(self.meta, "sum_frames", complex_ok=True)

    def get_backends(self) -> tuple[str, ...]:
        """Where its kernel runs: the CPU and, where a GPU is, CuPy."""
        return kernel_backends("sum_frames")

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs, and big-endian integers unswapped (the kernel
        swaps as it reads)."""
        return preferences(stored_byteorder=swaps_while_reading(self.meta, "sum_frames"))

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity``: a float64 sig buffer."""
        real = self.meta is None or self.meta.input_dtype.kind != "c"
        return {"intensity": self.buffer(kind="sig", dtype=np.float64 if real else np.complex128)}

    def preprocess(self) -> None:
        """Look the kernel up once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            # Complex data is summed with the array module (the kernels read real numbers).
            self._complex = self.meta.input_dtype.kind == "c"
            if not self._complex:
                self._kernel = get_kernel("sum_frames", self.meta.kernels)
            self._swap = self.meta.byteswapped

    def process_tile(self, tile: Any) -> None:
        """Add the tile's frames (or row slabs) to the sum."""
        if self._complex:
            flat_buffer(self.results.intensity)[...] += flat_tile(tile).sum(axis=0)
            return
        self._kernel(flat_tile(tile), flat_buffer(self.results.intensity), swap=self._swap)

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Partial sums add up."""
        host_threads.combine_into(np.add, dest.intensity, src.intensity)
