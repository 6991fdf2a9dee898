"""Reading frames that sit at fixed byte offsets in one or more files (raw, npy, and most
detector formats): ``offset + i * frame_stride`` for frame ``i`` of a file."""

from __future__ import annotations

import math
import mmap
import os
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from libertem_gpu.errors import FileFormatError
from libertem_gpu.io.reader import FrameReader

# preadv takes at most IOV_MAX (1024 on Linux) buffers: a frame and the gap after it use two.
_FRAMES_PER_PREADV = 500
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


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


def check_file_size(path: str, needed: int, what: str) -> int:
    """Return the size of ``path``; raise :class:`FileFormatError` if it is below ``needed``."""
    size = os.stat(path).st_size
    if size < needed:
        raise FileFormatError(
            f"{path}: file is too short for {what}: expected at least {needed} bytes, "
            f"found {size} (truncated file, or wrong shape/dtype/header size?)"
        )
    return size


class FixedLayoutReader(FrameReader):
    """Reads frames laid out by :class:`FileSegment` entries, numbered across segments.

    Whole-frame ranges are read with one ``preadv`` per few hundred frames straight into the
    caller's buffer (per-frame headers land in a scratch buffer, never copied), or memory-mapped
    for zero-copy CPU processing.
    """

    def __init__(
        self, segments: list[FileSegment], sig_shape: tuple[int, ...], dtype: np.dtype
    ) -> None:
        self.segments = segments
        self.sig_shape = tuple(sig_shape)
        self.dtype = np.dtype(dtype)
        self.frame_bytes = math.prod(self.sig_shape) * self.dtype.itemsize
        self._starts = np.cumsum([0] + [s.num_frames for s in segments]).tolist()
        self._fds: dict[str, int] = {}
        self._gap = bytearray(max([s.frame_stride - self.frame_bytes for s in segments] + [0]))

    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            self._fds[path] = fd
        return fd

    def _pieces(self, start: int, stop: int) -> list[tuple[FileSegment, int, int, int]]:
        """Split a source frame range into ``(segment, first, last, out_offset)`` pieces."""
        if start < 0 or stop > self._starts[-1] or start > stop:
            raise IndexError(f"frames [{start}, {stop}) outside [0, {self._starts[-1]})")
        pieces = []
        pos = start
        while pos < stop:
            k = bisect_right(self._starts, pos) - 1
            seg_first = self._starts[k]
            seg_stop = min(stop, self._starts[k + 1])
            pieces.append((self.segments[k], pos - seg_first, seg_stop - seg_first, pos - start))
            pos = seg_stop
        return pieces

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        if not out.flags.c_contiguous or out.dtype != self.dtype:
            raise ValueError(
                f"read_into needs a C-contiguous {self.dtype} buffer, got {out.dtype} "
                f"(contiguous: {out.flags.c_contiguous})"
            )
        flat = out.reshape(stop - start, self.frame_bytes // self.dtype.itemsize)
        for segment, first, last, out_pos in self._pieces(start, stop):
            fd = self._fd(segment.path)
            target = flat[out_pos : out_pos + (last - first)]
            if segment.frame_stride == self.frame_bytes:
                offset = segment.offset + first * segment.frame_stride
                _pread_exact(fd, _bytes_of(target), offset, segment.path)
            else:
                self._read_strided(fd, segment, first, target)

    def _read_strided(self, fd: int, segment: FileSegment, first: int, target: np.ndarray) -> None:
        gap = memoryview(self._gap)[: segment.frame_stride - self.frame_bytes]
        for block in range(0, len(target), _FRAMES_PER_PREADV):
            frames = target[block : block + _FRAMES_PER_PREADV]
            buffers: list[memoryview] = []
            for i in range(len(frames)):
                buffers.append(_bytes_of(frames[i]))
                if i + 1 < len(frames):
                    buffers.append(gap)
            offset = segment.offset + (first + block) * segment.frame_stride
            wanted = sum(len(b) for b in buffers)
            got = os.preadv(fd, buffers, offset)
            if got != wanted:  # short read: finish frame by frame, reporting a truncated file
                for i in range(len(frames)):
                    frame_offset = offset + i * segment.frame_stride
                    _pread_exact(fd, _bytes_of(frames[i]), frame_offset, segment.path)

    def mappable_ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        return [
            (start + out_pos, start + out_pos + (last - first))
            for _, first, last, out_pos in self._pieces(start, stop)
        ]

    def view(self, start: int, stop: int) -> np.ndarray | None:
        pieces = self._pieces(start, stop)
        if len(pieces) != 1 or stop == start:
            return None
        segment, first, last, _ = pieces[0]
        data_start = segment.offset + first * segment.frame_stride
        data_end = data_start + (last - first - 1) * segment.frame_stride + self.frame_bytes
        map_start = data_start - data_start % mmap.ALLOCATIONGRANULARITY
        mapping = mmap.mmap(
            self._fd(segment.path),
            data_end - map_start,
            flags=_MAP_FLAGS,
            prot=mmap.PROT_READ,
            offset=map_start,
        )
        sig_strides = tuple(
            self.dtype.itemsize * math.prod(self.sig_shape[i + 1 :])
            for i in range(len(self.sig_shape))
        )
        return np.ndarray(
            shape=(last - first, *self.sig_shape),
            dtype=self.dtype,
            buffer=mapping,
            offset=data_start - map_start,
            strides=(segment.frame_stride, *sig_strides),
        )

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _pread_exact(fd: int, buffer: memoryview, offset: int, path: str) -> None:
    """Fill ``buffer`` from ``offset``, looping over short reads; a file that ends early is an
    error naming the file."""
    done = 0
    total = len(buffer)
    while done < total:
        got = os.preadv(fd, [buffer[done:]], offset + done)
        if got == 0:
            raise FileFormatError(
                f"{path}: file ended at byte {offset + done}, expected {total - done} more bytes "
                "(truncated file?)"
            )
        done += got


def _bytes_of(array: np.ndarray) -> memoryview:
    """A writable byte view of a C-contiguous array, for ``preadv``."""
    return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
