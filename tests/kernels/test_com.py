import numpy as np
import pytest

from libertem_gpu.kernels import com


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32", "float64", "bool"])
def test_com_whole_and_slabs(dtype):
    rng = np.random.default_rng(16)
    big = rng.integers(0, 1000, size=(14, 13, 17)).astype(dtype)
    frames = big[::2]  # strided frames
    w = com.disk_weights((13, 17), 6.2, 8.1, 5.5, ri=1.0)
    ref = com.reference(frames, w)
    whole = [np.zeros(7) for _ in range(3)]
    com.cpu(frames, w, 0, *whole)
    slabs = [np.zeros(7) for _ in range(3)]
    com.cpu(frames[:, :5], w, 0, *slabs)  # two row slabs add up to the whole frame
    com.cpu(frames[:, 5:], w, 5, *slabs)
    for got_w, got_s, r in zip(whole, slabs, ref, strict=True):
        np.testing.assert_allclose(got_w, r, rtol=1e-12)
        np.testing.assert_allclose(got_s, r, rtol=1e-12)


def test_com_column_slab_view_and_finalize():
    rng = np.random.default_rng(17)
    frames = rng.standard_normal((5, 13, 30))
    sub = frames[:, :, 4:21]  # rows strided within a frame
    w = rng.random((13, 17))
    out = [np.zeros(5) for _ in range(3)]
    com.cpu(sub, w, 0, *out)
    for got, r in zip(out, com.reference(sub, w), strict=True):
        np.testing.assert_allclose(got, r, rtol=1e-10)
    cy, cx = com.finalize(np.array([0.0, 2.0]), np.array([0.0, 3.0]), np.array([1.0, 5.0]))
    assert np.isnan(cy[0]) and np.isnan(cx[0])
    assert cy[1] == 1.5 and cx[1] == 2.5


def test_com_centre_of_spot():
    frames = np.zeros((1, 13, 17), np.uint16)
    frames[0, 4, 11] = 7
    w = com.disk_weights((13, 17), 6, 8, None)
    assert w.all()
    out = [np.zeros(1) for _ in range(3)]
    com.cpu(frames, w, 0, *out)
    assert com.finalize(*out) == (4.0, 11.0)
