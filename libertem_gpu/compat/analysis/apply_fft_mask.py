"""LiberTEM's ``libertem.analysis.apply_fft_mask``: :class:`ApplyFFTMask`."""

from libertem_gpu.analysis.fft import ApplyFFTMask

__all__ = ["ApplyFFTMask"]
