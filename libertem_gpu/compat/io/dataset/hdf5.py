"""LiberTEM's ``libertem.io.dataset.hdf5``: :class:`H5DataSet` with its parameters."""

from __future__ import annotations

from typing import Any

from libertem_gpu.compat.io.dataset._lt import LiberTEMDataSetMixin
from libertem_gpu.io import get_format

__all__ = ["H5DataSet"]

_Base: Any = get_format("hdf5")


class H5DataSet(LiberTEMDataSetMixin, _Base):  # type: ignore[misc]
    """A data set in an HDF5 file, constructed as in LiberTEM 0.16.

    Parameters
    ----------
    path : str
        The file.
    ds_path : str, optional
        The data set inside the file (default: the largest one).
    tileshape, target_size, min_num_partitions, io_backend
        Ignored: tiles, partitions and I/O are chosen by the run plan.
    nav_shape, sig_shape : tuple, optional
        Reshape the scan or the frame.
    sig_dims : int
        Number of trailing signal dimensions.
    sync_offset : int
        Frames skipped (positive) or inserted (negative) at the start.
    """

    def __init__(
        self,
        path: Any,
        ds_path: str | None = None,
        tileshape: Any = None,
        nav_shape: Any = None,
        sig_shape: Any = None,
        target_size: Any = None,
        min_num_partitions: Any = None,
        sig_dims: int = 2,
        io_backend: Any = None,
        sync_offset: int = 0,
    ) -> None:
        super().__init__(
            path,
            ds_path,
            sig_dims,
            nav_shape=None if nav_shape is None else tuple(nav_shape),
            sig_shape=None if sig_shape is None else tuple(sig_shape),
            sync_offset=sync_offset,
        )
        self.initialize()
