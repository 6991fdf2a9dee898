"""LiberTEM's analysis API: ``ctx.create_*_analysis(...)`` and ``ctx.run(analysis)``.

The analyses are thin wrappers over the built-in UDFs; see :mod:`.analyses` for the classes
and :mod:`.results` for what ``ctx.run`` returns.
"""

from libertem_gpu.analysis.analyses import (
    Analysis,
    COMAnalysis,
    DiskMaskAnalysis,
    MasksAnalysis,
    PickFrameAnalysis,
    PointMaskAnalysis,
    RingMaskAnalysis,
    SDAnalysis,
    SumAnalysis,
)
from libertem_gpu.analysis.context import AnalysisMixin
from libertem_gpu.analysis.fft import ApplyFFTMask, SumfftAnalysis
from libertem_gpu.analysis.radial_fourier import RadialFourierAnalysis, RadialFourierResultSet
from libertem_gpu.analysis.results import AnalysisResult, AnalysisResultSet

__all__ = [
    "Analysis",
    "AnalysisMixin",
    "AnalysisResult",
    "AnalysisResultSet",
    "ApplyFFTMask",
    "COMAnalysis",
    "DiskMaskAnalysis",
    "MasksAnalysis",
    "PickFrameAnalysis",
    "PointMaskAnalysis",
    "RadialFourierAnalysis",
    "RadialFourierResultSet",
    "RingMaskAnalysis",
    "SDAnalysis",
    "SumAnalysis",
    "SumfftAnalysis",
]
