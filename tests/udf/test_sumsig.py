"""SumSigUDF against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import SumSigUDF
from tests.udf.builtin_cases import CASES, assert_nav, case_params, load_case


@pytest.mark.parametrize("case", case_params(CASES))
def test_sumsig_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    result = loaded.run(ctx, SumSigUDF())["intensity"]
    assert result.data.dtype == np.float64
    expected = loaded.selected.reshape(len(loaded.selected), -1).sum(axis=1)
    assert_nav(result, expected, loaded, rtol=1e-12)
