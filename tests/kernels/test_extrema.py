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
