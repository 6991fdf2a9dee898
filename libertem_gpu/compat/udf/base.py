"""LiberTEM's ``libertem.udf.base``: the UDF base class and its helpers."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.errors import ExecutorError
from libertem_gpu.udf.base import UDF as _UDF
from libertem_gpu.udf.base import UDFMeta
from libertem_gpu.udf.buffers import BufferNamespace

__all__ = [
    "UDF",
    "UDFData",
    "UDFFrameMixin",
    "UDFMeta",
    "UDFPartitionMixin",
    "UDFPostprocessMixin",
    "UDFPreprocessMixin",
    "UDFRunCancelled",
    "UDFTileMixin",
    "check_cast",
]

#: What ``self.results`` and the ``merge`` arguments are (LiberTEM's ``UDFData``).
UDFData = BufferNamespace

#: A cancelled run raises this (an :class:`~libertem_gpu.errors.ExecutorError` here).
UDFRunCancelled = ExecutorError


class UDF(_UDF):
    """LiberTEM's ``UDF``: ours, with LiberTEM's backend names as class attributes.

    ``get_backends`` may return any of them; the names other than ``numpy`` and ``cupy``
    (``cuda``, the sparse array types) are accepted and run as ``numpy`` or ``cupy``.
    """

    BACKEND_NUMPY = "numpy"
    BACKEND_CUPY = "cupy"
    BACKEND_CUDA = "cuda"
    BACKEND_SPARSE_COO = "sparse.COO"
    BACKEND_SPARSE_GCXS = "sparse.GCXS"
    BACKEND_SPARSE_DOK = "sparse.DOK"
    BACKEND_SCIPY_COO = "scipy.sparse.coo_matrix"
    BACKEND_SCIPY_CSR = "scipy.sparse.csr_matrix"
    BACKEND_SCIPY_CSC = "scipy.sparse.csc_matrix"
    BACKEND_ALL = (BACKEND_NUMPY, BACKEND_CUPY, BACKEND_CUDA)

    def forbuf(self, arr: Any, target: Any) -> Any:
        """``arr`` as the array type of buffer ``target`` (here tiles and buffers share it)."""
        return arr

    def get_backends(self) -> tuple[str, ...]:
        """``("numpy",)`` unless overridden."""
        return (self.BACKEND_NUMPY,)


class UDFFrameMixin:
    """Marks a UDF that implements ``process_frame`` (typing aid in LiberTEM)."""


class UDFTileMixin:
    """Marks a UDF that implements ``process_tile`` (typing aid in LiberTEM)."""


class UDFPartitionMixin:
    """Marks a UDF that implements ``process_partition`` (typing aid in LiberTEM)."""


class UDFPreprocessMixin:
    """Marks a UDF that implements ``preprocess`` (typing aid in LiberTEM)."""


class UDFPostprocessMixin:
    """Marks a UDF that implements ``postprocess`` (typing aid in LiberTEM)."""


def check_cast(fromvar: Any, tovar: Any) -> None:
    """Raise :class:`TypeError` unless ``fromvar``'s dtype casts safely to ``tovar``'s."""
    if not np.can_cast(fromvar.dtype, tovar.dtype, casting="safe"):
        raise TypeError(f"unsafe automatic cast from {fromvar.dtype} to {tovar.dtype}")
