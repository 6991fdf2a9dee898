import numpy as np
import pytest

from libertem_gpu.kernels import moments
from tests.kernels.kit import KernelContract, flat


def stream(frames, chunks, tile_len):
    """Per chunk: shifted sums over tiles (shift = first frame), finalize; then merge all."""
    n_acc, mean_acc, m2_acc = 0, None, None
    npix = frames.shape[1]
    for chunk in np.array_split(frames, chunks):
        shift = chunk[0].astype(np.float64)
        s1 = np.zeros(npix)
        s2 = np.zeros(npix)
        for i in range(0, len(chunk), tile_len):
            moments.cpu(chunk[i : i + tile_len], shift, s1, s2)
        n, mean, m2 = moments.finalize(len(chunk), shift, s1, s2)
        if mean_acc is None:
            mean_acc, m2_acc = np.zeros(npix), np.zeros(npix)
        n_acc, mean_acc, m2_acc = moments.merge(n_acc, mean_acc, m2_acc, n, mean, m2)
    return n_acc, mean_acc, m2_acc


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32", "float64"])
def test_moments_stream(dtype):
    rng = np.random.default_rng(7)
    frames = (rng.standard_normal((31, 13 * 17)) * 50 + 200).astype(dtype)
    n, mean, m2 = stream(frames, chunks=4, tile_len=3)
    ref_mean, ref_var = moments.reference(frames)
    assert n == 31
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-10)
    np.testing.assert_allclose(m2 / n, ref_var, rtol=1e-10)


@pytest.mark.parametrize("npix", [1, 8192, 20000])  # over several steps, the last ragged
@pytest.mark.parametrize("forms", ["numpy", "compiled"])
def test_in_place_forms_equal_finalize_and_merge_bit_for_bit(npix, forms):
    # NumPy's chunked forms (every backend) and the compiled one-pass ones (StdDevUDF on the
    # CPU kernels) give finalize's and merge's bits.
    from libertem_gpu.kernels import moments_cpu

    into = moments if forms == "numpy" else moments_cpu
    rng = np.random.default_rng(npix)
    frames = (rng.standard_normal((23, npix)) * 30 + 1e4).astype(np.float32)
    frames[3, :2] = frames[0, :2]  # a pixel whose rounding may leave M2 below 0: clipped
    parts = []
    for chunk in (frames[:9], frames[9:]):
        shift = chunk[0].astype(np.float64)
        s1, s2 = np.zeros(npix), np.zeros(npix)
        moments.cpu(chunk, shift, s1, s2)
        want = moments.finalize(len(chunk), shift, s1, s2)
        into.finalize_sums_into(len(chunk), shift, s1, s2)
        np.testing.assert_array_equal(s1 / len(chunk), want[1])  # the sum, as its mean
        np.testing.assert_array_equal(s2, want[2])
        parts.append((len(chunk), s1, s2, want))
    (n_a, s1_a, m2_a, _), (n_b, s1_b, m2_b, _) = parts
    want = moments.merge(n_a, s1_a / n_a, m2_a, n_b, s1_b / n_b, m2_b)
    into.merge_sums_into(n_a, s1_a, m2_a, n_b, s1_b, m2_b)
    np.testing.assert_array_equal(m2_a, want[2])
    np.testing.assert_allclose(s1_a / (n_a + n_b), want[1], rtol=1e-15)
    # into an empty summary: a copy of the other
    e1, e2 = np.zeros(npix), np.zeros(npix)
    into.merge_sums_into(0, e1, e2, n_b, s1_b, m2_b)
    np.testing.assert_array_equal(e1, s1_b)
    np.testing.assert_array_equal(e2, m2_b)


def test_moments_large_mean_small_variance():
    rng = np.random.default_rng(8)
    # std 1 at mean 1e6: the naive sum of squares loses ~8 digits; the streamed merge must not
    frames = 1e6 + rng.standard_normal((40, 101))
    n, mean, m2 = stream(frames, chunks=5, tile_len=7)
    ref_mean, ref_var = moments.reference(frames)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(m2 / n, ref_var, rtol=1e-10)
    # the naive formula fails on the same data (shows the test is meaningful)
    naive = (frames**2).mean(axis=0) - frames.mean(axis=0) ** 2
    assert np.max(np.abs(naive - ref_var) / ref_var) > 1e-8


