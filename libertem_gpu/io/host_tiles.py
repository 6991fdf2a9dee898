"""Turning a partition's tile plan into host arrays: zero-copy memory-mapped views where the
layout allows, reusable buffers where frames must be gathered, byte-swapped or padded."""

from __future__ import annotations

import contextlib
import itertools
import threading
from bisect import bisect_right
from collections.abc import Iterator

import numpy as np

from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.layout import ByteRange, FrameLayout
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.io.tiles import TilePlan, TileSlice
from libertem_gpu.io.transports.mmap import release_pages

# Map a partition's source ranges only if they average at least this many frames each.
_MIN_FRAMES_PER_MAP = 4
# A partition is mapped in windows, one at a time: the pages of a mapping, faulted in as they are
# read, stay resident until it is unmapped, so mapping a whole partition cost a thread the
# partition's size in RSS (256 MiB each, 4 GiB at 16 threads). The windows of all readers
# mapping at once share MAPPED_BYTES_BUDGET: a few threads get windows as large as a mapped
# tile (fewer, larger tiles: measured 5% faster than 16 MiB ones), many get smaller ones.
MAPPED_BYTES_BUDGET = 256 * 2**20
MIN_WINDOW_BYTES = 16 * 2**20
_mapping = [0]  # readers that map now, in this process
_mapping_lock = threading.Lock()


