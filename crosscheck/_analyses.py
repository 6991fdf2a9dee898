"""Shared helpers of the cross-checks of the analyses of issue 18: run a UDF on the same data
with LiberTEM 0.16 and with us, and compare within float32 tolerance."""

from __future__ import annotations

import numpy as np


def run_both(lt_ctx, ours_ctx, data, lt_udf, our_udf, key, roi=None):
    """``(ours, LiberTEM's)`` result ``key`` as arrays, on the same data in 3 partitions."""
    from libertem.io.dataset.memory import MemoryDataSet

    lt_res = lt_ctx.run_udf(MemoryDataSet(data=data, num_partitions=3), lt_udf, roi=roi)
    ds = ours_ctx.load("memory", data=data, num_partitions=3)
    res = ours_ctx.run_udf(ds, our_udf, roi=roi)
    return np.asarray(res[key].data), np.asarray(lt_res[key].data)


def assert_float32_close(ours, theirs, rtol=2e-6):
    """Equal shapes, NaN at the same places, values within ``rtol`` of the largest magnitude
    (LiberTEM computes in float32)."""
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    scale = float(np.nanmax(np.abs(theirs)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * scale, equal_nan=True)
