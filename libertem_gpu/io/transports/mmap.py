"""The memory-map transport: zero-copy views of frames for CPU processing."""

from __future__ import annotations

import math
import mmap
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.io.layout import ByteRange
from libertem_gpu.io.transports.base import Transport

__all__ = ["MmapTransport"]

# Not MAP_POPULATE: where the file sits in the page cache in small folios (written in small
# pieces, say), pre-faulting a mapping page by page cost twice the time of the faults taken while
# reading (which map 16 pages each): SumUDF over 1 GiB on 2 threads 11.6 -> 19.1 GB/s. In large
# folios both cost the same.
_MAP_FLAGS = mmap.MAP_SHARED


class MmapTransport(Transport):
    """Maps byte ranges read-only: :meth:`view` hands the frames out without a copy (the CPU
    path's preferred way); :meth:`fill` copies them out of the mapping."""

    name = "mmap"

    def view(self, r: ByteRange, sig_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """The frames of ``r`` as an array of shape ``(r.num_frames, *sig_shape)`` whose frame
        axis has the file's stride, backed by a read-only mapping of the file."""
        data_end = r.offset + (r.num_frames - 1) * r.stride + r.frame_bytes
        map_start = r.offset - r.offset % mmap.ALLOCATIONGRANULARITY
        mapping = mmap.mmap(
            self._fd(r.path),
            data_end - map_start,
            flags=_MAP_FLAGS,
            prot=mmap.PROT_READ,
            offset=map_start,
        )
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
