"""The Numba lattice fit's own helpers (the fit itself is checked against the NumPy reference in
``tests/disks/test_lattice.py``)."""

import numpy as np
import pytest

from libertem_gpu.kernels.lattice_fit import _median, _stable_order


@pytest.mark.parametrize("m", [0, 1, 2, 3, 5, 8, 17, 100, 1025])
def test_stable_order_equals_numpy_mergesort(m):
    # Few distinct keys, so that most have ties: a sort that is not stable fails here.
    keys = np.random.default_rng(m).integers(-3, 4, m).astype(np.int64)
    keys[::7] = np.iinfo(np.int64).max  # extreme keys sort like any other
    np.testing.assert_array_equal(_stable_order(keys), np.argsort(keys, kind="mergesort"))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10, 64, 101])
def test_median_equals_numpy(count):
    # Odd and even counts, ties, and values past ``count`` that must not count; bit for bit.
    rng = np.random.default_rng(count)
    values = np.round(rng.standard_normal(count + 5) * 8) / 4
    values[count:] = 1e9
    want = np.median(values[:count])
    assert _median(values, count) == want
    assert np.signbit(_median(values, count)) == np.signbit(want)


def test_median_of_nothing_or_nan_is_nan():
    values = np.array([1.0, np.nan, 3.0])
    assert np.isnan(_median(values, 0))
    assert np.isnan(_median(values, 3))
    assert _median(values, 1) == 1.0
