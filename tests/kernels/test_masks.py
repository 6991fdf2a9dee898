import numpy as np
import pytest

from libertem_gpu.kernels import masks
from libertem_gpu.kernels.masks import MaskStack
from libertem_gpu.masks import disk, ring
from tests.kernels.kit import KernelContract, flat

DTYPES = ["uint8", "uint16", "uint32", "int16", "int32", "int64", "float32", "float64", "bool"]


def random_tile(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    if dtype.kind == "f":
        return (rng.standard_normal(shape) * 100).astype(dtype)
    lo = max(np.iinfo(dtype).min, -1000)
    return rng.integers(lo, 1000, size=shape, endpoint=True).astype(dtype)


@pytest.fixture(
    params=[(True, True), (False, True), (True, False)], ids=["avx512", "avx2", "no-prefetch"]
)
def single_mask_target(request, monkeypatch):
    """Run the single-mask tests with the kernels chosen for AVX-512 targets and for the others
    (kernels/masks_avx2_cpu), and for AMD hosts, which do not prefetch (one kernel whatever the
    target), whatever this machine compiles for and is."""
    from libertem_gpu import config
    from libertem_gpu.kernels import masks_cpu

    avx512, prefetching = request.param
    monkeypatch.setattr(masks_cpu, "target_has", lambda *features: avx512)
    monkeypatch.setattr(masks_cpu, "host_is_amd", lambda: not prefetching)
    with config.set(software_prefetch=prefetching):
        yield avx512


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_k1(dtype, single_mask_target):
    rng = np.random.default_rng(12)
    big = random_tile(rng, (14, 13 * 17), dtype)
    tile = big[::2]  # strided; 7 frames = one 4-frame group and 3 single frames
    m = rng.standard_normal((1, 13 * 17))
    out = rng.random((7, 1))
    expected = out + masks.reference(tile, m)
    masks.cpu_dense(tile, np.ascontiguousarray(m.T), out)
    np.testing.assert_allclose(out, expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_dense_k1_float32_mask_float64_sums(dtype, single_mask_target):
    # float32 mask values with float64 results take the float64 kernels: sums as exact as
    # with float64 masks
    rng = np.random.default_rng(14)
    tile = rng.integers(0, 60000, (6, 13 * 17)).astype(dtype)
    m = rng.standard_normal((1, 13 * 17)).astype(np.float32)
    out = rng.random((6, 1))
    expected = out + masks.reference(tile, m.astype(np.float64))
    masks.cpu_dense(tile, np.ascontiguousarray(m.T), out)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "bool"])
@pytest.mark.parametrize("npix", [13 * 17, 64 * 130 + 37])
def test_dense_k1_float32_lanes(dtype, npix, single_mask_target):
    # float32 masks and results: float32 sums per 1024-pixel chunk (each prefetched for
    # integer frames), added in float64; the larger frame has several chunks and a ragged
    # tail of pixels.
    rng = np.random.default_rng(15)
    big = random_tile(rng, (20, npix), dtype)
    tile = big[::2]  # strided; 10 frames = two passes of 4 and two single frames, or 3 x 3 + 1
    m = rng.standard_normal((1, npix)).astype(np.float32)
    out = rng.random((10, 1)).astype(np.float32)
    expected = out + masks.reference(tile, m)
    masks.cpu_dense(tile, np.ascontiguousarray(m.T), out)
    # float32 lanes: the error scales with the terms' magnitudes, not with the sum (signed
    # frames cancel); one pixel more or less would still be off by far more than this.
    terms = np.abs(tile.astype(np.float64)) @ np.abs(m.T.astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-3 + 1e-7 * terms.max())


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("npix", [1000, 2048, 3 * 1024 + 5])
def test_dense_k1_float32_frames(n, npix, single_mask_target):
    # float32 frames: two (AVX-512) or three frames per pass over 1024-pixel chunks, float32
    # sums per chunk; frame counts around the groups, frames shorter than a chunk, whole chunks
    # and a ragged tail.
    rng = np.random.default_rng(17)
    tile = random_tile(rng, (n, npix), "float32")
    m = rng.standard_normal((1, npix)).astype(np.float32)
    out = rng.random((n, 1)).astype(np.float32)
    expected = out + masks.reference(tile, m)
    masks.cpu_dense(tile, np.ascontiguousarray(m.T), out)
    scale = masks.reference(np.abs(tile), np.abs(m))  # the products' magnitudes
    np.testing.assert_array_less(np.abs(out - expected), 1e-5 * scale + 1e-3)


