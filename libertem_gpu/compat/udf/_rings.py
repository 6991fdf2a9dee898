"""Ring masks shared by the FEM and crystallinity UDFs."""

from __future__ import annotations

import numpy as np

from libertem_gpu import masks


def annulus(
    sig_shape: tuple[int, ...], cy: float, cx: float, rad_in: float, rad_out: float
) -> np.ndarray:
    """1 where ``rad_in < distance <= rad_out`` from ``(cy, cx)``, else 0 (int)."""
    rows, cols = sig_shape
    outer = masks.circular(cx, cy, cols, rows, rad_out)
    inner = masks.circular(cx, cy, cols, rows, rad_in)
    return (outer & ~inner).astype(np.int64)
