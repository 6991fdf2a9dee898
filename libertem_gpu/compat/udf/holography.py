"""LiberTEM 0.14's ``libertem.udf.holography`` (removed from LiberTEM 0.15, now in
LiberTEM-holo): :class:`HoloReconstructUDF` with the same parameters and results, and its
helpers ``freq_array`` and ``aperture_function``; also LiberTEM-holo's ``get_slice_fft``,
``estimate_sideband_position`` and ``estimate_sideband_size``."""

from libertem_gpu.udf.holography import (
    HoloReconstructUDF,
    aperture_function,
    estimate_sideband_position,
    estimate_sideband_size,
    freq_array,
    get_slice_fft,
    holo_aperture,
)

__all__ = [
    "HoloReconstructUDF",
    "aperture_function",
    "estimate_sideband_position",
    "estimate_sideband_size",
    "freq_array",
    "get_slice_fft",
    "holo_aperture",
]
