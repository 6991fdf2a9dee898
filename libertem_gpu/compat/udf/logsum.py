"""LiberTEM's ``libertem.udf.logsum``: :class:`LogsumUDF` and ``run_logsum``."""

from __future__ import annotations

from typing import Any

from libertem_gpu.compat.udf.base import UDF
from libertem_gpu.udf import logsum as _ours

__all__ = ["LogsumUDF", "run_logsum"]


class LogsumUDF(_ours.LogsumUDF, UDF):
    """:class:`libertem_gpu.LogsumUDF` under LiberTEM's import path (results in float64)."""


def run_logsum(ctx: Any, dataset: Any, roi: Any = None) -> Any:
    """Run :class:`LogsumUDF` and return its results (``"logsum"``)."""
    return ctx.run_udf(dataset=dataset, udf=LogsumUDF(), roi=roi)