def test_moments_strided_and_empty_merge():
    rng = np.random.default_rng(9)
    big = rng.integers(0, 60000, size=(18, 50), dtype=np.uint16)
    frames = big[::2]
    shift = frames[0].astype(np.float64)
    s1, s2 = np.zeros(50), np.zeros(50)
    moments.cpu(frames, shift, s1, s2)
    n, mean, m2 = moments.finalize(9, shift, s1, s2)
    ref_mean, ref_var = moments.reference(frames)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(m2 / n, ref_var, rtol=1e-10)
    n0, mean0, m20 = moments.finalize(0, shift, s1 * 0, s2 * 0)
    assert n0 == 0
    for merged in (
        moments.merge(n0, mean0, m20, n, mean, m2),
        moments.merge(n, mean, m2, n0, mean0, m20),
    ):
        assert merged[0] == n
        np.testing.assert_array_equal(merged[1], mean)
        np.testing.assert_array_equal(merged[2], m2)


def _compiled_for(moments_cpu, monkeypatch, avx512: bool) -> None:
    """Make ``moments_cpu`` pick its kernels as if compiled for an AVX-512 (F, DQ) or an
    AVX2-only CPU. The AVX2 kernel (``vpmaddwd``) must run here, so AVX2 is required."""
    from libertem_gpu.kernels.cpu_target import target_has

    if not target_has("avx2"):
        pytest.skip("the pairs kernel needs AVX2, which this machine lacks")
    features = {"avx2", "avx512f", "avx512dq"} if avx512 else {"avx2"}
    monkeypatch.setattr(moments_cpu, "target_has", lambda *wanted: set(wanted) <= features)


class TestMomentsContract(KernelContract):
    op = "moments"
    rtol = 1e-11

    def arguments(self, rng, tile):
        frames = flat(tile)
        shift = frames[0].astype(np.float64)  # the first frame, as StdDevUDF shifts
        s1 = rng.standard_normal(frames.shape[1]) * 1000
        s2 = rng.random(frames.shape[1]) * 1000
        return (frames, shift, s1, s2)

    def expected(self, args):
        frames, shift, s1, s2 = args
        mean, var = moments.reference(frames)
        n = len(frames)
        # sum (x - c) = n (mean - c); sum (x - c)**2 = n (var + (mean - c)**2)
        return [s1 + n * (mean - shift), s2 + n * (var + (mean - shift) ** 2)]

    def outputs(self, args):
        return [args[2], args[3]]


