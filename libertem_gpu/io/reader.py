"""Readers: how a data set's bytes get into a buffer the caller hands over."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from libertem_gpu.io.transports.base import Closeable

if TYPE_CHECKING:
    from libertem_gpu.io.layout import FrameLayout
    from libertem_gpu.io.transports.base import Transport


class FrameReader(Closeable, ABC):
    """Reads source frames of one data set.

    One instance serves one partition task in one worker; it is not shared between threads.
    Files are opened read-only. Source frame indices are positions in the file(s), before the
    data set's ``sync_offset`` is applied.

    Attributes
    ----------
    dtype : numpy.dtype
        The element type :meth:`read_into` writes; it may be big-endian (the caller swaps bytes
        where it computes, e.g. on the GPU).
    sig_shape : tuple of int
        The frame shape.
    """

    dtype: np.dtype
    sig_shape: tuple[int, ...]

    @abstractmethod
    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        """Write source frames ``[start, stop)`` into ``out``.

        ``out`` has shape ``(stop - start, *sig_shape)`` and dtype :attr:`dtype` (any writable
        C-contiguous buffer: host, pinned). Raises :class:`~libertem_gpu.errors.FileFormatError`
        naming the file where it ends early or cannot be decoded.
        """

    def view(self, start: int, stop: int) -> np.ndarray | None:
        """A zero-copy view of source frames ``[start, stop)`` (memory-mapped), or ``None``.

        The view has shape ``(stop - start, *sig_shape)`` and dtype :attr:`dtype`; its frame axis
        may be strided. Formats that must decode bytes return ``None``.
        """
        return None

    def mappable_ranges(self, start: int, stop: int) -> list[tuple[int, int]]:
        """Split ``[start, stop)`` into ranges that :meth:`view` can map as one view each
        (for example one per file); by default the whole range."""
        return [(start, stop)]

    def raw_layout(self) -> FrameLayout | None:
        """Where the frames lie in the files, if :meth:`read_into` hands them out exactly as
        stored (no decoding, flipping or correction): then a transport may copy their bytes
        straight into any memory, e.g. the device. ``None`` otherwise."""
        return None

    def use_transport(self, transport: Transport) -> None:
        """Read file bytes through ``transport`` from now on (the reader closes it); readers
        that do not read byte ranges ignore it."""
        transport.close()
