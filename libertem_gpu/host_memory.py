"""Host arrays that start as zeros and are then accumulated into, and the pool of large host
blocks they are cut from.

A large NumPy array gets fresh pages from the system, and the kernel zeroes each page as it is
first written: per run, a frame-sized float64 sum of 4096 x 4096 frames (128 MiB) costs that
for every partition's buffer and the client's. On a 2-vCPU Zen 4 VM that zeroing was 15 % of
SumUDF's CPU time and 22 % of StdDevUDF's over 2 GiB of such frames. Blocks of at least
:data:`POOL_MIN_BYTES` therefore come from a pool: a block whose arrays are all gone (no view of
it is left, counted by its references) is cut again for the next request of the same size, its
pages already mapped. The pool keeps at most the ``host_pool_bytes`` setting's bytes in blocks,
in use or free (in a dask worker with a memory limit, at most an eighth of it);
:func:`release_pool` lets go of the free ones.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Any

import numpy as np

from libertem_gpu import host_threads

__all__ = ["POOL_MIN_BYTES", "copy", "empty", "pooled_bytes", "release_pool", "zeros"]

#: Arrays of at least this many bytes come from the pool (smaller ones come from the
#: allocator's heap, whose pages are reused anyway).
POOL_MIN_BYTES = 4 << 20


def _references(blocks: list[np.ndarray], index: int) -> int:
    return sys.getrefcount(blocks[index])


# What a block referenced by the pool's list alone counts, measured the way _Pool does (the
# count differs between Python versions).
_FREE_REFERENCES = _references([np.empty(1, np.uint8)], 0)
# Reference counts are exact only with the GIL; without it (free-threaded builds) nothing is
# pooled.
_COUNTS_EXACT = getattr(sys, "_is_gil_enabled", lambda: True)()


class _Pool:
    """Blocks of bytes, each handed out again once nothing references it but the pool."""

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._lock = threading.Lock()

    def _free(self, index: int) -> bool:
        return _references(self._blocks, index) == _FREE_REFERENCES

    def take(self, nbytes: int, budget: int) -> np.ndarray | None:
        """A block of exactly ``nbytes``: a free one, or a new one where the pool's blocks stay
        within ``budget`` bytes (free blocks dropped, oldest first, to make room); None where
        even that does not fit."""
        with self._lock:
            for i in range(len(self._blocks)):
                if self._blocks[i].nbytes == nbytes and self._free(i):
                    block = self._blocks.pop(i)
                    self._blocks.append(block)  # most recently used last
                    return block
            held = sum(b.nbytes for b in self._blocks)
            i = 0
            while held + nbytes > budget and i < len(self._blocks):
                if self._free(i):
                    held -= self._blocks.pop(i).nbytes
                else:
                    i += 1
            if held + nbytes > budget:
                return None
            block = np.empty(nbytes, np.uint8)
            self._blocks.append(block)
            return block

    def release(self) -> None:
        with self._lock:
            # Indices first: a loop variable holding a block would count as a reference.
            in_use = [i for i in range(len(self._blocks)) if not self._free(i)]
            self._blocks = [self._blocks[i] for i in in_use]

    def held(self) -> int:
        with self._lock:
            return sum(b.nbytes for b in self._blocks)


_POOL = _Pool()
# The share of a dask worker's memory limit the pool may hold: the nanny counts resident memory
# against the limit (it pauses a worker at 80 % and restarts it at 95 %).
_WORKER_LIMIT_SHARE = 8


def _budget() -> int:
    """Bytes the pool may hold: the ``host_pool_bytes`` setting, and in a dask worker with a
    memory limit at most an eighth of that limit."""
    from libertem_gpu import config

    budget = int(config.get("host_pool_bytes"))
    limit = _dask_worker_memory_limit()
    return budget if limit is None else min(budget, limit // _WORKER_LIMIT_SHARE)


def _dask_worker_memory_limit() -> int | None:
    """The memory limit of the dask worker this runs in, or None (not in a worker, no limit)."""
    distributed = sys.modules.get("distributed")  # imported by any dask worker
    if distributed is None:
        return None
    try:
        worker = distributed.get_worker()
    except ValueError:  # not in a worker's task
        return None
    limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    return int(limit) if limit else None


def empty(shape: int | tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """An uninitialised NumPy array, from the pool where it is large enough.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the array.
    dtype : dtype
        Element type (plain numbers: structured and object types are never pooled).

    Returns
    -------
    numpy.ndarray
        C-contiguous; its block returns to the pool once no array views it.
    """
    dtype = np.dtype(dtype)
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes >= POOL_MIN_BYTES and _COUNTS_EXACT and not dtype.hasobject and dtype.fields is None:
        budget = _budget()
        block = _POOL.take(nbytes, budget) if budget > 0 else None  # 0: the pool is off
        if block is not None:
            return block.view(dtype).reshape(dims)
    return np.empty(dims, dtype)


def zeros(shape: int | tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """A zero-filled NumPy array whose pages are written before it is returned.

    Large arrays come from the pool (see :func:`empty`). ``numpy.zeros`` of a large array gets
    fresh pages from the system that are only reserved: the first read of each page maps the
    shared zero page, and the write that follows (an accumulator's ``+=``) has to replace it,
    which flushes that address from the TLBs of every CPU running one of the process's other
    threads (an interrupt to each; in a virtual machine, an exit to the hypervisor). Zeroing the
    pages by writing costs one fault per page and no flush. Measured for the client's merge of
    SumUDF (512 KiB of float64, 1 GiB of uint16 on two threads): 41.6 -> 40.0 ms per run.
    """
    dtype = np.dtype(dtype)
    if dtype.hasobject or dtype.fields is not None:
        return np.zeros(shape, dtype)
    out = empty(shape, dtype)
    # Zero bytes are zero of every plain type. NumPy fills bytes with memset, which writes
    # large arrays with non-temporal stores (no read of the old contents): 128 MiB at 59-61
    # GB/s against 27 for a float64 fill (one thread, Zen 4 VM).
    out.reshape(-1).view(np.uint8).fill(0)
    return out


def copy(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array``, from the pool where it is large enough (see
    :func:`empty`)."""
    out = empty(array.shape, array.dtype)
    host_threads.map_flat(np.copyto, out, array)
    return out


def release_pool() -> None:
    """Let go of the pool's free blocks (blocks still viewed by an array stay pooled)."""
    _POOL.release()


def pooled_bytes() -> int:
    """Bytes the pool holds in blocks, in use or free."""
    return _POOL.held()
