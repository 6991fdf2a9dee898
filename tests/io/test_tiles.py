"""Partitioning and tiling."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import config
from libertem_gpu.io.partition import (
    MAX_FRAMES_PER_PARTITION,
    make_partitions,
    partition_frame_count,
)
from libertem_gpu.io.tiles import TilePlan, TilingScheme
from libertem_gpu.plan import DEEP_SLABS, choose_scheme


def test_partitions_cover_every_frame_once():
    parts = make_partitions(103, 10)
    assert [p.index for p in parts] == list(range(11))
    covered = np.concatenate([np.arange(p.start, p.stop) for p in parts])
    np.testing.assert_array_equal(covered, np.arange(103))
    assert parts[-1].size == 3


def test_partition_size_gives_each_worker_several():
    frame_bytes = 256 * 256 * 2
    with config.set(min_partition_bytes=1):
        frames = partition_frame_count(16384, frame_bytes, n_workers=2)
    assert 16384 / frames >= 2 * config.get("partitions_per_worker") - 1
    assert frames * frame_bytes <= config.get("max_partition_bytes")


def test_partition_size_bounds_and_overrides():
    assert partition_frame_count(10, 100, 2) == 10  # small data: one partition
    assert partition_frame_count(100, 10, 2, num_partitions=7) == 15
    assert partition_frame_count(100, 10, 2, partition_bytes=35) == 3
    with pytest.raises(ValueError, match="num_partitions"):
        partition_frame_count(100, 10, 2, num_partitions=0)


def test_plan_with_roi_and_depth():
    part = make_partitions(20, 10)[1]
    roi = np.zeros(20, dtype=bool)
    roi[[10, 11, 13, 17, 18, 19]] = True
    plan = TilePlan.for_partition(part, roi, TilingScheme(depth=4), (6, 5))
    tiles = list(plan)
    assert [(t.nav_start, t.nav_stop) for t in tiles] == [(0, 4), (4, 6)]
    np.testing.assert_array_equal(tiles[0].frames, [10, 11, 13, 17])


def test_plan_with_split_frames():
    part = make_partitions(5, 5)[0]
    plan = TilePlan.for_partition(part, None, TilingScheme(depth=2, sig_rows=4), (10, 3))
    tiles = list(plan)
    assert [t.sig_rows for t in tiles[:3]] == [(0, 4), (4, 8), (8, 10)]
    assert len(tiles) == 9


def test_choose_scheme():
    # whole frames, depth from tile bytes
    assert choose_scheme(1000, 100, 10, 4000, False) == TilingScheme(depth=4)
    # a frame larger than a tile is split where allowed...
    assert choose_scheme(10_000, 1000, 10, 4000, True) == TilingScheme(depth=1, sig_rows=4)
    # ...and kept whole where not
    assert choose_scheme(10_000, 1000, 10, 4000, False) == TilingScheme(depth=1)
    assert choose_scheme(100, 10, 10, 4000, False, max_depth=7) == TilingScheme(depth=7)
    assert choose_scheme(100, 10, 10, 4000, False, whole_partition=True, partition_frames=33) == (
        TilingScheme(depth=33)
    )


def test_choose_scheme_mapped_depth():
    # views of a mapped file may be deeper than buffered tiles...
    scheme = choose_scheme(1000, 100, 10, 4000, False, mapped_tile_bytes=16_000)
    assert scheme == TilingScheme(depth=4, mapped_depth=16)
    # ...never shallower, and never deeper than a UDF allows
    assert choose_scheme(1000, 100, 10, 4000, False, mapped_tile_bytes=10).mapped_depth == 4
    capped = choose_scheme(1000, 100, 10, 4000, False, max_depth=9, mapped_tile_bytes=16_000)
    assert (capped.depth, capped.mapped_depth) == (4, 9)
    # split frames: buffered tiles hold one frame's slab of 4 rows (4000 bytes); mapped ones
    # as many frames as a partition holds (at most DEEP_SLABS, within what a UDF allows), in
    # slabs thin enough to fill a mapped tile
    split = choose_scheme(10_000, 1000, 10, 4000, True, mapped_tile_bytes=16_000)
    assert split == TilingScheme(depth=1, sig_rows=4, mapped_depth=1, mapped_sig_rows=10)
    deep = choose_scheme(10_000, 1000, 10, 4000, True, partition_frames=8, mapped_tile_bytes=16_000)
    assert deep == TilingScheme(depth=1, sig_rows=4, mapped_depth=8, mapped_sig_rows=2)
    capped = choose_scheme(
        10_000, 1000, 10, 4000, True, max_depth=3, partition_frames=8, mapped_tile_bytes=16_000
    )
    assert (capped.mapped_depth, capped.mapped_sig_rows) == (3, 5)
    thin = choose_scheme(10_000, 1000, 10, 4000, True, partition_frames=8, mapped_tile_bytes=5000)
    assert (thin.mapped_depth, thin.mapped_sig_rows) == (5, 1)
    many = choose_scheme(
        10_000, 1000, 100, 4000, True, partition_frames=10**6, mapped_tile_bytes=3_200_000
    )
    assert (many.mapped_depth, many.mapped_sig_rows) == (DEEP_SLABS, 100)
    assert choose_scheme(10_000, 1000, 10, 4000, True).mapped_sig_rows is None


@pytest.mark.parametrize(
    "bad",
    [
        dict(depth=0),
        dict(depth=2, sig_rows=0),
        dict(depth=2, mapped_depth=0),
        dict(depth=2, mapped_sig_rows=0),
    ],
)
def test_scheme_validation(bad):
    with pytest.raises(ValueError, match="positive"):
        TilingScheme(**bad)


def test_tiny_frames_do_not_make_huge_partitions():
    # 256 MiB of 1-byte frames would be 2**28 frames, and a task's index arrays 4.5 GB.
    frames = partition_frame_count(2**34, 1, n_workers=1)
    assert frames == MAX_FRAMES_PER_PARTITION
