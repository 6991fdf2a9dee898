"""LiberTEM's ``libertem.udf.FEM``: :class:`FEMUDF` (fluctuation electron microscopy) and
``run_fem``."""

from __future__ import annotations

from typing import Any

from libertem_gpu.compat.udf.base import UDF
from libertem_gpu.udf import fem as _ours

__all__ = ["FEMUDF", "run_fem"]


class FEMUDF(_ours.FEMUDF, UDF):
    """:class:`libertem_gpu.FEMUDF` under LiberTEM's import path: ``center`` is
    ``(row, column)``, as LiberTEM's code uses it (results in float64)."""


def run_fem(
    ctx: Any, dataset: Any, center: Any, rad_in: float, rad_out: float, roi: Any = None
) -> Any:
    """Run :class:`FEMUDF` and return its results (``"intensity"``)."""
    udf = FEMUDF(center=center, rad_in=rad_in, rad_out=rad_out)
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi)
