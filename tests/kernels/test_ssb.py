"""The ``ssb_accumulate`` operation: every implementation against the NumPy reference (contract
kit), the reference against a loop written from the definition, and blocks of frames."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.kernels import ssb
from tests.kernels.kit import KernelContract, flat

NAV = (5, 7)


def _constants(rng, npix, k=6):
    m = max(1, npix // 2)
    pixels = np.sort(rng.choice(npix, size=m, replace=False)).astype(np.int64)
    weights = rng.standard_normal((m, k)) + 1j * rng.standard_normal((m, k))
    freqs = np.stack(
        [rng.integers(0, NAV[0], k) / NAV[0], rng.integers(0, NAV[1] // 2 + 1, k) / NAV[1]],
        axis=-1,
    )
    return pixels, weights, freqs


def _positions(rng, n):
    return np.stack([rng.integers(0, NAV[0], n), rng.integers(0, NAV[1], n)], axis=-1)


class TestSSBAccumulateContract(KernelContract):
    op = "ssb_accumulate"
    # float32 products of values up to ~1e9 (uint32) in float64 references
    rtol = 2e-5
    simulate = False  # CuPy array code: a real GPU only

    def arguments(self, rng, tile):
        t = flat(tile)
        pixels, weights, freqs = _constants(rng, t.shape[1])
        positions = _positions(rng, t.shape[0])
        acc = rng.standard_normal((3, len(freqs))) + 1j * rng.standard_normal((3, len(freqs)))
        pixel_sum = rng.standard_normal(len(pixels))
        return (t, pixels, weights, freqs, positions, acc, pixel_sum)

    def expected(self, args):
        tile, pixels, weights, freqs, positions, acc, pixel_sum = args
        more, sums = ssb.reference(tile, pixels, weights, freqs, positions)
        return [acc + more, pixel_sum + sums]

    def outputs(self, args):
        return [args[5], args[6]]

    def call(self, kernel, args, swap):
        tile, pixels, weights, freqs, positions, acc, pixel_sum = args
        kernel(pixels, weights, freqs, NAV)(tile, positions, acc, pixel_sum)


def test_reference_against_loops(rng):
    tile = rng.integers(0, 1000, (9, 14)).astype(np.uint16)
    pixels, weights, freqs = _constants(rng, 14)
    positions = _positions(rng, 9)
    acc = np.zeros((3, len(freqs)), complex)
    pixel_sum = np.zeros(len(pixels))
    for i in range(len(tile)):
        for j, (fy, fx) in enumerate(freqs):
            e = np.exp(-2j * np.pi * (fy * positions[i, 0] + fx * positions[i, 1]))
            w = sum(float(tile[i, p]) * weights[m, j] for m, p in enumerate(pixels))
            acc[:, j] += [e * w, e, w]
        pixel_sum += tile[i, pixels]
    got_acc, got_sum = ssb.reference(tile, pixels, weights, freqs, positions)
    np.testing.assert_allclose(got_acc, acc, rtol=1e-12)
    np.testing.assert_allclose(got_sum, pixel_sum, rtol=1e-12)


@pytest.mark.parametrize("double", [False, True])
def test_blocks_of_frames_add_up(rng, monkeypatch, double):
    """The array implementation's blocks give what the reference gives for the whole tile, in
    float32 to its precision and in float64 to float64's."""
    monkeypatch.setattr(ssb, "_BLOCK_BYTES", 1)  # one frame per block
    tile = rng.random((11, 20)).astype(np.float32) * 100
    pixels, weights, freqs = _constants(rng, 20)
    positions = _positions(rng, 11)
    prepared = ssb.prepare(pixels, weights, freqs, NAV, double=double)
    assert prepared.block == 1
    acc = np.zeros((3, len(freqs)), complex)
    pixel_sum = np.zeros(len(pixels))
    prepared(tile, positions, acc, pixel_sum)
    want_acc, want_sum = ssb.reference(tile, pixels, weights, freqs, positions)
    rtol = 1e-12 if double else 1e-5
    scale = np.abs(want_acc).max()
    np.testing.assert_allclose(acc, want_acc, atol=rtol * scale)
    np.testing.assert_allclose(pixel_sum, want_sum, rtol=rtol)
    assert prepared.nbytes > 0


@pytest.mark.parametrize("prepare", [ssb.prepare, ssb.prepare_reference])
def test_other_pixels_and_pixels_off_the_frame(rng, prepare):
    """``pixels``/``valid`` read other pixels in place of the prepared ones, the invalid as 0."""
    tile = rng.random((6, 20))
    pixels, weights, freqs = _constants(rng, 20)
    positions = _positions(rng, 6)
    moved = (pixels + 3) % 20
    valid = (rng.random(len(pixels)) > 0.3).astype(np.float64)
    step = prepare(pixels, weights, freqs, NAV, double=True)
    acc = np.zeros((3, len(freqs)), complex)
    pixel_sum = np.zeros(len(pixels))
    step(tile, positions, acc, pixel_sum, pixels=moved, valid=valid)
    zeroed = tile.copy()
    zeroed[:, moved[valid == 0]] = 0
    want_acc, want_sum = ssb.reference(zeroed, moved, weights, freqs, positions)
    np.testing.assert_allclose(acc, want_acc, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pixel_sum, want_sum, rtol=1e-12, atol=1e-12)
