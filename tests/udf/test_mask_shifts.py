"""Masks moved frame by frame (``shifts`` of ApplyMasksUDF and RadialProfileUDF) against a NumPy
reference written from the definition: random data and shifts (off the frame too), the shared
built-in cases (odd shapes, 1-D to 3-D scans and frames, rois, sync offsets, several partitions,
row slabs, big-endian files), every executor, dense and sparse masks, complex masks and data."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from libertem_gpu import UDF, ApplyMasksUDF, Context, RadialProfileUDF
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.io.tiles import TilingScheme
from libertem_gpu.kernels.masks import MaskStack
from libertem_gpu.udf import mask_shifts
from libertem_gpu.udf.mask_shifts import (
    descan_shifts,
    estimate_descan,
    shift_groups,
    shift_stack,
)
from libertem_gpu.udf.masks import build_mask_stack
from tests.udf.builtin_cases import CASES, CASES_2D_SIG, assert_nav, case_params, load_case
from tests.udf.test_radial_profile import profile_reference


def moved(mask: np.ndarray, shift) -> np.ndarray:
    """``mask`` moved by ``shift``, pixel by pixel: ``out[p] = mask[p - shift]``, 0 where
    ``p - shift`` is off the frame."""
    out = np.zeros_like(mask)
    for p in np.ndindex(mask.shape):
        src = tuple(int(a) - int(d) for a, d in zip(p, shift, strict=True))
        if all(0 <= s < n for s, n in zip(src, mask.shape, strict=True)):
            out[p] = mask[src]
    return out


def shifted_reference(frames: np.ndarray, masks: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each frame's dot product with every mask moved by the frame's shift."""
    out = np.empty((len(frames), len(masks)), np.result_type(frames, masks, np.float64))
    for i, (frame, shift) in enumerate(zip(frames, shifts, strict=True)):
        for j, mask in enumerate(masks):
            out[i, j] = np.sum(frame * moved(mask, shift))
    return out


def random_shifts(rng, nav, sig) -> np.ndarray:
    """Mostly small shifts, so that frames share them (in runs and apart), some off the frame."""
    shifts = rng.integers(-2, 3, size=(*nav, len(sig)))
    far = rng.random(nav) < 0.1
    shifts[far] = np.array(sig) + 1
    return shifts


# Dense masks on every case, sparse ones on every other (together: every axis of the cases).
SHIFT_CASES = [pytest.param(c, False, id=f"dense-{c.id}") for c in CASES] + [
    pytest.param(c, True, id=f"sparse-{c.id}") for c in CASES[1::2]
]


@pytest.mark.parametrize(("case", "sparse"), SHIFT_CASES)
def test_shifted_masks_match_numpy(ctx, rng, tmp_path, case, sparse):
    loaded = load_case(ctx, case, rng, tmp_path)
    masks = rng.standard_normal((2, *case.sig)) * (rng.random((2, *case.sig)) < 0.6)
    shifts = random_shifts(rng, case.nav, case.sig)
    udf = ApplyMasksUDF(lambda: masks, shifts=shifts, use_sparse=sparse)
    res = loaded.run(ctx, udf)
    flat_shifts = shifts.reshape(-1, len(case.sig))[loaded.processed]
    expected = shifted_reference(loaded.selected, masks, flat_shifts)
    assert_nav(res["intensity"], expected, loaded, rtol=1e-9)


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[:3]))
def test_constant_and_aux_shifts(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    masks = rng.random((3, *case.sig))
    constant = np.tile([2, -3], (len(loaded.selected), 1))
    expected = shifted_reference(loaded.selected, masks, constant)
    res = loaded.run(ctx, ApplyMasksUDF(lambda: masks, shifts=(2, -3)))
    assert_nav(res["intensity"], expected, loaded, rtol=1e-9)
    # LiberTEM's way: aux data of one shift per position; floats cast towards zero.
    per_frame = random_shifts(rng, case.nav, case.sig)
    as_floats = per_frame + np.where(per_frame >= 0, 0.7, -0.7)
    aux = UDF.aux_data(as_floats.reshape(-1), kind="nav", extra_shape=(2,), dtype=np.float64)
    res = loaded.run(ctx, ApplyMasksUDF(lambda: masks, shifts=aux))
    flat = per_frame.reshape(-1, 2)[loaded.processed]
    assert_nav(res["intensity"], shifted_reference(loaded.selected, masks, flat), loaded, 1e-9)


def test_no_shift_is_the_plain_run(inline_ctx, rng):
    data = rng.integers(0, 4096, (4, 6, 15, 11), dtype=np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    masks = rng.random((4, 15, 11))
    plain = inline_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(lambda: masks))
    zero = inline_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(lambda: masks, shifts=(0, 0)))
    np.testing.assert_array_equal(zero["intensity"].data, plain["intensity"].data)


