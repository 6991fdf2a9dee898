"""LiberTEM's ``libertem.io.dataset.npy``: :class:`NPYDataSet` with its parameters."""

from __future__ import annotations

from typing import Any

from libertem_gpu.compat.io.dataset._lt import LiberTEMDataSetMixin
from libertem_gpu.io import get_format

__all__ = ["NPYDataSet"]

_Base: Any = get_format("npy")


class NPYDataSet(LiberTEMDataSetMixin, _Base):  # type: ignore[misc]
    """A NumPy ``.npy`` file, constructed as in LiberTEM 0.16.

    Parameters
    ----------
    path : str
        The file.
    sig_dims : int
        Number of trailing signal dimensions.
    nav_shape, sig_shape : tuple, optional
        Reshape the scan or the frame.
    sync_offset : int
        Frames skipped (positive) or inserted (negative) at the start.
    io_backend
        Ignored: I/O is chosen by the run plan.
    num_partitions : int, optional
        Number of partitions.
    """

    def __init__(
        self,
        path: Any,
        sig_dims: int | None = 2,
        nav_shape: Any = None,
        sig_shape: Any = None,
        sync_offset: int = 0,
        io_backend: Any = None,
        num_partitions: int | None = None,
    ) -> None:
        super().__init__(
            path,
            2 if sig_dims is None else sig_dims,
            nav_shape=None if nav_shape is None else tuple(nav_shape),
            sig_shape=None if sig_shape is None else tuple(sig_shape),
            sync_offset=sync_offset,
            num_partitions=num_partitions,
        )
        self.initialize()
