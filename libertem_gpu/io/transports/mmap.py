"""The memory-map transport: zero-copy views of frames for CPU processing."""

from __future__ import annotations

import math
import mmap
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.io.layout import ByteRange
from libertem_gpu.io.transports.base import Transport

__all__ = ["MmapTransport", "drop_kept_mappings", "release_pages"]

# Not MAP_POPULATE: where the file sits in the page cache in small folios (written in small
# pieces, say), pre-faulting a mapping page by page cost twice the time of the faults taken while
# reading (which map 16 pages each): SumUDF over 1 GiB on 2 threads 11.6 -> 19.1 GB/s. In large
# folios both cost the same.
_MAP_FLAGS = mmap.MAP_SHARED


class _KeptMappings:
    """Whole files kept mapped between runs (setting ``keep_mapped_bytes``): the page tables a
    run fills stay for the next one. Least recently used files are dropped first; a dropped
    mapping is unmapped when the last array viewing it is gone. A file is known by device,
    inode, size and modification time, so a rewritten file is mapped anew."""

    def __init__(self) -> None:
        self._maps: OrderedDict[tuple[int, int, int, int], mmap.mmap] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, fd: int) -> mmap.mmap | None:
        """The whole file open as ``fd``, mapped, or None where it does not fit the budget."""
        from libertem_gpu import config

        budget = int(config.get("keep_mapped_bytes"))
        if budget <= 0 and not self._maps:
            return None
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            self._trim(budget)  # the budget may have shrunk since the last run
            if st.st_size == 0 or st.st_size > budget:
                return None
            mapping = self._maps.get(key)
            if mapping is None:
                mapping = mmap.mmap(fd, st.st_size, flags=_MAP_FLAGS, prot=mmap.PROT_READ)
                self._maps[key] = mapping
                self._trim(budget)
            self._maps.move_to_end(key)
            return mapping

    def _trim(self, budget: int) -> None:
        # Least recently used first; the size is part of the key.
        total = sum(key[2] for key in self._maps)
        while self._maps and total > budget:
            old, _ = self._maps.popitem(last=False)
            total -= old[2]

    def clear(self) -> None:
        with self._lock:
            self._maps.clear()


_KEPT = _KeptMappings()
# The windows this transport mapped for one reader (not kept files, never memory of another
# owner): the only mappings whose pages :func:`release_pages` lets go of.
_WINDOWS: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)  # not on Windows


def release_pages(frames: np.ndarray) -> None:
    """Let go of the pages that hold ``frames`` (``(n, ...)``, each frame's part contiguous),
    and of those between them, if they lie in a window of a file this transport mapped;
    otherwise do nothing.

    Row slabs of large frames are read from windows of many frames, one thin slab of each at
    a time; without this, the pages of every slab read stay mapped until the window is
    unmapped, and a thread's resident memory grows to the whole window (``MADV_DONTNEED``
    on a shared file mapping: the page cache keeps the data, a later read maps it again).
    """
    owner: Any = frames
    while isinstance(owner, np.ndarray):
        owner = owner.base
    if _DONTNEED is None or not isinstance(owner, mmap.mmap) or owner not in _WINDOWS:
        return
    if frames.ndim < 2 or not frames[0].flags.c_contiguous:
        return
    start = np.frombuffer(owner, dtype=np.uint8, count=1).ctypes.data
    # One call for the span from the first frame's part to the last one's: each call makes the
    # kernel interrupt the process's other threads to flush their TLBs, and one per frame (32
    # per stack of slabs) cost 21-36 ms of each thread's run over 64 frames of 4096 x 4096. The
    # span's other rows hold no pages to lose: those read before were let go then, those not
    # read yet are not mapped (and pages let go by mistake are only mapped again).
    ends = (0, (frames.shape[0] - 1) * frames.strides[0])
    offset = frames.ctypes.data - start + min(ends)
    stop = frames.ctypes.data - start + max(ends) + frames[0].nbytes
    page = mmap.PAGESIZE
    first = -(-offset // page) * page  # only pages wholly inside the span
    last = stop // page * page
    if last > first:
        owner.madvise(_DONTNEED, first, last - first)


def drop_kept_mappings() -> None:
    """Let go of every file kept mapped (setting ``keep_mapped_bytes``); each is unmapped once
    no array views it."""
    _KEPT.clear()


class MmapTransport(Transport):
    """Maps byte ranges read-only: :meth:`view` hands the frames out without a copy (the CPU
    path's preferred way); :meth:`fill` copies them out of the mapping."""

    name = "mmap"

    def view(self, r: ByteRange, sig_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The frames of ``r`` as an array of shape ``(r.num_frames, *sig_shape)`` whose frame
        axis has the file's stride, backed by a read-only mapping of the file."""
        data_end = r.offset + (r.num_frames - 1) * r.stride + r.frame_bytes
        fd = self._fd(r.path)
        kept = _KEPT.get(fd)
        if kept is not None and data_end <= len(kept):
            mapping, map_start = kept, 0
        else:
            map_start = r.offset - r.offset % mmap.ALLOCATIONGRANULARITY
            mapping = mmap.mmap(
                fd, data_end - map_start, flags=_MAP_FLAGS, prot=mmap.PROT_READ, offset=map_start
            )
            _WINDOWS.add(mapping)
        sig_strides = tuple(
            dtype.itemsize * math.prod(sig_shape[i + 1 :]) for i in range(len(sig_shape))
        )
        return np.ndarray(
            shape=(r.num_frames, *sig_shape),
            dtype=dtype,
            buffer=mapping,
            offset=r.offset - map_start,
            strides=(r.stride, *sig_strides),
        )

    def fill(self, dest: Any, ranges: Sequence[ByteRange]) -> None:
        for r in ranges:
            frames = self.view(r, (r.frame_bytes,), np.dtype(np.uint8))
            target = np.asarray(dest)[r.dest_offset : r.dest_offset + r.nbytes]
            np.copyto(target.reshape(r.num_frames, r.frame_bytes), frames)
