"""What the kernels can read, as plain facts that planning asks about without importing Numba."""

from __future__ import annotations

import numpy as np

__all__ = ["SWAPPABLE_DTYPES"]

#: Stored dtypes whose tiles the CPU kernels can take in stored byte order and swap as they read
#: (unsigned integers; one-byte types need no swap at all).
SWAPPABLE_DTYPES = frozenset(np.dtype(t) for t in (">u2", ">u4", "<u2", "<u4", "u1"))
