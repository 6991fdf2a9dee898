import numpy as np
import pytest

from libertem_gpu.kernels import extrema
from tests.kernels.kit import KernelContract, flat
from tests.kernels.kit import random_tile as wide_tile

DTYPES = ["uint8", "uint16", "uint32", "int16", "int32", "int64", "float32", "float64", "bool"]


def random_tile(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_min(dtype):
    rng = np.random.default_rng(10)
    big = random_tile(rng, (14, 13 * 17), dtype)
    tile = big[::2]
    first, rest = tile[:1], tile[1:]
    mx = first[0].copy()
    mn = first[0].copy()
    extrema.cpu_max(rest, mx)
    extrema.cpu_min(rest, mn)
    np.testing.assert_array_equal(mx, extrema.reference_max(tile))
    np.testing.assert_array_equal(mn, extrema.reference_min(tile))


def test_wider_out_and_nan():
    rng = np.random.default_rng(11)
    tile = rng.standard_normal((7, 221)).astype(np.float32)
    tile[3, 5] = np.nan
    out = np.full(221, -np.inf)
    extrema.cpu_max(tile, out)
    np.testing.assert_array_equal(out, extrema.reference_max(tile).astype(np.float64))
    assert np.isnan(out[5])
    out = np.full(221, np.nan)  # NaN already in out sticks, like np.minimum
    extrema.cpu_min(tile, out)
    assert np.isnan(out).all()
    with pytest.raises(TypeError):
        extrema.cpu_max(tile, np.zeros(221, np.int32))


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 9])
def test_four_frames_a_pass_keep_the_one_frame_order(n):
    # Ties of -0.0 and +0.0 (the earlier value stays) and NaN (the last one stays): bit for bit
    # what folding one frame at a time gives, for frame counts around the groups of four.
    rng = np.random.default_rng(n)
    tile = rng.choice(np.array([-0.0, 0.0, 1.0, -1.0], np.float32), size=(n, 301))
    nan_bits = np.array([0x7FC00001, 0x7FC00002, 0xFFC00003], np.uint32).view(np.float32)
    where = rng.random((n, 301)) < 0.1
    tile[where] = nan_bits[rng.integers(0, 3, where.sum())]
    for kernel, better in ((extrema.cpu_max, np.greater), (extrema.cpu_min, np.less)):
        want = np.full(301, 0.0, np.float32)
        for frame in tile:
            take = better(frame, want) | (frame != frame)
            want = np.where(take, frame, want)
        got = np.full(301, 0.0, np.float32)
        kernel(tile, got)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


class TestMaxContract(KernelContract):
    op = "max"

    def arguments(self, rng, tile):
        # The running extremum starts from other random values of the tile's dtype.
        return (flat(tile), wide_tile(rng, (tile[0].size,), tile.dtype))

    def expected(self, args):
        return [np.maximum(args[1], extrema.reference_max(args[0]))]

    def outputs(self, args):
        return [args[1]]


class TestMinContract(TestMaxContract):
    op = "min"

    def expected(self, args):
        return [np.minimum(args[1], extrema.reference_min(args[0]))]
