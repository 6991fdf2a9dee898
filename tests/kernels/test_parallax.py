"""The ``parallax_splat`` operation: every implementation against the NumPy reference (contract
kit), and the reference against a loop over frames, pixels and corners written from the
definition."""

from __future__ import annotations

import numpy as np

from libertem_gpu.kernels import parallax
from tests.kernels.kit import KernelContract, flat

SHAPE = (6, 9)


def _geometry(rng, n, npix):
    m = max(1, npix // 2)
    pixels = np.sort(rng.choice(npix, size=m, replace=False)).astype(np.int64)
    scale = rng.random(m) + 0.5
    # points around and beyond the image's edges, fractional everywhere
    positions = rng.uniform(-1.5, 1.0, (n, 2)) * np.array(SHAPE)
    positions = positions + np.array(SHAPE) / 2
    offsets = rng.uniform(-2.3, 2.3, (m, 2))
    return pixels, scale, positions, offsets


class TestParallaxSplatContract(KernelContract):
    op = "parallax_splat"
    rtol = 1e-11

    def arguments(self, rng, tile):
        t = flat(tile)
        pixels, scale, positions, offsets = _geometry(rng, t.shape[0], t.shape[1])
        total = rng.standard_normal(SHAPE)
        weight = rng.random(SHAPE)
        return (t, pixels, scale, positions, offsets, total, weight)

    def expected(self, args):
        tile, pixels, scale, positions, offsets, total, weight = args
        t, w = parallax.reference(tile, pixels, scale, positions, offsets, SHAPE)
        return [total + t, weight + w]

    def outputs(self, args):
        return [args[5], args[6]]


def _loops(tile, pixels, scale, positions, offsets, shape):
    total, weight = np.zeros(shape), np.zeros(shape)
    for i in range(tile.shape[0]):
        for j, p in enumerate(pixels):
            v = float(tile[i, p]) * scale[j]
            y, x = positions[i] + offsets[j]
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                    if 0 <= yy < shape[0] and 0 <= xx < shape[1]:
                        total[yy, xx] += wy * wx * v
                        weight[yy, xx] += wy * wx
    return total, weight


def test_reference_against_loops(rng):
    tile = rng.integers(0, 1000, (11, 20)).astype(np.uint16)
    pixels, scale, positions, offsets = _geometry(rng, 11, 20)
    want = _loops(tile, pixels, scale, positions, offsets, SHAPE)
    got = parallax.reference(tile, pixels, scale, positions, offsets, SHAPE)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)
    # A point on a pixel puts all its weight there.
    t, w = parallax.reference(
        tile[:1], pixels[:1], np.ones(1), np.array([[2.0, 3.0]]), np.zeros((1, 2)), SHAPE
    )
    assert w[2, 3] == 1.0 and w.sum() == 1.0 and t[2, 3] == tile[0, pixels[0]]


def test_steps_of_frames_add_up(rng, monkeypatch):
    """The array implementation's blocks of frames give what one block gives."""
    monkeypatch.setattr(parallax, "_STEP_ENTRIES", 8)
    tile = rng.random((9, 12))
    pixels, scale, positions, offsets = _geometry(rng, 9, 12)
    total, weight = np.zeros(SHAPE), np.zeros(SHAPE)
    parallax.plain(tile, pixels, scale, positions, offsets, total, weight)
    want = parallax.reference(tile, pixels, scale, positions, offsets, SHAPE)
    np.testing.assert_allclose(total, want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(weight, want[1], rtol=1e-12, atol=1e-12)
