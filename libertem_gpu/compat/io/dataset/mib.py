"""LiberTEM's ``libertem.io.dataset.mib``: :class:`MIBDataSet` with its parameters."""

from __future__ import annotations

from typing import Any

from libertem_gpu.compat.io.dataset._lt import LiberTEMDataSetMixin, scan_shape
from libertem_gpu.io import get_format

__all__ = ["MIBDataSet"]

_Base: Any = get_format("mib")


class MIBDataSet(LiberTEMDataSetMixin, _Base):  # type: ignore[misc]
    """Quantum Detectors Merlin files, constructed as in LiberTEM 0.16.

    Parameters
    ----------
    path : str
        A ``.mib`` or ``.hdr`` file.
    tileshape, io_backend
        Ignored: tiles and I/O are chosen by the run plan.
    scan_size : tuple, optional
        LiberTEM's deprecated name of ``nav_shape``.
    disable_glob : bool
        Read only the given file, not the other files of the acquisition.
    nav_shape, sig_shape : tuple, optional
        Scan and frame shape (default: from the headers).
    sync_offset : int
        Frames skipped (positive) or inserted (negative) at the start.
    num_partitions : int, optional
        Number of partitions.
    """

    def __init__(
        self,
        path: Any,
        tileshape: Any = None,
        scan_size: Any = None,
        disable_glob: bool = False,
        nav_shape: Any = None,
        sig_shape: Any = None,
        sync_offset: int = 0,
        io_backend: Any = None,
        num_partitions: int | None = None,
    ) -> None:
        nav = scan_shape(nav_shape, scan_size, "MIBDataSet")
        super().__init__(
            path,
            nav_shape=None if nav is None else tuple(nav),
            sig_shape=None if sig_shape is None else tuple(sig_shape),
            sync_offset=sync_offset,
            num_partitions=num_partitions,
            multi_file=not disable_glob,
        )
        self.initialize()
