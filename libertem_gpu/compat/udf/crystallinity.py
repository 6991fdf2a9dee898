"""LiberTEM's ``libertem.udf.crystallinity``: :class:`CrystallinityUDF` and
``run_analysis_crystall``."""

from __future__ import annotations

from typing import Any

from libertem_gpu.compat.udf.base import UDF
from libertem_gpu.udf import crystallinity as _ours

__all__ = ["CrystallinityUDF", "run_analysis_crystall"]


class CrystallinityUDF(_ours.CrystallinityUDF, UDF):
    """:class:`libertem_gpu.CrystallinityUDF` under LiberTEM's import path (results in
    float64)."""


def run_analysis_crystall(
    ctx: Any,
    dataset: Any,
    rad_in: float,
    rad_out: float,
    real_center: Any = None,
    real_rad: Any = None,
    roi: Any = None,
    progress: bool = False,
) -> Any:
    """Run :class:`CrystallinityUDF` and return its results (``"intensity"``)."""
    udf = CrystallinityUDF(
        rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad
    )
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress)
