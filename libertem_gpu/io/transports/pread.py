"""The ``pread`` transport: ``preadv`` straight into the caller's host buffer, through the page
cache (the CPU path's reads and the pinned GPU pipeline's default)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from libertem_gpu.io.layout import ByteRange
from libertem_gpu.io.transports.base import Transport, pread_exact

__all__ = ["PreadTransport"]

# preadv takes at most IOV_MAX (1024 on Linux) buffers: a frame and the gap after it use two.
_FRAMES_PER_PREADV = 500


class PreadTransport(Transport):
    """Reads byte ranges with one ``preadv`` per run of packed frames, or per few hundred
    strided frames (per-frame headers land in a scratch buffer, never copied)."""

    name = "pread"

    def __init__(self) -> None:
        super().__init__()
        self._gap = bytearray()

    def fill(self, dest: Any, ranges: Sequence[ByteRange]) -> None:
        view = memoryview(dest)
        for r in ranges:
            self.fill_range(view[r.dest_offset : r.dest_offset + r.nbytes], r)

    def fill_range(self, target: memoryview, r: ByteRange) -> None:
        """Fill ``target`` (``r.nbytes`` bytes) with the frames of ``r``."""
        fd = self._fd(r.path)
        self._count("pread", r.nbytes)
        if r.packed:
            pread_exact(fd, target, r.offset, r.path)
            return
        gap_bytes = r.stride - r.frame_bytes
        if len(self._gap) < gap_bytes:
            self._gap = bytearray(gap_bytes)
        gap = memoryview(self._gap)[:gap_bytes]
        fb = r.frame_bytes
        for block in range(0, r.num_frames, _FRAMES_PER_PREADV):
            n = min(_FRAMES_PER_PREADV, r.num_frames - block)
            frames = [target[(block + i) * fb : (block + i + 1) * fb] for i in range(n)]
            buffers: list[memoryview] = []
            for i, frame in enumerate(frames):
                buffers.append(frame)
                if i + 1 < n:
                    buffers.append(gap)
            offset = r.offset + block * r.stride
            if os.preadv(fd, buffers, offset) != n * fb + (n - 1) * gap_bytes:
                # a short read: finish frame by frame, reporting a truncated file
                for i, frame in enumerate(frames):
                    pread_exact(fd, frame, offset + i * r.stride, r.path)
