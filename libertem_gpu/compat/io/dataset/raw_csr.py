"""LiberTEM's ``libertem.io.dataset.raw_csr``: :class:`RawCSRDataSet` with its parameters."""

from __future__ import annotations

from typing import Any

from libertem_gpu.compat.io.dataset._lt import LiberTEMDataSetMixin
from libertem_gpu.io import get_format

__all__ = ["RawCSRDataSet"]

_Base: Any = get_format("raw_csr")


class RawCSRDataSet(LiberTEMDataSetMixin, _Base):  # type: ignore[misc]
    """Sparse frames named by a TOML file, constructed as in LiberTEM 0.16 (see
    :class:`~libertem_gpu.io.formats.raw_csr.CSRDataSet`).

    Parameters
    ----------
    path : str
        The TOML file.
    nav_shape, sig_shape : tuple, optional
        Reshape the scan or the frame (default: the TOML file's).
    sync_offset : int
        Frames skipped (positive) or inserted (negative) at the start.
    io_backend
        Ignored: the files are memory-mapped.
    num_partitions : int, optional
        Number of partitions.
    """

    def __init__(
        self,
        path: Any,
        nav_shape: Any = None,
        sig_shape: Any = None,
        sync_offset: int = 0,
        io_backend: Any = None,
        num_partitions: int | None = None,
    ) -> None:
        super().__init__(
            path,
            nav_shape=None if nav_shape is None else tuple(nav_shape),
            sig_shape=None if sig_shape is None else tuple(sig_shape),
            sync_offset=sync_offset,
            num_partitions=num_partitions,
        )
        self.initialize()
