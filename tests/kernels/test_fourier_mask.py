"""The ``fft_mask_sum`` operation (crystallinity, ApplyFFTMask): every backend against the NumPy
reference through the contract kit, each CPU strategy (partial DFT, pruned FFT, full FFT) on
narrow and wide rings and arbitrary weights, with and without a real-space blank, and the
default choice of strategy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels import fourier, fourier_mask
from tests.kernels.kit import KernelContract

# Sums of float32 transforms of values up to ~1e9 (uint32) in float64 references.
RTOL = 2e-5


def band(ny, nx, rad_in, rad_out):
    """LiberTEM's ring around ``(ny / 2, nx / 2)``, moved to zero frequency, half spectrum."""
    y, x = np.ogrid[-ny * 0.5 : ny - ny * 0.5, -nx * 0.5 : nx - nx * 0.5]
    d2 = y * y + x * x
    ring = (d2 <= rad_out**2) & ~(d2 <= rad_in**2)
    return np.fft.fftshift(ring.astype(np.float64))[:, : nx // 2 + 1]


def in_full(half, nx):
    full = np.zeros((half.shape[0], nx))
    full[:, : half.shape[1]] = half
    return full


class TestFftMaskSumContract(KernelContract):
    """Random weights (some pixels unread, on two columns for odd tile lengths: the pruned
    transform; on all for even ones), a random real-space weight; the strategies' own cases
    are below."""

    op = "fft_mask_sum"
    rtol = RTOL

    def arguments(self, rng, tile):
        half = (tile.shape[1], fourier.half_width(tile.shape[2]))
        weights = rng.random(half) * (rng.random(half) > 0.3)  # some pixels not read at all
        if half[1] > 1 and len(tile) % 2:  # two columns only: the transform of those alone
            weights[:, 1:-1] = 0
        mask = rng.random(tile.shape[1:]) if tile.shape[1] * tile.shape[2] > 1 else None
        return (tile, mask, weights, rng.random(len(tile)) * 100)

    def expected(self, args):
        tile, mask, weights, out = args
        return [out + fourier_mask.reference_mask_sum(tile, mask, in_full(weights, tile.shape[2]))]

    def outputs(self, args):
        return [args[3]]

    def call(self, kernel, args, swap):
        tile, mask, weights, out = args
        kernel(tile.shape[1:], mask, weights, tile.dtype)(tile, out)


def force(monkeypatch, strategy):
    monkeypatch.setattr(fourier_mask, "choose_strategy", lambda *args: strategy)


@pytest.mark.parametrize("shape", [(16, 16), (15, 17), (9, 8)])
@pytest.mark.parametrize("blank", [False, True])
def test_cpu_strategies_agree(rng, monkeypatch, shape, blank):
    """Each strategy equals the reference on a narrow band (with zero frequency for odd
    frames), a wide one and arbitrary weights (one set off the first columns), on bright
    frames of little contrast (float32 transforms of uint16 need the frames centred to keep
    1e-6)."""
    ny, nx = shape
    frames = (60000 + rng.integers(0, 50, (5, ny, nx))).astype(np.uint16)
    real = None
    if blank:
        real = np.ones(shape)
        real[ny // 2 - 1 : ny // 2 + 2, nx // 2 - 1 : nx // 2 + 2] = 0
    off_axis = rng.random((ny, nx // 2 + 1))
    off_axis[:, :2] = 0  # no zero frequency, pruned columns from the third on
    weights = [band(ny, nx, 1, 3), band(ny, nx, 0, 20), rng.random((ny, nx // 2 + 1)), off_axis]
    if nx % 2:
        weights[0] = band(ny, nx, 0, 3)
    for half, strategy in itertools.product(weights, ("dft", "pruned", "full")):
        force(monkeypatch, strategy)
        prepared = fourier_mask.prepare_mask_sum(shape, real, half, frames.dtype)
        assert prepared.strategy == strategy
        out = np.zeros(5, np.float32 if strategy == "pruned" else np.float64)
        prepared(frames, out)
        want = fourier_mask.reference_mask_sum(frames, real, in_full(half, nx))
        np.testing.assert_allclose(out, want, rtol=1e-6)


def test_many_frames_span_several_blocks(rng, monkeypatch):
    monkeypatch.setattr(fourier_mask, "_DFT_BLOCK_BYTES", 8 * 3 * 64)
    monkeypatch.setattr(fourier, "_CPU_CHUNK_BYTES", 4 * 3 * 64)
    frames = rng.standard_normal((10, 8, 8)).astype(np.float32)
    half = band(8, 8, 0.5, 3)
    want = fourier_mask.reference_mask_sum(frames, None, in_full(half, 8))
    for strategy in ("dft", "pruned"):
        force(monkeypatch, strategy)
        out = np.zeros(10)
        fourier_mask.prepare_mask_sum((8, 8), None, half, frames.dtype)(frames, out)
        np.testing.assert_allclose(out, want, rtol=1e-6)


def test_wide_types_transform_in_float64(rng, monkeypatch):
    """int32 frames (and float64) run in float64: as exact as the reference."""
    frames = rng.integers(-(2**31), 2**31 - 1, (4, 12, 10)).astype(np.int32)
    real = rng.random((12, 10))
    for (ri, ro), strategy in itertools.product(((1, 3), (0, 20)), ("dft", "pruned", "full")):
        force(monkeypatch, strategy)
        half = band(12, 10, ri, ro)
        out = np.zeros(4)
        fourier_mask.prepare_mask_sum((12, 10), real, half, frames.dtype)(frames, out)
        want = fourier_mask.reference_mask_sum(frames, real, in_full(half, 10))
        np.testing.assert_allclose(out, want, rtol=1e-12)


def test_bad_shapes():
    with pytest.raises(ShapeMismatchError, match="weights must have shape"):
        fourier_mask.prepare_mask_sum((8, 8), None, np.ones((8, 4)), np.float32)
    with pytest.raises(ShapeMismatchError, match="weights must have shape"):
        fourier_mask.prepare_mask_sum((8, 8), None, np.ones((8, 5)), np.complex64)
    with pytest.raises(ShapeMismatchError, match="real_mask"):
        fourier_mask.prepare_mask_sum((8, 8), np.ones((8, 7)), np.ones((8, 5)), np.float32)
    prepared = fourier_mask.prepare_mask_sum((8, 8), None, np.ones((8, 5)), np.float32)
    with pytest.raises(ShapeMismatchError, match="whole 8 x 8 frames"):
        prepared(np.ones((2, 8, 4)), np.zeros(2))


def test_default_choice_on_256_frames(rng):
    """Narrow rings and a few spots take the partial DFT, rings out to radius 20-64
    the pruned FFT, a wide band or weights everywhere the full one; complex frames and the
    GPU never the DFT."""

    def choice(weights, complex_input=False, cpu=True):
        return fourier_mask.choose_strategy(weights, (256, 256), complex_input, cpu)

    assert choice(band(256, 256, 4, 6)) == "dft"
    assert choice(band(256, 256, 6, 20)) == "pruned"
    assert choice(band(256, 256, 12, 40)) == "pruned"
    assert choice(band(256, 256, 10, 64)) == "pruned"
    assert choice(band(256, 256, 10, 100)) == "full"
    assert choice(rng.random((256, 129))) == "full"
    assert choice(band(256, 256, 4, 6), cpu=False) == "pruned"
    assert choice(in_full(band(256, 256, 4, 6), 256), complex_input=True) == "pruned"
