"""LiberTEM's ``libertem.viz``: the simple image helpers (``visualize_simple``,
``rgb_from_2dvector``); live plots are not available (``run_udf(plots=...)`` is ignored)."""

from libertem_gpu.analysis.results import rgb_from_2dvector, visualize_simple

__all__ = ["rgb_from_2dvector", "visualize_simple"]
