import sys

import numpy as np
import pytest

from libertem_gpu import host_memory


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "uint16", "bool", "complex64"])
def test_zeros_is_zero_filled(dtype):
    out = host_memory.zeros((3, 70_001), dtype)
    assert out.shape == (3, 70_001)
    assert out.dtype == np.dtype(dtype)
    assert out.flags.c_contiguous and out.flags.owndata
    assert not out.any()


def test_zeros_of_int_shape_and_structured_dtype():
    assert host_memory.zeros(5).shape == (5,)
    structured = host_memory.zeros(4, [("a", "f8"), ("b", "i4")])
    assert structured["a"].sum() == 0 and structured["b"].sum() == 0


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_zeros_writes_its_pages():
    # numpy.zeros of this size only reserves pages; host_memory.zeros makes them resident.
    nbytes = 64 * 2**20
    before = _resident_bytes()
    out = host_memory.zeros(nbytes // 8)
    assert _resident_bytes() - before > nbytes // 2
    del out
