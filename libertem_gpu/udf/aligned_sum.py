"""The sum of the frames moved back by the beam's shifts (descan): :class:`AlignedSumUDF`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu import host_threads
from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import (
    allowed_backends,
    flat_tile,
    kernel_input_dtype,
    mean_or_nan,
    on_worker,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace
from libertem_gpu.udf.mask_shifts import (
    as_shifts,
    check_shifts,
    frame_shifts,
    overlap,
    shift_groups,
)

__all__ = ["AlignedSumUDF"]


class AlignedSumUDF(UDF):
    """The sum (and mean) of the frames, each moved back by the beam's shift at its position,
    so that the beam lies where it lies at shift 0: the descan-corrected sum of diffraction
    patterns, whose disks and rings are not smeared by the beam's walk.

    A frame of shift ``(dy, dx)`` adds its pixel ``(y, x)`` to ``(y - dy, x - dx)``; pixels
    moved off the frame are left out, and ``count`` says how many frames reached each pixel.

    Parameters
    ----------
    shifts : array_like or AuxData
        Whole pixels, as :class:`~libertem_gpu.ApplyMasksUDF`'s ``shifts``: one ``(dy, dx)``
        for every frame or one per scan position, ``(*nav_shape, 2)`` (e.g.
        :func:`~libertem_gpu.udf.mask_shifts.estimate_descan`'s ``shifts``). Floats are cast
        towards zero.
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    intensity : sig, float64
        The sum of the moved frames.
    count : sig, float64
        How many frames reached each pixel.
    mean : sig, float64
        ``intensity / count``, NaN where no frame reached.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import AlignedSumUDF, Context
    >>> frames = np.zeros((1, 2, 5, 5))
    >>> frames[0, 0, 2, 2] = frames[0, 1, 3, 2] = 1  # the beam moved one row down
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=frames)
    >>> res = ctx.run_udf(dataset=ds, udf=AlignedSumUDF(shifts=[[[0, 0], [1, 0]]]))
    >>> float(res["intensity"].data[2, 2])
    2.0
    """

    def __init__(self, shifts: Any, backends: Sequence[str] | None = None) -> None:
        super().__init__(shifts=as_shifts(shifts), backends=backends)

    @property
    def _shifts(self) -> Any:
        return self._kwargs.get("shifts")

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the sum kernel reads directly (float32 where it cannot)."""
        return kernel_input_dtype(self.meta, "sum_frames")

    def get_backends(self) -> tuple[str, ...]:
        """Where the sum kernel runs: the CPU and, where a GPU is, CuPy."""
        return allowed_backends("sum_frames", self.params.backends)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity`` and ``count`` (sig), ``mean`` from them."""
        assert self.meta is not None
        check_shifts(self._shifts, tuple(self.meta.dataset_shape.sig))
        f8 = np.float64
        return {
            "intensity": self.buffer(kind="sig", dtype=f8),
            "count": self.buffer(kind="sig", dtype=f8),
            "mean": self.buffer(kind="sig", dtype=f8, use="result_only"),
        }

    def preprocess(self) -> None:
        """Look the kernel up and make the buffer of one run's sum, once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            self._kernel = get_kernel("sum_frames", self.meta.kernels)
            sig = tuple(self.meta.dataset_shape.sig)
            self._run_sum = self.xp.zeros(int(np.prod(sig)), dtype=np.float64)

    def process_tile(self, tile: Any) -> None:
        """Sum each run of frames of one shift, and add that sum moved back by the shift."""
        assert self.meta is not None and self.meta.tile is not None
        sig = tuple(int(n) for n in self.meta.dataset_shape.sig)
        flat = flat_tile(tile)
        shifts = frame_shifts(self._shifts, self.meta.tile.frames)
        total = self._run_sum
        for shift, rows in shift_groups(shifts):
            part = flat[rows] if isinstance(rows, slice) else flat[self.xp.asarray(rows)]
            total[...] = 0
            self._kernel(self.xp.ascontiguousarray(part), total)
            # Pixel p of these frames belongs at p - shift.
            pairs = [overlap(n, -d) for n, d in zip(sig, shift, strict=True)]
            src = tuple(p[0] for p in pairs)
            dst = tuple(p[1] for p in pairs)
            self.results.intensity[dst] += total.reshape(sig)[src]
            self.results.count[dst] += part.shape[0]

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Sums add."""
        host_threads.combine_into(np.add, dest.intensity, src.intensity)
        host_threads.combine_into(np.add, dest.count, src.count)

    def get_results(self) -> dict[str, Any]:
        """The sum, the counts and their ratio."""
        total, count = self.results.intensity, self.results.count
        return {"intensity": total, "count": count, "mean": mean_or_nan(total, count)}
