"""The vpmaddwd intrinsics of ``kernels/pairs16`` against NumPy, lane by lane."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from libertem_gpu.kernels.cpu_target import target_has
from libertem_gpu.kernels.pairs16 import PAIR_ORDER, in_pixel_order, madd_pair, madd_pairs4

pytestmark = pytest.mark.skipif(not target_has("avx2"), reason="vpmaddwd needs AVX2")


@numba.njit(cache=False)
def _fill(a, first, pairs, single, lanes):  # type: ignore[no-untyped-def]
    for c in range(0, a.shape[1], 16):
        if pairs == 4:
            madd_pairs4(a, first, single, c, lanes, c)
        else:
            madd_pair(a, first, single, c, lanes, c)


@numba.njit(cache=False)
def _in_pixel_order(lanes, end):  # type: ignore[no-untyped-def]
    for row in range(lanes.shape[0]):
        in_pixel_order(lanes[row], end)


def _contributions(frames: np.ndarray) -> np.ndarray:
    """What ``frames``, taken two at a time, add to each pixel's three lanes (modulo 2**32)."""
    s = frames.astype(np.int64)
    if frames.dtype == np.uint16:
        s -= 32768
    squares = [(s[i : i + 2] ** 2).sum(axis=0) for i in range(0, len(s), 2)]  # each <= 2**31
    return np.stack([sum(squares), sum(q >> 16 for q in squares), s.sum(axis=0)]) % 2**32


def _slot_order(pixels: np.ndarray) -> np.ndarray:
    """Per-pixel rows rearranged as the lanes hold them: lane k of each run of 16 holds
    pixel PAIR_ORDER[k]."""
    runs = pixels.reshape(pixels.shape[0], -1, 16)
    return runs[:, :, PAIR_ORDER].reshape(pixels.shape)


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
@pytest.mark.parametrize(("pairs", "single"), [(4, False), (1, False), (1, True)])
def test_lanes_hold_the_pairs_sums(dtype, pairs, single):
    # 48 pixels (three calls), 8 or 2 frames (or 1: the second of the pair not read), values at
    # both ends of the range among random ones: both values -32768 make a pair's squares sum
    # 2**31, and four such sums wrap the 32-bit lane in one call
    info = np.iinfo(dtype)
    rng = np.random.default_rng(5)
    n_frames = 1 if single else 2 * pairs
    frames = rng.integers(info.min, info.max, (n_frames + 1, 48), endpoint=True).astype(dtype)
    frames[:, :4] = info.min
    frames[:, 20:24] = info.max
    frames[::2, 40] = info.min
    frames.flags.writeable = False
    start = rng.integers(0, 2**32, (3, 48)).astype(np.uint32)
    lanes = start.copy()
    _fill(frames, 0, pairs, single, lanes)
    used = frames[:n_frames]
    if single:  # the second frame is not read, and counts as zero (after the sign flip)
        zero = 32768 if dtype == "uint16" else 0
        used = np.concatenate([used, np.full((1, 48), zero, dtype=dtype)])
    want = (start.astype(np.int64) + _slot_order(_contributions(used))) % 2**32
    np.testing.assert_array_equal(lanes, want.astype(np.uint32))
    _in_pixel_order(lanes, 48)
    np.testing.assert_array_equal(_slot_order(lanes), want.astype(np.uint32))
