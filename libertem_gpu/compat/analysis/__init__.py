"""LiberTEM's ``libertem.analysis``: the analysis classes, run with ``ctx.run(analysis)``."""

from libertem_gpu.analysis import (
    COMAnalysis,
    DiskMaskAnalysis,
    MasksAnalysis,
    PickFrameAnalysis,
    PointMaskAnalysis,
    RadialFourierAnalysis,
    RingMaskAnalysis,
    SDAnalysis,
    SumAnalysis,
)
from libertem_gpu.analysis.fft import ApplyFFTMask, SumfftAnalysis

__all__ = [
    "ApplyFFTMask",
    "COMAnalysis",
    "DiskMaskAnalysis",
    "MasksAnalysis",
    "PickFrameAnalysis",
    "PointMaskAnalysis",
    "RadialFourierAnalysis",
    "RingMaskAnalysis",
    "SDAnalysis",
    "SumAnalysis",
    "SumfftAnalysis",
]
