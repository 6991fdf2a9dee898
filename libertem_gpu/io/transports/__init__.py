"""Transports: how a data set's bytes get into a buffer the caller chose.

A format says where a frame's bytes are (:class:`~libertem_gpu.io.layout.FrameLayout`); a
transport fills a destination buffer with them:

- :class:`MmapTransport`: zero-copy views of a read-only mapping (CPU processing);
- :class:`PreadTransport`: ``preadv`` into a reusable host or pinned buffer;
- :class:`DirectTransport`: ``O_DIRECT`` into page-aligned host buffers;
- :class:`~libertem_gpu.io.transports.kvikio.KvikioTransport`: kvikio into device memory
  (optional; imported only where chosen).

:func:`choose_transport` picks them from the ``io_backend`` setting.
"""

from libertem_gpu.io.transports.base import Transport
from libertem_gpu.io.transports.choose import IO_BACKENDS, TransportChoice, choose_transport
from libertem_gpu.io.transports.direct import ALIGNMENT, DirectTransport
from libertem_gpu.io.transports.mmap import MmapTransport
from libertem_gpu.io.transports.pread import PreadTransport

__all__ = [
    "ALIGNMENT",
    "IO_BACKENDS",
    "DirectTransport",
    "MmapTransport",
    "PreadTransport",
    "Transport",
    "TransportChoice",
    "choose_transport",
]
