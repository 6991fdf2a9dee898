"""The ``fourier_band`` operation (crystallinity): both CPU strategies (partial DFT and FFT)
and the GPU one against the NumPy reference, with and without a real-space blank."""

import itertools

import numpy as np
import pytest

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels import fourier_band
from tests.kernels.kit import KernelContract, flat


def band(ny, nx, rad_in, rad_out):
    """LiberTEM's ring around ``(ny / 2, nx / 2)``, moved to zero frequency, half spectrum."""
    y, x = np.ogrid[-ny * 0.5 : ny - ny * 0.5, -nx * 0.5 : nx - nx * 0.5]
    d2 = y * y + x * x
    ring = (d2 <= rad_out**2) & ~(d2 <= rad_in**2)
    return np.fft.fftshift(ring.astype(np.float64))[:, : nx // 2 + 1]


class TestFourierBandContract(KernelContract):
    """Random weights on the whole half spectrum (every frequency counts), a random real-space
    weight on even cases; the small band below checks the DFT strategy."""

    op = "fourier_band"
    rtol = 1e-5  # the GPU transforms 8/16-bit and float32 frames in float32, as LiberTEM does

    def arguments(self, rng, tile):
        n, ny, nx = tile.shape
        half = rng.random((ny, nx // 2 + 1))
        real = rng.random((ny, nx)) if (ny * nx) % 2 else None
        return (tile, half, real, np.full(n, 7.0))

    def expected(self, args):
        tile, half, real, out = args
        return [out + fourier_band.reference(tile, half, real)]

    def outputs(self, args):
        return [args[3]]

    def call(self, kernel, args, swap):
        tile, half, real, out = args
        kernel(half, real, tile.shape[1:], tile.dtype)(flat(tile), out)


@pytest.mark.parametrize("shape", [(16, 16), (15, 17), (9, 8)])
@pytest.mark.parametrize("blank", [False, True])
def test_cpu_strategies_agree(rng, monkeypatch, shape, blank):
    """The partial DFT and the FFT both equal the reference, on a narrow and a wide band."""
    ny, nx = shape
    frames = rng.integers(0, 65535, (5, ny, nx)).astype(np.uint16)
    real = None
    if blank:
        real = np.ones(shape)
        real[ny // 2 - 1 : ny // 2 + 2, nx // 2 - 1 : nx // 2 + 2] = 0
    for (ri, ro), strategy in itertools.product(((1, 3), (0, 20)), ("dft", "fft")):
        monkeypatch.setattr(fourier_band, "_DFT_COLUMNS_PER_LOG2", 100 if strategy == "dft" else 0)
        half = band(ny, nx, ri, ro)
        prepared = fourier_band.prepare(half, real, shape, frames.dtype)
        assert prepared.strategy == strategy
        out = np.zeros(5)
        prepared(frames.reshape(5, -1), out)
        want = fourier_band.reference(frames, half, real)
        np.testing.assert_allclose(out, want, rtol=1e-6)  # uint16: float32 transforms


def test_many_frames_span_several_blocks(rng, monkeypatch):
    monkeypatch.setattr(fourier_band, "_BLOCK_BYTES", 8 * 3 * 64)
    frames = rng.standard_normal((10, 8, 8))
    half = band(8, 8, 0.5, 3)
    out = np.zeros(10)
    fourier_band.prepare(half, None, (8, 8), frames.dtype)(frames.reshape(10, -1), out)
    np.testing.assert_allclose(out, fourier_band.reference(frames, half, None), rtol=1e-12)


def test_wide_types_transform_in_float64(rng):
    """int32 frames (and float64) run in float64: as exact as the reference."""
    frames = rng.integers(-(2**31), 2**31 - 1, (4, 12, 10)).astype(np.int32)
    for ri, ro in ((1, 3), (0, 20)):
        half = band(12, 10, ri, ro)
        out = np.zeros(4)
        fourier_band.prepare(half, None, (12, 10), frames.dtype)(frames.reshape(4, -1), out)
        np.testing.assert_allclose(out, fourier_band.reference(frames, half, None), rtol=1e-12)


def test_bad_shapes():
    with pytest.raises(ShapeMismatchError, match="half_mask"):
        fourier_band.prepare(np.ones((8, 4)), None, (8, 8), np.float32)
    with pytest.raises(ShapeMismatchError, match="real_mask"):
        fourier_band.prepare(np.ones((8, 5)), np.ones((8, 7)), (8, 8), np.float32)
    prepared = fourier_band.prepare(np.ones((8, 5)), None, (8, 8), np.float32)
    with pytest.raises(ShapeMismatchError, match="whole 8 x 8 frames"):
        prepared(np.ones((2, 32)), np.zeros(2))


def test_narrow_band_on_big_frames_takes_the_dft():
    """The default choice: crystallinity's typical band on 256 x 256 frames runs the DFT, a band
    over most of the spectrum the FFT."""
    assert fourier_band.prepare(band(256, 256, 4, 6), None, (256, 256), np.uint16).strategy == "dft"
    wide = band(256, 256, 10, 100)
    assert fourier_band.prepare(wide, None, (256, 256), np.uint16).strategy == "fft"
