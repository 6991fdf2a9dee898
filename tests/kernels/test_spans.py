"""Run-length encoded masks: mask sums and centre-of-mass sums equal the dense references."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.kernels import com, spans
from tests.kernels.kit import KernelContract, flat

DTYPES = ["uint8", "uint16", "uint32", "int32", "float32", "float64", "bool"]


def _masks(rows=13, cols=17):
    yy, xx = np.mgrid[:rows, :cols]
    r2 = (yy - 6) ** 2 + (xx - 8) ** 2
    disk = r2 < 25
    ring = (r2 < 36) & ~disk
    return disk, ring


def _tile(rng, dtype, n=7, npix=13 * 17):
    if dtype == "bool":
        return rng.random((n, npix)) > 0.5
    values = rng.random((n, npix)) * 1000
    if np.dtype(dtype).kind == "i":
        values -= 500
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("run_len", ["long", "short"])
def test_mask_sums(rng, dtype, run_len, monkeypatch):
    # Both strategies (a loop per run, and a prefix sum for short runs) must agree.
    monkeypatch.setattr(spans, "_SHORT_RUN", 0 if run_len == "long" else 10**9)
    disk, ring = _masks()
    stack = np.stack([disk, ring * 2.5, np.eye(13, 17) * -3, np.ones((13, 17))])
    enc = spans.encode(stack, max_runs_per_pixel=1)
    tile = _tile(rng, dtype)
    out = np.full((7, 4), 1.5)
    spans.masks_cpu(tile, enc, out)
    expected = 1.5 + tile.astype(np.float64) @ stack.reshape(4, -1).T
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    np.testing.assert_allclose(spans.reference(tile, enc), expected - 1.5, rtol=1e-10)


def test_strided_tile(rng):
    disk, _ = _masks()
    big = _tile(rng, "uint16", n=14)
    enc = spans.encode(disk)
    out = np.zeros((7, 1))
    spans.masks_cpu(big[::2], enc, out)
    np.testing.assert_allclose(out[:, 0], big[::2].astype(float) @ disk.reshape(-1))


def test_encode_refuses_noisy_masks(rng):
    assert spans.encode(rng.random((3, 13, 17))) is None
    disk, _ = _masks()
    enc = spans.encode(disk)
    assert enc.is_binary and enc.num_masks == 1
    assert enc.mean_run > 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("r0", "r1"), [(0, 13), (0, 5), (5, 13)])
def test_com_sums_equal_dense_kernel(rng, dtype, r0, r1):
    disk, _ = _masks()
    enc = spans.encode(disk)
    tile3d = np.ascontiguousarray(_tile(rng, dtype).reshape(7, 13, 17)[:, r0:r1])
    got = [np.zeros(7) for _ in range(3)]
    want = [np.zeros(7) for _ in range(3)]
    spans.com_cpu(tile3d, enc, r0, *got)
    com.cpu(tile3d, disk.astype(np.float64), r0, *want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10)


def test_com_needs_one_binary_mask():
    disk, _ = _masks()
    with pytest.raises(ValueError, match="one binary mask"):
        spans.com_cpu(np.zeros((1, 13, 17)), spans.encode(disk * 2.0), 0, *np.zeros((3, 1)))


def test_float32_output(rng):
    disk, ring = _masks()
    enc = spans.encode(np.stack([disk, ring]))
    tile = _tile(rng, "uint16")
    out = np.zeros((7, 2), dtype=np.float32)
    spans.masks_cpu(tile, enc, out)
    expected = tile.astype(np.float64) @ np.stack([disk, ring]).reshape(2, -1).T
    np.testing.assert_allclose(out, expected, rtol=1e-6)


# --- contracts: every implementation against the reference (tests/kernels/kit.py) ---


def _drawn(sig):
    """Two drawn masks of other values than 1, encoded as runs even on tiny frames."""
    rows, cols = sig
    yy, xx = np.mgrid[:rows, :cols]
    d = np.hypot(yy - (rows - 1) / 2, xx - (cols - 1) / 2)
    stack = np.stack([(d <= 1.5) * 2.5, ((d > 1) & (d <= 3)) * -1.25])
    return spans.encode(stack, max_runs_per_pixel=1.0)


class TestMaskSpansContract(KernelContract):
    op = "masks_spans"
    rtol = 1e-10

    def arguments(self, rng, tile):
        runs = _drawn(tile.shape[1:])
        return (flat(tile), runs, rng.standard_normal((len(tile), runs.num_masks)))

    def expected(self, args):
        return [args[2] + spans.reference(*args[:2])]

    def outputs(self, args):
        return [args[2]]


class TestComSpansContract(KernelContract):
    op = "com_spans"
    rtol = 1e-10

    def arguments(self, rng, tile):
        rows, cols = tile.shape[1:]
        yy, xx = np.mgrid[:rows, :cols]
        inside = np.hypot(yy - rows / 2, xx - cols / 2) <= max(rows, cols) / 3
        runs = spans.encode(inside.astype(np.float64), max_runs_per_pixel=1.0)
        return (tile, runs, 0, *(rng.standard_normal(len(tile)) * 1000 for _ in range(3)))

    def expected(self, args):
        tile, runs, _, *outs = args
        return [o + r for o, r in zip(outs, com.reference_spans(tile, runs), strict=True)]

    def outputs(self, args):
        return list(args[3:])


@pytest.mark.parametrize("dtype", ["int8", "uint16"])  # each dtype compiles two kernels
def test_com_small_integers_at_full_range(rng, dtype, monkeypatch):
    # 8- and 16-bit frames take int32 column sums, four frames per pass: the largest values
    # over tall columns must not overflow them; the sums equal the int64 kernel's exactly, and
    # the dense reference; 7 frames leave 3 over from the blocks of 4
    from libertem_gpu.kernels import spans_cpu

    info = np.iinfo(dtype)
    rows, cols = 700, 301
    frames = rng.integers(info.min, info.max, (7, rows, cols), endpoint=True).astype(dtype)
    frames[0] = info.max
    frames[5, :, ::2] = info.min
    yy, xx = np.mgrid[:rows, :cols]
    disk = (yy - 350) ** 2 + (xx - 150) ** 2 < 340**2
    enc = spans.encode(disk)
    got = [np.zeros(7) for _ in range(3)]
    spans.com_cpu(frames, enc, 0, *got)
    monkeypatch.setattr(spans_cpu, "_com_runs_small_int", spans_cpu._com_runs_int)
    wide = [np.zeros(7) for _ in range(3)]
    spans.com_cpu(frames, enc, 0, *wide)
    f = frames.astype(np.float64) * disk
    want = [f.sum(axis=(1, 2)), (f * yy).sum(axis=(1, 2)), (f * xx).sum(axis=(1, 2))]
    for g, w, exact in zip(got, want, wide, strict=True):
        np.testing.assert_array_equal(g, exact)
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_com_wide_frames_sum_runs_exactly(rng):
    # A run longer than 2**15 uint16 pixels can overflow an int32 run sum: such frames take the
    # int64 kernel, and the sums stay exact.
    rows, cols = 3, 40000
    frames = rng.integers(60000, 65535, (5, rows, cols), endpoint=True).astype(np.uint16)
    mask = np.ones((rows, cols), bool)
    mask[1, :7] = False
    enc = spans.encode(mask)
    got = [np.zeros(5) for _ in range(3)]
    spans.com_cpu(frames, enc, 0, *got)
    f = frames.astype(np.int64) * mask
    yy, xx = np.mgrid[:rows, :cols]
    want = [f.sum(axis=(1, 2)), (f * yy).sum(axis=(1, 2)), (f * xx).sum(axis=(1, 2))]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w.astype(np.float64))


def test_com_swapped_frames_in_blocks_of_four(rng):
    # big-endian uint16 (swapped as read) through the four-frame passes and the tail
    disk, _ = _masks()
    enc = spans.encode(disk)
    native = rng.integers(0, 65535, (6, 13, 17), endpoint=True).astype(np.uint16)
    got = [np.zeros(6) for _ in range(3)]
    spans.com_cpu(native.byteswap(), enc, 0, *got, swap=True)
    want = [np.zeros(6) for _ in range(3)]
    com.cpu(native, disk.astype(np.float64), 0, *want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_com_float_frames_four_at_a_time_equal_one_at_a_time(rng, dtype):
    # Float frames go four per pass over the runs, each frame with its own column sums: the
    # same additions in the same order as one frame per call, bit for bit.
    disk, _ = _masks()
    enc = spans.encode(disk)
    tile3d = (rng.standard_normal((9, 13, 17)) * 1000).astype(dtype)
    got = [np.zeros(9) for _ in range(3)]
    spans.com_cpu(tile3d, enc, 0, *got)
    for i in range(9):
        single = [np.zeros(1) for _ in range(3)]
        spans.com_cpu(tile3d[i : i + 1], enc, 0, *single)
        for g, s in zip(got, single, strict=True):
            assert g[i] == s[0]
