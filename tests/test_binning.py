"""Binning detector pixels: the sums of blocks against NumPy on random data of every dtype,
odd frames (edge pixels left out), 1-D and 3-D frames, the widened types, and bad factors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.binning import FrameBinner, NavBinner, binned_dtype
from libertem_gpu.errors import InvalidParameterError
from tests.conftest import random_data


def _reference(frames, factors):
    """Sum each block with a loop over its offsets, in int64 / float64 / complex128."""
    n, *sig = frames.shape
    out_shape = [s // f for s, f in zip(sig, factors, strict=True)]
    wide = np.result_type(frames.dtype, np.int64) if frames.dtype.kind in "uib" else None
    acc = np.zeros((n, *out_shape), dtype=wide or np.result_type(frames.dtype, np.float64))
    for offsets in np.ndindex(*factors):
        index = tuple(
            slice(o, o + m * f, f) for o, m, f in zip(offsets, out_shape, factors, strict=True)
        )
        acc += frames[(slice(None), *index)]
    return acc


@pytest.mark.parametrize(
    "dtype", ["uint8", "uint16", ">u2", "int8", "int16", "uint32", "int64", "float32", "bool"]
)
@pytest.mark.parametrize(("sig", "factors"), [((13, 17), (2, 3)), ((12, 16), 4), ((9,), 2)])
def test_sums_equal_numpy(rng, dtype, sig, factors):
    frames = random_data(rng, (5, *sig), np.dtype(dtype).newbyteorder("="))
    binner = FrameBinner(sig, factors, frames.dtype)
    got = binner(frames)
    want = _reference(frames, binner.factors)
    assert got.dtype == binner.dtype and got.shape == (5, *binner.sig_shape)
    if got.dtype.kind == "f":  # float32 sums, against float64 ones
        scale = float(np.abs(frames).max()) * np.prod(binner.factors)  # float32 cancellation
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale)
    else:
        assert (got.astype(want.dtype) == want).all()  # nothing wrapped in the narrower type
    sig_kept = [s - d for s, d in zip(sig, binner.dropped, strict=True)]
    assert all(k % f == 0 for k, f in zip(sig_kept, binner.factors, strict=True))


def test_three_signal_axes_and_extreme_values():
    frames = np.full((2, 4, 6, 5), np.iinfo(np.uint16).max, np.uint16)
    binner = FrameBinner((4, 6, 5), (2, 3, 5), frames.dtype)
    assert binner.sig_shape == (2, 2, 1) and binner.dropped == (0, 0, 0)
    np.testing.assert_array_equal(binner(frames), np.full((2, 2, 2, 1), 65535 * 30, np.uint32))


@pytest.mark.parametrize(
    ("dtype", "count", "want"),
    [
        ("uint8", 4, "uint16"),
        ("uint8", 258, "uint32"),
        ("uint16", 4, "uint32"),
        ("int16", 4, "int32"),
        ("uint32", 2, "uint64"),
        ("int64", 4, "int64"),
        ("bool", 16, "uint8"),
        ("bool", 256, "uint16"),
        ("float32", 16, "float32"),
        ("complex64", 4, "complex64"),
        ("uint16", 1, "uint16"),
    ],
)
def test_binned_dtype(dtype, count, want):
    assert binned_dtype(np.dtype(dtype), count) == np.dtype(want)


@pytest.mark.parametrize("factors", [0, (2,), (2, 2, 2), (2, 20), 2.5, True, (2, "3")])
def test_bad_factors_are_refused(factors):
    with pytest.raises(InvalidParameterError, match="bin_sig"):
        FrameBinner((13, 17), factors, np.dtype(np.uint16))


def _nav_reference(scan, factors):
    """Each block of scan positions summed with a loop over its offsets (int64 / float64)."""
    nav = scan.shape[: len(factors)]
    moved = np.moveaxis(scan, list(range(len(factors))), list(range(-len(factors), 0)))
    flat = moved.reshape(-1, *nav)
    return np.moveaxis(_reference(flat, factors), 0, -1).reshape(
        *(n // f for n, f in zip(nav, factors, strict=True)), *scan.shape[len(factors) :]
    )


@pytest.mark.parametrize(
    ("nav", "factors", "step"), [((7, 5), (2, 2), 4), ((6, 9), (3, 2), 7), ((11,), (3,), 2)]
)
def test_nav_binner_against_loops(rng, nav, factors, step):
    """Frames arrive in tiles of ``step`` that do not divide the rows; edge positions that fill
    no block are left out; every row of blocks is written once, in order."""
    scan = random_data(rng, (*nav, 3, 4), np.uint16)
    binner = NavBinner(nav, factors, (3, 4), np.dtype(np.uint32))
    out = np.zeros((int(np.prod(binner.nav_shape)), 3, 4), np.uint32)
    starts = []
    flat = scan.reshape(-1, 3, 4)
    for a in range(0, len(flat), step):
        frames = np.arange(a, min(a + step, len(flat)))
        for start, rows in binner.add(frames, flat[frames]):
            starts.append(start)
            out[start : start + len(rows)] = rows
    for start, rows in binner.finish():
        starts.append(start)
        out[start : start + len(rows)] = rows
    assert starts == sorted(set(starts))
    want = _nav_reference(scan, factors)
    np.testing.assert_array_equal(out.reshape(want.shape), want)
    assert binner.dropped == tuple(n % f for n, f in zip(nav, factors, strict=True))


def test_export_bins_the_scan(inline_ctx, rng, tmp_path):
    data = random_data(rng, (7, 9, 6, 6), np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    with pytest.warns(UserWarning, match="last"):
        out = inline_ctx.export_dataset(
            ds, tmp_path / "b.npy", bin_nav=(2, 4), bin_sig=2, crop_nav=[(1, None), None]
        )
    back = np.load(out)
    want = _nav_reference(data[1:7], (2, 4)).reshape(3, 2, 3, 2, 3, 2).sum(axis=(3, 5))
    assert back.dtype == np.uint32  # 32 uint16 values summed
    np.testing.assert_array_equal(back, want)
    with pytest.raises(InvalidParameterError, match="bin_nav"):
        inline_ctx.export_dataset(ds, tmp_path / "x.npy", bin_nav=(2, 10))
