import numpy as np
import pytest

from libertem_gpu.corrections.repair import RepairDescriptor
from libertem_gpu.kernels import correct
from tests.kernels.kit import KernelContract, flat


def corrections_for(rng, sig, dtype):
    """Dark, gain and a repair descriptor for frames ``sig`` corrected into ``dtype``: a
    corner, an edge pixel and a 2-pixel cluster where the frame has room."""
    npix = int(np.prod(sig))
    dark = (rng.standard_normal(npix) * 30).astype(dtype)
    gain = (rng.random(npix) * 2 + 0.25).astype(dtype)
    picks = {(0, 0), (sig[0] - 1, sig[1] // 2), (sig[0] // 2, sig[1] - 1)}
    if sig[1] > 3:
        picks |= {(sig[0] // 2, 1), (sig[0] // 2, 2)}
    coords = np.array(sorted(picks)).T
    desc = RepairDescriptor(sig, coords, allow_empty=True)  # a 1x1 frame: nothing to repair from
    return dark, gain, desc.exclude_flat, desc.repair_flat, desc.repair_counts


class TestCorrectContract(KernelContract):
    op = "correct"
    rtol = 0.0  # every implementation gives the reference's bits

    def arguments(self, rng, tile):
        dtype = np.result_type(np.float32, tile.dtype)
        args = corrections_for(rng, tile.shape[1:], dtype)
        out = rng.standard_normal(flat(tile).shape).astype(dtype)  # overwritten
        return (flat(tile), *args, out)

    def expected(self, args):
        return [correct.reference(*args[:6])]

    def outputs(self, args):
        return [args[6]]


def test_patched_values_are_neighbour_means():
    rng = np.random.default_rng(5)
    tile = rng.integers(0, 4000, (3, 6 * 7)).astype(np.uint16)
    dark = np.zeros(42, np.float32)
    gain = np.ones(42, np.float32)
    coords = np.array([[0, 2, 2, 5], [0, 3, 4, 6]])  # corner, a horizontal pair, a corner
    d = RepairDescriptor((6, 7), coords)
    out = np.empty((3, 42), np.float32)
    correct.cpu(tile, dark, gain, d.exclude_flat, d.repair_flat, d.repair_counts, out)
    frames = tile.reshape(3, 6, 7).astype(np.float64)
    # (2, 3): its 8 neighbours less (2, 4), which is excluded too
    nb = [(1, 2), (1, 3), (1, 4), (2, 2), (3, 2), (3, 3), (3, 4)]
    want = np.mean([frames[:, r, c] for r, c in nb], axis=0)
    np.testing.assert_allclose(out.reshape(3, 6, 7)[:, 2, 3], want, rtol=1e-6)
    want_corner = np.mean([frames[:, 0, 1], frames[:, 1, 0], frames[:, 1, 1]], axis=0)
    np.testing.assert_allclose(out.reshape(3, 6, 7)[:, 0, 0], want_corner, rtol=1e-6)
    untouched = np.ones(42, bool)
    untouched[d.exclude_flat] = False
    np.testing.assert_array_equal(out[:, untouched], tile[:, untouched])


def test_float32_arithmetic_not_float64():
    # (x - d) * g rounded twice in float32 differs from one rounding of the float64 result
    # for some values: the kernel must do what the reference does
    x = np.array([[16777215, 3, 65535]], dtype=np.uint32).astype(np.uint32)
    dark = np.array([0.1, 0.3, 0.7], np.float64)
    gain = np.array([1.1, 3.3, 0.9], np.float64)
    empty = np.zeros(0, np.intp)
    out = np.empty((1, 3), np.float64)
    correct.cpu(x, dark, gain, empty, np.zeros((0, 8), np.intp), empty, out)
    np.testing.assert_array_equal(out, correct.reference(x, dark, gain, empty, [], empty))
    d32, g32 = dark.astype(np.float32), gain.astype(np.float32)
    out32 = np.empty((1, 3), np.float32)
    correct.cpu(x.astype(np.uint16), d32, g32, empty, np.zeros((0, 8), np.intp), empty, out32)
    np.testing.assert_array_equal(out32, (x.astype(np.uint16).astype(np.float32) - d32) * g32)


def test_bad_arguments():
    tile = np.zeros((2, 6), np.uint16)
    args = (np.zeros(6, np.float32), np.ones(6, np.float32))
    idx = (np.zeros(0, np.intp), np.zeros((0, 8), np.intp), np.zeros(0, np.intp))
    with pytest.raises(ValueError, match="shape"):
        correct.cpu(tile, *args, *idx, np.empty((2, 5), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        correct.cpu(tile, *args, *idx, np.empty((2, 6), np.float64))
