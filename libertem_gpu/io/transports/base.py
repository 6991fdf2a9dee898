"""The :class:`Transport` interface: fill a buffer the caller chose with the bytes of
:class:`~libertem_gpu.io.layout.ByteRange` pieces."""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import numpy as np

from libertem_gpu.errors import FileFormatError
from libertem_gpu.io.layout import ByteRange

log = logging.getLogger(__name__)

__all__ = ["Closeable", "Transport", "bytes_of", "log_once", "pread_exact"]

_C = TypeVar("_C", bound="Closeable")
_logged: set[str] = set()
_log_lock = threading.Lock()


def log_once(key: str, msg: str, *args: object) -> None:
    """Log ``msg`` at INFO level the first time ``key`` is seen in this process (transports are
    chosen per partition, in many threads; saying it once is enough)."""
    with _log_lock:
        if key in _logged:
            return
        _logged.add(key)
    log.info(msg, *args)


class Closeable:
    """Something that holds open files until :meth:`close`; a context manager that closes it."""

    def close(self) -> None:
        """Close the files this object opened."""

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Transport(Closeable, ABC):
    """Moves file bytes into a destination buffer that the caller allocated and owns.

    The caller picks the memory (a reusable host buffer, a pinned buffer, device memory for
    transports that can write there); the transport only fills it, like the buffer prototype
    of zarr-python 3's stores. One instance serves one reader in one thread; it keeps the files
    it opened (read-only) until :meth:`close`.
    """

    #: Name of the transport, as in the ``io_backend`` setting.
    name: ClassVar[str] = ""
    #: Flags for :func:`os.open` (always read-only).
    open_flags: ClassVar[int] = os.O_RDONLY

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        #: Bytes filled so far by each way of reading (``"pread"``, ``"direct"``, ...): what was
        #: actually taken, which may differ from what was asked for (``O_DIRECT`` refused).
        self.bytes_read: dict[str, int] = {}

    def _count(self, method: str, nbytes: int) -> None:
        self.bytes_read[method] = self.bytes_read.get(method, 0) + int(nbytes)

    @abstractmethod
    def fill(self, dest: Any, ranges: Sequence[ByteRange]) -> None:
        """Write the frames of ``ranges`` into the 1-D uint8 buffer ``dest``.

        Range ``r`` fills ``dest[r.dest_offset : r.dest_offset + r.nbytes]`` (frames back to
        back, per-frame headers left out). Raises
        :class:`~libertem_gpu.errors.FileFormatError` naming the file where it ends early.
        """

    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, self.open_flags)
            self._fds[path] = fd
        return fd

    def close(self) -> None:
        """Close the files this transport opened."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def pread_exact(fd: int, buffer: memoryview, offset: int, path: str) -> None:
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


def bytes_of(array: np.ndarray) -> memoryview:
    """A writable byte view of a C-contiguous array, for ``preadv``."""
    return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
