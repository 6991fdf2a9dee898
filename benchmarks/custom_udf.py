"""What a user writes: a UDF in plain NumPy, the same for libertem_gpu and LiberTEM 0.16.

It sums the frames it gets (float32 tiles, the default in both libraries, so every tile of
integer data is a converted copy) into a float64 buffer. The CPU comparison (``run_cpu.py``,
analysis ``custom``) times it: built-in analyses run compiled kernels on the stored type, this
one measures what a user's own analysis costs. Not a test; imported by ``cpu_cases.py``.
"""

from __future__ import annotations

from typing import Any

import libertem_gpu


class FrameSum(libertem_gpu.UDF):
    """The sum over frames in NumPy (libertem_gpu)."""

    def get_result_buffers(self) -> dict[str, Any]:
        return {"total": self.buffer(kind="sig", dtype="float64")}

    def process_tile(self, tile: Any) -> None:
        self.results.total[...] += tile.sum(axis=0)

    def merge(self, dest: Any, src: Any) -> None:
        dest.total[...] += src.total


try:  # LiberTEM only where installed (the A/B runner's processes have only libertem_gpu)
    from libertem.udf.base import UDF as _LiberTEMUDF
except ImportError:
    _LiberTEMUDF = None

if _LiberTEMUDF is not None:

    class LiberTEMFrameSum(_LiberTEMUDF):  # type: ignore[misc, valid-type]
        """The same UDF, word for word, for LiberTEM."""

        def get_result_buffers(self) -> dict[str, Any]:
            return {"total": self.buffer(kind="sig", dtype="float64")}

        def process_tile(self, tile: Any) -> None:
            self.results.total[...] += tile.sum(axis=0)

        def merge(self, dest: Any, src: Any) -> None:
            dest.total[...] += src.total
