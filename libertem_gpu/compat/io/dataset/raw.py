"""LiberTEM's ``libertem.io.dataset.raw``: :class:`RawFileDataSet` with its parameters."""

from __future__ import annotations

from typing import Any

from libertem_gpu.compat.io.dataset._lt import LiberTEMDataSetMixin, scan_shape
from libertem_gpu.io import get_format

__all__ = ["RawFileDataSet"]

_Base: Any = get_format("raw")


class RawFileDataSet(LiberTEMDataSetMixin, _Base):  # type: ignore[misc]
    """Frames stored back to back without headers, constructed as in LiberTEM 0.16.

    Parameters
    ----------
    path : str
        The file.
    dtype : dtype
        Element type as stored.
    scan_size, detector_size : tuple, optional
        LiberTEM's deprecated names of ``nav_shape`` and ``sig_shape``.
    enable_direct, tileshape, io_backend
        Ignored: I/O is chosen by the run plan.
    detector_size_raw, crop_detector_to
        Deprecated in LiberTEM; only ``crop_detector_to == detector_size_raw`` (no cropping)
        is accepted, as there.
    nav_shape, sig_shape : tuple
        Scan and frame shape.
    sync_offset : int
        Frames skipped (positive) or inserted (negative) at the start.
    num_partitions : int, optional
        Number of partitions.
    """

    def __init__(
        self,
        path: Any,
        dtype: Any,
        scan_size: Any = None,
        detector_size: Any = None,
        enable_direct: bool = False,
        detector_size_raw: Any = None,
        crop_detector_to: Any = None,
        tileshape: Any = None,
        nav_shape: Any = None,
        sig_shape: Any = None,
        sync_offset: int = 0,
        io_backend: Any = None,
        num_partitions: int | None = None,
    ) -> None:
        if crop_detector_to is not None:
            if detector_size is not None or detector_size_raw != crop_detector_to:
                raise ValueError("RawFileDataSet cannot crop frames; give sig_shape instead")
            detector_size = crop_detector_to
        nav = scan_shape(nav_shape, scan_size, "RawFileDataSet")
        sig = sig_shape if detector_size is None else detector_size
        if nav is None or sig is None:
            raise ValueError("RawFileDataSet needs nav_shape and sig_shape")
        super().__init__(
            path,
            nav_shape=tuple(nav),
            sig_shape=tuple(sig),
            dtype=dtype,
            sync_offset=sync_offset,
            num_partitions=num_partitions,
        )
        self.initialize()
