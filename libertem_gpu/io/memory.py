"""Data sets held in memory: a NumPy array (or any array exposing ``__array__``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import DataSetError
from libertem_gpu.io.dataset import DataSet, DataSetOptions, parse_dtype, split_shape
from libertem_gpu.io.reader import FrameReader

if TYPE_CHECKING:
    from typing_extensions import Unpack


class MemoryReader(FrameReader):
    """Serves frames of an in-memory array; views are zero-copy."""

    def __init__(self, frames: Any) -> None:
        self._frames = frames
        self.dtype = np.dtype(frames.dtype)
        self.sig_shape = tuple(frames.shape[1:])
        #: Whether the frames live on a CUDA device (a CuPy array): the CuPy backend then
        #: processes them in place through :meth:`device_view`.
        self.on_device = _is_device_array(frames)

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        if self.on_device:  # host consumers (the CPU backend) get a device-to-host copy
            self._frames[start:stop].get(out=out)
            return
        np.copyto(out, self._frames[start:stop], casting="no")

    def view(self, start: int, stop: int) -> np.ndarray | None:
        return None if self.on_device else self._frames[start:stop]

    def device_view(self, start: int, stop: int) -> Any:
        """Frames ``[start, stop)`` of a device-resident array, zero-copy (None if on host)."""
        return self._frames[start:stop] if self.on_device else None


def _is_device_array(data: Any) -> bool:
    return hasattr(data, "__cuda_array_interface__")


class MemoryDataSet(DataSet):
    """A data set backed by an array in memory, for tests, notebooks and small data.

    Parameters
    ----------
    data : numpy.ndarray or cupy.ndarray
        Array of shape ``nav + sig``; a CuPy array is processed in place by the cupy backend.
    sig_dims : int
        How many trailing axes form a frame (1 or 2).
    **options
        ``nav_shape``, ``sig_shape`` (reshape, same number of elements), ``sync_offset``,
        ``num_partitions``: see :class:`~libertem_gpu.io.dataset.DataSet`.
    """

    format_name = "memory"

    def __init__(
        self,
        data: Any = None,
        sig_dims: int = 2,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(**options)
        if data is None:
            raise DataSetError("memory data sets need data=<array>")
        # A CuPy array stays on its device (no copy to the host and back).
        keep = isinstance(data, np.ndarray) or _is_device_array(data)
        self.data = data if keep else np.asarray(data)
        self.sig_dims = int(sig_dims)

    def _initialize(self) -> None:
        data = self.data
        parse_dtype(data.dtype, what="dtype of the array")
        nav, sig = split_shape(data.shape, self.sig_dims, "array")
        count = math.prod(nav)
        if len(nav) > 3 and self._nav_shape_arg is None:
            # More scan axes than supported: flatten them unless the user says otherwise.
            nav = (count,)
        self._set_layout(nav, sig, data.dtype, count)

    def get_reader(self) -> MemoryReader:
        frames = self.data.reshape(self.image_count, *self.sig_shape)
        return MemoryReader(frames)
