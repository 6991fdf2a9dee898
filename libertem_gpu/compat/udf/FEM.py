"""LiberTEM's ``libertem.udf.FEM``: :class:`FEMUDF` (fluctuation electron microscopy) and
``run_fem``."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.compat.udf._rings import annulus
from libertem_gpu.compat.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl

__all__ = ["FEMUDF", "run_fem"]


class FEMUDF(UDF):
    """Standard deviation of each frame's pixels within a ring.

    Parameters
    ----------
    center : tuple of float
        The ring's centre, ``(row, column)`` as LiberTEM uses it.
    rad_in, rad_out : float
        Pixels with ``rad_in < distance <= rad_out`` count.

    Results
    -------
    intensity : nav, float32
    """

    def __init__(self, center: Any, rad_in: float, rad_out: float) -> None:
        super().__init__(center=center, rad_in=rad_in, rad_out=rad_out)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity``: one float32 per frame."""
        return {"intensity": self.buffer(kind="nav", dtype=np.float32)}

    def get_task_data(self) -> dict[str, Any]:
        """The ring as a mask, made once per partition."""
        assert self.meta is not None
        cy, cx = self.params.center
        sig = tuple(self.meta.dataset_shape.sig)
        return {"mask": annulus(sig, cy, cx, self.params.rad_in, self.params.rad_out)}

    def process_frame(self, frame: Any) -> None:
        """The standard deviation of the ring's pixels (float32, whatever the stored type)."""
        self.results.intensity[:] = np.std(frame.astype(np.float32)[self.task_data.mask == 1])


def run_fem(
    ctx: Any, dataset: Any, center: Any, rad_in: float, rad_out: float, roi: Any = None
) -> Any:
    """Run :class:`FEMUDF` and return its results (``"intensity"``)."""
    udf = FEMUDF(center=center, rad_in=rad_in, rad_out=rad_out)
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi)
