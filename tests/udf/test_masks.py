"""ApplyMasksUDF against NumPy, and the mask helpers of libertem_gpu.masks."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from libertem_gpu import ApplyMasksUDF, masks
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.io.tiles import TilingScheme
from tests.udf.builtin_cases import CASES, assert_nav, case_params, load_case


def _random_masks(rng, sig, k=3):
    stack = rng.standard_normal((k, *sig))
    stack[0] = stack[0] > 0  # a bool-like mask among them
    return stack


@pytest.mark.parametrize("case", case_params(CASES))
@pytest.mark.parametrize("use_sparse", [False, True])
def test_masks_match_numpy(ctx, rng, tmp_path, case, use_sparse):
    loaded = load_case(ctx, case, rng, tmp_path)
    stack = _random_masks(rng, case.sig)
    factories = [lambda m=m: m for m in stack]
    udf = ApplyMasksUDF(mask_factories=factories, use_sparse=use_sparse)
    result = loaded.run(ctx, udf)["intensity"]
    assert result.data.dtype == np.float64
    frames = loaded.selected.reshape(len(loaded.selected), -1)
    expected = frames @ stack.reshape(len(stack), -1).T
    assert_nav(result, expected, loaded, rtol=1e-10)


@pytest.mark.parametrize("case", case_params(CASES))
@pytest.mark.parametrize("k", [3, 16])
def test_float32_masks_match_numpy(ctx, rng, tmp_path, case, k):
    # Single precision: the float32 vector kernels, or on AMX CPUs the tile unit for 8- and
    # 16-bit frames; rois, sync offsets, several partitions and row slabs as everywhere.
    loaded = load_case(ctx, case, rng, tmp_path)
    stack = _random_masks(rng, case.sig, k).astype(np.float32)
    udf = ApplyMasksUDF(mask_factories=lambda: stack, mask_dtype=np.float32)
    result = loaded.run(ctx, udf)["intensity"]
    assert result.data.dtype == np.result_type(np.dtype(case.dtype), np.float32)
    frames = loaded.selected.reshape(len(loaded.selected), -1).astype(np.float64)
    expected = frames @ stack.reshape(k, -1).astype(np.float64).T
    assert_nav(result, expected, loaded, rtol=1e-5)


@pytest.mark.parametrize("amx_on", ["1", "0"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_drawn_masks_covering_the_frame_go_to_amx_where_it_runs(
    ctx, rng, monkeypatch, amx_calls, amx_on, dtype, request
):
    from libertem_gpu.kernels import amx

    monkeypatch.setenv(amx.ENV, amx_on)
    sig = (31, 29)
    data = rng.integers(0, 250, (3, 5, *sig)).astype(dtype)
    ds = ctx.load("memory", data=data, num_partitions=2)
    frames = data.reshape(15, -1).astype(np.float64)
    many = [masks.ring(sig, 15, 14, r + 2, r) for r in range(0, 20, 2)]  # most of the frame
    # A small part of it, in runs long enough for the run kernels (a thin ring alone has
    # runs too short to pay, and would go to the dense kernels, AMX included).
    few = [masks.disk(sig, 15, 14, 5), masks.ring(sig, 15, 14, 9, 6)]
    for stack, covers in ((many, True), (few, False)):
        amx_calls.clear()
        udf = ApplyMasksUDF(mask_factories=[lambda m=m: m for m in stack], mask_dtype=np.float32)
        res = ctx.run_udf(dataset=ds, udf=udf)["intensity"].data.reshape(15, -1)
        expected = frames @ np.stack(stack).reshape(len(stack), -1).T
        np.testing.assert_allclose(res, expected, rtol=1e-6)
        if request.node.callspec.params["ctx"] != "dask":  # calls in other processes unseen
            assert bool(amx_calls) == (covers and amx_on == "1" and amx.available())


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_float32_masks_give_float32_results(ctx, rng, dtype):
    data = (rng.random((5, 6, 13, 17)) * 1000).astype(dtype)
    stack = rng.random((16, 13, 17))
    ds = ctx.load("memory", data=data, num_partitions=3)
    udf = ApplyMasksUDF(mask_factories=lambda: stack, mask_dtype=np.float32)
    res = ctx.run_udf(dataset=ds, udf=udf, tiling=TilingScheme(depth=4))["intensity"]
    assert res.data.dtype == np.float32
    expected = data.reshape(30, -1).astype(np.float64) @ stack.astype(np.float32).reshape(16, -1).T
    np.testing.assert_allclose(res.data.reshape(30, 16), expected, rtol=1e-5)


def test_mask_forms(inline_ctx, rng):
    """A stack factory, arrays in the list, SparseMask, scipy.sparse, and complex masks."""
    import scipy.sparse

    sig = (13, 17)
    data = rng.integers(0, 1000, size=(3, 4, *sig)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    frames = data.reshape(12, -1).astype(np.float64)
    disk = masks.disk(sig, 6, 8, 4)
    ring = masks.ring(sig, 6, 8, 6, 2, sparse=True)
    spm = scipy.sparse.csr_array(np.where(rng.random(sig) > 0.8, rng.random(sig), 0))
    cplx = rng.random(sig) + 1j * rng.random(sig)
    forms = [
        ([disk, lambda: ring, lambda: spm], [disk, ring.toarray(), spm.toarray()]),
        (lambda: np.stack([disk, disk * 2.5]), [disk, disk * 2.5]),
        ([lambda: cplx, disk], [cplx, disk]),
    ]
    for factories, dense in forms:
        for use_sparse in (None, True, False):
            udf = ApplyMasksUDF(mask_factories=factories, use_sparse=use_sparse)
            for tiling in (None, TilingScheme(depth=5, sig_rows=4)):
                res = inline_ctx.run_udf(dataset=ds, udf=udf, tiling=tiling)["intensity"]
                expected = (
                    frames @ np.stack([np.asarray(m) for m in dense]).reshape(len(dense), -1).T
                )
                np.testing.assert_allclose(res.raw_data, expected, rtol=1e-10)
                assert res.data.shape == (3, 4, len(dense))
                assert res.data.dtype == (
                    np.complex128 if expected.dtype.kind == "c" else np.float64
                )


def test_all_sparse_masks_run_sparse():
    stack_sparse = [
        masks.point((5, 6), 1, 2, sparse=True),
        masks.disk((5, 6), 2, 2, 1, sparse=True),
    ]
    from libertem_gpu.udf.masks import build_mask_stack

    assert build_mask_stack(stack_sparse, (5, 6), None, None, None).csr is not None
    mixed = [*stack_sparse, np.ones((5, 6))]
    assert build_mask_stack(mixed, (5, 6), None, None, None).dense_t is not None


def test_bad_masks_are_refused(inline_ctx, rng):
    data = rng.integers(0, 100, size=(3, 4, 13, 17)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data)
    with pytest.raises(ShapeMismatchError, match=r"mask_factories\[1\].*\(12, 17\).*\(13, 17\)"):
        inline_ctx.run_udf(
            dataset=ds,
            udf=ApplyMasksUDF(
                mask_factories=[lambda: np.ones((13, 17)), lambda: np.ones((12, 17))]
            ),
        )
    with pytest.raises(ShapeMismatchError, match="mask_count=3"):
        inline_ctx.run_udf(
            dataset=ds, udf=ApplyMasksUDF(mask_factories=[np.ones((13, 17))] * 2, mask_count=3)
        )
    with pytest.raises(InvalidParameterError, match="empty"):
        inline_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=[]))
    with pytest.raises(InvalidParameterError, match="shifts"):
        ApplyMasksUDF(mask_factories=[np.ones((13, 17))], shifts=np.array(["x", "y"]))
    with pytest.raises(InvalidParameterError, match="use_sparse"):
        inline_ctx.run_udf(
            dataset=ds, udf=ApplyMasksUDF(mask_factories=[np.ones((13, 17))], use_sparse="dok")
        )


def test_udf_travels_by_pickle():
    udf = ApplyMasksUDF(mask_factories=[masks.disk((5, 5), 2, 2, 1)], use_sparse=True)
    copy = pickle.loads(pickle.dumps(udf))
    assert copy.params.use_sparse is True
    np.testing.assert_array_equal(copy.params.mask_factories[0], udf.params.mask_factories[0])


# --- mask helpers ----------------------------------------------------------------------------


def _distance2(sig, cy, cx):
    return [[(y - cy) ** 2 + (x - cx) ** 2 for x in range(sig[1])] for y in range(sig[0])]


@pytest.mark.parametrize(
    ("cy", "cx", "r", "ri"), [(6, 8, 4, 2), (6.5, 3.25, 5.5, 0.5), (0, 0, 3, 1)]
)
def test_disk_and_ring(cy, cx, r, ri):
    sig = (13, 17)
    d2 = np.array(_distance2(sig, cy, cx))
    np.testing.assert_array_equal(masks.disk(sig, cy, cx, r), d2 <= r * r)
    np.testing.assert_array_equal(masks.ring(sig, cy, cx, r, ri), (d2 <= r * r) & (d2 > ri * ri))
    # LiberTEM's call shapes select the same pixels
    np.testing.assert_array_equal(
        masks.circular(centerX=cx, centerY=cy, imageSizeX=17, imageSizeY=13, radius=r),
        d2 <= r * r,
    )
    np.testing.assert_array_equal(masks.ring(cx, cy, 17, 13, r, ri), masks.ring(sig, cy, cx, r, ri))
    np.testing.assert_array_equal(
        masks.ring(centerX=cx, centerY=cy, imageSizeX=17, imageSizeY=13, radius=r, radius_inner=ri),
        masks.ring(sig, cy, cx, r, ri),
    )
    for dense, sp in (
        (masks.disk(sig, cy, cx, r), masks.disk(sig, cy, cx, r, sparse=True)),
        (masks.ring(sig, cy, cx, r, ri), masks.ring(sig, cy, cx, r, ri, sparse=True)),
    ):
        assert isinstance(sp, masks.SparseMask)
        assert sp.nnz == int(dense.sum())
        np.testing.assert_array_equal(sp.toarray(), dense)


def test_point_rectangle_gradients():
    sig = (7, 9)
    p = masks.point(sig, 3, 5)
    assert p.sum() == 1 and p[3, 5]
    np.testing.assert_array_equal(masks.point(sig, 3, 5, sparse=True).toarray(), p)
    rect = masks.rectangle(sig, 2, 3, 4, 5)
    expected = np.zeros(sig, dtype=bool)
    expected[2:6, 3:8] = True
    np.testing.assert_array_equal(rect, expected)
    np.testing.assert_array_equal(masks.rectangle(sig, -1, 7, 3, 5), _box(sig, 0, 2, 7, 9))
    # LiberTEM's rectangular includes both ends and accepts negative extents
    np.testing.assert_array_equal(masks.rectangular(3, 2, 4, 3, 9, 7), _box(sig, 2, 6, 3, 8))
    np.testing.assert_array_equal(masks.rectangular(7, 5, -4, -3, 9, 7), _box(sig, 2, 6, 3, 8))
    assert not masks.rectangular(3, 2, 0, 3, 9, 7).any()
    gx, gy = masks.gradient_x(9, 7), masks.gradient_y(9, 7)
    assert gx.shape == gy.shape == sig and gx.dtype == np.float32
    assert gx[4, 6] == 6 and gy[4, 6] == 4


def _box(sig, y0, y1, x0, x1):
    m = np.zeros(sig, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_to_sparse_and_bad_helpers(rng):
    dense = np.where(rng.random((6, 7)) > 0.7, rng.random((6, 7)), 0)
    sp = masks.to_sparse(dense)
    assert sp.nnz == np.count_nonzero(dense)
    np.testing.assert_array_equal(np.asarray(sp), dense)
    assert math.prod(sp.shape) == 42
    with pytest.raises(InvalidParameterError, match="inner radius"):
        masks.ring((5, 5), 2, 2, 1, 2)
    with pytest.raises(InvalidParameterError, match="outside the frame"):
        masks.point((5, 5), 5, 0)
    with pytest.raises(InvalidParameterError, match="sig_shape"):
        masks.disk((5,), 2, 2, 1)
    with pytest.raises(ShapeMismatchError, match="indices"):
        masks.SparseMask((2, 2), np.array([0, 4]), np.array([1.0, 1.0]))


def test_partitions_of_a_run_share_one_mask_stack(rng):
    # The workers of one run build the stack once per process, not once per partition, and a
    # later run calls the factories afresh: changed masks are never served stale.
    from libertem_gpu import Context
    from libertem_gpu.udf import run_cache

    data = rng.integers(0, 100, (8, 5, 7, 9)).astype(np.uint16)
    weights = rng.standard_normal((7, 9))
    calls = []

    def factory():
        calls.append(1)
        return weights.copy()

    with Context("threads") as ctx:
        ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=8)
        first = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=[factory]))
        worker_calls = len(calls)
        weights *= -2
        second = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=[factory]))
    expected = np.einsum("abyx,yx->ab", data.astype(np.float64), weights)
    np.testing.assert_allclose(second["intensity"].data[..., 0], expected, rtol=1e-10)
    np.testing.assert_allclose(first["intensity"].data[..., 0], expected / -2, rtol=1e-10)
    # one stack, built on the client for planning and shared by the 8 partitions on its
    # threads (the run's key is the same on both)
    assert worker_calls == 1
    assert len(calls) == 2
    assert len(run_cache._ENTRIES) <= run_cache.MAX_ENTRIES


def test_mask_stack_packs_once_and_counts_the_packed_copy(rng):
    from libertem_gpu.kernels.masks import PackedMasks
    from libertem_gpu.udf import masks as masks_udf

    dense = np.asfortranarray(rng.standard_normal((3, 300)).T)  # (npix, k): rows contiguous
    stack = masks_udf.MaskStack(3, False, np.dtype(np.float64), dense, None)
    assert stack.nbytes == dense.nbytes
    packed = stack.packed()
    assert isinstance(packed, PackedMasks) and stack.packed() is packed
    assert stack.nbytes == dense.nbytes + packed.nbytes
    # the packed copy holds the same masks, chunk by chunk
    first = packed.data[0, :, : min(300, packed.chunk)]
    np.testing.assert_array_equal(first, dense[: first.shape[1]].T)
