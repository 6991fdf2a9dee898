"""Unsigned integers made float64 by an OR (``kernels/exact_float.py``)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from libertem_gpu.kernels.exact_float import TWO_52, two52_plus


@numba.njit(cache=False)
def _deviations(values, shift):
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        out[i] = two52_plus(values[i]) - (shift + TWO_52)
    return out


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_exact_deviations_over_the_whole_range(dtype, rng):
    info = np.iinfo(dtype)
    values = np.concatenate(
        [[info.min, 1, info.max - 1, info.max], rng.integers(0, info.max, 200, endpoint=True)]
    ).astype(dtype)
    for shift in (0.0, 7.0, -(2.0**31) + 1, 2.0**31 - 1, float(info.max)):
        want = values.astype(np.float64) - shift
        np.testing.assert_array_equal(_deviations(values, shift), want)
