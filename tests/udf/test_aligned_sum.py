"""AlignedSumUDF against a NumPy reference written from its definition: random data and shifts
(off the frame too), the shared built-in cases (1-D to 3-D frames and scans, rois, sync
offsets, several partitions, big-endian files), every executor; errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import AlignedSumUDF, Context
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from tests.udf.builtin_cases import CASES, case_params, load_case
from tests.udf.test_mask_shifts import random_shifts


def aligned_reference(frames, shifts):
    """Each frame's pixel ``p`` added at ``p - shift`` where that lies on the frame."""
    total = np.zeros(frames.shape[1:])
    count = np.zeros(frames.shape[1:])
    for frame, shift in zip(frames, shifts, strict=True):
        for p in np.ndindex(frame.shape):
            q = tuple(int(a) - int(d) for a, d in zip(p, shift, strict=True))
            if all(0 <= c < n for c, n in zip(q, frame.shape, strict=True)):
                total[q] += frame[p]
                count[q] += 1
    return total, count


# Every other case and a 1-D frame: scans of 1 to 3 dimensions, frames of 1 to 3, rois, sync
# offsets, big-endian files, every dtype kind.
ALIGNED_CASES = [*CASES[::2], CASES[5]]


@pytest.mark.parametrize("case", case_params(ALIGNED_CASES))
def test_aligned_sum_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    shifts = random_shifts(rng, case.nav, case.sig)
    res = loaded.run(ctx, AlignedSumUDF(shifts=shifts))
    flat = shifts.reshape(-1, len(case.sig))[loaded.processed]
    total, count = aligned_reference(loaded.selected, flat)
    scale = max(1.0, float(np.abs(total).max()))
    np.testing.assert_allclose(res["intensity"].data, total, rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_array_equal(res["count"].data, count)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    np.testing.assert_allclose(res["mean"].data, mean, rtol=1e-12, atol=1e-12 * scale)


def test_constant_shift_and_the_plain_sum(rng):
    data = rng.integers(0, 1000, (3, 4, 9, 8)).astype(np.uint16)
    ctx = Context("inline")
    ds = ctx.load("memory", data=data, num_partitions=2)
    zero = ctx.run_udf(dataset=ds, udf=AlignedSumUDF(shifts=(0, 0)))
    np.testing.assert_array_equal(zero["intensity"].data, data.sum(axis=(0, 1)))
    assert (zero["count"].data == 12).all()
    moved = ctx.run_udf(dataset=ds, udf=AlignedSumUDF(shifts=(2, -3)))
    want = np.zeros((9, 8))
    want[:7, 3:] = data.sum(axis=(0, 1))[2:, :5]
    np.testing.assert_array_equal(moved["intensity"].data, want)
    assert np.isnan(moved["mean"].data[8, 0])


def test_bad_shifts_are_refused():
    ctx = Context("inline")
    ds = ctx.load("memory", data=np.ones((3, 4, 6, 6)))
    with pytest.raises(ShapeMismatchError, match="3 values per shift"):
        ctx.run_udf(dataset=ds, udf=AlignedSumUDF(shifts=(1, 2, 3)))
    with pytest.raises(ShapeMismatchError, match="12 positions"):
        ctx.run_udf(dataset=ds, udf=AlignedSumUDF(shifts=np.zeros((4, 2))))
    with pytest.raises(InvalidParameterError, match="integers"):
        AlignedSumUDF(shifts=["a", "b"])
