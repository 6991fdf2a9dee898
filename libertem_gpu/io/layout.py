"""Where a data set's frames lie in its files: the one frame-to-byte-range lookup that every
transport (mmap, pread, O_DIRECT, kvikio) reads from.

A format describes its frames as :class:`FileSegment` runs (equally spaced frames in one file);
:class:`FrameLayout` numbers the frames across the segments and answers, for source frames
``[start, stop)``, which :class:`ByteRange` pieces hold them and where each piece goes in the
destination buffer.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import NamedTuple

from libertem_gpu.errors import FileFormatError

__all__ = ["ByteRange", "FileSegment", "FrameLayout", "check_file_size", "split_at"]


@dataclass(frozen=True)
class FileSegment:
    """A run of equally spaced frames in one file.

    Parameters
    ----------
    path : str
        The file.
    offset : int
        Byte offset of the first frame's pixel data.
    frame_stride : int
        Bytes from one frame's pixel data to the next (frame bytes plus any per-frame header and
        footer).
    num_frames : int
        Number of frames in this segment.
    """

    path: str
    offset: int
    frame_stride: int
    num_frames: int

    def end_offset(self, frame_bytes: int) -> int:
        """Byte offset just past the last frame's pixel data."""
        return self.offset + (self.num_frames - 1) * self.frame_stride + frame_bytes


class ByteRange(NamedTuple):
    """Equally spaced frames of one file, and where they go in a destination buffer.

    Frame ``i`` of the range lies at ``offset + i * stride`` in ``path`` (``frame_bytes`` bytes)
    and goes to byte ``(dest_frame + i) * frame_bytes`` of the destination.
    """

    path: str
    offset: int
    num_frames: int
    stride: int
    frame_bytes: int
    dest_frame: int

    @property
    def packed(self) -> bool:
        """Whether the frames lie back to back (one run of bytes, no per-frame headers)."""
        return self.stride == self.frame_bytes

    @property
    def nbytes(self) -> int:
        """Bytes the range writes into the destination."""
        return self.num_frames * self.frame_bytes

    @property
    def dest_offset(self) -> int:
        """Byte offset of the range's first frame in the destination."""
        return self.dest_frame * self.frame_bytes

    def placed(self, dest_frame: int) -> ByteRange:
        """The same frames going to frame ``dest_frame`` of the destination."""
        return self._replace(dest_frame=dest_frame)


def split_at(starts: Sequence[int], start: int, stop: int) -> list[tuple[int, int, int, int]]:
    """Split ``[start, stop)`` of items numbered across consecutive parts.

    ``starts`` holds each part's first item and, last, the total (cumulative counts from 0).
    Returns ``(part, first, last, out)`` per piece: items ``[first, last)`` of ``part``, which
    are items ``out...`` counted from ``start``.

    Raises
    ------
    IndexError
        If ``[start, stop)`` is not inside ``[0, starts[-1])``.
    """
    if start < 0 or stop > starts[-1] or start > stop:
        raise IndexError(f"frames [{start}, {stop}) outside [0, {starts[-1]})")
    pieces = []
    pos = start
    while pos < stop:
        k = bisect_right(starts, pos) - 1
        part_stop = min(stop, starts[k + 1])
        pieces.append((k, pos - starts[k], part_stop - starts[k], pos - start))
        pos = part_stop
    return pieces


@dataclass(frozen=True)
class FrameLayout:
    """Frames of ``frame_bytes`` bytes in :class:`FileSegment` runs, numbered across them.

    Parameters
    ----------
    segments : sequence of FileSegment
        The runs, in frame order.
    frame_bytes : int
        Bytes of one frame as stored.
    """

    segments: tuple[FileSegment, ...]
    frame_bytes: int
    #: First frame of each segment, then the total.
    starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.segments))
        counts = (s.num_frames for s in self.segments)
        object.__setattr__(self, "starts", (0, *accumulate(counts)))

    @property
    def num_frames(self) -> int:
        """Number of frames in all segments."""
        return self.starts[-1]

    @property
    def packed(self) -> bool:
        """Whether every segment's frames lie back to back (no per-frame headers)."""
        return all(s.frame_stride == self.frame_bytes for s in self.segments)

    def ranges(self, start: int, stop: int) -> list[ByteRange]:
        """The byte ranges of source frames ``[start, stop)``, one per segment they touch;
        frame ``start`` goes to frame 0 of the destination."""
        fb = self.frame_bytes
        out = []
        for k, first, last, dest in split_at(self.starts, start, stop):
            seg = self.segments[k]
            offset = seg.offset + first * seg.frame_stride
            out.append(ByteRange(seg.path, offset, last - first, seg.frame_stride, fb, dest))
        return out

    def check_file_sizes(self, what: str) -> None:
        """Raise :class:`FileFormatError` if a file ends before the last frame it should hold."""
        needed: dict[str, int] = {}
        for s in self.segments:
            needed[s.path] = max(needed.get(s.path, 0), s.end_offset(self.frame_bytes))
        for path, end in needed.items():
            size = os.stat(path).st_size
            if size < end:
                raise FileFormatError(
                    f"{path}: file is too short for {what}: its frames end at byte {end}, but "
                    f"the file has {size} bytes (truncated file?)"
                )


def check_file_size(path: str, needed: int, what: str) -> int:
    """Return the size of ``path``; raise :class:`FileFormatError` if it is below ``needed``."""
    size = os.stat(path).st_size
    if size < needed:
        raise FileFormatError(
            f"{path}: file is too short for {what}: expected at least {needed} bytes, "
            f"found {size} (truncated file, or wrong shape/dtype/header size?)"
        )
    return size