def _window_bytes(largest: int) -> int:
    """Bytes of the next window: the budget shared among the readers mapping now, at most
    ``largest`` (a mapped tile's bytes) and at least ``MIN_WINDOW_BYTES``."""
    with _mapping_lock:
        readers = max(1, _mapping[0])
    return max(MIN_WINDOW_BYTES, min(largest, MAPPED_BYTES_BUDGET // readers))


def _window_frames(window_bytes: int, frame_bytes: int, depth: int) -> int:
    """Frames per window, so that windows cut stacks of ``depth`` frames as little as they
    can: a multiple of ``depth``, or an (about) equal part of it."""
    frames = max(1, window_bytes // max(1, frame_bytes))
    if frames >= depth:
        return frames - frames % depth
    return depth // -(-depth // frames)


def contiguous_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` positions of runs of consecutive integers in ``values``."""
    if len(values) == 0:
        return []
    breaks = np.flatnonzero(np.diff(values) != 1) + 1
    edges = [0, *breaks.tolist(), len(values)]
    return list(itertools.pairwise(edges))


def source_runs(sources: np.ndarray, valid: np.ndarray) -> list[tuple[int, int, int]]:
    """``(position, first, stop)`` of each run of consecutive source frames ``[first, stop)``
    among the ``valid`` entries of ``sources``, which go to ``position...`` of a stack."""
    positions = np.flatnonzero(valid)
    runs = []
    for a, b in contiguous_runs(sources[positions]):
        p0 = int(positions[a])
        runs.append((p0, int(sources[p0]), int(sources[positions[b - 1]]) + 1))
    return runs


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
        # Mapped source ranges (first frame, stop frame), ascending, mapped one at a time
        # (windows, see MAPPED_BYTES_BUDGET): the view of the window in use, by index.
        self._maps: list[tuple[int, int]] = []
        self._view: tuple[int, np.ndarray] | None = None
        self._registered = False
        if zero_copy and self.valid.any():
            lo = int(self.sources[self.valid].min())
            hi = int(self.sources[self.valid].max()) + 1
            ranges = reader.mappable_ranges(lo, hi)
            # Many tiny pieces (irregular frame offsets) cost more in mappings than they save.
            if len(ranges) <= max(1, (hi - lo) // _MIN_FRAMES_PER_MAP):
                self._register(True)
                depth = plan.scheme.mapped_depth or plan.scheme.depth
                # What a frame of the window costs in resident memory: all of it, or where
                # frames are read as thin slabs whose pages are let go once read
                # (release_pages), a slab.
                unit = dataset.frame_bytes
                thin = plan.scheme.mapped_sig_rows
                if thin is not None and plan.scheme.sig_rows is not None:
                    unit = min(unit, thin * (unit // max(1, dataset.sig_shape[0])))
                window = _window_frames(_window_bytes(depth * unit), unit, depth)
                self._maps = [
                    (a, min(b, a + window)) for b0, b in ranges for a in range(b0, b, window)
                ]
                # Readers that decode map nothing: ask once, with the first window.
                if self._maps and self._window_view(0) is None:
                    self._maps.clear()
                    self._register(False)
        self._map_starts = [m[0] for m in self._maps]

    def _register(self, mapping: bool) -> None:
        """Count this reader among those that map (or no longer), once."""
        if mapping != self._registered:
            with _mapping_lock:
                _mapping[0] += 1 if mapping else -1
            self._registered = mapping

    def close(self) -> None:
        """Release the mapped window (tiles handed out keep theirs alive) and the share of
        the mapping budget."""
        self._view = None
        self._register(False)

    @property
    def maps_frames(self) -> bool:
        """Whether any of the partition's frames can be handed out as views of a mapping."""
        return bool(self._maps)

    def _window_view(self, k: int) -> np.ndarray | None:
        """The view of mapped window ``k``; the previous window's mapping is released (it
        stays alive only while a tile handed out still refers to it)."""
        if self._view is not None and self._view[0] == k:
            return self._view[1]
        self._view = None
        view = self.reader.view(*self._maps[k])
        if view is not None:
            self._view = (k, view)
        return view

    def _map_of(self, source: int) -> tuple[int, int, np.ndarray] | None:
        k = bisect_right(self._map_starts, source) - 1
        if k >= 0 and source < self._maps[k][1]:
            view = self._window_view(k)
            if view is not None:
                return (*self._maps[k], view)
        return None

    def split(self, nav_start: int, nav_stop: int) -> list[tuple[int, int]]:
        """Cut a stack where its frames cross from one mapped range into the next, so that each
        part can be a zero-copy view."""
        if len(self._maps) < 2 or not self.valid[nav_start:nav_stop].all():
            return [(nav_start, nav_stop)]
        src = self.sources[nav_start:nav_stop]
        cuts = [s0 for s0, _ in self._maps[1:] if src[0] < s0 <= src[-1]]
        edges = [nav_start, *(nav_start + int(np.searchsorted(src, c)) for c in cuts), nav_stop]
        return [(a, b) for a, b in itertools.pairwise(edges) if b > a]

    def zero_copy_view(
        self, nav_start: int, nav_stop: int, stored_order: bool = False
    ) -> np.ndarray | None:
        """The stack as a view of the mapped file, if it is one contiguous run inside one mapped
        range, in native byte order (or in any, with ``stored_order``)."""
        if not self._maps or not (self.native or stored_order):
            return None
        src = self.sources[nav_start:nav_stop]
        if not self.valid[nav_start:nav_stop].all() or src[-1] - src[0] != len(src) - 1:
            return None
        mapped = self._map_of(int(src[0]))
        if mapped is None or int(src[-1]) >= mapped[1]:
            return None
        first = int(src[0]) - mapped[0]
        return mapped[2][first : first + len(src)]

    def read_stack(self, nav_start: int, nav_stop: int, out: np.ndarray) -> None:
        """Fill ``out`` (shape ``(n, *sig)``, dtype ``reader.dtype``, not byte-swapped) with the
        stack's frames; frames outside the source (``sync_offset``) are zero."""
        self._fill(nav_start, nav_stop, out)

    def read_stack_native(self, nav_start: int, nav_stop: int, out: np.ndarray) -> None:
        """Like :meth:`read_stack`, but ``out`` has the native dtype: big-endian frames are
        swapped while they are copied out of the mapping (one pass), or in place after a read."""
        if self._maps or self.native:
            # np.copyto converts the byte order on the fly; a native reader needs no swap.
            self._fill(nav_start, nav_stop, out)
            return
        self.read_stack(nav_start, nav_stop, out.view(self.reader.dtype))
        out.byteswap(inplace=True)

    def byte_ranges(self, layout: FrameLayout, nav_start: int, nav_stop: int) -> list[ByteRange]:
        """Where the stack's frames lie in the files, placed at their positions in the stack;
        frames outside the source (``sync_offset``) have none (see :meth:`blank`)."""
        src = self.sources[nav_start:nav_stop]
        return [
            r.placed(p0 + r.dest_frame)
            for p0, s0, s1 in source_runs(src, self.valid[nav_start:nav_stop])
            for r in layout.ranges(s0, s1)
        ]

    def blank(self, nav_start: int, nav_stop: int) -> np.ndarray:
        """Positions in the stack of frames outside the source, which are zero."""
        return np.flatnonzero(~self.valid[nav_start:nav_stop])

    def _fill(self, nav_start: int, nav_stop: int, out: np.ndarray) -> None:
        src = self.sources[nav_start:nav_stop]
        valid = self.valid[nav_start:nav_stop]
        if not valid.all():
            out[~valid] = 0
        for p0, s0, s1 in source_runs(src, valid):
            while s0 < s1:  # piece by piece of the mapped ranges; unmapped ones are read
                mapped = self._map_of(s0)
                end = s1 if mapped is None else min(s1, mapped[1])
                target = out[p0 : p0 + end - s0]
                if mapped is None:
                    self.reader.read_into(target, s0, end)
                else:
                    np.copyto(target, mapped[2][s0 - mapped[0] : end - mapped[0]])
                p0 += end - s0
                s0 = end


def iter_host_tiles(dataset: DataSet, plan: TilePlan) -> Iterator[tuple[TileSlice, np.ndarray]]:
    """Yield the tiles of ``plan`` as native-order NumPy arrays (CPU data path)."""
    # Stored order: big-endian frames reach the kernels as they lie in the file, viewed as the
    # native dtype; the kernels swap while reading (TilingScheme.stored_byteorder).
    stored_order = plan.scheme.stored_byteorder
    # Tiles keep the stored type; what each UDF asked for (float32 for float16 data, for
    # instance) is made once per tile by the partition task (kernels/convert.py).
    with (
        dataset.get_reader() as reader,
        contextlib.closing(HostStackReader(dataset, reader, plan)) as stacks,
    ):
        buffer: np.ndarray | None = None
        buffered_depth = plan.scheme.depth
        # Views of the mapped file need no buffer: they may be larger than a buffer should be.
        depth = buffered_depth
        if stacks.maps_frames and (stacks.native or stored_order) and plan.scheme.mapped_depth:
            depth = plan.scheme.mapped_depth
        for whole_start, whole_stop in plan.frame_stacks(depth):
            for nav_start, nav_stop in stacks.split(whole_start, whole_stop):
                # One view for the whole stack where it is contiguous in one mapping; else
                # pieces of at most buffered_depth frames, each a view where it can be, or
                # filled through the buffer.
                whole = stacks.zero_copy_view(nav_start, nav_stop, stored_order)
                pieces: list[tuple[int, int, np.ndarray | None]]
                if whole is not None:
                    pieces = [(nav_start, nav_stop, whole)]
                else:
                    pieces = [
                        (s0, s1, stacks.zero_copy_view(s0, s1, stored_order))
                        for s0 in range(nav_start, nav_stop, buffered_depth)
                        for s1 in [min(nav_stop, s0 + buffered_depth)]
                    ]
                for s0, s1, stack in pieces:
                    mapped = stack is not None
                    if stack is not None:
                        stack = stack.view(dataset.dtype)
                    else:
                        if buffer is None:
                            shape = (buffered_depth, *dataset.sig_shape)
                            buffer = np.empty(shape, dtype=dataset.dtype)
                        stack = buffer[: s1 - s0]
                        if stored_order:
                            stacks.read_stack(s0, s1, stack.view(reader.dtype))
                        else:
                            stacks.read_stack_native(s0, s1, stack)
                    for tile in plan.tiles_of_stack(s0, s1, mapped=mapped):
                        if tile.sig_rows is None:
                            yield tile, stack
                        else:
                            slab = stack[:, tile.sig_rows[0] : tile.sig_rows[1]]
                            yield tile, slab
                            if mapped:  # read: its pages may go (see MmapTransport)
                                release_pages(slab)
