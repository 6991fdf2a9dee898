"""The CPU data path: zero-copy views per mapped file range, copies where frames must be
gathered, swapped or padded."""

from __future__ import annotations

import itertools
import mmap

import numpy as np
import pytest

from libertem_gpu import CoMUDF, SumUDF
from libertem_gpu.io import host_tiles
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.fixed_layout import FileSegment, FixedLayoutReader
from libertem_gpu.io.host_tiles import iter_host_tiles
from libertem_gpu.io.partition import Partition
from libertem_gpu.io.tiles import TilePlan, TilingScheme
from tests.conftest import random_data


class SegmentedDataSet(DataSet):
    """Frames spread over several files with different headers, like multi-file detectors."""

    format_name = "segmented-test"

    def __init__(self, segments, sig_shape, dtype, **kwargs):
        super().__init__(**kwargs)
        self.segments = segments
        self._sig = sig_shape
        self._dt = np.dtype(dtype)

    def _initialize(self):
        total = sum(s.num_frames for s in self.segments)
        self._set_layout((total,), self._sig, self._dt, total)

    def get_reader(self):
        return FixedLayoutReader(self.segments, self.sig_shape, self.storage_dtype)


def _write_segments(tmp_path, frames, splits, dtype):
    """Write ``frames`` into one file per split, each with its own header and frame gaps."""
    segments = []
    bounds = [0, *splits, len(frames)]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        path = tmp_path / f"part{k}.bin"
        header, gap = 100 + 7 * k, 16 * k
        with open(path, "wb") as f:
            f.write(b"\xab" * header)
            for frame in frames[a:b]:
                f.write(frame.astype(dtype).tobytes())
                f.write(b"\xcd" * gap)
        stride = frames[0].size * np.dtype(dtype).itemsize + gap
        segments.append(FileSegment(str(path), header, stride, b - a))
    return segments


