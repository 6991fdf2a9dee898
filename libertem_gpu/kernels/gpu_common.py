"""Shared plumbing of the GPU kernels: launching Numba-CUDA kernels on CuPy arrays.

Numba-CUDA kernels are written as factories (a function that imports ``numba.cuda`` and returns
the plain Python kernel), so that importing a kernel module compiles nothing and imports no
CUDA; :func:`jitted` compiles a factory's kernel once per process (Numba's file cache keeps it
for the next process), and tests compile the same factories with ``numba.cuda.compile_ptx`` or
run them under the CUDA simulator.

Kernels are launched on CuPy's current stream (the backend's compute stream), with CuPy arrays
wrapped without the stream synchronisation Numba would otherwise do for every argument.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from libertem_gpu import config
from libertem_gpu.errors import ShapeMismatchError

__all__ = [
    "BLOCK",
    "CHUNK",
    "bind_cuda",
    "cupy",
    "is_device_array",
    "jitted",
    "launch",
    "row_chunks",
    "rows2d",
]

#: Threads per block of the reduction kernels (a power of two: tree reductions halve it). The
#: CUDA simulator runs one Python thread per CUDA thread, so it gets small blocks (same code).
BLOCK = 32 if config.get("cuda_simulator") else 256
#: Elements one block covers along a reduced axis (several per thread: fewer atomics).
CHUNK = 16 * BLOCK

_lock = threading.Lock()


def cupy() -> Any:
    """The ``cupy`` module (imported on first use)."""
    import cupy as cp

    return cp


def is_device_array(a: Any) -> bool:
    """Whether ``a`` lives on a CUDA device (exposes ``__cuda_array_interface__``)."""
    return hasattr(a, "__cuda_array_interface__")


def bind_cuda(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of the plain kernel body ``kernel`` whose global ``cuda`` is ``numba.cuda``.

    Kernel bodies live at module level (the CUDA simulator swaps the ``cuda`` module in a
    kernel's globals, which it cannot do for closures), while their modules must not import
    ``numba.cuda``; this binds it when a kernel is first compiled.
    """
    import types

    from numba import cuda

    return types.FunctionType(
        kernel.__code__, {**kernel.__globals__, "cuda": cuda}, kernel.__name__
    )


@functools.cache
def _jit(factory: Callable[[], Callable[..., Any]]) -> Any:
    from numba import cuda

    # cache=True: compiled kernels are kept on disk (beside the module, or in Numba's cache
    # folder), so that each new process, a GPU check's steps included, does not recompile them.
    return cuda.jit(factory(), cache=True)


def jitted(factory: Callable[[], Callable[..., Any]]) -> Any:
    """The ``numba.cuda.jit`` dispatcher of a kernel factory, compiled lazily per signature."""
    with _lock:
        return _jit(factory)


def _stream() -> Any:
    from numba import cuda

    ptr = cupy().cuda.get_current_stream().ptr
    return cuda.default_stream() if ptr == 0 else cuda.external_stream(ptr)


def _wrap(a: Any) -> Any:
    if isinstance(a, np.ndarray) or not is_device_array(a):
        return a
    from numba import cuda

    # sync=False: the data's producer is ordered on the same (current) stream already.
    return cuda.from_cuda_array_interface(a.__cuda_array_interface__, owner=a, sync=False)


def launch(
    factory: Callable[[], Callable[..., Any]],
    grid: tuple[int, ...],
    block: tuple[int, ...],
    *args: Any,
) -> None:
    """Launch the kernel of ``factory`` on ``args``.

    CuPy arrays run on CuPy's current stream; NumPy arrays (the CUDA simulator) run as Numba
    launches them.
    """
    kernel = jitted(factory)
    if any(is_device_array(a) and not isinstance(a, np.ndarray) for a in args):
        kernel[grid, block, _stream()](*[_wrap(a) for a in args])
    else:
        kernel[grid, block](*args)


def rows2d(tile: Any) -> Any:
    """A tile as ``(n, npix)`` (bool reinterpreted as uint8), without copying where possible."""
    if tile.ndim != 2:
        raise ShapeMismatchError(f"a tile must be 2-D (n, npix), got shape {tile.shape}")
    if tile.dtype == np.bool_:
        tile = tile.view(np.uint8)
    return tile


def row_chunks(npix: int, chunk: int = CHUNK) -> int:
    """Blocks needed to cover ``npix`` elements of a row in chunks of ``chunk``."""
    return max(1, math.ceil(npix / chunk))


def check_device_out(out: Any, shape: tuple[int, ...], name: str = "out") -> None:
    """Raise unless ``out`` is a float64 array of ``shape``."""
    if tuple(out.shape) != shape:
        raise ShapeMismatchError(f"{name} must have shape {shape}, got {tuple(out.shape)}")
    if out.dtype != np.float64:
        raise TypeError(f"{name} must be float64, got {out.dtype}")