@pytest.mark.parametrize("npix", [64 * 130 + 37])
def test_dense_k1_float64_lanes_cross_flush(npix, single_mask_target):
    rng = np.random.default_rng(16)
    tile = random_tile(rng, (9, npix), "uint16")
    m = rng.standard_normal((1, npix))
    out = np.zeros((9, 1))
    masks.cpu_dense(tile, np.ascontiguousarray(m.T), out)
    np.testing.assert_allclose(out, masks.reference(tile, m), rtol=1e-10)


@pytest.mark.parametrize("dtype", ["uint16", "float32", "int64"])
@pytest.mark.parametrize("mdtype", ["float32", "float64"])
def test_dense_k16(dtype, mdtype):
    rng = np.random.default_rng(13)
    tile = random_tile(rng, (7, 13 * 17), dtype)
    m = rng.standard_normal((16, 13 * 17)).astype(mdtype)
    out = np.zeros((7, 16))
    masks.cpu_dense(tile, np.ascontiguousarray(m.T), out)
    np.testing.assert_allclose(out, masks.reference(tile, m), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [2, 7, 16])
def test_dense_rows_kernel_float64(dtype, k):
    # masks_t as the transpose of (k, npix) rows: the blocked kernel. 9 strided frames (blocks
    # and frames left over), k not always a multiple of the block's 4 or 2 masks, and pixels
    # spanning two chunks with a ragged end.
    rng = np.random.default_rng(17)
    npix = 4096 + 37
    big = random_tile(rng, (18, npix), dtype)
    tile = big[::2]
    m = rng.standard_normal((k, npix))
    out = rng.random((9, k))
    expected = out + masks.reference(tile, m)
    masks.cpu_dense(tile, m.T, out)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "bool", "uint32"])
@pytest.mark.parametrize("k", [3, 16])
def test_dense_rows_kernel_float32(dtype, k):
    rng = np.random.default_rng(18)
    npix = 4096 + 1003
    tile = random_tile(rng, (11, npix), dtype)
    m = rng.random((k, npix)).astype(np.float32)
    out = np.zeros((11, k), np.float32)
    masks.cpu_dense(tile, m.T, out)
    # float32 rounding, relative to the sum of the products' magnitudes (signed data cancel).
    scale = masks.reference(np.abs(tile.astype(np.float64)), m)
    assert np.all(np.abs(out - masks.reference(tile, m)) <= 1e-6 * scale + 1e-30)


@pytest.mark.parametrize(
    ("avx512", "prefetching"),
    [(True, True), (True, False), (False, True)],
    ids=["block-5x4", "block-5x4-no-prefetch", "block-6x2"],
)
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("k", [7, 16])
def test_dense_both_register_blocks(avx512, prefetching, dtype, k, monkeypatch):
    # The several-masks kernel for AVX-512 targets (5 frames x 4 masks) and for the others
    # (6 x 2, kernels/masks_avx2_cpu), whatever this machine compiles for: 13 frames and k
    # masks leave frames and masks over from both blocks; pixels span two or more chunks (1024
    # pixels a chunk with AVX-512, 4096 without).
    from libertem_gpu.kernels import masks_cpu

    monkeypatch.setattr(masks_cpu, "target_has", lambda *features: avx512)
    monkeypatch.setattr(masks_cpu, "amx_takes", lambda *args: False)  # not AMX either
    monkeypatch.setattr(masks_cpu.prefetch, "enabled", lambda: prefetching)
    rng = np.random.default_rng(21)
    npix = 4096 + 77
    tile = random_tile(rng, (13, npix), dtype)
    for mdtype, tol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        m = rng.random((k, npix)).astype(mdtype)
        out = rng.random((13, k)).astype(mdtype)
        expected = out + masks.reference(tile, m)
        masks.cpu_dense(tile, m.T, out)
        # rounding relative to the sum of the products' magnitudes (signed data cancel)
        scale = masks.reference(np.abs(tile.astype(np.float64)), m) + 1
        assert np.all(np.abs(out - expected) <= tol * scale)


