"""LiberTEM's ``libertem.io.dataset.memory``: :class:`MemoryDataSet` with its parameters."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from libertem_gpu.compat.io.dataset._lt import LiberTEMDataSetMixin
from libertem_gpu.io import get_format

__all__ = ["MemoryDataSet"]

_Base: Any = get_format("memory")


class MemoryDataSet(LiberTEMDataSetMixin, _Base):  # type: ignore[misc]
    """A data set in memory, constructed as in LiberTEM 0.16 and ready to run.

    Parameters
    ----------
    tileshape : tuple, optional
        Ignored: the run plan chooses tiles.
    num_partitions : int, optional
        Number of partitions (default: sized by bytes).
    data : numpy.ndarray or cupy.ndarray
        The data, ``nav + sig`` shaped (or any shape with as many elements, given
        ``nav_shape`` and ``sig_shape``).
    sig_dims : int, optional
        Number of signal dimensions (default: ``len(sig_shape)``, else 2).
    check_cast, tiledelay, base_shape, force_need_decode, array_backends
        LiberTEM's test knobs; ignored.
    datashape : tuple, optional
        Without ``data``: a float32 array of zeros of this shape.
    io_backend : None
        LiberTEM raises for any other value; so do we.
    nav_shape, sig_shape : tuple, optional
        The scan and frame shape (default: from ``data.shape`` and ``sig_dims``).
    sync_offset : int
        Frames skipped (positive) or inserted (negative) at the start.
    """

    def __init__(
        self,
        tileshape: Any = None,
        num_partitions: int | None = None,
        data: Any = None,
        sig_dims: int | None = None,
        check_cast: bool = True,
        tiledelay: Any = None,
        datashape: Any = None,
        base_shape: Any = None,
        force_need_decode: bool = False,
        io_backend: Any = None,
        nav_shape: Any = None,
        sig_shape: Any = None,
        sync_offset: int = 0,
        array_backends: Any = None,
    ) -> None:
        if io_backend is not None:
            raise ValueError("MemoryDataSet takes no io_backend")
        if data is None:
            if datashape is None:
                raise ValueError("MemoryDataSet needs data (an array) or datashape (a shape)")
            data = np.zeros(tuple(datashape), dtype=np.float32)
        if sig_dims is None:
            if sig_shape is not None:
                sig_dims = len(sig_shape)
            elif nav_shape is not None:
                sig_dims = data.ndim - len(nav_shape)
            else:
                sig_dims = 2
        elif sig_shape is not None and len(sig_shape) != sig_dims:
            raise ValueError(f"sig_shape {tuple(sig_shape)} does not have sig_dims={sig_dims} dims")
        sig = tuple(sig_shape) if sig_shape is not None else tuple(data.shape[-sig_dims:])
        nav = tuple(nav_shape) if nav_shape is not None else tuple(data.shape[:-sig_dims])
        if data.size % math.prod(sig) != 0:
            raise ValueError(f"the data's size {data.size} is not a multiple of sig_shape {sig}")
        # LiberTEM reads the data as a flat run of frames: so do we, whatever its own shape.
        frames = data.reshape(data.size // math.prod(sig), *sig)
        super().__init__(
            data=frames,
            sig_dims=len(sig),
            nav_shape=nav,
            sync_offset=sync_offset,
            num_partitions=num_partitions,
        )
        self.initialize()
