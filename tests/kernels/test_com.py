import numpy as np
import pytest

from libertem_gpu.kernels import com
from tests.kernels.kit import KernelContract


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32", "float64", "bool"])
def test_com_whole_and_slabs(dtype):
    rng = np.random.default_rng(16)
    big = rng.integers(0, 1000, size=(14, 13, 17)).astype(dtype)
    frames = big[::2]  # strided frames
    w = com.disk_weights((13, 17), 6.2, 8.1, 5.5, ri=1.0)
    ref = com.reference(frames, w)
    whole = [np.zeros(7) for _ in range(3)]
    com.cpu(frames, w, 0, *whole)
    slabs = [np.zeros(7) for _ in range(3)]
    com.cpu(frames[:, :5], w, 0, *slabs)  # two row slabs add up to the whole frame
    com.cpu(frames[:, 5:], w, 5, *slabs)
    for got_w, got_s, r in zip(whole, slabs, ref, strict=True):
        np.testing.assert_allclose(got_w, r, rtol=1e-12)
        np.testing.assert_allclose(got_s, r, rtol=1e-12)


def test_com_column_slab_view_and_finalize():
    rng = np.random.default_rng(17)
    frames = rng.standard_normal((5, 13, 30))
    sub = frames[:, :, 4:21]  # rows strided within a frame
    w = rng.random((13, 17))
    out = [np.zeros(5) for _ in range(3)]
    com.cpu(sub, w, 0, *out)
    for got, r in zip(out, com.reference(sub, w), strict=True):
        np.testing.assert_allclose(got, r, rtol=1e-10)
    cy, cx = com.finalize(np.array([0.0, 2.0]), np.array([0.0, 3.0]), np.array([1.0, 5.0]))
    assert np.isnan(cy[0]) and np.isnan(cx[0])
    assert cy[1] == 1.5 and cx[1] == 2.5


def test_com_centre_of_spot():
    frames = np.zeros((1, 13, 17), np.uint16)
    frames[0, 4, 11] = 7
    w = com.disk_weights((13, 17), 6, 8, None)
    assert w.all()
    out = [np.zeros(1) for _ in range(3)]
    com.cpu(frames, w, 0, *out)
    assert com.finalize(*out) == (4.0, 11.0)


# --- contracts: every implementation against the reference (tests/kernels/kit.py) ---


def _padded_reference(tile3d, weights, row_offset):
    """The moments of frame rows ``row_offset ..`` from the whole-frame reference."""
    padded = np.zeros((len(tile3d), *weights.shape))
    padded[:, row_offset : row_offset + tile3d.shape[1]] = tile3d
    return com.reference(padded, weights)


class TestComContract(KernelContract):
    op = "com"
    sim_many_frames = 17  # a block per frame
    rtol = 1e-10

    def arguments(self, rng, tile):
        # Rows 1.. of weights for a frame two rows taller: a row slab.
        weights = rng.random((tile.shape[1] + 2, tile.shape[2]))
        return (tile, weights, 1, *(rng.standard_normal(len(tile)) * 1000 for _ in range(3)))

    def expected(self, args):
        tile, weights, row_offset, *outs = args
        ref = _padded_reference(tile, weights, row_offset)
        return [o + r for o, r in zip(outs, ref, strict=True)]

    def outputs(self, args):
        return list(args[3:])


class TestCentreOfMassContract(KernelContract):
    """The prepared operation: a binary disk (runs on the CPU) for small cases, random
    weights (the dense kernels) for the others, whole frames."""

    op = "centre_of_mass"
    sim_many_frames = 17  # a block per frame
    rtol = 1e-10

    def arguments(self, rng, tile):
        rows, cols = tile.shape[1:]
        if len(tile) <= 3:
            weights = com.disk_weights((rows, cols), rows / 2, cols / 2, max(rows, cols) / 3)
        else:
            weights = rng.random((rows, cols))
        return (tile, weights, *(rng.standard_normal(len(tile)) * 1000 for _ in range(3)))

    def expected(self, args):
        tile, weights, *outs = args
        return [o + r for o, r in zip(outs, com.reference(tile, weights), strict=True)]

    def outputs(self, args):
        return list(args[2:])

    def call(self, kernel, args, swap):
        tile, weights, *outs = args
        kernel(weights, tile.dtype)(tile, 0, *outs, swap)