@pytest.mark.parametrize("avx512", [True, False], ids=["avx512", "avx2"])
@pytest.mark.parametrize("dtype", ["int8", "int16", "uint8", "uint16"])
def test_integer_kernel_equals_the_float_loop(dtype, avx512, monkeypatch):
    # small integers with a whole-number shift: 16-bit ones take the vpmaddwd pairs wherever
    # the compiled code has AVX2, 8-bit ones the 32-bit lanes: all bit for bit the float64
    # loop's sums; a shift outside the values' range or a fractional one too (the kernels add
    # such a block's frames in order, in float64)
    from libertem_gpu.kernels import moments_cpu

    _compiled_for(moments_cpu, monkeypatch, avx512)
    int_path = "_moments_pairs" if dtype.endswith("16") else "_moments_lanes"

    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    frames = rng.integers(info.min, info.max, (30, 5 * 7), endpoint=True).astype(dtype)
    frames.flags.writeable = False  # as the engine hands tiles over: no second compile
    float_kernel = moments_cpu._moments
    taken = []
    kernels = ("_moments", "_moments_lanes", "_moments_pairs")
    for name in kernels:
        kernel = getattr(moments_cpu, name)
        monkeypatch.setattr(
            moments_cpu, name, lambda *a, k=kernel, n=name: (taken.append(n), k(*a))[1]
        )
    for shift, path in (
        (frames[0].astype(np.float64), int_path),
        (frames[0] - 70000.0, int_path),  # whole, below every value: large deviations
        (frames[0] + 0.25, int_path),
    ):
        taken.clear()
        got = [np.full(35, 3.0), np.full(35, 5.0)]
        want = [np.full(35, 3.0), np.full(35, 5.0)]
        # eight (or six) at a time, then four at once, then one by one: 11 = 8+3 or 6+4+1,
        # 12 = 8+4 or 6+6, 7 = 4+3 or 6+1
        for lo, hi in ((0, 11), (11, 23), (23, 30)):
            moments_cpu.cpu(frames[lo:hi], shift, *got)
            float_kernel(frames[lo:hi], 35, shift, *want)
        assert set(taken) == {path}
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        d = frames.astype(np.float64) - shift
        np.testing.assert_allclose(got[0], 3 + d.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(got[1], 5 + (d * d).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize(
    ("shift", "bias", "fits"),
    [
        ([0.0, 1.0, 65535.0], 0.0, True),
        ([-32768.0, 0.0, 32767.0], 32768.0, True),
        ([-1.0], 0.0, False),
        ([65536.0], 0.0, False),
        ([32768.0], 32768.0, False),
        ([0.0, 1.5], 0.0, False),
        ([np.nan], 0.0, False),
        ([np.inf], 0.0, False),
        ([], 0.0, True),
    ],
)
def test_lanes_only_for_whole_shifts_in_the_value_range(shift, bias, fits):
    # the lanes' conversion to shifted sums is exact for whole shifts in [0, 2**16) after the
    # bias; other blocks add their frames in order, in float64
    from libertem_gpu.kernels.moments_cpu import _shift_in_value_range

    assert _shift_in_value_range(np.array(shift, dtype=np.float64), bias) is fits


@pytest.mark.parametrize("avx512", [True, False], ids=["avx512", "avx2"])
@pytest.mark.parametrize("dtype", ["int8", "uint16"])
def test_shifts_not_whole_in_one_block_only(dtype, avx512, monkeypatch):
    # The integer kernels check each block of 16384 pixels' shifts: a block with a shift that
    # is not whole, or outside the values' range, adds its frames in order, the others take
    # the integer sums; everything bit for bit the float64 loop's.
    from libertem_gpu.kernels import moments_cpu

    _compiled_for(moments_cpu, monkeypatch, avx512)
    rng = np.random.default_rng(9)
    info = np.iinfo(dtype)
    npix = 3 * moments_cpu._PIX_BLOCK + 101
    frames = rng.integers(info.min, info.max, (13, npix), endpoint=True).astype(dtype)
    frames.flags.writeable = False
    # a fraction; shifts far and just outside the values' range (their squared deviations
    # would wrap the lanes)
    for at, offset in (
        (moments_cpu._PIX_BLOCK + 7, 0.5),
        (npix - 1, 2.0**31),
        (5, 2.0**24 - 200),
        (2 * moments_cpu._PIX_BLOCK + 3, float(info.max - info.min + 1)),
    ):
        shift = frames[0].astype(np.float64)
        shift[at] += offset
        got = [np.full(npix, 3.0), np.full(npix, 5.0)]
        want = [np.full(npix, 3.0), np.full(npix, 5.0)]
        moments_cpu.cpu(frames, shift, *got)
        moments_cpu._moments(frames, npix, shift, *want)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        d = frames.astype(np.float64) - shift
        np.testing.assert_allclose(got[1], 5 + (d * d).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_lanes_recover_the_carries_of_many_frames(dtype, rng):
    # more frames than the 32-bit lanes could take in one round (65537 values below 2**16 fit a
    # lane), near the end of the range: the squares' sum wraps its lane thousands of times in
    # each round of the kernel's (4096 frames); the sums must still be exact, and equal the
    # float64 frame-order loop's bit for bit. Signed values are biased by 2**15 in the lanes.
    # Shifts at both ends of the range the lanes accept; the fractional and out-of-range ones
    # take the frame-order path for their block.
    # (The pairs kernel's carries: test_pairs_kernel_at_the_ends_of_the_range.)
    from libertem_gpu.kernels import moments_cpu

    info = np.iinfo(dtype)
    bias = 0.0 if info.min == 0 else 2.0**15
    frames = rng.integers(info.max - 5535, info.max, (65536 + 4096 + 7, 5), endpoint=True)
    frames = frames.astype(dtype)
    frames[:, 0] = info.max
    frames[:, 1] = info.min
    frames.flags.writeable = False
    lo, hi = float(info.min), float(info.max)
    for shift in (
        [lo, hi, lo + 1, hi - 1, hi - 4000],
        [lo, 3.0, 2.5, 4.0, 5.0],
        [lo - 1] * 5,
        [hi + 1] * 5,
    ):
        shift = np.array(shift)
        got = [np.full(5, 3.0), np.full(5, 5.0)]
        want = [np.full(5, 3.0), np.full(5, 5.0)]
        moments_cpu._moments_lanes(frames, 5, shift, *got, bias)
        moments_cpu._moments(frames, 5, shift, *want)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        d = frames.astype(object) - shift.astype(int).astype(object)  # exact integers
        if (shift == np.floor(shift)).all():
            assert [int(v) for v in got[0]] == [3 + int(v) for v in d.sum(axis=0)]
            assert [int(v) for v in got[1]] == [5 + int(v) for v in (d * d).sum(axis=0)]


@pytest.mark.parametrize("n_frames", [4096 + 8 * 3 + 2 + 1, 8, 1, 2, 11])
@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_pairs_kernel_at_the_ends_of_the_range(dtype, n_frames):
    # vpmaddwd's sum of two squares reaches 2**31 where both values are -32768 (0 for uint16,
    # -32768 for int16), and four such sums wrap a 32-bit lane in one pass of eight frames: the
    # carries must give every bit back. 16-pixel runs (two, in PAIR_ORDER) and a tail of 5
    # pixels taken one by one; 8 frames a pass, then pairs, then one alone; more frames than
    # one round of the lanes (4096). Exact integers, and the float64 loop's bits.
    from libertem_gpu.kernels import moments_cpu
    from libertem_gpu.kernels.cpu_target import target_has

    if not target_has("avx2"):
        pytest.skip("the pairs kernel needs AVX2, which this machine lacks")
    info = np.iinfo(dtype)
    bias = 0.0 if info.min == 0 else 2.0**15
    rng = np.random.default_rng(17)
    npix = 2 * 16 + 5
    frames = rng.integers(info.min, info.max, (n_frames, npix), endpoint=True).astype(dtype)
    frames[:, :4] = info.min
    frames[:, 4:8] = info.max
    frames[::2, 16] = info.min
    frames[1::2, 16] = info.max
    frames[:, -2:] = info.min
    frames.flags.writeable = False
    for shift in (
        np.full(npix, float(info.min)),
        np.full(npix, float(info.max)),
        frames[0].astype(np.float64),
        np.where(np.arange(npix) % 3 == 0, 2.5, 7.0),  # blocks with a fraction: frame order
    ):
        got = [np.full(npix, 3.0), np.full(npix, 5.0)]
        want = [np.full(npix, 3.0), np.full(npix, 5.0)]
        moments_cpu._moments_pairs(frames, npix, shift, *got, bias)
        moments_cpu._moments(frames, npix, shift, *want)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        if (shift == np.floor(shift)).all():
            d = frames.astype(object) - shift.astype(int).astype(object)  # exact integers
            assert [int(v) for v in got[0]] == [3 + int(v) for v in d.sum(axis=0)]
            assert [int(v) for v in got[1]] == [5 + int(v) for v in (d * d).sum(axis=0)]


@pytest.mark.parametrize("avx512", [False, True], ids=["avx2", "avx512"])
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_signed_frames_in_the_lanes(dtype, avx512, monkeypatch):
    # signed frames go to the 32-bit lanes (16-bit ones to 64-bit lanes with AVX-512) biased by
    # half their range, and the shift with them: a shift of 3 is whole and in the lanes' range
    # only so biased, and the first frame's values (negative ones among them) only once biased;
    # either way the sums must be the exact integers
    from libertem_gpu.kernels import moments_cpu

    _compiled_for(moments_cpu, monkeypatch, avx512)
    info = np.iinfo(dtype)
    rng = np.random.default_rng(11)
    frames = rng.integers(info.min, info.max, (21, 3 * 11), endpoint=True).astype(dtype)
    frames[0, :2] = [info.min, info.max]
    frames.flags.writeable = False
    for shift in (np.full(33, 3.0), frames[0].astype(np.float64)):
        got = [np.zeros(33), np.zeros(33)]
        moments_cpu.cpu(frames, shift, *got)
        d = frames.astype(np.int64) - shift.astype(np.int64)
        np.testing.assert_array_equal(got[0], d.sum(axis=0))
        np.testing.assert_array_equal(got[1], (d * d).sum(axis=0))
