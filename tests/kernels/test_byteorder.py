"""Kernels that read big-endian integer tiles in stored byte order and swap while reading."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.kernels import extrema, spans, sum_frames, sum_sig

DTYPES = ["uint8", "uint16", "uint32"]


def _pair(rng, dtype, shape=(9, 13 * 17)):
    """A native tile and the same values stored big-endian, viewed as native (as the data path
    hands them over)."""
    native = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    stored = native.astype(np.dtype(dtype).newbyteorder(">")).view(dtype)
    return native, stored


@pytest.mark.parametrize("dtype", DTYPES)
def test_sums(rng, dtype):
    native, stored = _pair(rng, dtype)
    if dtype != "uint8":
        assert not np.array_equal(native, stored)
    for kernel, shape in ((sum_frames.cpu, (native.shape[1],)), (sum_sig.cpu, (len(native),))):
        want, got = np.zeros(shape), np.zeros(shape)
        kernel(native, want)
        kernel(stored, got, swap=True)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extrema(rng, dtype):
    native, stored = _pair(rng, dtype)
    for kernel, start in ((extrema.cpu_max, 0), (extrema.cpu_min, np.iinfo(dtype).max)):
        want = np.full(native.shape[1], start, dtype=dtype)
        got = want.copy()
        kernel(native, want)
        kernel(stored, got, swap=True)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("short", [False, True])
def test_mask_runs_and_com(rng, dtype, short, monkeypatch):
    monkeypatch.setattr(spans, "_SHORT_RUN", 10**9 if short else 0)
    native, stored = _pair(rng, dtype)
    yy, xx = np.mgrid[:13, :17]
    disk = (yy - 6) ** 2 + (xx - 8) ** 2 < 25
    runs = spans.encode(disk)
    want, got = np.zeros((9, 1)), np.zeros((9, 1))
    spans.masks_cpu(native, runs, want)
    spans.masks_cpu(stored, runs, got, swap=True)
    np.testing.assert_array_equal(got, want)
    want3 = [np.zeros(9) for _ in range(3)]
    got3 = [np.zeros(9) for _ in range(3)]
    spans.com_cpu(native.reshape(9, 13, 17), runs, 0, *want3)
    spans.com_cpu(stored.reshape(9, 13, 17), runs, 0, *got3, swap=True)
    for g, w in zip(got3, want3, strict=True):
        np.testing.assert_array_equal(g, w)


def test_swap_refused_for_floats(rng):
    tile = rng.random((3, 10))
    with pytest.raises(TypeError, match="unsigned integer"):
        sum_frames.cpu(tile, np.zeros(10), swap=True)
