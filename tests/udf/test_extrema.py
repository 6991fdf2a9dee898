"""MaxUDF and MinUDF against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import MaxUDF, MinUDF
from libertem_gpu.io.tiles import TilingScheme
from tests.udf.builtin_cases import CASES, case_params, load_case


@pytest.mark.parametrize("case", case_params(CASES))
def test_extrema_match_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    res_max, res_min = loaded.run(ctx, [MaxUDF(), MinUDF()])
    frames = loaded.selected_native
    for res, expected in ((res_max, frames.max(axis=0)), (res_min, frames.min(axis=0))):
        got = res["intensity"].data
        assert got.dtype == frames.dtype  # integers stay exact in their own dtype
        assert got.shape == case.sig
        np.testing.assert_array_equal(got, expected)


def test_nan_propagates(inline_ctx, rng):
    data = rng.standard_normal((4, 5, 6, 7)).astype(np.float32)
    data[2, 3, 1, 2] = np.nan
    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    res_max, res_min = inline_ctx.run_udf(
        dataset=ds, udf=[MaxUDF(), MinUDF()], tiling=TilingScheme(depth=3)
    )
    np.testing.assert_array_equal(res_max["intensity"].data, data.max(axis=(0, 1)))
    np.testing.assert_array_equal(res_min["intensity"].data, data.min(axis=(0, 1)))
    assert np.isnan(res_max["intensity"].data[1, 2])


def test_empty_roi_gives_identity(inline_ctx, rng):
    data = rng.integers(0, 100, size=(3, 4, 5, 6)).astype(np.int32)
    ds = inline_ctx.load("memory", data=data)
    roi = np.zeros((3, 4), dtype=bool)
    res_max, res_min = inline_ctx.run_udf(dataset=ds, udf=[MaxUDF(), MinUDF()], roi=roi)
    assert (res_max["intensity"].data == np.iinfo(np.int32).min).all()
    assert (res_min["intensity"].data == np.iinfo(np.int32).max).all()
