"""SumUDF against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import SumUDF
from libertem_gpu.errors import ShapeMismatchError
from tests.udf.builtin_cases import CASES, case_params, load_case


@pytest.mark.parametrize("case", case_params(CASES))
def test_sum_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    result = loaded.run(ctx, SumUDF())["intensity"]
    expected = loaded.selected.sum(axis=0)
    assert result.data.dtype == np.float64
    assert result.data.shape == case.sig
    np.testing.assert_allclose(result.data, expected, rtol=1e-12)
    np.testing.assert_array_equal(result.raw_data, result.data)


def test_sum_of_integers_is_exact_beyond_float32(inline_ctx):
    # 2**24 + 1 is not a float32: LiberTEM's float32 sum would lose the 1.
    data = np.full((2, 3, 4, 5), 2**24 // 5, dtype=np.uint32)
    data[0, 0] += 1
    res = inline_ctx.run_udf(dataset=inline_ctx.load("memory", data=data), udf=SumUDF())
    assert res["intensity"].data[0, 0] == 6 * (2**24 // 5) + 1


def test_empty_roi_gives_zeros(inline_ctx, rng):
    data = rng.integers(0, 100, size=(3, 4, 5, 6)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(dataset=ds, udf=SumUDF(), roi=np.zeros((3, 4), dtype=bool))
    np.testing.assert_array_equal(res["intensity"].data, np.zeros((5, 6)))


def test_roi_of_wrong_shape_is_refused(inline_ctx, rng):
    data = rng.integers(0, 100, size=(3, 4, 5, 6)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data)
    with pytest.raises(ShapeMismatchError, match=r"roi has shape \(4, 3\).*\(3, 4\)"):
        inline_ctx.run_udf(dataset=ds, udf=SumUDF(), roi=np.ones((4, 3), dtype=bool))
