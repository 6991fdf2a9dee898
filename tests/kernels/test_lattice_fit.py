"""The Numba lattice fit's own helpers (the fit itself is checked against the NumPy reference in
``tests/disks/test_lattice.py``)."""

import numpy as np
import pytest

from libertem_gpu.kernels.lattice_fit import _stable_order


@pytest.mark.parametrize("m", [0, 1, 2, 3, 5, 8, 17, 100, 1025])
def test_stable_order_equals_numpy_mergesort(m):
    # Few distinct keys, so that most have ties: a sort that is not stable fails here.
    keys = np.random.default_rng(m).integers(-3, 4, m).astype(np.int64)
    keys[::7] = np.iinfo(np.int64).max  # extreme keys sort like any other
    np.testing.assert_array_equal(_stable_order(keys), np.argsort(keys, kind="mergesort"))
