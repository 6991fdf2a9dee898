"""Frames summed with a weight per scan position: :class:`WeightedSumUDF`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu import host_threads
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import (
    allowed_backends,
    flat_tile,
    kernel_input_dtype,
    on_worker,
    pixel_range,
    preferences,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace

__all__ = ["WeightedSumUDF"]


class WeightedSumUDF(UDF):
    """Sums of the frames, each weighed by a value per scan position: ``sum_p w[p, j] frame_p``
    for every ``j``, the transpose of a virtual detector (a frame-shaped image from a map over
    the scan where :class:`~libertem_gpu.ApplyMasksUDF` makes a scan map from a frame-shaped
    mask).

    Parameters
    ----------
    weights : array_like
        ``(*nav, l)`` or ``(*nav,)`` finite numbers: the scan's shape, then (optionally) one
        weight per sum. A bool map sums the frames it marks.
    squared : bool
        Sum the frames' squares instead, ``sum_p w[p, j] frame_p**2`` (pixel by pixel, in
        float64): weighted second moments. Default False.
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    intensity : single, ``(l, *sig)`` (``(*sig)`` for ``(*nav,)`` weights), float64
        The weighted sums of the frames processed (in the roi, holding data).

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, WeightedSumUDF
    >>> ctx = Context("inline")
    >>> data = np.random.default_rng(0).random((4, 5, 6, 7))
    >>> ds = ctx.load("memory", data=data)
    >>> left = np.zeros((4, 5), bool)
    >>> left[:, :2] = True
    >>> res = ctx.run_udf(dataset=ds, udf=WeightedSumUDF(left))
    >>> np.allclose(res["intensity"].data, data[:, :2].sum(axis=(0, 1)))
    True
    """

    def __init__(
        self, weights: Any, backends: Sequence[str] | None = None, squared: bool = False
    ) -> None:
        array = np.asarray(weights)
        if array.dtype.kind not in "biuf" or array.ndim == 0:
            raise InvalidParameterError(
                f"WeightedSumUDF: weights must be real numbers shaped like the scan (with one "
                f"more axis for several sums), got {array.dtype} of shape {array.shape}"
            )
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise InvalidParameterError("WeightedSumUDF: weights must be finite")
        super().__init__(weights=array, backends=backends, squared=bool(squared))

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the operation reads (converting as it goes)."""
        return kernel_input_dtype(self.meta, "weighted_frame_sum")

    def get_backends(self) -> tuple[str, ...]:
        """The CPU (BLAS) and, where a GPU is, CuPy (cuBLAS)."""
        return allowed_backends("weighted_frame_sum", self.params.backends)

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs (each slab adds its own pixels)."""
        return preferences(stored_byteorder=False)

    def _table(self) -> tuple[np.ndarray, bool]:
        """The weights as ``(frames of the scan, l)``, and whether they had an axis of sums."""
        assert self.meta is not None
        nav = tuple(int(n) for n in self.meta.dataset_shape.nav)
        w = self.params.weights
        if w.shape == nav:
            return w.reshape(-1, 1), False
        if w.shape[:-1] == nav or (w.ndim == 2 and w.shape[0] == math.prod(nav)):
            return w.reshape(math.prod(nav), -1), True
        raise ShapeMismatchError(
            f"WeightedSumUDF: weights of shape {w.shape} do not fit the scan {nav}: give "
            f"{nav} or {(*nav, 'l')}"
        )

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``sums`` (private, ``(l, pixels)``) and ``intensity`` from it."""
        assert self.meta is not None
        table, several = self._table()
        sig = tuple(int(n) for n in self.meta.dataset_shape.sig)
        count = table.shape[1]
        shape = (count, *sig) if several else sig
        return {
            "sums": self.buffer(
                kind="single", extra_shape=(count, math.prod(sig)), dtype=np.float64, use="private"
            ),
            "intensity": self.buffer(
                kind="single", extra_shape=shape, dtype=np.float64, use="result_only"
            ),
        }

    def preprocess(self) -> None:
        """The weights on the backend and the operation."""
        if not on_worker(self.meta):
            return
        assert self.meta is not None
        self._weights = self.xp.asarray(self._table()[0])
        self._sum = get_kernel("weighted_frame_sum", self.meta.kernels)

    def process_tile(self, tile: Any) -> None:
        """Add the tile's frames (or their row slab) to the sums."""
        assert self.meta is not None and self.meta.tile is not None
        p0, p1 = pixel_range(self.meta)
        frames = self.xp.asarray(self.meta.tile.frames)
        # squares in float64: exact for integers of up to 26 bits
        sums = self.results.sums[:, p0:p1]
        self._sum(flat_tile(tile), self._weights[frames], sums, self.params.squared)

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Sums add."""
        host_threads.combine_into(np.add, dest.sums, src.sums)

    def get_results(self) -> dict[str, Any]:
        """The sums in the frame's shape."""
        assert self.meta is not None
        _, several = self._table()
        sig = tuple(int(n) for n in self.meta.dataset_shape.sig)
        sums = np.asarray(self.results.sums)
        return {"intensity": sums.reshape(-1, *sig) if several else sums.reshape(sig)}
