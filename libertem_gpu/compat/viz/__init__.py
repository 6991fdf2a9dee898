"""LiberTEM's ``libertem.viz``: the simple image helpers (``visualize_simple``,
``rgb_from_2dvector``). Live plots (``run_udf(plots=...)``) are :mod:`libertem_gpu.viz`; its
plot classes are not LiberTEM's (``Live2DPlot``, ``MPLLive2DPlot`` are not provided here)."""

from libertem_gpu.analysis.results import rgb_from_2dvector, visualize_simple

__all__ = ["rgb_from_2dvector", "visualize_simple"]
