"""The ``O_DIRECT`` transport: reads that bypass the page cache (for data larger than memory),
where offsets, sizes and buffer addresses are aligned to pages."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.io.layout import ByteRange
from libertem_gpu.io.transports.base import log_once, pread_exact
from libertem_gpu.io.transports.pread import PreadTransport

__all__ = ["ALIGNMENT", "DirectTransport"]

#: Alignment that O_DIRECT wants of file offsets, sizes and buffer addresses: a page.
ALIGNMENT = 4096


class DirectTransport(PreadTransport):
    """Reads packed, page-aligned byte ranges with ``O_DIRECT``; what does not suit it (per-frame
    headers, unaligned offsets or buffers, the unaligned tail of a range, file systems that
    refuse ``O_DIRECT`` such as tmpfs) goes through the page cache like :class:`PreadTransport`.

    Attributes
    ----------
    disabled_reason : str
        Why ``O_DIRECT`` was turned off for this transport (empty while it is on).
    """

    name = "direct"

    def __init__(self) -> None:
        super().__init__()
        self._direct_fds: dict[str, int] = {}
        self.disabled_reason = "" if getattr(os, "O_DIRECT", 0) else "O_DIRECT is not available"

    def fill(self, dest: Any, ranges: Sequence[ByteRange]) -> None:
        view = memoryview(dest)
        for r in ranges:
            target = view[r.dest_offset : r.dest_offset + r.nbytes]
            if not self._try_range(target, r):
                self.fill_range(target, r)

    def try_fill(self, dest: Any, ranges: Sequence[ByteRange]) -> bool:
        """Fill ``dest`` with ``O_DIRECT`` only; return False (nothing written) where a range,
        the buffer or the file system does not allow it."""
        view = memoryview(dest)
        targets = [view[r.dest_offset : r.dest_offset + r.nbytes] for r in ranges]
        if not all(self._suits(t, r) for t, r in zip(targets, ranges, strict=True)):
            return False
        return all(self._try_range(t, r) for t, r in zip(targets, ranges, strict=True))

    def _suits(self, target: memoryview, r: ByteRange) -> bool:
        address = _address(target)
        return r.packed and address % ALIGNMENT == 0 and r.offset % ALIGNMENT == 0

    def _direct_fd(self, path: str) -> int | None:
        if path in self._direct_fds:
            return self._direct_fds[path]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        except OSError as e:  # tmpfs and some network file systems refuse O_DIRECT
            self.disabled_reason = f"{path}: O_DIRECT refused ({e})"
            return None
        self._direct_fds[path] = fd
        return fd

    def _try_range(self, target: memoryview, r: ByteRange) -> bool:
        if self.disabled_reason or not self._suits(target, r):
            return False
        fd = self._direct_fd(r.path)
        if fd is None:
            return False
        body = r.nbytes - r.nbytes % ALIGNMENT
        done = 0
        try:
            while done < body:
                got = os.preadv(fd, [target[done:body]], r.offset + done)
                if got <= 0:
                    break
                done += got
        except OSError as e:
            self.disabled_reason = f"{r.path}: O_DIRECT read failed ({e})"
            return False
        self._count("direct", done)
        if done < r.nbytes:  # the unaligned tail (or a short file) goes through the page cache
            pread_exact(self._fd(r.path), target[done:], r.offset + done, r.path)
            self._count("pread", r.nbytes - done)
        return True

    def close(self) -> None:
        if self.disabled_reason:
            log_once("odirect", "O_DIRECT off: %s", self.disabled_reason)
        for fd in self._direct_fds.values():
            os.close(fd)
        self._direct_fds.clear()
        super().close()


def _address(buffer: memoryview) -> int:
    """The address of ``buffer``'s first byte (-1 for an empty one)."""
    if len(buffer) == 0:
        return -1
    return int(np.frombuffer(buffer, dtype=np.uint8).ctypes.data)
