import numpy as np
import pytest

from libertem_gpu import config
from libertem_gpu.kernels import sum_sig
from tests.kernels.kit import KernelContract, flat


@pytest.fixture(params=[True, False], ids=["prefetch", "no-prefetch"])
def software_prefetch(request):
    """Both loop shapes of float frames: prefetched (Intel) and plain (AMD). The CPU tests
    take it; the contract's simulated GPU runs do not depend on it."""
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
@pytest.mark.usefixtures("software_prefetch")
def test_sum_sig_dtypes(dtype):
    rng = np.random.default_rng(5)
    tile = random_tile(rng, (7, 13 * 17), dtype)  # 221 px: lanes plus a remainder
    out = rng.random(7)
    expected = out + sum_sig.reference(tile)
    sum_sig.cpu(tile, out)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.usefixtures("software_prefetch")
def test_sum_sig_partial_frames_strided(dtype):
    rng = np.random.default_rng(6)
    big = random_tile(rng, (14, 300), dtype)
    frames = big[::2]
    out = np.zeros(7)
    sum_sig.cpu(frames[:, :130], out)  # a frame in two partial tiles
    sum_sig.cpu(frames[:, 130:], out)
    np.testing.assert_allclose(out, sum_sig.reference(frames), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("npix", [100, 128, 1000])
@pytest.mark.usefixtures("software_prefetch")
def test_sum_sig_float_pairs_sum_like_single_frames(dtype, npix):
    # Frames go two per pass, each in its own lanes: every sum is bit-identical to summing that
    # frame alone (fewer pixels than one lane block, exactly one, and blocks plus a remainder).
    rng = np.random.default_rng(7)
    tile = random_tile(rng, (5, npix), dtype)
    together = np.zeros(5)
    sum_sig.cpu(tile, together)
    alone = np.zeros(5)
    for i in range(5):
        sum_sig.cpu(tile[i : i + 1], alone[i : i + 1])
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_allclose(together, sum_sig.reference(tile), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sum_sig_float_prefetch_changes_no_bit(dtype, software_prefetch, monkeypatch):
    # the prefetching kernel (taken where the setting says so) adds in the same order as the
    # plain one: the same bits, on frames of many lane blocks and a remainder, an odd number
    from libertem_gpu.kernels import sum_sig_cpu

    rng = np.random.default_rng(8)
    tile = random_tile(rng, (9, 64 * 37 + 5), dtype)
    got = np.zeros(9)
    taken = []
    for name in ("_sum_sig_float", "_sum_sig_float_prefetched"):
        kernel = getattr(sum_sig_cpu, name)
        monkeypatch.setattr(
            sum_sig_cpu, name, lambda *a, k=kernel, n=name: (taken.append(n), k(*a))[1]
        )
    sum_sig.cpu(tile, got)
    assert taken == ["_sum_sig_float_prefetched" if software_prefetch else "_sum_sig_float"]
    monkeypatch.undo()
    plain = np.zeros(9)
    sum_sig_cpu._sum_sig_float(tile, tile.shape[1], plain)
    np.testing.assert_array_equal(got, plain)
    np.testing.assert_allclose(got, sum_sig.reference(tile), rtol=1e-12)
    fetched = np.zeros(9)
    sum_sig_cpu._sum_sig_float_prefetched(tile, tile.shape[1], fetched)
    np.testing.assert_array_equal(fetched, plain)


class TestSumSigContract(KernelContract):
    op = "sum_sig"
    sim_many_frames = 17  # a block per frame

    def arguments(self, rng, tile):
        return (flat(tile), rng.standard_normal(len(tile)) * 1000)

    def expected(self, args):
        return [args[1] + sum_sig.reference(args[0])]

    def outputs(self, args):
        return [args[1]]


@pytest.mark.parametrize(
    ("dtype", "swap"),
    [("uint8", False), ("uint16", False), ("int16", False), ("uint8", True), ("uint16", True)],
)
def test_sum_sig_small_int_exact_at_full_range(dtype, swap):
    # 8- and 16-bit frames are summed in int32 blocks of 32768 pixels: frames of three blocks
    # and a remainder, values near the extremes (the largest block sums an int32 can hold),
    # an odd number of frames (the leftover frame takes its own path), both byte orders.
    info = np.iinfo(dtype)  # only unsigned integers arrive byte-swapped
    rng = np.random.default_rng(8)
    npix = 3 * 32768 + 5
    lo = info.max - info.max // 16 if info.min == 0 else info.min
    native = rng.integers(lo, info.max, size=(5, npix), endpoint=True).astype(dtype)
    native[1] = rng.integers(info.min, info.max, size=npix, endpoint=True)
    tile = native.byteswap() if swap else native
    out = rng.random(5)
    want = out + native.sum(axis=1, dtype=np.int64).astype(np.float64)
    sum_sig.cpu(tile, out, swap=swap)
    np.testing.assert_array_equal(out, want)
