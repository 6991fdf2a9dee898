"""Wrapping unsigned 32-bit arithmetic inside Numba kernels (``kernels/lanes32.py``)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from libertem_gpu.kernels.lanes32 import (
    add_u32,
    as_unsigned_biased,
    below_2_31_as_float64,
    high_half_u32,
    square_u32,
    sub_u32,
    times_2_16_u32,
    u32,
)


@numba.njit(cache=False)
def _squares_and_halves(values):
    squares = np.empty(values.shape[0], np.uint32)
    halves = np.empty(values.shape[0], np.uint32)
    widened = np.empty(values.shape[0], np.uint32)
    for i in range(values.shape[0]):
        squares[i] = square_u32(values[i])
        halves[i] = high_half_u32(squares[i])
        widened[i] = u32(values[i])
    return squares, halves, widened


@numba.njit(cache=False)
def _wrapping_sum(values):
    total = np.uint32(0)
    for i in range(values.shape[0]):
        total = add_u32(total, values[i])
    return total


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_squares_exact_over_the_whole_range(dtype, rng):
    info = np.iinfo(dtype)
    values = np.concatenate(
        [[0, 1, info.max - 1, info.max], rng.integers(0, info.max, 300, endpoint=True)]
    ).astype(dtype)
    squares, halves, widened = _squares_and_halves(values)
    want = values.astype(np.uint64) ** 2
    np.testing.assert_array_equal(squares, want)
    np.testing.assert_array_equal(halves, want >> 16)
    np.testing.assert_array_equal(widened, values)
    assert squares.dtype == halves.dtype == widened.dtype == np.uint32


def test_sums_wrap_modulo_2_32(rng):
    values = rng.integers(2**31, 2**32, 1000, dtype=np.uint64)
    got = _wrapping_sum(values.astype(np.uint32))
    assert int(got) == int(values.sum()) % 2**32
    assert int(got) != int(values.sum())  # it did wrap


@numba.njit(cache=False)
def _differences_and_floats(a, b, small):
    diff = np.empty(a.shape[0], np.uint32)
    up = np.empty(a.shape[0], np.uint32)
    floats = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        diff[i] = sub_u32(a[i], b[i])
        up[i] = times_2_16_u32(a[i])
        floats[i] = below_2_31_as_float64(small[i])
    return diff, up, floats


def test_differences_shifts_and_conversions(rng):
    a = rng.integers(0, 2**32, 500, dtype=np.uint64)
    b = rng.integers(0, 2**32, 500, dtype=np.uint64)
    a[:3] = [0, 1, 2**32 - 1]
    b[:3] = [1, 2**32 - 1, 2**32 - 1]
    small = (b >> 1).astype(np.uint32)
    diff, up, floats = _differences_and_floats(a.astype(np.uint32), b.astype(np.uint32), small)
    np.testing.assert_array_equal(diff, (a - b) % 2**32)  # wraps below zero
    np.testing.assert_array_equal(up, (a << 16) % 2**32)
    np.testing.assert_array_equal(floats, (b >> 1).astype(np.float64))  # up to 2**31 - 1


@pytest.mark.parametrize("value", [np.uint32(3), np.int16(3), np.float32(3)])
def test_squares_only_of_narrow_unsigned_integers(value):
    # a uint32's square would not fit its lane, a signed value's would be zero-extended wrong
    @numba.njit(cache=False)
    def square(x):
        return square_u32(x)

    with pytest.raises(numba.core.errors.TypingError):
        square(value)


@numba.njit(cache=False)
def _biased(values):
    out = np.empty(values.shape[0], np.uint32)
    for i in range(values.shape[0]):
        out[i] = u32(as_unsigned_biased(values[i]))
    return out


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint8", "uint16"])
def test_signed_values_biased_by_half_their_range(dtype, rng):
    info = np.iinfo(dtype)
    values = np.concatenate(
        [[info.min, -1 if info.min else 0, 0, 1, info.max], rng.integers(info.min, info.max, 300)]
    ).astype(dtype)
    bias = 0 if info.min == 0 else 2 ** (8 * values.itemsize - 1)
    np.testing.assert_array_equal(_biased(values), values.astype(np.int64) + bias)
