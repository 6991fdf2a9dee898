"""Turning a partition's tile plan into host arrays: zero-copy memory-mapped views where the
layout allows, reusable buffers where frames must be gathered, byte-swapped or padded."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.io.tiles import TilePlan, TileSlice


def contiguous_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` positions of runs of consecutive integers in ``values``."""
    if len(values) == 0:
        return []
    breaks = np.flatnonzero(np.diff(values) != 1) + 1
    edges = [0, *breaks.tolist(), len(values)]
    return list(itertools.pairwise(edges))


class HostStackReader:
    """Reads stacks of frames of one partition into host memory.

    Parameters
    ----------
    dataset : DataSet
        The data set.
    reader : FrameReader
        An open reader of the data set.
    plan : TilePlan
        The partition's tiles.
    zero_copy : bool
        Hand out memory-mapped views where possible (CPU processing); ``False`` always copies into
        the caller's buffer (e.g. pinned memory for the GPU).
    """

    def __init__(
        self, dataset: DataSet, reader: FrameReader, plan: TilePlan, zero_copy: bool = True
    ) -> None:
        self.dataset = dataset
        self.reader = reader
        self.plan = plan
        self.sources = plan.frames + dataset.sync_offset
        self.valid = (self.sources >= 0) & (self.sources < dataset.image_count)
        self.native = reader.dtype.isnative
        self._mapped: np.ndarray | None = None
        self._map_start = 0
        if zero_copy and self.valid.any():
            lo = int(self.sources[self.valid].min())
            hi = int(self.sources[self.valid].max()) + 1
            self._mapped = reader.view(lo, hi)
            self._map_start = lo

    def zero_copy_view(self, nav_start: int, nav_stop: int) -> np.ndarray | None:
        """The stack as a view of the mapped file, if it is one contiguous, native-order run."""
        if self._mapped is None or not self.native:
            return None
        src = self.sources[nav_start:nav_stop]
        if not self.valid[nav_start:nav_stop].all() or src[-1] - src[0] != len(src) - 1:
            return None
        first = int(src[0]) - self._map_start
        return self._mapped[first : first + len(src)]

    def read_stack(self, nav_start: int, nav_stop: int, out: np.ndarray) -> None:
        """Fill ``out`` (shape ``(n, *sig)``, dtype ``reader.dtype``, not byte-swapped) with the
        stack's frames; frames outside the source (``sync_offset``) are zero."""
        self._fill(nav_start, nav_stop, out)

    def read_stack_native(self, nav_start: int, nav_stop: int, out: np.ndarray) -> None:
        """Like :meth:`read_stack`, but ``out`` has the native dtype: big-endian frames are
        swapped while they are copied out of the mapping (one pass), or in place after a read."""
        if self._mapped is not None or self.native:
            # np.copyto converts the byte order on the fly; a native reader needs no swap.
            self._fill(nav_start, nav_stop, out)
            return
        self.read_stack(nav_start, nav_stop, out.view(self.reader.dtype))
        out.byteswap(inplace=True)

    def _fill(self, nav_start: int, nav_stop: int, out: np.ndarray) -> None:
        src = self.sources[nav_start:nav_stop]
        valid = self.valid[nav_start:nav_stop]
        if not valid.all():
            out[~valid] = 0
        positions = np.flatnonzero(valid)
        for a, b in contiguous_runs(src[positions]):
            p0, p1 = int(positions[a]), int(positions[b - 1]) + 1
            s0, s1 = int(src[p0]), int(src[p1 - 1]) + 1
            if self._mapped is not None:
                np.copyto(out[p0:p1], self._mapped[s0 - self._map_start : s1 - self._map_start])
            else:
                self.reader.read_into(out[p0:p1], s0, s1)


def iter_host_tiles(dataset: DataSet, plan: TilePlan) -> Iterator[tuple[TileSlice, np.ndarray]]:
    """Yield the tiles of ``plan`` as native-order NumPy arrays (CPU data path)."""
    with dataset.get_reader() as reader:
        stacks = HostStackReader(dataset, reader, plan)
        buffer: np.ndarray | None = None
        for nav_start, nav_stop in plan.frame_stacks():
            stack = stacks.zero_copy_view(nav_start, nav_stop)
            if stack is None:
                if buffer is None:
                    shape = (plan.scheme.depth, *dataset.sig_shape)
                    buffer = np.empty(shape, dtype=dataset.dtype)
                stack = buffer[: nav_stop - nav_start]
                stacks.read_stack_native(nav_start, nav_stop, stack)
            for tile in plan.tiles_of_stack(nav_start, nav_stop):
                if tile.sig_rows is None:
                    yield tile, stack
                else:
                    yield tile, stack[:, tile.sig_rows[0] : tile.sig_rows[1]]
        del stacks