def test_dense_any_mask_layout():
    # Strided masks_t (neither C- nor F-contiguous) are packed like any other.
    rng = np.random.default_rng(19)
    tile = random_tile(rng, (6, 100), "uint16")
    m = rng.standard_normal((4, 100, 2))[:, :, 0]
    out = np.zeros((6, 4))
    masks.cpu_dense(tile, m.T, out)
    np.testing.assert_allclose(out, masks.reference(tile, m), rtol=1e-10)


def test_dense_k16_float32_out_many_frames():
    # many frames and pixels: many 5- or 6-frame blocks, frames left over, two pixel chunks or
    # more
    rng = np.random.default_rng(14)
    tile = random_tile(rng, (301, 4096 + 500), "uint16")
    m = rng.random((16, 4096 + 500)).astype(np.float32)
    out = np.zeros((301, 16), np.float32)
    masks.cpu_dense(tile, np.ascontiguousarray(m.T), out)
    np.testing.assert_allclose(out, masks.reference(tile, m), rtol=1e-5)


@pytest.mark.parametrize("mdtype", ["float32", "float64"])
def test_pack_dense_layout(mdtype):
    rng = np.random.default_rng(20)
    m = rng.standard_normal((3, 2500)).astype(mdtype)
    packed = masks.pack_dense(m.T, chunk=1024)
    assert packed.shape == (2500, 3) and packed.k == 3 and packed.dtype == mdtype
    assert packed.nbytes == 0  # each layout is made on first use
    assert packed.data.shape[:2] == (3, 3) and packed.data.shape[2] > 1024
    assert packed.nbytes == packed.data.nbytes
    for c in range(3):
        width = min(1024, 2500 - c * 1024)
        np.testing.assert_array_equal(packed.data[c, :, :width], m[:, c * 1024 : c * 1024 + width])
        # padding and the ragged end hold zeros
        assert not packed.data[c, :, width:].any()


@pytest.mark.parametrize("n", [1, 4, 5, 9, 13])
@pytest.mark.parametrize("k", [2, 4, 5, 16])
@pytest.mark.parametrize("chunk", [64, 1024])
def test_dense_packed_reused_across_tiles(n, k, chunk):
    # One packing serves every tile: frame counts around the 5-frame blocks, mask counts
    # around the 4-mask blocks, and chunks that do not divide the frame.
    rng = np.random.default_rng(21)
    npix = 13 * 17 * 3
    m = rng.standard_normal((k, npix))
    packed = masks.pack_dense(m.T, chunk=chunk)
    for seed in range(2):
        tile = random_tile(np.random.default_rng(seed), (n, npix), "int16")
        out = rng.random((n, k))
        expected = out + masks.reference(tile, m)
        masks.cpu_dense(tile, packed, out)
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-9)


