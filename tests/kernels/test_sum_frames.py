import numpy as np
import pytest

from libertem_gpu import config
from libertem_gpu.kernels import sum_frames
from tests.kernels.kit import KernelContract, flat


@pytest.fixture(autouse=True, params=[True, False], ids=["prefetch", "no-prefetch"])
def software_prefetch(request):
    """Every test runs both loop shapes: prefetched pairs (Intel) and plain passes (AMD)."""
    with config.set(software_prefetch=request.param):
        yield request.param


DTYPES = ["uint8", "uint16", "uint32", "int16", "int32", "int64", "float32", "float64", "bool"]


def random_tile(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    lo = max(np.iinfo(dtype).min, -1000)
    return rng.integers(lo, 1000, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_frames_dtypes(dtype):
    rng = np.random.default_rng(1)
    tile = random_tile(rng, (7, 13 * 17), dtype)
    out = rng.random(13 * 17)
    expected = out + sum_frames.reference(tile)
    sum_frames.cpu(tile, out)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_sum_frames_strided_and_partial():
    rng = np.random.default_rng(2)
    big = random_tile(rng, (22, 13 * 17 + 5), "uint16")
    tile = big[::2, 3 : 3 + 13 * 17]  # strided frames, gaps between rows
    assert not tile.flags.c_contiguous
    out = np.zeros(13 * 17)
    sum_frames.cpu(tile[:5], out)
    sum_frames.cpu(tile[5:], out)
    np.testing.assert_allclose(out, sum_frames.reference(tile), rtol=1e-12)


def test_sum_frames_large_block():
    # more pixels than one accumulator block, frame count not a multiple of 4
    rng = np.random.default_rng(3)
    tile = random_tile(rng, (6, 40_000), "float32")
    out = np.zeros(40_000)
    sum_frames.cpu(tile, out)
    np.testing.assert_allclose(out, sum_frames.reference(tile), rtol=1e-12)


@pytest.mark.parametrize("npix", [65536 + 1001, 3000])
@pytest.mark.parametrize("swap", [False, True])
def test_sum_frames_pairs_into_int32_over_pixel_blocks(swap, npix):
    # Tiles of 16 frames or more: two frames a pass into int32, per block of 65536 pixels, in
    # chunks of 1024 and the rest of the block; an odd frame count leaves one frame alone, and
    # the last block is partial.
    rng = np.random.default_rng(5)
    tile = random_tile(rng, (17, npix), "uint16")
    out = rng.integers(0, 1000, tile.shape[1]).astype(np.float64)  # whole: every sum exact
    expected = out + tile.sum(axis=0, dtype=np.int64)
    stored = tile.byteswap() if swap else tile
    sum_frames.cpu(stored, out, swap=swap)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_sum_frames_pairs_flush_before_int32_overflows(dtype):
    # 32768 frames of 65535 fill an int32 partial sum; more must go to float64 first.
    info = np.iinfo(dtype)
    n = 2 * 32768 + 3
    tile = np.full((n, 4), info.max, dtype=dtype)
    tile[:, 1] = info.min
    tile[::3, 2] = 7
    out = np.zeros(4)
    sum_frames.cpu(tile, out)
    np.testing.assert_array_equal(out, tile.sum(axis=0, dtype=np.int64))


def test_as_rows_fallback_and_errors():
    rng = np.random.default_rng(4)
    t = random_tile(rng, (17, 9), "int32").T  # last axis not contiguous: copied
    out = np.zeros(17)
    sum_frames.cpu(t, out)
    np.testing.assert_allclose(out, t.sum(axis=0))
    with pytest.raises(TypeError):
        sum_frames.cpu(t.astype(np.complex64), out)
    with pytest.raises(ValueError):
        sum_frames.cpu(t, np.zeros(3))


class TestSumFramesContract(KernelContract):
    op = "sum_frames"

    def arguments(self, rng, tile):
        return (flat(tile), rng.standard_normal(tile[0].size) * 1000)

    def expected(self, args):
        return [args[1] + sum_frames.reference(args[0])]

    def outputs(self, args):
        return [args[1]]


@pytest.mark.parametrize("n", [19, 13])
@pytest.mark.parametrize("dtype", ["int8", "uint16"])
def test_sum_frames_small_integers_exact_at_full_range(dtype, n):
    # 8- and 16-bit frames are summed eight (then four) at a time in int32 lanes, or (from 16
    # frames) two at a time into int32: extreme values must not overflow them, and the sums are
    # exact. 13 frames: a pass of eight, one of four and one frame alone.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(4)
    tile = rng.integers(info.min, info.max, size=(n, 2333), endpoint=True).astype(dtype)
    tile[:8, :3] = info.max  # a whole pass of the largest (and smallest) values
    tile[8:16, 3:6] = info.min
    out = np.full(2333, 0.5)
    sum_frames.cpu(tile, out)
    np.testing.assert_array_equal(out, 0.5 + tile.sum(axis=0, dtype=np.int64))
