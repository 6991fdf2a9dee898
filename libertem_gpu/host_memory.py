"""Host arrays that start as zeros and are then accumulated into."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["zeros"]


def zeros(shape: int | tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """A zero-filled NumPy array whose pages are written before it is returned.

    ``numpy.zeros`` of a large array gets fresh pages from the system that are only reserved:
    the first read of each page maps the shared zero page, and the write that follows (an
    accumulator's ``+=``) has to replace it, which flushes that address from the TLBs of every
    CPU running one of the process's other threads (an interrupt to each; in a virtual machine,
    an exit to the hypervisor). Zeroing the pages by writing costs one fault per page and no
    flush. Measured for the client's merge of SumUDF (512 KiB of float64, 1 GiB of uint16 on two
    threads): 41.6 -> 40.0 ms per run.
    """
    dtype = np.dtype(dtype)
    if dtype.hasobject or dtype.fields is not None:
        return np.zeros(shape, dtype)
    out = np.empty(shape, dtype)
    out.fill(0)
    return out
