"""LiberTEM's ``libertem.analysis.sumfft``: :class:`SumfftAnalysis`."""

from libertem_gpu.analysis.fft import SumfftAnalysis

__all__ = ["SumfftAnalysis"]
