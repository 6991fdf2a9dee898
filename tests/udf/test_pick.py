"""PickUDF: the frames selected by the roi."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import PickUDF
from tests.udf.builtin_cases import CASES, case_params, load_case


@pytest.mark.parametrize("case", case_params(CASES))
def test_pick_returns_the_selected_frames(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    result = loaded.run(ctx, PickUDF())["intensity"]
    expected = loaded.in_roi_native  # positions without data are not processed: blank frames
    assert result.kind == "single"
    assert result.raw_data.dtype == expected.dtype
    assert result.raw_data.shape == expected.shape
    np.testing.assert_array_equal(result.raw_data, expected)
    np.testing.assert_array_equal(result.data, expected)


def test_pick_one_frame(ctx, rng):
    data = rng.integers(0, 2**16, size=(5, 6, 13, 17)).astype(np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = np.zeros((5, 6), dtype=bool)
    roi[3, 4] = True
    result = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"]
    assert result.raw_data.shape == (1, 13, 17)
    np.testing.assert_array_equal(result.raw_data[0], data[3, 4])
