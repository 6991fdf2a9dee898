"""Picking frames: :class:`PickUDF`."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from libertem_gpu.udf._common import BUILTIN_BACKENDS, PARTIAL_FRAMES
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl

log = logging.getLogger(__name__)

#: Picking more than this many bytes logs a warning: the frames all end up in client memory.
WARN_BYTES = 2**28


class PickUDF(UDF):
    """Return the frames selected by the roi, as they are stored (native byte order).

    Meant for a few frames: every picked frame is held in memory on the client.

    Results
    -------
    intensity : single, dtype of the data set, shape ``(frames_in_roi, *sig_shape)``
        The selected frames in scan order (all frames without a roi); ``.data`` and
        ``.raw_data`` are the same array, as in LiberTEM.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, PickUDF
    >>> ctx = Context("inline")
    >>> data = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    >>> ds = ctx.load("memory", data=data)
    >>> roi = np.zeros((2, 3), dtype=bool)
    >>> roi[1, 2] = True
    >>> picked = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
    >>> bool((picked[0] == data[1, 2]).all())
    True
    """

    def get_preferred_input_dtype(self) -> Any:
        """The stored type: picked frames are returned as they are stored."""
        return self.USE_NATIVE_DTYPE

    def get_backends(self) -> tuple[str, ...]:
        """Runs on the CPU and, where a GPU is, on CuPy."""
        return BUILTIN_BACKENDS

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs (each slab is copied to its place)."""
        return dict(PARTIAL_FRAMES)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """A private ``nav`` buffer that gathers the frames of each partition, and ``intensity``
        (``single``, ``(frames_in_roi, *sig)``), the frames in scan order."""
        assert self.meta is not None
        sig = tuple(self.meta.dataset_shape.sig)
        roi = self.meta.roi
        count = self.meta.dataset_shape.nav_size if roi is None else int(np.count_nonzero(roi))
        dtype = self.meta.input_dtype
        if self.meta.partition is None and count * math.prod(sig) * dtype.itemsize > WARN_BYTES:
            log.warning(
                "PickUDF gathers %d frames of %s (%s bytes) in memory; consider a smaller roi "
                "or a UDF that reduces the frames where they are read",
                count,
                sig,
                count * math.prod(sig) * dtype.itemsize,
            )
        return {
            # nav, so that a partition holds only its own frames and merging is a copy
            "frames": self.buffer(kind="nav", extra_shape=sig, dtype=dtype, use="private"),
            "intensity": self.buffer(
                kind="single", extra_shape=(count, *sig), dtype=dtype, use="result_only"
            ),
        }

    def process_tile(self, tile: Any) -> None:
        """Copy the tile's frames (or row slabs) to their place."""
        assert self.meta is not None
        index = (slice(None), *self.meta.sig_slice)
        self.results.frames[index] = tile

    def get_results(self) -> dict[str, Any]:
        """The gathered frames, in scan order."""
        return {"intensity": self.results.frames}