def test_complex_masks_and_data(ctx, rng):
    data = (rng.standard_normal((5, 4, 9, 10)) + 1j * rng.standard_normal((5, 4, 9, 10))).astype(
        np.complex64
    )
    masks = rng.standard_normal((2, 9, 10)) + 1j * rng.standard_normal((2, 9, 10))
    shifts = random_shifts(rng, (5, 4), (9, 10))
    ds = ctx.load("memory", data=data, num_partitions=3)
    for m in (masks, masks.real):
        res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(lambda m=m: m, shifts=shifts))
        expected = shifted_reference(data.reshape(20, 9, 10), m, shifts.reshape(20, 2))
        np.testing.assert_allclose(
            res["intensity"].data.reshape(20, 2), expected, rtol=1e-5, atol=1e-4
        )


def test_many_shifts_few_kept(inline_ctx, rng, monkeypatch):
    """Prepared stacks evicted and made again give the same sums."""
    monkeypatch.setattr(mask_shifts, "_KEPT_BYTES", 1)  # one stack kept at a time
    monkeypatch.setattr(mask_shifts, "_KEPT_MIN", 1)
    data = rng.random((6, 7, 8, 9))
    shifts = rng.integers(-5, 6, (6, 7, 2))
    masks = rng.random((2, 8, 9))
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(lambda: masks, shifts=shifts))
    expected = shifted_reference(data.reshape(42, 8, 9), masks, shifts.reshape(42, 2))
    np.testing.assert_allclose(res["intensity"].data.reshape(42, 2), expected, rtol=1e-12)


def test_shifts_apart_in_row_slabs(ctx, rng):
    """Frames of one shift apart from each other in a tile are gathered, their sums added to
    what the tile's other row slabs gave them."""
    data = rng.integers(0, 60000, (3, 8, 11, 9), dtype=np.uint16)
    shifts = np.zeros((3, 8, 2), np.int64)
    shifts[:, 1::2] = (1, -2)  # alternating: no two neighbours share a shift
    shifts[:, 2::4] = (-1, 0)
    masks = rng.random((3, 11, 9))
    ds = ctx.load("memory", data=data, num_partitions=2)
    tiling = TilingScheme(depth=6, sig_rows=3)
    udf = ApplyMasksUDF(lambda: masks, shifts=shifts)
    res = ctx.run_udf(dataset=ds, udf=udf, tiling=tiling)
    expected = shifted_reference(data.reshape(24, 11, 9), masks, shifts.reshape(24, 2))
    np.testing.assert_allclose(res["intensity"].data.reshape(24, 3), expected, rtol=1e-12)


def test_shift_stack_dense_and_sparse(rng):
    masks = rng.random((3, 6, 7)) * (rng.random((3, 6, 7)) < 0.5)
    for sparse in (False, True):
        stack = build_mask_stack(lambda: masks, (6, 7), sparse, None, None)
        for shift in [(1, 2), (-2, 3), (0, -6), (6, 0), (-7, 1)]:
            out = shift_stack(stack, (6, 7), shift)
            assert isinstance(out, MaskStack) and out.count == 3
            if sparse:
                indptr, indices, data = out.csr
                dense = np.zeros((3, 42))
                for j in range(3):
                    dense[j, indices[indptr[j] : indptr[j + 1]]] = data[indptr[j] : indptr[j + 1]]
                rows = [indices[indptr[j] : indptr[j + 1]] for j in range(3)]
                assert all(np.all(np.diff(r) > 0) for r in rows)  # ascending, as CSR keeps them
            else:
                dense = out.dense_t.T
            expected = np.stack([moved(m, shift) for m in masks]).reshape(3, 42)
            np.testing.assert_array_equal(dense, expected)


def test_shift_groups():
    runs = np.repeat([[0, 0], [1, 0], [0, 0], [0, 1]], [5, 4, 4, 3], axis=0)
    groups = shift_groups(runs)  # long runs: in place, a shift may come back
    assert [(k, (r.start, r.stop)) for k, r in groups] == [
        ((0, 0), (0, 5)),
        ((1, 0), (5, 9)),
        ((0, 0), (9, 13)),
        ((0, 1), (13, 16)),
    ]
    apart = shift_groups(np.array([[1, 1], [0, 0], [1, 1]]))  # short runs: gathered
    assert [(k, list(r)) for k, r in apart] == [((0, 0), [1]), ((1, 1), [0, 2])]
    one = shift_groups(np.ones((3, 2), np.int64))
    assert [(k, (r.start, r.stop)) for k, r in one] == [((1, 1), (0, 3))]
    assert shift_groups(np.zeros((0, 2), np.int64)) == []


