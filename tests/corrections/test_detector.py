"""Finding hot and dead pixels from a scan's sum and standard deviation, and correcting frames
in memory with LiberTEM's ``correct``."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import CorrectionSet, StdDevUDF, SumUDF
from libertem_gpu.corrections import RepairDescriptor, RepairValueError, correct
from libertem_gpu.corrections.detector import detect_bad_pixels
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from tests.corrections.reference import corrected


def scan_with_bad_pixels(rng):
    """Poisson frames with a bright disk, a hot pixel in the dark field, a hot pixel inside
    the disk, a noisy (flickering) pixel and a dead one in the disk."""
    yy, xx = np.mgrid[:24, :26]
    beam = 20.0 + 380.0 / (1 + np.exp(2 * (np.hypot(yy - 12, xx - 13) - 6)))  # disk, PSF-blurred
    frames = rng.poisson(beam, size=(30, 24, 26)).astype(np.uint16)
    frames[:, 2, 3] += 300  # hot in the dark field
    frames[:, 12, 12] += 500  # hot in the beam
    frames[::2, 20, 5] += 200  # flickers: its mean is high, its std higher
    frames[:, 10, 15] = 0  # dead in the beam
    return frames, {(2, 3), (12, 12), (20, 5), (10, 15)}


def test_detect_from_a_run(inline_ctx, rng):
    frames, bad = scan_with_bad_pixels(rng)
    ds = inline_ctx.load("memory", data=frames.reshape(5, 6, 24, 26))
    total, std = inline_ctx.run_udf(ds, [SumUDF(), StdDevUDF()])
    coords = detect_bad_pixels(total["intensity"].data, std["std"].data, threshold=6)
    assert set(map(tuple, coords.T.tolist())) == bad
    hot_only = detect_bad_pixels(total["intensity"].data, dead=False, threshold=6)
    assert (10, 15) not in set(map(tuple, hot_only.T.tolist()))
    mask = detect_bad_pixels(total["intensity"].data, std["std"].data, threshold=6, as_mask=True)
    np.testing.assert_array_equal(np.array(np.nonzero(mask)), coords)
    # the list goes straight into a CorrectionSet; the patched frames hold no outlier
    corr = CorrectionSet(excluded_pixels=coords)
    fixed = inline_ctx.run_udf(ds, SumUDF(), corrections=corr)["intensity"].data
    assert detect_bad_pixels(fixed, threshold=6).shape == (2, 0)


def test_detect_errors():
    with pytest.raises(InvalidParameterError, match="threshold: expected a positive"):
        detect_bad_pixels(np.ones((4, 4)), threshold=0)
    with pytest.raises(InvalidParameterError, match="sum_frame: expected finite"):
        detect_bad_pixels(np.full((4, 4), np.nan))
    with pytest.raises(ShapeMismatchError, match="std_frame: expected the shape"):
        detect_bad_pixels(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(InvalidParameterError, match="sum_frame: expected a real-valued"):
        detect_bad_pixels("sum.npy")
    assert detect_bad_pixels(np.ones((4, 4))).shape == (2, 0)  # flat: nothing stands out


def test_correct_in_memory(rng):
    frames = rng.integers(0, 3000, (2, 3, 7, 8)).astype(np.uint16)
    dark = rng.random((7, 8)) * 20
    gain = rng.random((7, 8)) + 0.5
    excluded = np.zeros((7, 8), bool)
    excluded[0, 7] = excluded[3, 3] = excluded[3, 4] = True
    coords = np.array(np.nonzero(excluded))
    want = corrected(frames.reshape(6, 7, 8), dark, gain, excluded).reshape(frames.shape)
    got = correct(frames, dark, gain, excluded_pixels=coords)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    buf = frames.astype(np.float32)
    desc = RepairDescriptor((7, 8), coords)
    assert correct(buf, dark, gain, repair_descriptor=desc, inplace=True) is buf
    np.testing.assert_array_equal(buf, want)
    with pytest.raises(InvalidParameterError, match="in-place"):
        correct(frames, dark, inplace=True)
    with pytest.raises(InvalidParameterError, match="sig_shape"):
        correct(frames)
    with pytest.raises(ShapeMismatchError, match="buffer: expected frames of shape"):
        correct(frames, np.zeros((8, 7)))
    corner_block = np.array([[0, 0, 1, 1], [0, 1, 0, 1]])
    corner_block = np.concatenate([corner_block, [[0, 1, 2, 2, 2], [2, 2, 0, 1, 2]]], axis=1)
    with pytest.raises(RepairValueError):
        correct(frames, sig_shape=(7, 8), excluded_pixels=corner_block)
