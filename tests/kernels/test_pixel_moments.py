"""The ``pixel_moments`` operation (FEM's ring statistics) against its NumPy reference, and
the combination of row slabs' moments."""

import numpy as np
import pytest

from libertem_gpu.kernels import pixel_moments
from tests.kernels.kit import KernelContract, flat


class TestPixelMomentsContract(KernelContract):
    op = "pixel_moments"
    rtol = 1e-11

    def arguments(self, rng, tile):
        f = flat(tile)
        k = max(1, f.shape[1] // 3)
        indices = np.sort(rng.choice(f.shape[1], size=k, replace=False)).astype(np.int64)
        n = len(f)
        return (f, indices, rng.standard_normal(n), rng.standard_normal(n))

    def expected(self, args):
        return list(pixel_moments.reference(args[0], args[1]))

    def outputs(self, args):
        return [args[2], args[3]]


def test_large_mean_small_spread():
    """Deviations from a pixel of the frame: std 1 at mean 1e8 keeps its digits (the naive
    sum of squares would not)."""
    rng = np.random.default_rng(3)
    frames = 1e8 + rng.standard_normal((4, 300))
    idx = np.arange(0, 300, 2, dtype=np.int64)
    mean, m2 = np.empty(4), np.empty(4)
    pixel_moments.cpu(frames, idx, mean, m2)
    np.testing.assert_allclose(m2 / len(idx), frames[:, idx].var(axis=1), rtol=1e-9)


def test_slabs_combine_to_the_whole(rng):
    frames = rng.integers(0, 5000, (6, 40)).astype(np.uint16)
    idx = np.array([1, 5, 17, 22, 23, 39], dtype=np.int64)
    n = np.zeros(6)
    mean, m2 = np.zeros(6), np.zeros(6)
    for lo, hi in ((0, 20), (20, 40)):
        part = idx[(idx >= lo) & (idx < hi)] - lo
        mb, m2b = np.empty(6), np.empty(6)
        pixel_moments.cpu(np.ascontiguousarray(frames[:, lo:hi]), part, mb, m2b)
        n, mean, m2 = pixel_moments.combine(n, mean, m2, len(part), mb, m2b)
    want_mean, want_m2 = pixel_moments.reference(frames, idx)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-13)
    np.testing.assert_allclose(m2, want_m2, rtol=1e-12)


def test_no_pixels_is_an_error():
    with pytest.raises(ValueError, match="indices is empty"):
        pixel_moments.cpu(np.ones((2, 3)), np.zeros(0, np.int64), np.empty(2), np.empty(2))
