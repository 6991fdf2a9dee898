"""Which stored dtypes the CPU kernels read in reversed byte order, swapping as they read.

A light module (NumPy only): the run plan asks it without importing Numba. The swapping itself
is :func:`libertem_gpu.kernels.bswap.load`; which operation swaps is a capability of its
implementation (:class:`libertem_gpu.kernels.registry.Impl`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SWAPPABLE_DTYPES", "swappable"]

#: Stored dtypes whose bytes the swapping kernels reverse as they read: unsigned integers of 8
#: to 32 bits in either byte order (8-bit ones need no swap at all).
SWAPPABLE_DTYPES = frozenset(np.dtype(t) for t in (">u2", ">u4", "<u2", "<u4", "u1"))


def swappable(dtype: Any) -> bool:
    """Whether ``dtype``, in either byte order, is one the swapping kernels can read unswapped."""
    dtype = np.dtype(dtype)
    return dtype in SWAPPABLE_DTYPES or dtype.newbyteorder() in SWAPPABLE_DTYPES
