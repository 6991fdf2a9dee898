"""LiberTEM's ``libertem.udf.sumsigudf``: :class:`SumSigUDF` and ``run_sumsig``."""

from __future__ import annotations

from typing import Any

from libertem_gpu import SumSigUDF

__all__ = ["SumSigUDF", "run_sumsig"]


def run_sumsig(ctx: Any, dataset: Any) -> Any:
    """Run :class:`SumSigUDF` over ``dataset`` and return its results (``"intensity"``)."""
    return ctx.run_udf(dataset=dataset, udf=SumSigUDF())