def _is_mapped(array: np.ndarray) -> bool:
    """Whether ``array`` is a view of a memory mapping (zero-copy) rather than a buffer."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base, mmap.mmap)


@pytest.mark.parametrize("dtype", ["uint16", ">u2"])
@pytest.mark.parametrize("depth", [3, 8, 40])
def test_tiles_across_files(tmp_path, rng, dtype, depth):
    frames = random_data(rng, (37, 5, 6), "uint16")
    segments = _write_segments(tmp_path, frames, [9, 10, 25], dtype)
    ds = SegmentedDataSet(segments, (5, 6), dtype).initialize()
    roi = np.ones(37, dtype=bool)
    roi[[3, 20, 21]] = False
    plan = TilePlan.for_partition(Partition(0, 2, 35), roi, TilingScheme(depth=depth), (5, 6))
    seen, views = [], 0
    for tile, data in iter_host_tiles(ds, plan):
        np.testing.assert_array_equal(data, frames[tile.frames])
        seen.extend(tile.frames.tolist())
        views += _is_mapped(data)
    assert seen == plan.frames.tolist()
    if dtype == "uint16":
        assert views > 0  # native stacks inside one file are views of the mapping
    else:
        assert views == 0  # big-endian frames are swapped into a buffer


def test_stacks_are_cut_at_file_boundaries(tmp_path, rng):
    frames = random_data(rng, (20, 4, 4), "uint16")
    segments = _write_segments(tmp_path, frames, [7, 13], "uint16")
    ds = SegmentedDataSet(segments, (4, 4), "uint16").initialize()
    plan = TilePlan.for_partition(Partition(0, 0, 20), None, TilingScheme(depth=10), (4, 4))
    tiles = [(t.nav_start, t.nav_stop) for t, _ in iter_host_tiles(ds, plan)]
    assert tiles == [(0, 7), (7, 10), (10, 13), (13, 20)]


def test_sync_offset_padding_across_files(tmp_path, rng):
    frames = random_data(rng, (12, 3, 3), "int32")
    segments = _write_segments(tmp_path, frames, [5], "int32")
    ds = SegmentedDataSet(segments, (3, 3), "int32", sync_offset=-2).initialize()
    plan = TilePlan.for_partition(Partition(0, 0, 12), None, TilingScheme(depth=4), (3, 3))
    got = np.concatenate([np.array(d) for _, d in iter_host_tiles(ds, plan)])
    expected = np.concatenate([np.zeros((2, 3, 3), np.int32), frames[:10]])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", ["uint16", ">u2"])
def test_mapped_stacks_use_the_mapped_depth(tmp_path, rng, dtype):
    # Views of the mapping come mapped_depth frames at a time; a stack that is not one view
    # (roi gaps, big-endian frames to swap) is filled through the buffer, depth frames at a time.
    frames = random_data(rng, (40, 5, 6), "uint16")
    segments = _write_segments(tmp_path, frames, [30], dtype)
    ds = SegmentedDataSet(segments, (5, 6), dtype).initialize()
    roi = np.ones(40, dtype=bool)
    roi[[12, 13]] = False
    scheme = TilingScheme(depth=3, mapped_depth=11)
    plan = TilePlan.for_partition(Partition(0, 0, 40), roi, scheme, (5, 6))
    seen, sizes = [], []
    for tile, data in iter_host_tiles(ds, plan):
        np.testing.assert_array_equal(data, frames[tile.frames])
        seen.extend(tile.frames.tolist())
        sizes.append((tile.num_frames, _is_mapped(data)))
    assert seen == plan.frames.tolist()
    if dtype == "uint16":
        # 38 frames in stacks of 11: [0-10], [11, 14-23] (the gap: 3-frame pieces, views where
        # contiguous), [24-29 | 30-34] (cut at the file edge), [35-39]
        assert max(n for n, _ in sizes) == 11
        assert all(mapped for n, mapped in sizes if n > 3)
    else:
        assert max(n for n, _ in sizes) == 3
        assert not any(mapped for _, mapped in sizes)


def test_partition_is_mapped_one_window_at_a_time(tmp_path, rng, monkeypatch):
    # A thread maps its partition in windows, never all at once: a mapping's pages stay
    # resident until it is unmapped, so a whole 256 MiB partition per thread would cost its
    # size in resident memory.
    monkeypatch.setattr(host_tiles, "MAPPED_BYTES_BUDGET", 7 * 5 * 6 * 2)  # 7 frames
    monkeypatch.setattr(host_tiles, "MIN_WINDOW_BYTES", 7 * 5 * 6 * 2)
    frames = random_data(rng, (40, 5, 6), "uint16")
    ds = SegmentedDataSet(_write_segments(tmp_path, frames, [], "uint16"), (5, 6), "uint16")
    ds.initialize()
    plan = TilePlan.for_partition(
        Partition(0, 0, 40), None, TilingScheme(depth=4, mapped_depth=20), (5, 6)
    )
    # The mappings seen, held (not their ids: a freed object's id is reused by the next one).
    mappings: list = []
    for tile, data in iter_host_tiles(ds, plan):
        np.testing.assert_array_equal(data, frames[tile.frames])
        assert _is_mapped(data) and tile.num_frames <= 7
        base = data
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        assert not isinstance(base, np.ndarray), f"expected a view of a mapping, got {base!r}"
        if not any(seen is base for seen in mappings):
            mappings.append(base)
        del data, base
    assert len(mappings) >= 40 // 7  # a mapping per window


def test_thin_slabs_come_from_windows_of_many_frames(tmp_path, rng, monkeypatch):
    # Mapped row slabs of large frames: a window holds as many frames as a stack (what it
    # keeps resident is a slab per frame, whose pages go once read), where whole frames
    # would fit only two in the budget; buffered stacks keep the buffer's slabs.
    from libertem_gpu.io.transports import mmap as mmap_transport

    frame = 16 * 64 * 2
    monkeypatch.setattr(host_tiles, "MAPPED_BYTES_BUDGET", 2 * frame)
    monkeypatch.setattr(host_tiles, "MIN_WINDOW_BYTES", 1)
    released = []
    original = mmap_transport.release_pages
    monkeypatch.setattr(
        host_tiles, "release_pages", lambda a: (released.append(a.shape), original(a))
    )
    frames = random_data(rng, (24, 16, 64), "uint16")
    ds = SegmentedDataSet(_write_segments(tmp_path, frames, [], "uint16"), (16, 64), "uint16")
    ds.initialize()
    scheme = TilingScheme(depth=1, sig_rows=8, mapped_depth=8, mapped_sig_rows=4)
    plan = TilePlan.for_partition(Partition(0, 0, 24), None, scheme, (16, 64))
    shapes = []
    for tile, data in iter_host_tiles(ds, plan):
        r0, r1 = tile.sig_rows
        np.testing.assert_array_equal(data, frames[tile.frames][:, r0:r1])
        assert _is_mapped(data)
        shapes.append(data.shape)
        del data
    assert shapes == [(8, 4, 64)] * 12  # three stacks of eight frames, four slabs each
    assert released == shapes


@pytest.mark.parametrize("dtype", ["float16", ">f2"])
def test_float16_frames_keep_their_type_in_native_order(tmp_path, rng, dtype):
    # The host path hands out the stored type (UDFs get float32 from the partition task, see
    # tests/udf/test_input_dtype.py), big-endian frames swapped.
    frames = random_data(rng, (13, 5, 6), "float16").astype(dtype)
    ds = SegmentedDataSet(_write_segments(tmp_path, frames, [6], dtype), (5, 6), dtype)
    ds.initialize()
    plan = TilePlan.for_partition(Partition(0, 0, 13), None, TilingScheme(depth=4), (5, 6))
    for tile, data in iter_host_tiles(ds, plan):  # tiles share a buffer: check each at once
        assert data.dtype == np.float16
        np.testing.assert_array_equal(data, frames[tile.frames].astype(np.float16))


@pytest.mark.parametrize("dtype", ["float16", ">f2"])
def test_float16_files_run_the_builtin_analyses(ctx, rng, tmp_path, dtype):
    data = random_data(rng, (4, 5, 8, 9), "float16").astype(dtype)
    data.tofile(tmp_path / "x.raw")
    ds = ctx.load("raw", path=tmp_path / "x.raw", nav_shape=(4, 5), sig_shape=(8, 9), dtype=dtype)
    assert ds.dtype == np.float16  # as stored; UDFs get float32 tiles
    sums, com = ctx.run_udf(dataset=ds, udf=[SumUDF(), CoMUDF()])
    expected = data.astype(np.float64).sum(axis=(0, 1))
    np.testing.assert_allclose(sums["intensity"].data, expected, rtol=1e-5)
    assert np.isfinite(com["field_x"].data).all()


def test_windows_share_a_budget_among_the_readers_that_map():
    # A few threads map windows as large as a mapped tile; many share the budget, down to
    # the minimum window.
    budget, low = host_tiles.MAPPED_BYTES_BUDGET, host_tiles.MIN_WINDOW_BYTES
    tile = 64 * 2**20
    saved = host_tiles._mapping[0]
    try:
        host_tiles._mapping[0] = 1
        assert host_tiles._window_bytes(tile) == min(tile, budget)
        host_tiles._mapping[0] = 64
        assert host_tiles._window_bytes(tile) == max(low, budget // 64)
    finally:
        host_tiles._mapping[0] = saved
    # Windows cut stacks as little as they can: whole stacks, or equal parts of one.
    assert host_tiles._window_frames(1000, 10, 30) == 90
    assert host_tiles._window_frames(100, 10, 40) == 10
    assert host_tiles._window_frames(120, 10, 40) == 10
    assert host_tiles._window_frames(200, 10, 40) == 20