def test_dense_packed_bad_input():
    packed = masks.pack_dense(np.zeros((100, 3)))
    with pytest.raises(ValueError, match=r"\(99, k\)"):
        masks.cpu_dense(np.zeros((2, 99), np.uint16), packed, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        masks.cpu_dense(np.zeros((2, 100), np.uint16), packed, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="float32 or float64"):
        masks.pack_dense(np.zeros((100, 3), np.int32))
    with pytest.raises(ValueError, match="chunk"):
        masks.pack_dense(np.zeros((100, 3)), chunk=0)


@pytest.mark.parametrize("k", [1, 16])
def test_sparse(k):
    rng = np.random.default_rng(15)
    npix = 13 * 17
    big = random_tile(rng, (14, npix), "int16")
    tile = big[::2]
    dense = rng.standard_normal((k, npix)) * (rng.random((k, npix)) < 0.2)
    indptr = np.zeros(k + 1, dtype=np.int64)
    indices, data = [], []
    for j in range(k):
        nz = np.flatnonzero(dense[j])
        indices.append(nz)
        data.append(dense[j, nz])
        indptr[j + 1] = indptr[j] + len(nz)
    indices = np.concatenate(indices).astype(np.int32)
    data = np.concatenate(data)
    out = np.zeros((7, k))
    masks.cpu_sparse(tile, indptr, indices, data, out)
    np.testing.assert_allclose(out, masks.reference(tile, dense), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        masks.reference_sparse(tile, indptr, indices, data), masks.reference(tile, dense)
    )
    with pytest.raises(ValueError):
        masks.cpu_sparse(tile, indptr, indices + npix, data, out)


# --- contracts: every implementation against the reference (tests/kernels/kit.py) ---


def _mask_count(tile):
    # One mask (the fused dot products) for the small cases, five (blocked kernel, GEMM) else.
    return 1 if len(tile) <= 3 else 5


def _csr(rng, k, npix):
    return _csr_of(rng.standard_normal((k, npix)) * (rng.random((k, npix)) < 0.4))


class TestMasksDenseContract(KernelContract):
    op = "masks_dense"
    rtol = 1e-10

    def arguments(self, rng, tile):
        frames = flat(tile)
        masks_t = rng.standard_normal((frames.shape[1], _mask_count(tile)))
        return (frames, masks_t, rng.standard_normal((len(frames), masks_t.shape[1])))

    def expected(self, args):
        return [args[2] + masks.reference(args[0], args[1].T)]

    def outputs(self, args):
        return [args[2]]


class TestMasksSparseContract(KernelContract):
    op = "masks_sparse"
    rtol = 1e-10

    def arguments(self, rng, tile):
        frames = flat(tile)
        # 3 masks: a kernel reading only their pixels; 9: SpMM on the GPU.
        k = 3 if len(tile) <= 3 else 9
        out = rng.standard_normal((len(frames), k))
        return (frames, *_csr(rng, k, frames.shape[1]), out)

    def expected(self, args):
        return [args[4] + masks.reference_sparse(*args[:4])]

    def outputs(self, args):
        return [args[4]]


class TestApplyMasksContract(KernelContract):
    """The prepared operation: drawn masks (runs on the CPU for integer frames) for small
    cases, random masks (dense, packed; several kernels) for the others, whole frames."""

    op = "apply_masks"
    rtol = 1e-10

    def arguments(self, rng, tile):
        sig = tile.shape[1:]
        if len(tile) <= 3:
            cy, cx = (sig[0] - 1) / 2, (sig[1] - 1) / 2
            stack = np.stack([disk(sig, cy, cx, 1.5) * 2.5, ring(sig, cy, cx, 3, 1) * -1.25])
        else:
            stack = rng.standard_normal((_mask_count(tile), *sig))
        dense_t = np.asfortranarray(stack.reshape(len(stack), -1).T)
        ms = MaskStack(len(stack), False, np.dtype(np.float64), dense_t, None)
        return (tile, rng.standard_normal((len(tile), len(stack))), ms)

    def expected(self, args):
        tile, out, ms = args
        return [out + masks.reference(flat(tile), ms.dense_t.T)]

    def outputs(self, args):
        return [args[1]]

    def call(self, kernel, args, swap):
        tile, out, ms = args
        applied = kernel(ms, tile.shape[1:], tile.dtype)
        applied(flat(tile), out, 0, ms.dense_t.shape[0], swap)


@pytest.mark.parametrize("backend", ["numpy", "reference"])
@pytest.mark.parametrize("use_sparse", [False, True])
def test_prepared_masks_take_row_slabs(backend, use_sparse):
    # Frames split into row slabs: each slab meets the matching pixels of every mask.
    rng = np.random.default_rng(31)
    sig = (13, 17)
    tile = rng.integers(0, 60000, (5, *sig)).astype(np.uint16)
    stack = rng.standard_normal((3, *sig)) * (rng.random((3, *sig)) < 0.5)
    dense_t = np.asfortranarray(stack.reshape(3, -1).T)
    if use_sparse:
        csr = _csr_of(stack.reshape(3, -1))
        ms = MaskStack(3, False, np.dtype(np.float64), None, csr)
    else:
        ms = MaskStack(3, False, np.dtype(np.float64), dense_t, None)
    applied = masks.prepare(backend, ms, sig, tile.dtype)
    out = np.zeros((5, 3))
    for r0, r1 in ((0, 4), (4, 13)):
        applied(flat(tile[:, r0:r1]), out, r0 * 17, r1 * 17)
    np.testing.assert_allclose(out, masks.reference(flat(tile), stack.reshape(3, -1)), rtol=1e-10)


@pytest.mark.parametrize("count", [1, 3])
def test_row_slab_layouts_are_made_once_per_stack(count):
    # A stack shared by a run's partitions lays out each slab once: every partition prepares
    # its own AppliedMasks, and all of them read the same layouts (16 masks of 4096 x 4096:
    # packing them again in every partition took 60 % of a run).
    rng = np.random.default_rng(32)
    sig = (6, 7)
    tile = rng.integers(0, 4000, (4, *sig)).astype(np.uint16)
    stack = rng.random((count, *sig)).astype(np.float32)
    ms = MaskStack(
        count, False, np.dtype(np.float32), np.asfortranarray(stack.reshape(count, -1).T), None
    )
    want = masks.reference(flat(tile), stack.reshape(count, -1))
    for _ in range(3):  # three partitions
        applied = masks.prepare("numpy", ms, sig, tile.dtype)
        out = np.zeros((4, count), np.float32)
        for r0, r1 in ((0, 2), (2, 6)):
            applied(flat(tile[:, r0:r1]), out, r0 * 7, r1 * 7)
        np.testing.assert_allclose(out, want, rtol=1e-5)
    assert sorted(key[:2] for key in ms._slabs) == [(0, 14), (14, 42)]
    layouts = list(ms._slabs.values())
    assert ms.nbytes >= ms.dense_t.nbytes + sum(getattr(v, "nbytes", 0) for v in layouts)


def _csr_of(dense):
    indptr = np.concatenate([[0], np.cumsum((dense != 0).sum(axis=1))]).astype(np.int64)
    indices = np.concatenate([np.flatnonzero(r) for r in dense]).astype(np.int64)
    return indptr, indices, dense[dense != 0]


@pytest.mark.parametrize("dtype", ["uint16", "float32", "bool"])
def test_plain_strategy_applies_csr_with_empty_rows(rng, dtype, monkeypatch):
    """The small runs' (plain NumPy) strategy on sparse masks: rows without values first, in
    the middle and last; whole frames, row slabs, and blocks of frames."""
    monkeypatch.setattr(masks, "_PLAIN_BLOCK", 100)  # several blocks of frames per tile
    sig = (7, 9)
    dense = rng.standard_normal((6, 63)) * (rng.random((6, 63)) < 0.3)
    dense[[0, 2, 5]] = 0.0
    stack = MaskStack(6, False, np.dtype(np.float64), None, _csr_of(dense))
    applied = masks.prepare_reference(stack, sig, np.dtype(dtype))
    tile = random_tile(rng, (11, 63), dtype)
    want = masks.reference(tile, dense)
    out = np.zeros((11, 6))
    applied(tile, out, 0, 63)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    out[:] = 0.0
    for p0, p1 in ((0, 27), (27, 63)):
        applied(np.ascontiguousarray(tile[:, p0:p1]), out, p0, p1)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


def test_plain_strategy_never_makes_sparse_masks_dense(rng):
    """2304 polar bins of 256 x 256 pixels as a dense float64 stack would be 1.2 GB."""
    import tracemalloc

    npix, k = 256 * 256, 2304
    labels = rng.integers(0, k, npix)
    order = np.argsort(labels, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=k))])
    stack = MaskStack(k, False, np.dtype(np.float64), None, (indptr, order, np.ones(npix)))
    tile = rng.integers(0, 4096, (4, npix)).astype(np.uint16)
    out = np.zeros((4, k))
    tracemalloc.start()
    try:
        masks.prepare_reference(stack, (256, 256), tile.dtype)(tile, out, 0, npix)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak
    want = np.stack([np.bincount(labels, t.astype(np.float64), minlength=k) for t in tile])
    np.testing.assert_allclose(out, want, rtol=1e-12)


def test_plain_strategy_refuses_complex_tiles(rng):
    """Complex frames reach mask kernels as their real and imaginary parts; a complex tile
    given to the plain sparse strategy is refused, not cast to its real part."""
    dense = np.eye(3, 12)
    stack = MaskStack(3, False, np.dtype(np.float64), None, _csr_of(dense))
    applied = masks.prepare_reference(stack, (3, 4), np.dtype(np.complex64))
    with pytest.raises(TypeError):
        applied(np.ones((2, 12), np.complex64), np.zeros((2, 3)), 0, 12)
