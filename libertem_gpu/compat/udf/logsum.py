"""LiberTEM's ``libertem.udf.logsum``: :class:`LogsumUDF` and ``run_logsum``."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.compat.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace

__all__ = ["LogsumUDF", "run_logsum"]


class LogsumUDF(UDF):
    """Sum of log-scaled frames, ``log(frame - min(frame) + 1)``, per pixel.

    Brings out what is slightly brighter in many frames over what is very bright in a few.

    Results
    -------
    logsum : sig, float32
    """

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``logsum``: a float32 frame."""
        return {"logsum": self.buffer(kind="sig", dtype=np.float32)}

    def process_frame(self, frame: Any) -> None:
        """Add the frame's log-scaled values (in float32, whatever the stored type)."""
        values = frame.astype(np.float32)
        self.results.logsum[:] += np.log(values - values.min() + 1)

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Partial sums add up."""
        dest.logsum[:] += src.logsum


def run_logsum(ctx: Any, dataset: Any, roi: Any = None) -> Any:
    """Run :class:`LogsumUDF` and return its results (``"logsum"``)."""
    return ctx.run_udf(dataset=dataset, udf=LogsumUDF(), roi=roi)
