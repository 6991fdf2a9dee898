"""Partitions: contiguous ranges of frames in navigation order, the unit of scheduling."""

from __future__ import annotations

import math
from dataclasses import dataclass

from libertem_gpu import config
from libertem_gpu.errors import DataSetError


@dataclass(frozen=True)
class Partition:
    """Frames ``start`` to ``stop`` (exclusive) of a data set, as flat navigation indices.

    Parameters
    ----------
    index : int
        Position of this partition among the data set's partitions.
    start, stop : int
        Flat navigation index range. Source frames are ``start + sync_offset`` onwards.
    """

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        """Number of navigation positions in this partition."""
        return self.stop - self.start


#: A task holds a few index arrays of its frames (17 bytes each): tiny frames must not make a
#: partition sized in bytes hold hundreds of millions of them.
MAX_FRAMES_PER_PARTITION = 2**20


def partition_frame_count(
    nav_size: int,
    frame_bytes: int,
    n_workers: int,
    partition_bytes: int | None = None,
    num_partitions: int | None = None,
) -> int:
    """Frames per partition.

    ``num_partitions`` wins where given, then ``partition_bytes``; otherwise the size aims at
    ``partitions_per_worker`` partitions per worker, clamped between the configured minimum and
    maximum partition sizes, and to at most ``MAX_FRAMES_PER_PARTITION`` frames.
    """
    if num_partitions is not None:
        if num_partitions <= 0:
            raise DataSetError(f"num_partitions must be positive, got {num_partitions}")
        return max(1, math.ceil(nav_size / num_partitions))
    if partition_bytes is None:
        partition_bytes = config.get("partition_bytes")
    if partition_bytes is None:
        total = nav_size * frame_bytes
        target = math.ceil(total / max(1, n_workers * config.get("partitions_per_worker")))
        partition_bytes = min(
            config.get("max_partition_bytes"), max(config.get("min_partition_bytes"), target)
        )
    frames = int(partition_bytes) // max(1, frame_bytes)
    return max(1, min(nav_size, frames, MAX_FRAMES_PER_PARTITION))


def make_partitions(nav_size: int, frames_per_partition: int) -> list[Partition]:
    """Split ``nav_size`` frames into partitions of ``frames_per_partition`` frames (the last may
    be shorter)."""
    return [
        Partition(index=i, start=start, stop=min(nav_size, start + frames_per_partition))
        for i, start in enumerate(range(0, nav_size, frames_per_partition))
    ]
