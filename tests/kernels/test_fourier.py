"""The per-frame Fourier operations (power spectrum, hologram reconstruction) against their NumPy
references, through the kernel contract kit, plus the layout helpers they rest on (the
Fourier-space mask sums: test_fourier_mask.py)."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.kernels import fourier, fourier_mask
from tests.kernels.kit import KernelContract

# Sums of float32 transforms of values up to ~1e9 (uint32) in float64 references.
RTOL = 2e-5


def _maybe_mask(rng, tile):
    """A random real-space mask for frames of more than one pixel (None for 1x1)."""
    if tile.shape[1] * tile.shape[2] == 1:
        return None
    return rng.random(tile.shape[1:])


class TestPowerSpectrumContract(KernelContract):
    op = "power_spectrum"
    rtol = RTOL

    def arguments(self, rng, tile):
        mask = _maybe_mask(rng, tile)
        half = (tile.shape[1], fourier.half_width(tile.shape[2]))
        return (tile, mask, rng.random(half) * 1e3)

    def expected(self, args):
        tile, mask, out = args
        return [out + fourier.reference_power(tile, mask)[:, : out.shape[1]]]

    def outputs(self, args):
        return [args[2]]

    def call(self, kernel, args, swap):
        tile, mask, out = args
        kernel(tile.shape[1:], mask, tile.dtype)(tile, out)


class TestHoloReconstructContract(KernelContract):
    op = "holo_reconstruct"
    rtol = RTOL

    def arguments(self, rng, tile):
        sy, sx = tile.shape[1:]
        # odd and even cuts of odd frames; narrow ones read few columns (transformed alone)
        out_shape = (max(1, sy - 2), max(1, sx - 1 if len(tile) % 2 else sx // 4))
        position = (int(rng.integers(0, sy)), int(rng.integers(-sx, sx)))
        aperture = rng.random(out_shape) + 1j * rng.random(out_shape)
        out = np.zeros((len(tile), *out_shape), dtype=np.complex128)
        return (tile, out_shape, position, aperture, out)

    def expected(self, args):
        tile, out_shape, position, aperture, _ = args
        return [fourier.reference_holo(tile, out_shape, position, aperture)]

    def outputs(self, args):
        return [args[4]]

    def call(self, kernel, args, swap):
        tile, out_shape, position, aperture, out = args
        kernel(tile.shape[1:], out_shape, position, aperture, tile.dtype)(tile, out)


# --- layout helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (6, 8), (7, 6), (1, 2)])
def test_full_spectrum_and_fold_use_hermitian_symmetry(rng, shape):
    frame = rng.standard_normal(shape)
    spectrum = np.fft.fft2(frame)
    power = np.abs(spectrum) ** 2
    half = power[:, : fourier.half_width(shape[1])]
    np.testing.assert_allclose(fourier.full_spectrum(half, shape[1]), power, rtol=1e-12)
    weights = rng.random(shape)
    folded = fourier.hermitian_fold(weights)
    got = np.sum(np.abs(spectrum[:, : folded.shape[1]]) * folded)
    np.testing.assert_allclose(got, np.sum(np.abs(spectrum) * weights), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "complex64"])
def test_complex_and_double_paths(rng, dtype):
    """Complex frames take the full transform; ``double`` gives float64 accuracy."""
    shape = (3, 9, 8)
    tile = rng.standard_normal(shape).astype(np.float32)
    if dtype == "complex64":
        tile = (tile + 1j * rng.standard_normal(shape)).astype(np.complex64)
    mask = rng.random(shape[1:])
    out = np.zeros(shape[1:] if dtype == "complex64" else (9, 5))
    prepared = fourier.prepare_power(shape[1:], mask, tile.dtype, double=True)
    prepared(tile, out)
    want = fourier.reference_power(tile, mask)[:, : out.shape[1]]
    np.testing.assert_allclose(out, want, rtol=1e-11, atol=1e-11 * want.max())
    for columns in (slice(None), [1, 6]):  # every column, or two (transformed alone)
        weights = np.zeros(shape[1:])
        weights[:, columns] = rng.random(shape[1:])[:, columns]
        sums = np.zeros(3)
        used = weights if dtype == "complex64" else fourier.hermitian_fold(weights)
        fourier_mask.prepare_mask_sum(shape[1:], None, used, tile.dtype, double=True)(tile, sums)
        want = fourier_mask.reference_mask_sum(tile, None, weights)
        np.testing.assert_allclose(sums, want, rtol=1e-11)
    aperture = rng.random((5, 4))
    wave = np.zeros((3, 5, 4), dtype=np.complex128)
    fourier.prepare_holo(shape[1:], (5, 4), (2, -3), aperture, tile.dtype, double=True)(tile, wave)
    want_wave = fourier.reference_holo(tile, (5, 4), (2, -3), aperture)
    np.testing.assert_allclose(wave, want_wave, rtol=1e-11, atol=1e-11 * np.abs(want_wave).max())


def test_work_dtype_widens_as_libertem():
    assert fourier.work_dtype(np.uint16) == np.float32
    assert fourier.work_dtype(np.uint16, double=True) == np.float64
    assert fourier.work_dtype(np.int32) == np.float64
    assert fourier.work_dtype(np.complex64) == np.float32
    assert fourier.work_dtype(np.complex128) == np.float64