def descan_reference(center, shift, frames, n_bins, rad_max, exclude, mode):
    """profile_reference around ``center + shift`` for each frame (NaN means of empty bins)."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of no pixels
        for frame, s in zip(frames, shift, strict=True):
            c = (center[0] + s[0], center[1] + s[1])
            ref = profile_reference(frame[None], c, n_bins, rad_max, mode=mode, exclude=exclude)
            out.append(ref)
    return np.concatenate(out)


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[::2]))
@pytest.mark.parametrize("mode", ["mean", "sum"])
def test_radial_profile_follows_the_beam(ctx, rng, tmp_path, case, mode):
    loaded = load_case(ctx, case, rng, tmp_path)
    sig = case.sig
    exclude = rng.random(sig) < 0.1
    shifts = rng.integers(-3, 4, size=(*case.nav, 2))
    shifts.reshape(-1, 2)[1::4] = (sig[0], 0)  # rings off the frame: empty bins
    center = (sig[0] / 2 - 0.3, sig[1] / 2 + 0.2)
    udf = RadialProfileUDF(
        center=center, n_bins=3, rad_max=5.0, exclude=exclude, mode=mode, shifts=shifts
    )
    res = loaded.run(ctx, udf)
    flat = shifts.reshape(-1, 2)[loaded.processed]
    expected = descan_reference(center, flat, loaded.selected, 3, 5.0, exclude, mode)
    assert_nav(res["intensity"], expected, loaded, rtol=1e-10)
    if mode == "mean" and loaded.processed.sum() > 1:
        assert np.isnan(expected).any() and not np.isnan(expected).all()


def test_descan_from_com_plane():
    plane = np.array([[0.4, -1.2], [0.3, 0.0], [0.0, 0.51]])
    got = descan_shifts(plane, (3, 4))
    y, x = np.mgrid[:3, :4]
    assert got.dtype == np.int64 and got.shape == (3, 4, 2)
    np.testing.assert_array_equal(got[..., 0], np.rint(0.4 + 0.3 * y))
    np.testing.assert_array_equal(got[..., 1], np.rint(-1.2 + 0.51 * x))
    with pytest.raises(ShapeMismatchError, match=r"\(3, 2\)"):
        descan_shifts(np.zeros((2, 2)), (3, 4))
    with pytest.raises(InvalidParameterError, match="finite"):
        descan_shifts(np.full((3, 2), np.nan), (3, 4))


def walking_beam(rng, ny=12, nx=16, n=40):
    """Frames of a beam (and a halo) that walks 3 pixels down and 5 right over the scan, and
    its whole-pixel offsets from (19.5, 19.5)."""
    sy, sx = np.mgrid[:ny, :nx]
    by = 19.5 + 3.0 * sy / (ny - 1)
    bx = 19.5 + 5.0 * sx / (nx - 1)
    r, c = np.mgrid[:n, :n]
    d2 = (r - by[..., None, None]) ** 2 + (c - bx[..., None, None]) ** 2
    frames = rng.poisson(1000 * np.exp(-d2 / 8) + 2 * np.exp(-d2 / 200) + 0.05)
    return frames.astype(np.uint16), np.stack([np.rint(by - 19.5), np.rint(bx - 19.5)], -1)


def test_estimate_descan(rng):
    frames, truth = walking_beam(rng)
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames, num_partitions=2)
    found = estimate_descan(ctx, ds)  # finds the disk itself
    assert abs(found.center[0] - 21) < 1 and abs(found.center[1] - 22) < 1  # the mean beam
    given = estimate_descan(ctx, ds, center=(19.5, 19.5), radius=6)
    # The background inside the disk pulls each centre of mass a little towards the middle.
    np.testing.assert_allclose(given.plane[1:], [[3 / 11, 0], [0, 5 / 15]], atol=0.02)
    assert np.abs(given.shifts - truth).max() <= 1 and (given.shifts == truth).mean() > 0.8
    assert np.abs(found.shifts - found.shifts[0, 0] - (truth - truth[0, 0])).max() <= 1
    with pytest.raises(InvalidParameterError, match="2-D frames"):
        estimate_descan(ctx, ctx.load("memory", data=np.ones((3, 4, 5)), sig_dims=1))


def test_bad_shifts():
    ctx = Context("inline")
    ds = ctx.load("memory", data=np.ones((3, 4, 13, 17), dtype=np.uint16))
    mask = [np.ones((13, 17))]
    with pytest.raises(ShapeMismatchError, match="3 values per shift"):
        ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask, shifts=(1, 2, 3)))
    with pytest.raises(ShapeMismatchError, match="12 positions"):
        ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask, shifts=np.zeros((5, 2), int)))
    with pytest.raises(InvalidParameterError, match=r"not finite, at \(1, 2, 0\)"):
        shifts = np.zeros((3, 4, 2))
        shifts[1, 2, 0] = np.nan
        ApplyMasksUDF(mask, shifts=shifts)
    with pytest.raises(InvalidParameterError, match="integers"):
        ApplyMasksUDF(mask, shifts=["a", "b"])
    with pytest.raises(InvalidParameterError, match="kind='nav'"):
        ApplyMasksUDF(mask, shifts=UDF.aux_data(np.zeros(2), kind="single", extra_shape=(2,)))
    with pytest.raises(ShapeMismatchError, match="3 values per shift"):
        ctx.run_udf(dataset=ds, udf=RadialProfileUDF(shifts=(0, 0, 1)))
    # Checked before anything is read: nothing of the data set is touched.
    assert math.prod(ds.shape.nav) == 12
