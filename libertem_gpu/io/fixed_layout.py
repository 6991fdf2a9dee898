"""The reader of frames that sit at fixed byte offsets in one or more files (raw, npy, and most
detector formats): a :class:`~libertem_gpu.io.layout.FrameLayout` read through transports."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from libertem_gpu.io.layout import FileSegment, FrameLayout
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.io.transports.base import Transport
from libertem_gpu.io.transports.mmap import MmapTransport
from libertem_gpu.io.transports.pread import PreadTransport

__all__ = ["FixedLayoutReader"]


class FixedLayoutReader(FrameReader):
    """Reads frames laid out by :class:`FileSegment` entries, numbered across segments.

    :meth:`read_into` fills the caller's buffer through a transport (``preadv`` unless
    :meth:`use_transport` names another); :meth:`view` maps the files for zero-copy CPU
    processing.

    Parameters
    ----------
    segments : sequence of FileSegment
        Where the frames lie.
    sig_shape : tuple of int
        The frame shape.
    dtype : numpy.dtype
        The element type as stored.
    """

    def __init__(
        self, segments: Sequence[FileSegment], sig_shape: tuple[int, ...], dtype: np.dtype
    ) -> None:
        self.sig_shape = tuple(sig_shape)
        self.dtype = np.dtype(dtype)
        self.frame_bytes = math.prod(self.sig_shape) * self.dtype.itemsize
        self.layout = FrameLayout(tuple(segments), self.frame_bytes)
        self.transport: Transport = PreadTransport()
        self._mmap = MmapTransport()

    @property
    def segments(self) -> tuple[FileSegment, ...]:
        """Where the frames lie."""
        return self.layout.segments

    def raw_layout(self) -> FrameLayout | None:
        return self.layout

    def use_transport(self, transport: Transport) -> None:
        self.transport.close()
        self.transport = transport

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        if not out.flags.c_contiguous or out.dtype != self.dtype:
            raise ValueError(
                f"read_into needs a C-contiguous {self.dtype} buffer, got {out.dtype} "
                f"(contiguous: {out.flags.c_contiguous})"
            )
        self.transport.fill(out.reshape(-1).view(np.uint8), self.layout.ranges(start, stop))

    def mappable_ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        return [
            (start + r.dest_frame, start + r.dest_frame + r.num_frames)
            for r in self.layout.ranges(start, stop)
        ]

    def view(self, start: int, stop: int) -> np.ndarray | None:
        ranges = self.layout.ranges(start, stop)
        if len(ranges) != 1 or stop == start:
            return None
        return self._mmap.view(ranges[0], self.sig_shape, self.dtype)

    def close(self) -> None:
        self.transport.close()
        self._mmap.close()
