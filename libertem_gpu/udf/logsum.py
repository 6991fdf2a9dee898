"""Sum of log-scaled frames: :class:`LogsumUDF`."""

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
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace

__all__ = ["LogsumUDF"]


class LogsumUDF(UDF):
    """Sum of log-scaled frames, ``sum over frames of log(frame - min(frame) + 1)`` per pixel
    (LiberTEM's ``LogsumUDF``), the minimum taken over each whole frame.

    Compared with the logarithm of the sum, it brings out what is slightly brighter in many
    frames over what is very bright in a few.

    Results
    -------
    logsum : sig, float64
        The per-pixel sum over the selected frames.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, LogsumUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.random.default_rng(0).poisson(5, (2, 3, 16, 16)))
    >>> ctx.run_udf(dataset=ds, udf=LogsumUDF())["logsum"].data.shape
    (16, 16)
    """

    def __init__(self) -> None:
        super().__init__()

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the kernel reads directly (float32 where it cannot)."""
        return kernel_input_dtype(self.meta, "logsum")

    def get_backends(self) -> tuple[str, ...]:
        """Where its kernel runs: the CPU and, where a GPU is, CuPy."""
        return kernel_backends("logsum")

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Whole frames: each frame's minimum is taken over all of it."""
        return {"depth": None, "total_size": None, "partial_frames": False}

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``logsum``: a float64 sig buffer."""
        return {"logsum": self.buffer(kind="sig", dtype=np.float64)}

    def preprocess(self) -> None:
        """Look the kernel up once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            self._kernel = get_kernel("logsum", self.meta.kernels)

    def process_tile(self, tile: Any) -> None:
        """Add the tile's log-scaled frames."""
        self._kernel(flat_tile(tile), flat_buffer(self.results.logsum))

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Partial sums add up."""
        host_threads.combine_into(np.add, dest.logsum, src.logsum)
