"""Tiles: stacks of whole or partial frames, the unit of computation, and how a partition is cut
into them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from libertem_gpu.io.partition import Partition


@dataclass(frozen=True)
class TilingScheme:
    """How a partition is cut into tiles.

    Parameters
    ----------
    depth : int
        Frames per tile (the last tile of a partition may hold fewer).
    sig_rows : int or None
        Rows of the first signal axis per tile when frames are split; ``None`` for whole frames.
    stored_byteorder : bool
        Hand out big-endian integer frames in their stored byte order, without a swapping copy
        (every UDF of the run said it swaps while reading; ``meta.byteswapped`` tells it).
    mapped_depth : int or None
        Frames per tile where the CPU path hands out views of a memory-mapped file instead of
        filling a buffer; ``None``: ``depth``. Such tiles cost no memory, so they can be larger
        than a buffer should be (fewer kernel calls).
    mapped_sig_rows : int or None
        Rows per tile of those views where frames are split; ``None``: ``sig_rows``. Thinner
        than a buffer's slabs, so that a tile of views holds more frames (``mapped_depth``):
        the kernels then read and write their frame-shaped sums once per deep stack.
    """

    depth: int
    sig_rows: int | None = None
    stored_byteorder: bool = False
    mapped_depth: int | None = None
    mapped_sig_rows: int | None = None

    def __post_init__(self) -> None:
        if self.depth <= 0:
            raise ValueError(f"tile depth must be positive, got {self.depth}")
        if self.mapped_depth is not None and self.mapped_depth <= 0:
            raise ValueError(f"mapped tile depth must be positive, got {self.mapped_depth}")
        for name in ("sig_rows", "mapped_sig_rows"):
            rows = getattr(self, name)
            if rows is not None and rows <= 0:
                raise ValueError(f"tile {name} must be positive or None, got {rows}")


@dataclass(frozen=True)
class TileSlice:
    """Where a tile sits in its partition and in the data set.

    Attributes
    ----------
    nav_start, nav_stop : int
        Range of this tile's frames among the partition's *selected* frames (those in the roi);
        this indexes the partition's navigation buffers.
    frames : numpy.ndarray
        Flat navigation indices of the tile's frames.
    sig_rows : tuple of (int, int) or None
        Rows ``[r0, r1)`` of the first signal axis the tile holds, or ``None`` for whole frames.
    """

    nav_start: int
    nav_stop: int
    frames: np.ndarray = field(repr=False)
    sig_rows: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        """Number of (whole or partial) frames in the tile."""
        return self.nav_stop - self.nav_start


@dataclass(frozen=True)
class TilePlan:
    """The tiles of one partition.

    Parameters
    ----------
    partition : Partition
        The partition being processed.
    frames : numpy.ndarray
        Flat navigation indices of the partition's frames that are processed: selected by the
        roi and holding data, ascending.
    scheme : TilingScheme
        Tile depth and row split.
    sig_shape : tuple of int
        Frame shape of the data set.
    nav_base : int
        How many of the partition's selected positions come before the first processed frame
        (positions without data, before a negative ``sync_offset`` runs into the file): where
        the partition's results go among its selected positions.
    """

    partition: Partition
    frames: np.ndarray = field(repr=False)
    scheme: TilingScheme
    sig_shape: tuple[int, ...]
    nav_base: int = 0

    @classmethod
    def for_partition(
        cls,
        partition: Partition,
        roi_flat: np.ndarray | None,
        scheme: TilingScheme,
        sig_shape: tuple[int, ...],
        with_data: tuple[int, int] | None = None,
    ) -> TilePlan:
        """Plan the tiles of ``partition``, keeping only frames inside ``roi_flat`` and, where
        given, inside the range ``with_data`` of scan positions that hold data."""
        frames = np.arange(partition.start, partition.stop, dtype=np.int64)
        if roi_flat is not None:
            frames = frames[roi_flat[partition.start : partition.stop]]
        nav_base = 0
        if with_data is not None:
            # The positions with data are one range, so the processed frames are contiguous
            # among the selected ones.
            lo, hi = with_data
            nav_base = int(np.searchsorted(frames, lo))
            frames = frames[nav_base : int(np.searchsorted(frames, hi))]
        return cls(partition, frames, scheme, sig_shape, nav_base)

    @property
    def num_frames(self) -> int:
        """Number of frames processed in the partition."""
        return len(self.frames)

    def frame_stacks(self, depth: int | None = None) -> Iterator[tuple[int, int]]:
        """Yield ``(nav_start, nav_stop)`` of each stack of whole frames, ``depth`` frames
        each (default: the scheme's)."""
        depth = self.scheme.depth if depth is None else depth
        for start in range(0, self.num_frames, depth):
            yield start, min(self.num_frames, start + depth)

    def row_ranges(self, mapped: bool = False) -> list[tuple[int, int] | None]:
        """Row ranges of the first signal axis each stack is split into (``[None]`` if not);
        ``mapped``: of a stack of mapped views (the scheme's ``mapped_sig_rows``)."""
        rows = self.scheme.sig_rows
        if mapped and rows is not None and self.scheme.mapped_sig_rows is not None:
            rows = self.scheme.mapped_sig_rows
        total = self.sig_shape[0]
        if rows is None or rows >= total:
            return [None]
        return [(r0, min(total, r0 + rows)) for r0 in range(0, total, rows)]

    def tiles_of_stack(
        self, nav_start: int, nav_stop: int, mapped: bool = False
    ) -> Iterator[TileSlice]:
        """Yield the tiles of one frame stack (one per row range; ``mapped``: a stack of
        mapped views, split into the scheme's ``mapped_sig_rows``)."""
        frames = self.frames[nav_start:nav_stop]
        for rows in self.row_ranges(mapped):
            yield TileSlice(nav_start=nav_start, nav_stop=nav_stop, frames=frames, sig_rows=rows)

    def __iter__(self) -> Iterator[TileSlice]:
        for nav_start, nav_stop in self.frame_stacks():
            yield from self.tiles_of_stack(nav_start, nav_stop)
