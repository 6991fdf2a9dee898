"""Corrections folded into the weights of linear analyses equal the weighted sums of the
corrected frames."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import CoMUDF, CorrectionSet
from libertem_gpu.corrections.fold import FoldedMoments, fold_weights
from libertem_gpu.io.tiles import TilingScheme
from tests.conftest import random_data
from tests.corrections.reference import corrected
from tests.udf.test_com import com_reference


def _corrections(rng, sig, gain=True, allow_empty=False):
    ex = np.zeros(sig, bool)
    ex[0, 0] = ex[-1, 3] = ex[2, -1] = True
    ex[3:5, 4:6] = True  # a 2x2 cluster
    if allow_empty:
        ex[6:9, 1:4] = True  # the centre of a 3x3 block has no valid neighbour
    return CorrectionSet(
        dark=rng.random(sig) * 10,
        gain=rng.random(sig) + 0.5 if gain else None,
        excluded_pixels=ex,
        allow_empty=allow_empty,
    )


def _mask(corr):
    frame = corr.get_dark_frame()
    mask = np.zeros(frame.shape, bool)
    mask[tuple(corr.excluded_coords)] = True
    return mask


@pytest.mark.parametrize("allow_empty", [False, True])
def test_fold_weights_equals_weighted_corrected_sums(rng, allow_empty):
    sig = (10, 9)
    corr = _corrections(rng, sig, allow_empty=allow_empty)
    frames = rng.integers(0, 5000, (4, *sig)).astype(np.uint16)
    weights = rng.standard_normal((3, 90))
    folded, const = fold_weights(corr.for_frames(sig), weights)
    got = frames.reshape(4, 90).astype(np.float64) @ folded.T - const
    fixed = corrected(frames, corr.get_dark_frame(), corr.get_gain_map(), _mask(corr), np.float64)
    np.testing.assert_allclose(got, fixed.reshape(4, 90) @ weights.T, rtol=1e-12)


@pytest.mark.parametrize("gain", [False, True])
def test_folded_moments_by_row_slabs(rng, gain):
    sig = (11, 9)
    corr = _corrections(rng, sig, gain=gain)
    frames = rng.integers(0, 5000, (3, *sig)).astype(np.uint16)
    y, x = np.mgrid[:11, :9].astype(np.float64)
    w = ((y - 5) ** 2 + (x - 4) ** 2 < 16).astype(np.float64)
    fm = FoldedMoments(corr.for_frames(sig), w)
    assert (fm.weights is w) is not gain  # without a gain map the disk stays as it is
    sums = [np.zeros(3) for _ in range(3)]
    for r0, r1 in ((0, 4), (4, 7), (7, 11)):  # slabs that keep environments whole
        part = frames[:, r0:r1].astype(np.float64)
        wp = fm.weights[r0:r1]
        sums[0] += (part * wp).sum(axis=(1, 2))
        sums[1] += (part * wp * y[r0:r1]).sum(axis=(1, 2))
        sums[2] += (part * wp * x[r0:r1]).sum(axis=(1, 2))
        fm.apply(np, frames[:, r0:r1], (r0, r1), *sums)
    fixed = corrected(frames, corr.get_dark_frame(), corr.get_gain_map(), _mask(corr), np.float64)
    want = [(fixed * w).sum(axis=(1, 2)), (fixed * w * y).sum(axis=(1, 2))]
    want.append((fixed * w * x).sum(axis=(1, 2)))
    for got, expected in zip(sums, want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("gain", [False, True])
def test_com_reads_stored_integers_with_corrections(ctx, rng, gain):
    data = random_data(rng, (3, 4, 13, 12), np.dtype(np.uint16))
    ds = ctx.load("memory", data=data, num_partitions=3)
    corr = _corrections(rng, (13, 12), gain=gain)
    udf = CoMUDF.with_params(cy=6.0, cx=5.5, r=5.0)
    res = ctx.run_udf(ds, udf, corrections=corr, tiling=TilingScheme(depth=2, sig_rows=3))
    fixed = corrected(
        data.reshape(12, 13, 12),
        corr.get_dark_frame(),
        corr.get_gain_map(),
        _mask(corr),
    )
    raw_com, *_ = com_reference(fixed.astype(np.float64), (13, 12), cy=6.0, cx=5.5, r=5.0)
    np.testing.assert_allclose(res["raw_com"].raw_data, raw_com, rtol=1e-6)
    # the UDF saw the stored type: the moments come from integers, folded
    from libertem_gpu.plan import plan_run

    copy = udf.copy()
    plan_run(ds, [copy], corrections=corr)
    assert copy.meta is not None and copy.meta.input_dtype == np.uint16


@pytest.mark.parametrize("dtype", ["uint16", "int16", "float32", "uint8"])
def test_single_precision_com_strategy(rng, dtype):
    # folded weights (a disk times a gain map) through the float32 row kernel, by row slabs
    from libertem_gpu.kernels import com as com_op

    rows, cols = 23, 29
    y, x = np.mgrid[:rows, :cols].astype(np.float64)
    w = ((y - 11) ** 2 + (x - 14) ** 2 < 100) * (rng.random((rows, cols)) + 0.5)
    frames = random_data(rng, (11, rows, cols), np.dtype(dtype))
    applied = com_op.prepare("numpy", w, np.dtype(dtype), single=True)
    assert applied.kernel.__name__ == "_rows32"
    out = [np.zeros(11) for _ in range(3)]
    for r0, r1 in ((0, 7), (7, 8), (8, 23)):
        applied(frames[:, r0:r1], r0, *out)
    f = frames.astype(np.float64) * w
    want = [f.sum(axis=(1, 2)), (f * y).sum(axis=(1, 2)), (f * x).sum(axis=(1, 2))]
    for got, expected in zip(out, want, strict=True):
        scale = np.abs(frames.astype(np.float64)).sum(axis=(1, 2)).max() * max(rows, cols)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7 * scale)
    wide = com_op.prepare("numpy", w, np.dtype(np.int32), single=True)
    assert wide.kernel.__name__ != "_rows32"  # float32 does not hold 32-bit integers exactly
    assert not applied.adds_terms


@pytest.mark.parametrize(
    ("dtype", "gain", "swapped"),
    [
        ("uint16", True, False),
        ("float32", True, False),
        ("uint16", False, True),
        ("float32", False, False),
    ],
)
def test_com_strategies_add_pixel_terms(rng, dtype, gain, swapped):
    # terms at pixels inside and outside the weights, on rows the weights leave empty, in
    # unsorted order with a repeated pixel: added as each row or frame is read, by row slabs,
    # by the float32 kernel (weights with a gain map) and the run kernel (a binary disk, also
    # on integers in reversed byte order)
    from libertem_gpu.kernels import com as com_op

    rows, cols = 19, 27
    y, x = np.mgrid[:rows, :cols].astype(np.float64)
    w = ((y - 9) ** 2 + (x - 13) ** 2 < 30) * (rng.random((rows, cols)) + 0.5 if gain else 1.0)
    index = np.array([9 * cols + 13, 0, rows * cols - 1, 3 * cols + 26, 0, 17 * cols + 5])
    delta = rng.standard_normal((index.size, 3))
    terms = com_op.PixelTerms(index, delta)
    frames = random_data(rng, (9, rows, cols), np.dtype(dtype))
    applied = com_op.prepare("numpy", w, np.dtype(dtype), single=gain, terms=terms)
    assert applied.adds_terms
    assert applied.kernel.__name__ == ("_rows32" if gain else "_runs_with_terms")
    tiles = frames.byteswap() if swapped else frames
    out = [np.zeros(9) for _ in range(3)]
    for r0, r1 in ((0, 1), (1, 10), (10, 19)):
        applied(tiles[:, r0:r1], r0, *out, swapped=swapped)
    f = frames.astype(np.float64) * w
    at = frames.reshape(9, -1)[:, index].astype(np.float64) @ delta
    want = [
        f.sum(axis=(1, 2)) + at[:, 0],
        (f * y).sum(axis=(1, 2)) + at[:, 1],
        (f * x).sum(axis=(1, 2)) + at[:, 2],
    ]
    scale = np.abs(frames.astype(np.float64)).sum(axis=(1, 2)).max() * max(rows, cols)
    for got, expected in zip(out, want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7 * scale)
    with pytest.raises(ValueError, match="index"):
        com_op.PixelTerms(index, delta[:, :2])
