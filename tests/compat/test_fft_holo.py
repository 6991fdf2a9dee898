"""LiberTEM's import paths of the Fourier-space analyses and of LiberTEM 0.14's holography:
``libertem.analysis`` (``SumfftAnalysis``, ``ApplyFFTMask``) and ``libertem.udf.holography``,
run as a LiberTEM script would."""

from __future__ import annotations

import numpy as np

import libertem_gpu.compat.api as lt
from libertem_gpu.compat.analysis import ApplyFFTMask, SumfftAnalysis
from libertem_gpu.compat.analysis.apply_fft_mask import ApplyFFTMask as ApplyFFTMaskByPath
from libertem_gpu.compat.analysis.sumfft import SumfftAnalysis as SumfftByPath
from libertem_gpu.compat.udf.crystallinity import CrystallinityUDF
from libertem_gpu.compat.udf.holography import (
    HoloReconstructUDF,
    aperture_function,
    freq_array,
)


def test_analyses_as_libertem_scripts(rng):
    assert (ApplyFFTMaskByPath, SumfftByPath) == (ApplyFFTMask, SumfftAnalysis)
    data = rng.integers(0, 3000, (4, 5, 12, 10)).astype(np.uint16)
    with lt.Context.make_with("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=3)
        params = dict(rad_in=1, rad_out=4, real_centerx=5, real_centery=6, real_rad=2)
        masked = ctx.run(ApplyFFTMask(dataset=ds, parameters=params))
        cryst = CrystallinityUDF(rad_in=1, rad_out=4, real_center=(6, 5), real_rad=2)
        want = ctx.run_udf(dataset=ds, udf=cryst)["intensity"].data
        np.testing.assert_allclose(masked.intensity.raw_data, want, rtol=2e-5)
        summed = ctx.run(SumfftAnalysis(dataset=ds, parameters={}))
        np.testing.assert_allclose(summed.intensity.raw_data, data.sum(axis=(0, 1)), rtol=1e-6)
        assert summed.intensity.visualized.shape == (12, 10, 3)


def test_holography_as_libertem_0_14(rng):
    """LiberTEM 0.14's signature and its ``aperture_function(freq_array(...))`` aperture."""
    data = rng.random((2, 3, 16, 16)).astype(np.float32)
    with lt.Context.make_with("inline") as ctx:
        ds = ctx.load("memory", data=data)
        udf = HoloReconstructUDF(out_shape=(8, 8), sb_position=[3, 4], sb_size=2.5)
        wave = ctx.run_udf(dataset=ds, udf=udf)["wave"].data
    f = np.mean((1 / 8, 1 / 8))
    aperture = aperture_function(freq_array((8, 8)), 2.5 * f, 2.5 * f * 0.05 * f)
    spectrum = np.roll(np.fft.fft2(data[1, 2].astype(np.float64)), (3, 4), axis=(0, 1))
    cut = np.fft.fftshift(np.fft.fftshift(spectrum)[4:12, 4:12])
    np.testing.assert_allclose(wave[1, 2], np.fft.ifft2(cut * aperture), rtol=1e-10)
