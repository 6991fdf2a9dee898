"""Sum over the signal of each frame: :class:`SumSigUDF`."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import (
    flat_tile,
    kernel_backends,
    kernel_input_dtype,
    on_worker,
    preferences,
    swaps_while_reading,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl


class SumSigUDF(UDF):
    """Sum of all pixels of each frame: one value per scan position.

    Results
    -------
    intensity : nav, float64
        The sum of each selected frame; NaN outside the roi in ``.data``.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, SumSigUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5))
    >>> ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data.shape
    (2, 3)
    """

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the kernels read directly (float32 where they cannot)."""
        return kernel_input_dtype(self.meta, "sum_sig", complex_ok=True)

    def get_backends(self) -> tuple[str, ...]:
        """Where its kernel runs: the CPU and, where a GPU is, CuPy."""
        return kernel_backends("sum_sig")

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs (the per-frame sums accumulate); big-endian
        integers unswapped (the kernel swaps as it reads)."""
        return preferences(stored_byteorder=swaps_while_reading(self.meta, "sum_sig"))

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity``: a float64 nav buffer."""
        real = self.meta is None or self.meta.input_dtype.kind != "c"
        return {"intensity": self.buffer(kind="nav", dtype=np.float64 if real else np.complex128)}

    def preprocess(self) -> None:
        """Look the kernel up once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            # Complex data is summed with the array module (the kernels read real numbers).
            self._complex = self.meta.input_dtype.kind == "c"
            if not self._complex:
                self._kernel = get_kernel("sum_sig", self.meta.kernels)
            self._swap = self.meta.byteswapped

    def process_tile(self, tile: Any) -> None:
        """Add each frame's (or row slab's) sum to its scan position."""
        if self._complex:
            self.results.intensity[...] += flat_tile(tile).sum(axis=1)
            return
        self._kernel(flat_tile(tile), self.results.intensity, swap=self._swap)
