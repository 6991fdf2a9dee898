"""WeightedSumUDF against NumPy on the shared built-in cases (scans and frames of 1 to 3
dimensions, rois, sync offsets, row slabs, several partitions, big-endian files) on every
executor; weight layouts and errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context, WeightedSumUDF
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError, UnsupportedDTypeError
from tests.udf.builtin_cases import CASES, case_params, load_case


@pytest.mark.parametrize("case", case_params(CASES))
def test_weighted_sums_match_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    weights = rng.standard_normal((*case.nav, 3))
    res = loaded.run(ctx, WeightedSumUDF(weights))
    flat = weights.reshape(-1, 3)[loaded.processed]
    want = np.einsum("pj,p...->j...", flat, loaded.selected)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(res["intensity"].data, want, rtol=1e-12, atol=1e-12 * scale)


def test_one_map_gives_one_frame_and_a_flat_table_fits(rng):
    data = rng.random((3, 4, 5, 6))
    ctx = Context("inline")
    ds = ctx.load("memory", data=data, num_partitions=2)
    weights = rng.random((3, 4))
    one = ctx.run_udf(dataset=ds, udf=WeightedSumUDF(weights))["intensity"].data
    assert one.shape == (5, 6)
    np.testing.assert_allclose(one, np.einsum("ij,ijab->ab", weights, data), rtol=1e-12)
    flat = ctx.run_udf(dataset=ds, udf=WeightedSumUDF(weights.reshape(12, 1)))["intensity"]
    np.testing.assert_allclose(flat.data[0], one, rtol=1e-12)


def test_bad_weights_are_refused():
    ctx = Context("inline")
    ds = ctx.load("memory", data=np.ones((3, 4, 5, 6)))
    with pytest.raises(ShapeMismatchError, match="do not fit the scan"):
        ctx.run_udf(dataset=ds, udf=WeightedSumUDF(np.ones((4, 3))))
    with pytest.raises(InvalidParameterError, match="finite"):
        WeightedSumUDF(np.full((3, 4), np.nan))
    with pytest.raises(InvalidParameterError, match="real numbers"):
        WeightedSumUDF(np.ones((3, 4), complex))
    complex_ds = ctx.load("memory", data=np.ones((3, 4, 5, 6), complex))
    with pytest.raises(UnsupportedDTypeError, match="weighted_frame_sum kernels read real"):
        ctx.run_udf(dataset=complex_ds, udf=WeightedSumUDF(np.ones((3, 4))))


def test_squared_sums_weigh_the_squares(inline_ctx, rng):
    """``squared=True``: ``sum_p w[p] frame_p**2``, exact in float64 for integers."""
    data = rng.integers(0, 60000, (3, 4, 5, 6)).astype(np.uint16)
    weights = rng.standard_normal((3, 4, 2))
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    got = inline_ctx.run_udf(dataset=ds, udf=WeightedSumUDF(weights, squared=True))
    squares = data.astype(np.float64).reshape(12, -1) ** 2
    want = weights.reshape(12, 2).T @ squares
    np.testing.assert_allclose(got["intensity"].data.reshape(2, -1), want, rtol=1e-12)
