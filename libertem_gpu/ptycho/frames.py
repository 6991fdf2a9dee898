"""The one pass ptychography makes over the data: each frame's window about the disk, binned,
gathered into memory (:class:`WindowFramesUDF`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl

__all__ = ["WindowFramesUDF", "cut_and_bin"]


def cut_and_bin(frames: Any, y0: int, x0: int, size: int, binning: int) -> Any:
    """Rows ``y0:y0 + size`` and columns ``x0:x0 + size`` of ``(k, rows, columns)`` frames,
    summed in ``binning x binning`` blocks: ``(k, size // binning, size // binning)``."""
    window = frames[:, y0 : y0 + size, x0 : x0 + size]
    if binning > 1:
        n = size // binning
        window = window.reshape(len(window), n, binning, n, binning).sum(axis=(2, 4))
    return window


class WindowFramesUDF(UDF):
    """Rows ``y0:y0 + size`` and columns ``x0:x0 + size`` of every frame, summed in
    ``binning x binning`` blocks: a ``nav`` buffer ``frames`` of ``(size // binning)**2``
    float32 per position (float32 frames, as UDFs get them).

    Parameters
    ----------
    y0, x0 : int
        The window's first row and column.
    size : int
        Its side, a multiple of ``binning``.
    binning : int
        Block side of the sums.
    """

    def __init__(self, y0: int, x0: int, size: int, binning: int) -> None:
        super().__init__(y0=int(y0), x0=int(x0), size=int(size), binning=int(binning))

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``frames``: nav, ``(size // binning, size // binning)`` float32."""
        n = self.params.size // self.params.binning
        return {"frames": self.buffer(kind="nav", extra_shape=(n, n), dtype=np.float32)}

    def process_tile(self, tile: Any) -> None:
        """Cut, bin and keep each frame's window."""
        p = self.params
        self.results.frames[:] = cut_and_bin(tile, p.y0, p.x0, p.size, p.binning)
