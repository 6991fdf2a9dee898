"""Tiles in the element type each UDF asked for (``kernels/convert.py``)."""

from __future__ import annotations

import numpy as np

from libertem_gpu.kernels.convert import TileConverter


class _Dark:
    """A dark frame of 1.5 everywhere, as the converter asks for correction arrays."""

    def arrays(self, dtype, sig_rows):
        npix = 6
        return (
            np.full(npix, 1.5, dtype),
            np.ones(npix, dtype),
            np.zeros(0, np.int64),
            np.zeros((0, 0), np.int64),
            np.zeros(0, np.int64),
        )


def test_converted_copies_reuse_one_buffer_per_type(rng):
    # One buffer per type, reused from tile to tile (a fresh one page-faults on every tile);
    # the same tile asked twice is converted once.
    conv = TileConverter(np)
    seen = set()
    for _ in range(3):
        tile = rng.integers(0, 4096, (4, 2, 3)).astype(np.uint16)
        got = conv.get(tile, np.dtype(np.float32))
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, tile.astype(np.float32))
        assert conv.get(tile, np.dtype(np.float32)) is got
        seen.add(got.__array_interface__["data"][0])
    assert len(seen) == 1
    smaller = rng.integers(0, 4096, (2, 2, 3)).astype(np.uint16)
    np.testing.assert_array_equal(conv.get(smaller, np.dtype(np.float64)), smaller)
    assert conv.get(smaller, np.dtype(np.uint16)) is smaller  # its own type: the tile itself


def test_strided_tiles_convert(rng):
    frames = rng.integers(0, 4096, (5, 2, 4)).astype(np.uint16)[:, :, 1:]  # frame gaps
    conv = TileConverter(np)
    np.testing.assert_array_equal(conv.get(frames, np.dtype(np.float32)), frames)


def test_corrected_and_plain_copies_of_one_type_do_not_share_a_buffer(rng):
    # A UDF that folds the corrections in (CoMUDF) and one that wants corrected frames, both
    # float32, in one run: two copies of the same tile, neither overwriting the other.
    conv = TileConverter(np, corrections=_Dark(), backend="numpy")
    tile = rng.integers(2, 4096, (4, 2, 3)).astype(np.uint16)
    plain = conv.get(tile, np.dtype(np.float32), corrected=False)
    corrected = conv.get(tile, np.dtype(np.float32), corrected=True)
    np.testing.assert_array_equal(plain, tile.astype(np.float32))
    np.testing.assert_allclose(corrected, tile.astype(np.float32) - 1.5)
