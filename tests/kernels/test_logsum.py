"""The ``logsum`` operation: every implementation against the NumPy reference (contract kit),
and the table the CPU reads for narrow integers against the logarithm it replaces."""

import numpy as np
import pytest

from libertem_gpu.kernels import logsum
from tests.kernels.kit import KernelContract, flat


class TestLogsumContract(KernelContract):
    op = "logsum"
    rtol = 1e-12

    def arguments(self, rng, tile):
        return (flat(tile), rng.standard_normal(tile[0].size) * 1000)

    def expected(self, args):
        return [args[1] + logsum.reference(args[0])]

    def outputs(self, args):
        return [args[1]]


@pytest.mark.parametrize("dtype", ["uint16", "int16", "uint8"])
def test_table_spans_the_whole_range(dtype):
    """Frames holding both ends of the type's range read the table's first and last entries."""
    info = np.iinfo(dtype)
    frames = np.array([[info.min, info.max, info.min + 1], [3, 3, 3]], dtype=dtype)
    out = np.zeros(3)
    logsum.cpu(frames, out)
    span = float(info.max) - float(info.min)
    np.testing.assert_allclose(out, [0.0, np.log(span + 1), np.log(2.0)], rtol=1e-15)


def test_minimum_is_per_frame(rng):
    """Each frame subtracts its own minimum (a constant offset of one frame changes nothing)."""
    frames = rng.integers(100, 200, (3, 50)).astype(np.float64)
    shifted = frames.copy()
    shifted[1] += 1e4
    a, b = np.zeros(50), np.zeros(50)
    logsum.cpu(frames, a)
    logsum.cpu(shifted, b)
    np.testing.assert_allclose(a, b, rtol=1e-13)
