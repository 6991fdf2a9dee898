"""Auxiliary data: arrays that travel with a UDF as parameters and are handed to it sliced like
its result buffers (one value per frame, the frame's part of a frame-shaped array, or a whole
fixed-size value), as in LiberTEM's ``UDF.aux_data``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError, UDFDefinitionError

__all__ = ["AuxData"]


@dataclass(frozen=True, eq=False)
class AuxData:
    """An array handed to a UDF as a parameter, sliced for the current frame, tile or partition.

    Made with :meth:`libertem_gpu.UDF.aux_data`. Inside the process methods the parameter is the
    slice that belongs to the current data: for ``kind="nav"`` the values of the current frames,
    shaped like the UDF's own ``nav`` buffers (``(frames, *extra_shape)`` for a tile; for a frame
    ``extra_shape``, or ``(1,)`` without one); for ``kind="sig"`` the part of the frame the tile
    holds; for ``kind="single"`` the whole array. In the worker's ``get_task_data`` and
    ``preprocess``, ``sig`` and ``single`` aux data are whole arrays. On the client
    (``get_result_buffers``, ``merge``, ``get_results``) it is this object; :attr:`data` holds
    the array.

    Attributes
    ----------
    data : numpy.ndarray
        The values: ``(nav_size, *extra_shape)`` for ``nav`` (scan order, every position),
        ``(*sig_shape, *extra_shape)`` for ``sig``, ``extra_shape`` for ``single``.
    kind : {"nav", "sig", "single"}
        How it is sliced.
    extra_shape : tuple of int
        Trailing dimensions of each value.
    """

    data: np.ndarray = field(repr=False)
    kind: str
    extra_shape: tuple[int, ...] = ()

    @classmethod
    def make(cls, data: Any, kind: str, extra_shape: Any = (), dtype: Any = "float32") -> AuxData:
        """Check and normalise the arguments of ``UDF.aux_data``."""
        if kind not in ("nav", "sig", "single"):
            raise UDFDefinitionError(f"aux data kind must be nav, sig or single, got {kind!r}")
        extra = (int(extra_shape),) if isinstance(extra_shape, int) else tuple(extra_shape)
        array = np.ascontiguousarray(np.asarray(data, dtype=dtype))
        if kind == "nav":
            n = array.size // max(1, int(np.prod(extra, dtype=np.int64)))
            # Flat values, n * extra_shape of them, are accepted too (LiberTEM's examples
            # pass ``shifts.ravel()``).
            flat_ok = array.ndim == 1 and len(extra) > 0
            if array.size != n * int(np.prod(extra, dtype=np.int64)) or (
                extra and not flat_ok and array.shape[-len(extra) :] != extra
            ):
                raise ShapeMismatchError(
                    f"nav aux data of shape {array.shape} does not end in extra_shape {extra}"
                )
            array = array.reshape((n, *extra))
        elif kind == "single" and extra and array.shape != extra:
            raise ShapeMismatchError(
                f"single aux data has shape {array.shape}, expected extra_shape {extra}"
            )
        return cls(array, kind, extra)

    def check(self, name: str, nav_size: int, sig_shape: tuple[int, ...]) -> None:
        """Raise :class:`ShapeMismatchError` naming parameter ``name`` if the array does not
        fit a data set of ``nav_size`` positions and frames of ``sig_shape``."""
        if self.kind == "nav" and self.data.shape[0] != nav_size:
            raise ShapeMismatchError(
                f"aux data {name!r} holds {self.data.shape[0]} values, the scan has {nav_size} "
                "positions"
            )
        if self.kind == "sig" and self.data.shape[: len(sig_shape)] != sig_shape:
            raise ShapeMismatchError(
                f"aux data {name!r} has shape {self.data.shape}, frames are {sig_shape}"
            )

    def for_frames(self, frames: np.ndarray, single_frame: bool) -> np.ndarray:
        """The values of flat scan positions ``frames`` (``kind="nav"``)."""
        if single_frame and self.extra_shape:
            return self.data[int(frames[0])]
        return self.data[frames]

    def for_rows(self, rows: tuple[int, int] | None) -> np.ndarray:
        """The part of a ``sig`` array that rows ``rows`` of the frame hold (all for None)."""
        return self.data if rows is None else self.data[rows[0] : rows[1]]
